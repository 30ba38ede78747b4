//! A zone's schedule, read from its recipe phase's targets:
//! `"irrigation": {"times": "08:00,12:00,18:00", "duration_sec": 60}` and
//! `"lighting": {"window": "06:00-22:00"}`. Each part is read on its own, so
//! a broken irrigation spec does not stop the lights.

use chrono::NaiveTime;
use serde_json::Value;

use crate::time_spec::{Window, parse_times};

/// The irrigation pump run when `duration_sec` is not given.
pub const DEFAULT_IRRIGATION_SEC: u64 = 60;
/// The longest pump run a node accepts (the firmware's limit).
pub const MAX_IRRIGATION_SEC: u64 = 600;

proto::text_enum! {
    /// What a slot does; its text is `schedule_fires.kind`, the metric label
    /// and the key in the phase's targets.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub enum Kind {
        Irrigation => "irrigation",
        Lighting => "lighting",
    }
}

impl Kind {
    /// The channel the command goes to.
    pub fn channel(self) -> &'static str {
        match self {
            Kind::Irrigation => "pump_irrigation",
            Kind::Lighting => "light",
        }
    }
}

/// Irrigation at fixed times of day.
#[derive(Debug, Clone, PartialEq)]
pub struct Irrigation {
    pub times: Vec<NaiveTime>,
    pub duration_sec: u64,
}

impl Irrigation {
    pub fn parse(v: &Value) -> Result<Irrigation, String> {
        let times = v.get("times").and_then(Value::as_str).ok_or_else(|| {
            format!("irrigation {v}: `times` must be a string such as \"08:00,18:00\"")
        })?;
        let times = parse_times(times).map_err(|e| format!("irrigation times: {e}"))?;
        let duration_sec = match v.get("duration_sec") {
            None => DEFAULT_IRRIGATION_SEC,
            Some(d) => d
                .as_u64()
                .filter(|d| (1..=MAX_IRRIGATION_SEC).contains(d))
                .ok_or_else(|| {
                    format!("irrigation duration_sec must be a whole number from 1 to {MAX_IRRIGATION_SEC}, not {d}")
                })?,
        };
        Ok(Irrigation {
            times,
            duration_sec,
        })
    }
}

/// Lights on during a daily window.
pub fn parse_lighting(v: &Value) -> Result<Window, String> {
    let window = v.get("window").and_then(Value::as_str).ok_or_else(|| {
        format!("lighting {v}: `window` must be a string such as \"06:00-22:00\"")
    })?;
    Window::parse(window).map_err(|e| format!("lighting window: {e}"))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn irrigation_as_the_contract_writes_it() {
        let i = Irrigation::parse(&json!({"times": "12:00,08:00", "duration_sec": 90})).unwrap();
        assert_eq!(i.times.len(), 2);
        assert_eq!(i.duration_sec, 90);
        let i = Irrigation::parse(&json!({"times": "08:00"})).unwrap();
        assert_eq!(i.duration_sec, DEFAULT_IRRIGATION_SEC);
    }

    #[test]
    fn bad_irrigation_is_explained() {
        for (v, needle) in [
            (json!({"times": ["08:00"]}), "`times` must be a string"),
            (json!({}), "`times` must be a string"),
            (
                json!({"times": "08:00", "duration_sec": 0}),
                "duration_sec must be",
            ),
            (
                json!({"times": "08:00", "duration_sec": 601}),
                "duration_sec must be",
            ),
            (
                json!({"times": "08:00", "duration_sec": "60"}),
                "duration_sec must be",
            ),
            (
                json!({"times": "8h"}),
                "irrigation times: `8h` is not a time of day",
            ),
        ] {
            let e = Irrigation::parse(&v).unwrap_err();
            assert!(e.contains(needle), "{v}: {e}");
        }
    }

    #[test]
    fn lighting_windows() {
        assert!(parse_lighting(&json!({"window": "20:00-06:00"})).is_ok());
        let e = parse_lighting(&json!({"window": "06:00-06:00"})).unwrap_err();
        assert!(e.contains("start and end are the same"), "{e}");
        let e = parse_lighting(&json!({"hours": "06:00-22:00"})).unwrap_err();
        assert!(e.contains("`window` must be a string"), "{e}");
    }
}
