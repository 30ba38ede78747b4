//! Keeps the zone event log readable: every dose is written, and every
//! change of reason; a skip or an error with the same reason as the
//! zone's previous decision about the same subject is written again only
//! after `every` (`AUTOMATION_EVENT_REPEAT_SEC`), so a zone sitting on its
//! target for a day leaves a few hundred rows, not one per cycle. `every` =
//! 0 writes every decision.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Duration, Utc};

/// The last event written per (zone, subject); owned by the cycle loop.
#[derive(Debug)]
pub struct RepeatFilter {
    every: Duration,
    last: HashMap<(i64, &'static str), (String, DateTime<Utc>)>,
}

impl RepeatFilter {
    pub fn new(every: Duration) -> Self {
        RepeatFilter {
            every,
            last: HashMap::new(),
        }
    }

    /// Whether to write an event about `subject` (`ph`, `ec`, `zone`) of a
    /// zone. `repeat_key` is the reason for a skip or an error; `None` (a
    /// dose) is always written and starts the subject afresh.
    pub fn keep(
        &mut self,
        zone_id: i64,
        subject: &'static str,
        repeat_key: Option<&str>,
        now: DateTime<Utc>,
    ) -> bool {
        let key = (zone_id, subject);
        let Some(repeat_key) = repeat_key else {
            self.last.remove(&key);
            return true;
        };
        if let Some((last, at)) = self.last.get(&key)
            && last == repeat_key
            && now - *at < self.every
        {
            return false;
        }
        self.last.insert(key, (repeat_key.to_owned(), now));
        true
    }

    /// Forgets zones no longer processed (recipe finished, zone removed).
    pub fn retain_zones(&mut self, zones: &HashSet<i64>) {
        self.last.retain(|(zone, _), _| zones.contains(zone));
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn at(s: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 5, 1, 0, 0, 0).unwrap() + Duration::seconds(s)
    }

    #[test]
    fn a_repeated_reason_waits_its_turn() {
        let mut f = RepeatFilter::new(Duration::seconds(300));
        assert!(f.keep(1, "ph", Some("in_dead_band"), at(0)));
        assert!(!f.keep(1, "ph", Some("in_dead_band"), at(15)));
        assert!(!f.keep(1, "ph", Some("in_dead_band"), at(299)));
        assert!(f.keep(1, "ph", Some("in_dead_band"), at(300)));
        // Other zones and subjects are apart.
        assert!(f.keep(2, "ph", Some("in_dead_band"), at(15)));
        assert!(f.keep(1, "ec", Some("in_dead_band"), at(15)));
    }

    #[test]
    fn a_new_reason_or_a_dose_is_written_at_once() {
        let mut f = RepeatFilter::new(Duration::seconds(300));
        assert!(f.keep(1, "ph", Some("in_dead_band"), at(0)));
        assert!(f.keep(1, "ph", Some("stale_reading"), at(15)));
        assert!(f.keep(1, "ph", None, at(30)));
        assert!(f.keep(1, "ph", None, at(31)));
        assert!(f.keep(1, "ph", Some("stale_reading"), at(45)));
    }

    #[test]
    fn zero_writes_everything_and_forgotten_zones_start_afresh() {
        let mut f = RepeatFilter::new(Duration::zero());
        assert!(f.keep(1, "ph", Some("x"), at(0)));
        assert!(f.keep(1, "ph", Some("x"), at(0)));
        let mut f = RepeatFilter::new(Duration::seconds(300));
        assert!(f.keep(1, "ph", Some("x"), at(0)));
        f.retain_zones(&HashSet::from([2]));
        assert!(f.keep(1, "ph", Some("x"), at(1)));
    }
}
