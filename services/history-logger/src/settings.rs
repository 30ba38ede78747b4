//! history-logger's own settings (`HISTORY_*`, `TELEMETRY_*`, `INSTANCE_ID`), read from the
//! environment next to the shared [`common::settings::Settings`] and
//! validated before anything starts.

use common::settings::{FromEnv, SettingsError, require, within};
use serde::Deserialize;

/// Where the uplink queue lives and how this instance takes part in it.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct HistorySettings {
    /// `HISTORY_STREAM`: the Redis stream every instance appends to; default
    /// `history-logger:uplink`.
    pub history_stream: String,
    /// `HISTORY_DEAD_LETTER_KEY`: the Redis list of refused messages; default
    /// `history-logger:dead-letter`.
    pub history_dead_letter_key: String,
    /// `HISTORY_CONSUMER_GROUP`: the stream's consumer group; default the
    /// service name.
    pub history_consumer_group: String,
    /// `HISTORY_QUEUE_MAX`: the queue's bound in messages. Past 90 % it warns;
    /// at the bound it stops acknowledging to the brokers. Default 1000000.
    pub history_queue_max: u64,
    /// `HISTORY_DEAD_LETTER_MAX`: refused messages kept (newest first);
    /// default 10000.
    pub history_dead_letter_max: u64,
    /// `HISTORY_CLAIM_IDLE_MS`: a pending entry idle this long belongs to a
    /// dead consumer and is claimed by a live one; default 30000.
    pub history_claim_idle_ms: u64,
    /// `HISTORY_WRITERS`: batches written to PostgreSQL at once; default 4.
    pub history_writers: usize,
    /// `HISTORY_SESSION_EXPIRY_SEC`: how long a broker keeps this instance's
    /// MQTT session (and the messages it holds) after a disconnect; 0 = a
    /// clean session on every connect. Default 3600.
    pub history_session_expiry_sec: u32,
    /// `HISTORY_MAX_FUTURE_SKEW_SEC`: a reading whose `ts` is more than this
    /// many seconds after it arrived is refused (`future_ts`); 0..=86400,
    /// default [`crate::uplink::DEFAULT_MAX_FUTURE_SKEW_SEC`].
    pub history_max_future_skew_sec: i64,
    /// `TELEMETRY_BATCH_SIZE`: messages per write batch; default 200.
    pub telemetry_batch_size: usize,
    /// `TELEMETRY_FLUSH_MS`: the longest a partial batch waits; default 500.
    pub telemetry_flush_ms: u64,
    /// `INSTANCE_ID`: this instance's stable name (MQTT client ids, stream
    /// consumer); default the host name. Must differ between instances.
    pub instance_id: Option<String>,
}

impl Default for HistorySettings {
    fn default() -> Self {
        HistorySettings {
            history_stream: "history-logger:uplink".into(),
            history_dead_letter_key: "history-logger:dead-letter".into(),
            history_consumer_group: crate::SERVICE.into(),
            history_queue_max: 1_000_000,
            history_dead_letter_max: 10_000,
            history_claim_idle_ms: 30_000,
            history_writers: 4,
            history_session_expiry_sec: 3_600,
            history_max_future_skew_sec: crate::uplink::DEFAULT_MAX_FUTURE_SKEW_SEC,
            telemetry_batch_size: 200,
            telemetry_flush_ms: 500,
            instance_id: None,
        }
    }
}

impl FromEnv for HistorySettings {
    fn validate(&self) -> Result<(), SettingsError> {
        within(
            "HISTORY_QUEUE_MAX",
            self.history_queue_max,
            100,
            100_000_000,
        )?;
        within(
            "HISTORY_DEAD_LETTER_MAX",
            self.history_dead_letter_max,
            1,
            10_000_000,
        )?;
        within(
            "HISTORY_CLAIM_IDLE_MS",
            self.history_claim_idle_ms,
            1,
            86_400_000,
        )?;
        within("HISTORY_WRITERS", self.history_writers, 1, 64)?;
        within(
            "TELEMETRY_BATCH_SIZE",
            self.telemetry_batch_size,
            1,
            100_000,
        )?;
        within("TELEMETRY_FLUSH_MS", self.telemetry_flush_ms, 1, 60_000)?;
        within(
            "HISTORY_MAX_FUTURE_SKEW_SEC",
            self.history_max_future_skew_sec,
            0,
            86_400,
        )?;
        require(
            self.instance_id.as_ref().is_none_or(|id| {
                id.len() <= 64
                    && id
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
            }),
            "INSTANCE_ID must be at most 64 characters of A-Z, a-z, 0-9, `_`, `.`, `-`",
        )
    }
}

