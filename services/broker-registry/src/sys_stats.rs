//! The brokers' own figures from `$SYS/broker/#` (Mosquitto publishes them
//! every `sys_interval`): clients connected, messages received and sent
//! (counters; the health monitor turns them into a rate), uptime and the
//! retained message count.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use common::mqtt::Inbound;

/// The `$SYS` filter every broker is subscribed with.
pub const SYS_FILTER: &str = "$SYS/broker/#";

/// The latest figures of one broker.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct SysFigures {
    pub clients: Option<i64>,
    pub received: Option<u64>,
    pub sent: Option<u64>,
    pub uptime_sec: Option<i64>,
    pub retained: Option<i64>,
}

/// Figures per broker id; cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct SysStats {
    by_broker: Arc<Mutex<HashMap<String, SysFigures>>>,
}

impl SysStats {
    /// Takes a `$SYS` message; false when `message` is not one.
    pub fn on_message(&self, message: &Inbound) -> bool {
        let Some(name) = message.topic.strip_prefix("$SYS/broker/") else {
            return false;
        };
        let text = String::from_utf8_lossy(&message.payload);
        let mut all = self.by_broker.lock().unwrap_or_else(|p| p.into_inner());
        apply(
            all.entry(message.broker_id.to_string()).or_default(),
            name,
            &text,
        );
        true
    }

    /// The figures of `broker`, if it sent any.
    pub fn get(&self, broker: &str) -> SysFigures {
        self.by_broker
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(broker)
            .copied()
            .unwrap_or_default()
    }
}

/// The leading number of a `$SYS` value (`"42"`, `"3600 seconds"`).
fn number(text: &str) -> Option<f64> {
    text.split_whitespace().next()?.parse().ok()
}

fn apply(f: &mut SysFigures, name: &str, text: &str) {
    let Some(v) = number(text) else { return };
    match name {
        "clients/connected" => f.clients = Some(v as i64),
        "messages/received" => f.received = Some(v as u64),
        "messages/sent" => f.sent = Some(v as u64),
        "uptime" => f.uptime_sec = Some(v as i64),
        "retained messages/count" => f.retained = Some(v as i64),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mosquitto_values() {
        let mut f = SysFigures::default();
        apply(&mut f, "clients/connected", "12");
        apply(&mut f, "uptime", "3600 seconds");
        apply(&mut f, "messages/received", "1000");
        apply(&mut f, "messages/sent", "990");
        apply(&mut f, "retained messages/count", "7");
        apply(&mut f, "version", "mosquitto version 2.0.11");
        apply(&mut f, "clients/connected", "garbage");
        assert_eq!(
            f,
            SysFigures {
                clients: Some(12),
                received: Some(1000),
                sent: Some(990),
                uptime_sec: Some(3600),
                retained: Some(7)
            }
        );
    }
}
