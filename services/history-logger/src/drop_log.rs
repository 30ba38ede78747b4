//! Log lines for what is dropped or ignored (dead letters, statuses that
//! change nothing), rate-limited per reason: at most one line per reason every
//! [`EVERY`], carrying how many there were since the last line and one example.
//! A flood of bad messages costs one line per reason, not one per message,
//! and nothing dropped goes unmentioned.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;
use tracing::warn;

/// At most one line per reason this often.
pub const EVERY: Duration = Duration::from_secs(10);

/// Per reason: when its last line was written and how many came since.
#[derive(Debug, Default)]
pub struct DropLog {
    reasons: Mutex<HashMap<&'static str, (Option<Instant>, u64)>>,
}

impl DropLog {
    /// Notes one dropped message; writes a line when its reason had none for
    /// [`EVERY`]. `what` says what happened (`dead-lettered`, `status ignored`),
    /// `reason` is the bounded label also used by the metrics, `example` the
    /// message's topic (or node) and `detail` what was wrong with it.
    pub fn note(&self, what: &'static str, reason: &'static str, example: &str, detail: &str) {
        if let Some(count) = self.due(reason, Instant::now()) {
            warn!(
                what,
                reason,
                count,
                example,
                detail,
                "Uplink dropped or ignored ({count} with this reason since the last line; one line per reason every 10 s)."
            );
        }
    }

    /// The count to report when a line is due now.
    fn due(&self, reason: &'static str, now: Instant) -> Option<u64> {
        let mut reasons = self.reasons.lock().unwrap_or_else(|p| p.into_inner());
        let (last, count) = reasons.entry(reason).or_insert((None, 0));
        *count += 1;
        match last {
            Some(at) if now.duration_since(*at) < EVERY => None,
            _ => {
                *last = Some(now);
                Some(std::mem::take(count))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_reason_per_period_with_the_count() {
        let log = DropLog::default();
        let t0 = Instant::now();
        assert_eq!(log.due("a", t0), Some(1));
        assert_eq!(log.due("a", t0 + Duration::from_secs(1)), None);
        assert_eq!(log.due("a", t0 + Duration::from_secs(2)), None);
        assert_eq!(log.due("b", t0 + Duration::from_secs(2)), Some(1));
        assert_eq!(log.due("a", t0 + EVERY), Some(3));
        assert_eq!(log.due("a", t0 + EVERY + Duration::from_secs(1)), None);
    }
}
