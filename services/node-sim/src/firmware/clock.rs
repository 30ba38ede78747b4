//! A firmware node's clock: uptime until the backend's time response, then
//! uptime plus the offset that response gave (node_utils.c). Until then the
//! node publishes nothing that carries a `ts` and refuses commands.

use tokio::time::Instant;

/// The firmware refuses a time response earlier than this (2001-09-09).
pub const MIN_UNIX_TS: i64 = 1_000_000_000;

/// Uptime and, once synchronised, wall-clock time.
#[derive(Debug, Clone)]
pub struct Clock {
    boot: Instant,
    /// Unix milliseconds minus uptime milliseconds; `None` before a sync.
    offset_ms: Option<i64>,
}

impl Default for Clock {
    fn default() -> Self {
        Clock::new()
    }
}

impl Clock {
    /// A clock that has just booted, not synchronised.
    pub fn new() -> Clock {
        Clock {
            boot: Instant::now(),
            offset_ms: None,
        }
    }

    /// Milliseconds since boot.
    pub fn uptime_ms(&self) -> i64 {
        i64::try_from(self.boot.elapsed().as_millis()).unwrap_or(i64::MAX)
    }

    /// Takes the backend's `unix_ts` (seconds). Returns false (and changes
    /// nothing) for an implausible one.
    pub fn set(&mut self, unix_ts: i64) -> bool {
        if unix_ts < MIN_UNIX_TS {
            return false;
        }
        self.offset_ms = Some(unix_ts.saturating_mul(1000) - self.uptime_ms());
        true
    }

    pub fn is_synced(&self) -> bool {
        self.offset_ms.is_some()
    }

    /// Unix milliseconds, once synchronised.
    pub fn now_ms(&self) -> Option<i64> {
        self.offset_ms.map(|o| o + self.uptime_ms())
    }

    /// Unix seconds, once synchronised.
    pub fn now_secs(&self) -> Option<i64> {
        self.now_ms().map(|ms| ms.div_euclid(1000))
    }

    /// What the firmware stamps a command response with: its clock in
    /// whole seconds times 1000 (uptime before a sync).
    pub fn stamp_ms(&self) -> i64 {
        self.now_ms()
            .unwrap_or_else(|| self.uptime_ms())
            .div_euclid(1000)
            * 1000
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn no_wall_clock_until_a_plausible_time_response() {
        let mut clock = Clock::new();
        assert!(!clock.is_synced());
        assert_eq!(clock.now_secs(), None);
        assert!(!clock.set(12_345), "uptime-like values are refused");
        assert!(!clock.is_synced());
        tokio::time::advance(Duration::from_millis(3_400)).await;
        assert_eq!(clock.stamp_ms(), 3_000);

        assert!(clock.set(1_800_000_000));
        assert_eq!(clock.now_secs(), Some(1_800_000_000));
        tokio::time::advance(Duration::from_millis(2_500)).await;
        assert_eq!(clock.now_ms(), Some(1_800_000_002_500));
        assert_eq!(clock.now_secs(), Some(1_800_000_002));
        assert_eq!(clock.stamp_ms(), 1_800_000_002_000);
        // A later response moves the clock (either way).
        assert!(clock.set(1_700_000_000));
        assert_eq!(clock.now_secs(), Some(1_700_000_000));
    }
}
