//! The correction law for one quantity (pH or EC) of one zone: a dead band
//! around the recipe's target, and outside it a proportional dose bounded
//! by a minimum and a maximum, sent only on a fresh, stable reading, once
//! the previous dose has a final status and the minimum interval has passed.
//!
//! A reading from the future (its `ts` more than [`FUTURE_TOLERANCE_SEC`]
//! after `now`) is never acted on: a node clock that ran ahead, or a forged
//! `ts`, would otherwise look fresh for as long as it stays ahead.
//!
//! Pure: the caller gives the time (`now`), so every rule is unit-tested.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::limits::Limits;

/// How far (seconds) a reading's `ts` may be after `now` and still count:
/// node clocks are synced to ours in whole seconds, so a current reading can
/// look a second or two ahead; anything further is a clock or a `ts` not to
/// be trusted.
pub const FUTURE_TOLERANCE_SEC: i64 = 5;

/// What the engine corrects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Quantity {
    Ph,
    Ec,
}

impl Quantity {
    pub const ALL: [Quantity; 2] = [Quantity::Ph, Quantity::Ec];

    /// The key in `recipe_phases.targets` and in `zones.capabilities.automation`.
    pub fn as_str(self) -> &'static str {
        match self {
            Quantity::Ph => "ph",
            Quantity::Ec => "ec",
        }
    }

    /// `telemetry_last.metric_type` of its readings.
    pub fn metric_type(self) -> &'static str {
        match self {
            Quantity::Ph => "PH",
            Quantity::Ec => "EC",
        }
    }
}

/// Where the recipe wants a quantity: `{"target":5.8,"min":5.6,"max":6.0}`.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
pub struct Setpoint {
    pub target: f64,
    pub min: Option<f64>,
    pub max: Option<f64>,
}

impl Setpoint {
    /// Reads a phase's `targets.ph` or `targets.ec`; the error says what is wrong.
    pub fn parse(value: &Value) -> Result<Setpoint, String> {
        let s: Setpoint = serde_json::from_value(value.clone())
            .map_err(|e| format!("{value} is not {{\"target\":…,\"min\":…,\"max\":…}}: {e}"))?;
        let finite = |x: Option<f64>| x.is_none_or(f64::is_finite);
        if !s.target.is_finite() || !finite(s.min) || !finite(s.max) {
            return Err(format!("{value}: target, min and max must be numbers"));
        }
        if s.min.is_some_and(|m| m > s.target) || s.max.is_some_and(|m| m < s.target) {
            return Err(format!("{value}: min ≤ target ≤ max does not hold"));
        }
        Ok(s)
    }
}

/// The zone's newest reading of the quantity (`telemetry_last`).
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    pub node_id: i64,
    pub value: f64,
    pub ts: DateTime<Utc>,
    /// `false` when the probe said the value is still settling; `None` when
    /// the node does not say (taken as stable).
    pub stable: Option<bool>,
}

/// The newest automation dose of the quantity in the zone.
#[derive(Debug, Clone, PartialEq)]
pub struct LastDose {
    pub cmd_id: String,
    pub at: DateTime<Utc>,
    /// No final status yet.
    pub open: bool,
}

/// Which way a dose moves the value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Acid for pH, dilution for EC.
    Down,
    /// Base for pH, nutrients for EC.
    Up,
}

/// A dose to send.
#[derive(Debug, Clone, PartialEq)]
pub struct Dose {
    pub direction: Direction,
    /// The pump channel: the limits' `down_channel` or `up_channel`.
    pub channel: String,
    /// `run_pump`'s `duration_ms`.
    pub duration_ms: u64,
    /// reading − target.
    pub error: f64,
    /// The proportional dose was above the maximum and was cut to it.
    pub capped: bool,
}

