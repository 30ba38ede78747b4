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
pub use crate::quantity::Quantity;

/// How far (seconds) a reading's `ts` may be after `now` and still count:
/// node clocks are synced to ours in whole seconds, so a current reading can
/// look a second or two ahead; anything further is a clock or a `ts` not to
/// be trusted.
pub const FUTURE_TOLERANCE_SEC: i64 = 5;

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
mod tests;
