//! When slots are due: the instants at which a local time of day occurs in
//! a time zone, and whether a slot that is due is still young enough to
//! fire or is skipped as missed.
//!
//! Daylight saving: a time that occurs twice (autumn) fires once, at its
//! first occurrence; a time the clock skips (spring) fires as if the clock
//! had not moved yet (02:30 on the spring-forward night, Europe/Berlin,
//! fires at 03:30 local).

use chrono::{DateTime, Days, Duration, NaiveDateTime, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;

/// The instant of local `at` in `tz`.
fn resolve(tz: Tz, at: NaiveDateTime) -> Option<DateTime<Utc>> {
    tz.from_local_datetime(&at)
        .earliest()
        .or_else(|| {
            // In a gap: the offset in force just before it.
            let before = tz
                .from_local_datetime(&(at - Duration::hours(3)))
                .earliest()?;
            Some(before + Duration::hours(3))
        })
        .map(|t| t.with_timezone(&Utc))
}

/// Every instant in `[from, to]` at which the local time in `tz` is one of
/// `times`, in order.
pub fn occurrences(
    times: &[NaiveTime],
    tz: Tz,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Vec<DateTime<Utc>> {
    let mut out = Vec::new();
    if from > to {
        return out;
    }
    // A day before and after the local dates of the range: offsets move
    // instants across the date line.
    let first = from.with_timezone(&tz).date_naive() - Days::new(1);
    let last = to.with_timezone(&tz).date_naive() + Days::new(1);
    let mut day = first;
    while day <= last {
        for time in times {
            if let Some(at) = resolve(tz, day.and_time(*time))
                && from <= at
                && at <= to
            {
                out.push(at);
            }
        }
        day = day + Days::new(1);
    }
    out.sort();
    out.dedup();
    out
}

/// The local time of day of `now` in `tz`.
pub fn local_time(tz: Tz, now: DateTime<Utc>) -> NaiveTime {
    now.with_timezone(&tz).time()
}

/// What to do with a slot that is due and not yet recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Due {
    /// Fire it now (`late` after its time).
    Fire { late: Duration },
    /// Older than the catch-up age: record it as missed.
    Skip { age: Duration },
}

pub fn classify(slot: DateTime<Utc>, now: DateTime<Utc>, catch_up_max_age: Duration) -> Due {
    let age = now - slot;
    if age <= catch_up_max_age {
        Due::Fire { late: age }
    } else {
        Due::Skip { age }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap()
    }

    fn t(h: u32, m: u32) -> NaiveTime {
        NaiveTime::from_hms_opt(h, m, 0).unwrap()
    }

    #[test]
    fn daily_times_in_a_range() {
        let got = occurrences(
            &[t(8, 0), t(18, 0)],
            Tz::UTC,
            utc(2026, 5, 1, 9, 0),
            utc(2026, 5, 2, 8, 0),
        );
        assert_eq!(got, [utc(2026, 5, 1, 18, 0), utc(2026, 5, 2, 8, 0)]);
    }

    #[test]
    fn local_times_follow_the_greenhouse_zone() {
        // 08:00 in Lisbon is 07:00 UTC in summer, 08:00 UTC in winter;
        // 23:30 in Tokyo (UTC+9) is 14:30 UTC the same day.
        let cases: [(_, chrono_tz::Tz, _, _); 3] = [
            (
                t(8, 0),
                chrono_tz::Europe::Lisbon,
                (2026, 7, 1),
                utc(2026, 7, 1, 7, 0),
            ),
            (
                t(8, 0),
                chrono_tz::Europe::Lisbon,
                (2026, 1, 1),
                utc(2026, 1, 1, 8, 0),
            ),
            (
                t(23, 30),
                chrono_tz::Asia::Tokyo,
                (2026, 5, 1),
                utc(2026, 5, 1, 14, 30),
            ),
        ];
        for (time, tz, (y, m, d), expected) in cases {
            let got = occurrences(&[time], tz, utc(y, m, d, 0, 0), utc(y, m, d, 23, 0));
            assert_eq!(got, [expected], "{time} in {tz} on {y}-{m}-{d}");
        }
    }

    #[test]
    fn midnight_window_edges_land_on_the_right_days() {
        // "22:00-02:00" in UTC: on at 22:00, off at 02:00 the next day.
        let on = occurrences(
            &[t(22, 0)],
            Tz::UTC,
            utc(2026, 5, 1, 12, 0),
            utc(2026, 5, 2, 12, 0),
        );
        let off = occurrences(
            &[t(2, 0)],
            Tz::UTC,
            utc(2026, 5, 1, 12, 0),
            utc(2026, 5, 2, 12, 0),
        );
        assert_eq!(on, [utc(2026, 5, 1, 22, 0)]);
        assert_eq!(off, [utc(2026, 5, 2, 2, 0)]);
        assert!(off[0] > on[0]);
    }

    #[test]
    fn daylight_saving_fires_each_slot_once() {
        // 2026-03-29: 02:00 -> 03:00. 02:30 does not exist: fires at 01:30 UTC (03:30 local).
        // 2026-10-25: 03:00 -> 02:00. 02:30 occurs twice: fires once, the first time (00:30 UTC).
        for (day, expected) in [
            ((2026, 3, 28), utc(2026, 3, 29, 1, 30)),
            ((2026, 10, 24), utc(2026, 10, 25, 0, 30)),
        ] {
            let (y, m, d) = day;
            let from = utc(y, m, d, 12, 0);
            let got = occurrences(
                &[t(2, 30)],
                chrono_tz::Europe::Berlin,
                from,
                from + Duration::days(1),
            );
            assert_eq!(got, [expected], "the night after {y}-{m}-{d}");
        }
    }

    #[test]
    fn range_ends_are_included_and_an_empty_range_is_empty() {
        let at = utc(2026, 5, 1, 8, 0);
        assert_eq!(occurrences(&[t(8, 0)], Tz::UTC, at, at), [at]);
        assert!(occurrences(&[t(8, 0)], Tz::UTC, at, at - Duration::seconds(1)).is_empty());
    }

    #[test]
    fn catch_up_fires_young_slots_and_skips_old_ones() {
        let slot = utc(2026, 5, 1, 8, 0);
        let max = Duration::minutes(15);
        assert_eq!(
            classify(slot, slot, max),
            Due::Fire {
                late: Duration::zero()
            }
        );
        assert_eq!(
            classify(slot, slot + Duration::minutes(15), max),
            Due::Fire {
                late: Duration::minutes(15)
            }
        );
        assert_eq!(
            classify(slot, slot + Duration::minutes(16), max),
            Due::Skip {
                age: Duration::minutes(16)
            }
        );
    }
}
