//! How many zones a cycle processes at once, adapted as the seed's
//! automation-engine did: `total_zones × avg_zone_time / target_cycle_time`
//! — just enough parallel zones for the cycle to take the target time —
//! clamped to 5..50 so that neither a tiny greenhouse runs serially nor a
//! slow database is flooded. The zone time is remembered across cycles
//! (see [`remember`]).

use std::time::Duration;

/// The fewest zones processed at once.
pub const MIN: usize = 5;
/// The most zones processed at once.
pub const MAX: usize = 50;

/// The concurrency for `total_zones` zones that took `avg_zone_time` each
/// last time; with no measurement yet, the most (the first cycle's cost is
/// unknown, and it should not be slow).
pub fn optimal(
    total_zones: usize,
    avg_zone_time: Option<Duration>,
    target_cycle_time: Duration,
) -> usize {
    let Some(avg) = avg_zone_time else {
        return MAX;
    };
    let wanted = total_zones as f64 * avg.as_secs_f64() / target_cycle_time.as_secs_f64();
    (wanted.ceil() as usize).clamp(MIN, MAX)
}

/// The zone time the next cycle plans with: a slower cycle counts at once,
/// a faster one only by a tenth. A cycle where every zone merely skipped
/// says little about one where many dose — and zones dosed together come
/// due together again — so the concurrency is kept ready for the next burst.
pub fn remember(previous: Option<Duration>, measured: Duration) -> Duration {
    match previous {
        Some(p) if p > measured => p.mul_f64(0.9) + measured.mul_f64(0.1),
        _ => measured,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TARGET: Duration = Duration::from_secs(10);

    #[test]
    fn the_formula_between_its_bounds() {
        // 1000 zones × 200 ms / 10 s = 20.
        assert_eq!(optimal(1000, Some(Duration::from_millis(200)), TARGET), 20);
        // 300 zones × 1 s / 10 s = 30.
        assert_eq!(optimal(300, Some(Duration::from_secs(1)), TARGET), 30);
    }

    #[test]
    fn clamped_to_5_and_50() {
        assert_eq!(optimal(10, Some(Duration::from_millis(5)), TARGET), MIN);
        assert_eq!(optimal(0, Some(Duration::from_millis(5)), TARGET), MIN);
        assert_eq!(optimal(10_000, Some(Duration::from_secs(1)), TARGET), MAX);
    }

    #[test]
    fn slower_counts_at_once_faster_by_a_tenth() {
        let ms = Duration::from_millis;
        assert_eq!(remember(None, ms(3)), ms(3));
        assert_eq!(remember(Some(ms(3)), ms(30)), ms(30));
        assert_eq!(remember(Some(ms(30)), ms(10)), ms(28));
    }

    #[test]
    fn unmeasured_starts_at_the_most() {
        assert_eq!(optimal(1000, None, TARGET), MAX);
    }
}
