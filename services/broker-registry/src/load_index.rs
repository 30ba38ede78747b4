//! The load index of a broker and the status thresholds: how one health
//! sample becomes a number and a GOOD / DEGRADED / CRITICAL / OFFLINE.
//!
//! **Load index** (0 = idle, 1 = at the capacity we plan a broker for):
//!
//! ```text
//! without CPU: 0.35·connections/1000 + 0.35·msgs_per_sec/2000 + 0.30·latency_ms/100
//! with CPU:    0.25·connections/1000 + 0.25·msgs_per_sec/2000 + 0.25·latency_ms/100 + 0.25·cpu
//! ```
//!
//! `connections` is the broker's `$SYS/broker/clients/connected`,
//! `msgs_per_sec` its messages received plus sent per second (from the
//! `$SYS` counters between two samples), `latency_ms` our round-trip probe,
//! `cpu` a 0..1 figure where the broker reports one (Mosquitto does not;
//! EMQX does). Each term is capped at 2, so one runaway figure cannot hide
//! the others. A node adds about one connection and one or two messages a
//! second, ≈ 0.0006 (see `common::placement::balance::NODE_LOAD_ESTIMATE`).
//!
//! **Status of a sample**, first match wins:
//!
//! | status | when |
//! |---|---|
//! | OFFLINE | the probe failed (no connection, or no echo within the timeout) |
//! | CRITICAL | load index ≥ 0.9, or latency ≥ 500 ms |
//! | DEGRADED | load index ≥ 0.6, or latency ≥ 100 ms, or the connection dropped since the last sample |
//! | GOOD | otherwise |
//!
//! The monitor changes a broker's status between GOOD, DEGRADED and CRITICAL
//! only after two samples in a row agree; OFFLINE and the way back to GOOD
//! are the failover service's decisions (`common::placement::broker_status`).

use common::placement::broker_status::BrokerStatus;

/// Connections at which the connection term is 1.
pub const CONNECTIONS_CAPACITY: f64 = 1000.0;
/// Messages per second (in + out) at which the rate term is 1.
pub const MSGS_CAPACITY: f64 = 2000.0;
/// Probe latency at which the latency term is 1.
pub const LATENCY_CAPACITY_MS: f64 = 100.0;
/// Load index from which a broker is DEGRADED.
pub const DEGRADED_LOAD: f64 = 0.6;
/// Load index from which a broker is CRITICAL.
pub const CRITICAL_LOAD: f64 = 0.9;
/// Probe latency from which a broker is DEGRADED.
pub const DEGRADED_LATENCY_MS: f64 = 100.0;
/// Probe latency from which a broker is CRITICAL.
pub const CRITICAL_LATENCY_MS: f64 = 500.0;

/// The figures of one sample that the index is made of.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Figures {
    pub connections: f64,
    pub msgs_per_sec: f64,
    pub latency_ms: f64,
    /// 0..1, where the broker reports it.
    pub cpu: Option<f64>,
}

fn term(value: f64, capacity: f64) -> f64 {
    (value.max(0.0) / capacity).min(2.0)
}

/// The load index of `f` (see the module doc).
pub fn load_index(f: &Figures) -> f64 {
    let c = term(f.connections, CONNECTIONS_CAPACITY);
    let m = term(f.msgs_per_sec, MSGS_CAPACITY);
    let l = term(f.latency_ms, LATENCY_CAPACITY_MS);
    match f.cpu {
        None => 0.35 * c + 0.35 * m + 0.30 * l,
        Some(cpu) => 0.25 * (c + m + l + cpu.clamp(0.0, 2.0)),
    }
}

/// The status of one sample (see the module doc): `latency_ms` is `None`
/// when the probe failed.
pub fn sample_status(load: f64, latency_ms: Option<f64>, dropped: bool) -> BrokerStatus {
    let Some(latency) = latency_ms else {
        return BrokerStatus::Offline;
    };
    if load >= CRITICAL_LOAD || latency >= CRITICAL_LATENCY_MS {
        BrokerStatus::Critical
    } else if load >= DEGRADED_LOAD || latency >= DEGRADED_LATENCY_MS || dropped {
        BrokerStatus::Degraded
    } else {
        BrokerStatus::Good
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn formula_without_and_with_cpu() {
        let idle = Figures::default();
        assert_eq!(load_index(&idle), 0.0);
        let f = Figures {
            connections: 500.0,
            msgs_per_sec: 1000.0,
            latency_ms: 50.0,
            cpu: None,
        };
        assert!(close(load_index(&f), 0.35 * 0.5 + 0.35 * 0.5 + 0.30 * 0.5));
        let with_cpu = Figures {
            cpu: Some(0.5),
            ..f
        };
        assert!(close(load_index(&with_cpu), 0.5));
        // One runaway figure is capped.
        let runaway = Figures {
            latency_ms: 1e9,
            ..Figures::default()
        };
        assert!(close(load_index(&runaway), 0.6));
        // A node's worth of load is what common::placement::balance estimates.
        let node = Figures {
            connections: 1.0,
            msgs_per_sec: 1.6,
            ..Figures::default()
        };
        assert!(
            (load_index(&node) - common::placement::balance::NODE_LOAD_ESTIMATE).abs() < 0.0001
        );
    }

    #[test]
    fn thresholds() {
        assert_eq!(sample_status(0.0, None, false), BrokerStatus::Offline);
        assert_eq!(sample_status(0.1, Some(2.0), false), BrokerStatus::Good);
        assert_eq!(sample_status(0.1, Some(2.0), true), BrokerStatus::Degraded);
        assert_eq!(sample_status(0.6, Some(2.0), false), BrokerStatus::Degraded);
        assert_eq!(sample_status(0.59, Some(99.0), false), BrokerStatus::Good);
        assert_eq!(
            sample_status(0.1, Some(100.0), false),
            BrokerStatus::Degraded
        );
        assert_eq!(sample_status(0.9, Some(2.0), false), BrokerStatus::Critical);
        assert_eq!(
            sample_status(0.1, Some(500.0), true),
            BrokerStatus::Critical
        );
    }
}