/// Why no dose was sent.
#[derive(Debug, Clone, PartialEq)]
pub enum Skip {
    NoReading,
    /// The reading is dated after now, beyond [`FUTURE_TOLERANCE_SEC`].
    FutureReading {
        ahead_sec: i64,
    },
    StaleReading {
        age_sec: i64,
    },
    UnstableReading,
    InDeadBand {
        low: f64,
        high: f64,
    },
    PreviousDosePending {
        cmd_id: String,
    },
    MinInterval {
        wait_sec: i64,
    },
}

impl Skip {
    /// The reason's name: zone event, metric label.
    pub fn reason(&self) -> &'static str {
        match self {
            Skip::NoReading => "no_reading",
            Skip::FutureReading { .. } => "future_reading",
            Skip::StaleReading { .. } => "stale_reading",
            Skip::UnstableReading => "unstable_reading",
            Skip::InDeadBand { .. } => "in_dead_band",
            Skip::PreviousDosePending { .. } => "previous_dose_pending",
            Skip::MinInterval { .. } => "min_interval",
        }
    }

    /// What the operator needs to see besides the reason.
    pub fn details(&self) -> Value {
        match self {
            Skip::NoReading | Skip::UnstableReading => json!({}),
            Skip::StaleReading { age_sec } => json!({ "age_sec": age_sec }),
            Skip::FutureReading { ahead_sec } => json!({ "ahead_sec": ahead_sec }),
            Skip::InDeadBand { low, high } => json!({ "band": [low, high] }),
            Skip::PreviousDosePending { cmd_id } => json!({ "pending_cmd_id": cmd_id }),
            Skip::MinInterval { wait_sec } => json!({ "next_dose_in_sec": wait_sec }),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    Dose(Dose),
    Skip(Skip),
}

/// Decides for one quantity of one zone at `now`. The checks run in the
/// order an operator would ask: is there a usable reading, is it off
/// target, may we dose again yet.
pub fn decide(
    setpoint: &Setpoint,
    limits: &Limits,
    reading: Option<&Reading>,
    last: Option<&LastDose>,
    now: DateTime<Utc>,
) -> Decision {
    let Some(reading) = reading else {
        return Decision::Skip(Skip::NoReading);
    };
    let ahead_sec = (reading.ts - now).num_seconds();
    if ahead_sec > FUTURE_TOLERANCE_SEC {
        return Decision::Skip(Skip::FutureReading { ahead_sec });
    }
    // Within the tolerance a reading ahead of our clock is as fresh as can be.
    let age_sec = (now - reading.ts).num_seconds().max(0);
    if age_sec > limits.max_reading_age_sec {
        return Decision::Skip(Skip::StaleReading { age_sec });
    }
    if reading.stable == Some(false) {
        return Decision::Skip(Skip::UnstableReading);
    }
    // The band never reaches past the recipe's own min/max.
    let low = setpoint
        .min
        .map_or(setpoint.target - limits.dead_band, |m| {
            m.max(setpoint.target - limits.dead_band)
        });
    let high = setpoint
        .max
        .map_or(setpoint.target + limits.dead_band, |m| {
            m.min(setpoint.target + limits.dead_band)
        });
    if (low..=high).contains(&reading.value) {
        return Decision::Skip(Skip::InDeadBand { low, high });
    }
    if let Some(last) = last {
        if last.open {
            return Decision::Skip(Skip::PreviousDosePending {
                cmd_id: last.cmd_id.clone(),
            });
        }
        let since = (now - last.at).num_seconds();
        if since < limits.min_interval_sec {
            return Decision::Skip(Skip::MinInterval {
                wait_sec: limits.min_interval_sec - since,
            });
        }
    }
    let error = reading.value - setpoint.target;
    let (direction, channel) = if error > 0.0 {
        (Direction::Down, &limits.down_channel)
    } else {
        (Direction::Up, &limits.up_channel)
    };
    // Proportional towards the target itself, not the band's edge: a dose
    // that only reached the edge would leave the value hovering there.
    let proportional = (limits.ms_per_unit * error.abs()).round();
    let capped = proportional > limits.max_dose_ms as f64;
    let duration_ms = (proportional as u64).clamp(limits.min_dose_ms, limits.max_dose_ms);
    Decision::Dose(Dose {
        direction,
        channel: channel.clone(),
        duration_ms,
        error,
        capped,
    })
}

#[cfg(test)]
mod tests {
    use chrono::{Duration, TimeZone};

    use super::*;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 5, 1, 12, 0, 0).unwrap()
    }

    fn ph() -> (Setpoint, Limits) {
        (
            Setpoint {
                target: 5.8,
                min: None,
                max: None,
            },
            Limits::defaults(Quantity::Ph),
        )
    }

    fn reading(value: f64) -> Reading {
        Reading {
            node_id: 1,
            value,
            ts: now() - Duration::seconds(5),
            stable: Some(true),
        }
    }

    fn dose(d: Decision) -> Dose {
        match d {
            Decision::Dose(d) => d,
            other => panic!("expected a dose, got {other:?}"),
        }
    }

    fn skip(d: Decision) -> Skip {
        match d {
            Decision::Skip(s) => s,
            other => panic!("expected a skip, got {other:?}"),
        }
    }

    #[test]
    fn high_ph_gets_acid_and_low_ph_gets_base() {
        let (s, l) = ph();
        let high = dose(decide(&s, &l, Some(&reading(6.3)), None, now()));
        assert_eq!(
            (high.direction, high.channel.as_str()),
            (Direction::Down, "pump_acid")
        );
        assert!((high.error - 0.5).abs() < 1e-9);
        let low = dose(decide(&s, &l, Some(&reading(5.3)), None, now()));
        assert_eq!(
            (low.direction, low.channel.as_str()),
            (Direction::Up, "pump_base")
        );
    }

    #[test]
    fn high_ec_gets_dilution_and_low_ec_gets_nutrients() {
        let s = Setpoint {
            target: 1.8,
            min: None,
            max: None,
        };
        let l = Limits::defaults(Quantity::Ec);
        let high = dose(decide(&s, &l, Some(&reading(2.2)), None, now()));
        assert_eq!(high.channel, "pump_dilution");
        let low = dose(decide(&s, &l, Some(&reading(1.4)), None, now()));
        assert_eq!(low.channel, "pump_nutrients");
        assert_eq!(low.direction, Direction::Up);
    }

    #[test]
    fn the_dose_is_proportional_to_the_error() {
        let (s, l) = ph();
        let small = dose(decide(&s, &l, Some(&reading(6.0)), None, now()));
        let large = dose(decide(&s, &l, Some(&reading(6.2)), None, now()));
        assert_eq!(small.duration_ms, (l.ms_per_unit * 0.2).round() as u64);
        assert_eq!(large.duration_ms, (l.ms_per_unit * 0.4).round() as u64);
        assert!(!small.capped && !large.capped);
    }

    #[test]
    fn the_dose_is_bounded_by_its_minimum_and_maximum() {
        let (s, mut l) = ph();
        let far = dose(decide(&s, &l, Some(&reading(8.8)), None, now()));
        assert_eq!(far.duration_ms, l.max_dose_ms);
        assert!(far.capped);
        l.dead_band = 0.01;
        let near = dose(decide(&s, &l, Some(&reading(5.82)), None, now()));
        assert_eq!(near.duration_ms, l.min_dose_ms);
        assert!(!near.capped);
    }

    #[test]
    fn nothing_inside_the_dead_band_edges_included() {
        let (s, l) = ph();
        for v in [5.8, 5.75, 5.85, 5.8 - l.dead_band, 5.8 + l.dead_band] {
            assert_eq!(
                skip(decide(&s, &l, Some(&reading(v)), None, now())).reason(),
                "in_dead_band",
                "{v}"
            );
        }
        dose(decide(
            &s,
            &l,
            Some(&reading(5.8 + l.dead_band + 0.001)),
            None,
            now(),
        ));
    }

    #[test]
    fn the_recipes_min_and_max_narrow_the_band() {
        let (_, l) = ph();
        let s = Setpoint {
            target: 5.8,
            min: Some(5.78),
            max: Some(6.5),
        };
        // Below min though inside the default band: dosed.
        let d = dose(decide(&s, &l, Some(&reading(5.75)), None, now()));
        assert_eq!(d.direction, Direction::Up);
        match skip(decide(&s, &l, Some(&reading(5.85)), None, now())) {
            Skip::InDeadBand { low, high } => assert_eq!((low, high), (5.78, 5.8 + l.dead_band)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn stale_unstable_and_missing_readings_are_not_dosed() {
        let (s, l) = ph();
        assert_eq!(skip(decide(&s, &l, None, None, now())), Skip::NoReading);
        let mut old = reading(6.8);
        old.ts = now() - Duration::seconds(l.max_reading_age_sec + 1);
        assert_eq!(
            skip(decide(&s, &l, Some(&old), None, now())),
            Skip::StaleReading {
                age_sec: l.max_reading_age_sec + 1
            }
        );
        let mut settling = reading(6.8);
        settling.stable = Some(false);
        assert_eq!(
            skip(decide(&s, &l, Some(&settling), None, now())),
            Skip::UnstableReading
        );
        // Not saying is not unstable; a node clock a little ahead is not stale.
        let mut unsaid = reading(6.8);
        unsaid.stable = None;
        unsaid.ts = now() + Duration::seconds(FUTURE_TOLERANCE_SEC);
        dose(decide(&s, &l, Some(&unsaid), None, now()));
    }

    #[test]
    fn a_reading_from_the_future_is_never_acted_on() {
        let (s, l) = ph();
        for ahead in [FUTURE_TOLERANCE_SEC + 1, 600, 86_400 * 365 * 7000] {
            let mut r = reading(6.8);
            r.ts = now() + Duration::seconds(ahead);
            let skipped = skip(decide(&s, &l, Some(&r), None, now()));
            assert_eq!(skipped, Skip::FutureReading { ahead_sec: ahead });
            assert_eq!(skipped.reason(), "future_reading");
            assert_eq!(skipped.details(), json!({ "ahead_sec": ahead }));
        }
    }

    #[test]
    fn no_dose_while_the_last_one_is_open_or_too_recent() {
        let (s, l) = ph();
        let open = LastDose {
            cmd_id: "c1".into(),
            at: now() - Duration::hours(1),
            open: true,
        };
        assert_eq!(
            skip(decide(&s, &l, Some(&reading(6.8)), Some(&open), now())),
            Skip::PreviousDosePending {
                cmd_id: "c1".into()
            }
        );
        let recent = LastDose {
            cmd_id: "c1".into(),
            at: now() - Duration::seconds(l.min_interval_sec - 10),
            open: false,
        };
        assert_eq!(
            skip(decide(&s, &l, Some(&reading(6.8)), Some(&recent), now())),
            Skip::MinInterval { wait_sec: 10 }
        );
        let old_enough = LastDose {
            at: now() - Duration::seconds(l.min_interval_sec),
            ..recent
        };
        dose(decide(
            &s,
            &l,
            Some(&reading(6.8)),
            Some(&old_enough),
            now(),
        ));
    }

    #[test]
    fn setpoints_are_checked() {
        let ok = Setpoint::parse(&json!({"target": 5.8, "min": 5.6, "max": 6.0})).unwrap();
        assert_eq!(ok.target, 5.8);
        assert!(
            Setpoint::parse(&json!({"target": 5.8}))
                .unwrap()
                .min
                .is_none()
        );
        for (bad, needle) in [
            (json!({"min": 5.6}), "target"),
            (json!({"target": "5.8"}), "target"),
            (json!({"target": 5.8, "min": 6.0}), "min ≤ target ≤ max"),
            (json!({"target": 5.8, "max": 5.0}), "min ≤ target ≤ max"),
            (json!(5.8), "not"),
        ] {
            let e = Setpoint::parse(&bad).unwrap_err();
            assert!(e.contains(needle), "{bad}: {e}");
        }
    }
}