impl HistorySettings {
    /// `INSTANCE_ID`, else the host name, else `local`.
    pub fn instance(&self) -> String {
        if let Some(id) = &self.instance_id {
            return id.clone();
        }
        let host = std::env::var("HOSTNAME")
            .ok()
            .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
            .unwrap_or_default();
        let host: String = host
            .trim()
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
            .take(64)
            .collect();
        if host.is_empty() {
            "local".into()
        } else {
            host
        }
    }

    /// The session expiry for the MQTT connections, `None` for clean sessions.
    pub fn session_expiry(&self) -> Option<u32> {
        (self.history_session_expiry_sec > 0).then_some(self.history_session_expiry_sec)
    }

    /// What decoding checks besides the payload's shape.
    pub fn checks(&self) -> crate::uplink::Checks {
        crate::uplink::Checks {
            max_future_skew_sec: self.history_max_future_skew_sec,
        }
    }
}

common::durations!(HistorySettings {
    claim_idle: from_millis(history_claim_idle_ms),
    flush: from_millis(telemetry_flush_ms),
});

#[cfg(test)]
mod tests {
    use super::*;
    use testkit::env_vars;

    #[test]
    fn defaults() {
        let s = HistorySettings::from_vars(env_vars::<&str, &str>(&[])).unwrap();
        assert_eq!(s.history_stream, "history-logger:uplink");
        assert_eq!(s.history_dead_letter_key, "history-logger:dead-letter");
        assert_eq!(s.history_queue_max, 1_000_000);
        assert_eq!(s.session_expiry(), Some(3600));
        assert_eq!(s.history_writers, 4);
        assert_eq!(s.telemetry_batch_size, 200);
        assert_eq!(s.telemetry_flush_ms, 500);
        assert_eq!(s.checks().max_future_skew_sec, 300);
        assert!(!s.instance().is_empty());
    }

    #[test]
    fn overrides_and_refusals() {
        let s = HistorySettings::from_vars(env_vars(&[
            ("HISTORY_STREAM", "t:s"),
            ("HISTORY_SESSION_EXPIRY_SEC", "0"),
            ("INSTANCE_ID", "hl-a"),
            ("TELEMETRY_BATCH_SIZE", "500"),
        ]))
        .unwrap();
        assert_eq!(s.telemetry_batch_size, 500);
        assert_eq!(s.history_stream, "t:s");
        assert_eq!(s.session_expiry(), None);
        assert_eq!(s.instance(), "hl-a");
        // Blank is unset (see `common::settings::from_env`): the defaults.
        let s = HistorySettings::from_vars(env_vars(&[
            ("HISTORY_STREAM", " "),
            ("INSTANCE_ID", ""),
            ("HISTORY_WRITERS", " 8 "),
        ]))
        .unwrap();
        assert_eq!(s.history_stream, "history-logger:uplink");
        assert!(s.instance_id.is_none());
        assert_eq!(s.history_writers, 8);
        for (k, v) in [
            ("HISTORY_QUEUE_MAX", "5"),
            ("INSTANCE_ID", "a/b"),
            ("HISTORY_WRITERS", "0"),
            ("TELEMETRY_BATCH_SIZE", "0"),
            ("TELEMETRY_FLUSH_MS", "0"),
            ("HISTORY_MAX_FUTURE_SKEW_SEC", "-1"),
            ("HISTORY_MAX_FUTURE_SKEW_SEC", "86401"),
        ] {
            let err = HistorySettings::from_vars(env_vars(&[(k, v)])).unwrap_err();
            assert!(err.to_string().contains(k), "{k}: {err}");
        }
    }
}
