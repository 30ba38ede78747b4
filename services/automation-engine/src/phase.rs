//! Recipe phase advancement: a phase ends `duration_hours` after it
//! started, and the next one starts at that moment (not when the engine
//! noticed), so a schedule built on phase starts does not drift; after an
//! outage several phases may be passed at once. After the last phase the
//! instance is COMPLETED. Each change is a zone event.

use chrono::{DateTime, Duration, Utc};
use common::store::recipe_phases::{self, ActivePhase, InstanceStatus};
use common::store::zone_events::ZoneEvent;
use serde_json::json;
use sqlx::PgPool;

/// Where an instance should be at `now`, when that differs from where it is.
#[derive(Debug, Clone, PartialEq)]
pub enum Advance {
    /// Now in phase `index`, which started at `started_at`.
    To {
        index: i32,
        started_at: DateTime<Utc>,
    },
    /// Every phase is over; the last ended at `at`.
    Completed { at: DateTime<Utc> },
}

fn hours(h: f64) -> Duration {
    Duration::milliseconds((h * 3_600_000.0).round() as i64)
}

/// Pure: the phase the instance is in at `now`. `None` while the current
/// phase runs (or the current phase is missing: nothing to measure it by).
pub fn advance(phase: &ActivePhase, now: DateTime<Utc>) -> Option<Advance> {
    let mut ends = phase.phase_started_at + hours(phase.duration_hours?);
    if now < ends {
        return None;
    }
    for (&index, &duration) in phase.next_indices.iter().zip(&phase.next_durations) {
        let started_at = ends;
        ends = started_at + hours(duration);
        if now < ends {
            return Some(Advance::To { index, started_at });
        }
    }
    Some(Advance::Completed { at: ends })
}

/// Writes the advance unless another writer moved the instance first;
/// returns the zone event to record, `None` when someone else did it.
pub async fn apply(
    pool: &PgPool,
    phase: &ActivePhase,
    advance: &Advance,
) -> Result<Option<ZoneEvent>, sqlx::Error> {
    let (index, started_at, status) = match advance {
        Advance::To { index, started_at } => (*index, *started_at, InstanceStatus::Active),
        Advance::Completed { at } => (phase.phase_index, *at, InstanceStatus::Completed),
    };
    let moved = recipe_phases::advance(
        pool,
        phase.instance_id,
        phase.phase_index,
        index,
        started_at,
        status,
    )
    .await?;
    if !moved {
        return Ok(None);
    }
    let event = match advance {
        Advance::To { index, started_at } => ZoneEvent::new(
            phase.zone_id,
            "RECIPE_PHASE_ADVANCED",
            json!({
                "recipe_id": phase.recipe_id,
                "from_phase": phase.phase_index,
                "to_phase": index,
                "phase_started_at": started_at,
            }),
        ),
        Advance::Completed { at } => ZoneEvent::new(
            phase.zone_id,
            "RECIPE_COMPLETED",
            json!({
                "recipe_id": phase.recipe_id,
                "last_phase": phase.phase_index,
                "completed_at": at,
            }),
        ),
    };
    Ok(Some(event))
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use serde_json::Value;

    use super::*;

    fn t(h: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 5, 1, 0, 0, 0).unwrap() + Duration::hours(h)
    }

    /// Phase 0 (24 h) started at t(0); then phases 1 (48 h) and 3 (12 h).
    fn phase() -> ActivePhase {
        ActivePhase {
            instance_id: 1,
            zone_id: 1,
            zone_uid: "zn-1".into(),
            timezone: "UTC".into(),
            capabilities: Value::Null,
            recipe_id: 1,
            phase_index: 0,
            phase_started_at: t(0),
            phase_name: Some("seedling".into()),
            duration_hours: Some(24.0),
            targets: None,
            next_indices: vec![1, 3],
            next_durations: vec![48.0, 12.0],
        }
    }

    #[test]
    fn a_running_phase_stays() {
        assert_eq!(advance(&phase(), t(0)), None);
        assert_eq!(advance(&phase(), t(24) - Duration::seconds(1)), None);
    }

    /// Phase `index` started at `t(h)`.
    fn to(index: i32, h: i64) -> Option<Advance> {
        Some(Advance::To {
            index,
            started_at: t(h),
        })
    }

    #[test]
    fn the_next_phase_starts_when_the_last_one_ended() {
        assert_eq!(advance(&phase(), t(24)), to(1, 24));
        // Noticed late: still started at t(24).
        assert_eq!(advance(&phase(), t(30)), to(1, 24));
    }

    #[test]
    fn several_phases_pass_after_an_outage_and_indices_may_skip() {
        assert_eq!(advance(&phase(), t(80)), to(3, 72));
        assert_eq!(
            advance(&phase(), t(84)),
            Some(Advance::Completed { at: t(84) })
        );
    }

    #[test]
    fn the_last_phase_completes_and_fractional_hours_count() {
        let mut p = phase();
        p.next_indices.clear();
        p.next_durations.clear();
        p.duration_hours = Some(0.5);
        assert_eq!(advance(&p, t(0) + Duration::minutes(29)), None);
        assert_eq!(
            advance(&p, t(1)),
            Some(Advance::Completed {
                at: t(0) + Duration::minutes(30)
            })
        );
    }
}
