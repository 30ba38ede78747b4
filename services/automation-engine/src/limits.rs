//! The controller's limits for one quantity of one zone: the defaults below
//! (documented in the README), overridden per zone under
//! `zones.capabilities.automation.ph` / `.ec`, e.g.
//! `{"automation":{"ph":{"dead_band":0.05,"min_interval_sec":300}}}`.
//! An unknown key or an impossible value is an error naming it, so a typo
//! in a zone's configuration is seen instead of silently ignored.

use serde_json::Value;

use crate::quantity::Quantity;

/// The longest pump run a node accepts (the firmware's limit, 10 minutes).
pub const MAX_RUN_MS: u64 = 600_000;

/// How one quantity of one zone is corrected.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// Half-width of the band around the target where nothing is dosed.
    pub dead_band: f64,
    /// Pump run per unit of error (pH unit or mS/cm), in milliseconds.
    pub ms_per_unit: f64,
    /// The shortest pump run sent: shorter ones do not move a real pump.
    pub min_dose_ms: u64,
    /// The longest pump run sent at once, whatever the error.
    pub max_dose_ms: u64,
    /// Time between two doses of this quantity in the zone, for the dose
    /// to mix and the probe to see it.
    pub min_interval_sec: i64,
    /// Readings older than this are not acted on.
    pub max_reading_age_sec: i64,
    /// The pump that lowers the value (acid, dilution water).
    pub down_channel: String,
    /// The pump that raises it (base, nutrients).
    pub up_channel: String,
}

impl Limits {
    /// The defaults. pH: 0.1 dead band, 5 s of pump per pH unit (half of
    /// what node-sim's 0.1 pH/s pump needs, so the loop converges without
    /// overshoot), 0.2–5 s. EC: 0.1 mS/cm, 10 s per mS/cm (node-sim: 0.05
    /// mS/cm per second), 0.2–10 s. Both: 3 minutes between doses, readings
    /// at most 2 minutes old.
    pub fn defaults(quantity: Quantity) -> Limits {
        let (ms_per_unit, max_dose_ms, down, up) = match quantity {
            Quantity::Ph => (5_000.0, 5_000, "pump_acid", "pump_base"),
            Quantity::Ec => (10_000.0, 10_000, "pump_dilution", "pump_nutrients"),
        };
        Limits {
            dead_band: 0.1,
            ms_per_unit,
            min_dose_ms: 200,
            max_dose_ms,
            min_interval_sec: 180,
            max_reading_age_sec: 120,
            down_channel: down.into(),
            up_channel: up.into(),
        }
    }

    /// The defaults with the zone's overrides applied and checked.
    pub fn for_zone(quantity: Quantity, capabilities: &Value) -> Result<Limits, String> {
        let mut l = Limits::defaults(quantity);
        let Some(automation) = capabilities.get("automation") else {
            return Ok(l);
        };
        let Some(automation) = automation.as_object() else {
            return Err("capabilities.automation must be an object".into());
        };
        if let Some(unknown) = automation
            .keys()
            .find(|k| !["ph", "ec"].contains(&k.as_str()))
        {
            return Err(format!(
                "capabilities.automation.{unknown}: unknown key; expected ph or ec"
            ));
        }
        let path = format!("capabilities.automation.{}", quantity.as_str());
        let Some(overrides) = automation.get(quantity.as_str()) else {
            return Ok(l);
        };
        let Some(overrides) = overrides.as_object() else {
            return Err(format!("{path} must be an object"));
        };
        for (key, value) in overrides {
            let bad = |what: &str| format!("{path}.{key} must be {what}, not {value}");
            let number = || value.as_f64().ok_or_else(|| bad("a number"));
            let count = || value.as_u64().ok_or_else(|| bad("a whole number ≥ 0"));
            let seconds = || {
                value
                    .as_i64()
                    .ok_or_else(|| bad("a whole number of seconds"))
            };
            let text = || {
                value
                    .as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| bad("a string"))
            };
            match key.as_str() {
                "dead_band" => l.dead_band = number()?,
                "ms_per_unit" => l.ms_per_unit = number()?,
                "min_dose_ms" => l.min_dose_ms = count()?,
                "max_dose_ms" => l.max_dose_ms = count()?,
                "min_interval_sec" => l.min_interval_sec = seconds()?,
                "max_reading_age_sec" => l.max_reading_age_sec = seconds()?,
                "down_channel" => l.down_channel = text()?,
                "up_channel" => l.up_channel = text()?,
                _ => {
                    return Err(format!(
                        "{path}.{key}: unknown key; expected one of {}",
                        KEYS.join(", ")
                    ));
                }
            }
        }
        l.check().map_err(|e| format!("{path}: {e}"))?;
        Ok(l)
    }

    fn check(&self) -> Result<(), String> {
        if !(self.dead_band.is_finite() && self.dead_band >= 0.0) {
            return Err("dead_band must be a number ≥ 0".into());
        }
        if !(self.ms_per_unit.is_finite() && self.ms_per_unit > 0.0) {
            return Err("ms_per_unit must be a number > 0".into());
        }
        if !(1..=self.max_dose_ms).contains(&self.min_dose_ms) || self.max_dose_ms > MAX_RUN_MS {
            return Err(format!(
                "1 ≤ min_dose_ms ≤ max_dose_ms ≤ {MAX_RUN_MS} does not hold"
            ));
        }
        if self.min_interval_sec < 0 {
            return Err("min_interval_sec must be ≥ 0".into());
        }
        if self.max_reading_age_sec < 1 {
            return Err("max_reading_age_sec must be ≥ 1".into());
        }
        if self.down_channel.is_empty() || self.up_channel.is_empty() {
            return Err("down_channel and up_channel must not be empty".into());
        }
        Ok(())
    }
}

/// The keys a zone may override.
const KEYS: [&str; 8] = [
    "dead_band",
    "ms_per_unit",
    "min_dose_ms",
    "max_dose_ms",
    "min_interval_sec",
    "max_reading_age_sec",
    "down_channel",
    "up_channel",
];

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn no_overrides_means_the_defaults() {
        for caps in [
            json!({}),
            json!({"lighting": {"channel": "lamp"}}),
            json!({"automation": {}}),
        ] {
            assert_eq!(
                Limits::for_zone(Quantity::Ph, &caps).unwrap(),
                Limits::defaults(Quantity::Ph)
            );
        }
    }

    #[test]
    fn a_zone_overrides_what_it_names() {
        let caps = json!({"automation": {"ec": {"dead_band": 0.05, "min_interval_sec": 0, "up_channel": "pump_a"}}});
        let ec = Limits::for_zone(Quantity::Ec, &caps).unwrap();
        assert_eq!((ec.dead_band, ec.min_interval_sec), (0.05, 0));
        assert_eq!(ec.up_channel, "pump_a");
        assert_eq!(ec.down_channel, "pump_dilution");
        assert_eq!(
            Limits::for_zone(Quantity::Ph, &caps).unwrap(),
            Limits::defaults(Quantity::Ph)
        );
    }

    #[test]
    fn bad_overrides_are_named() {
        for (caps, needle) in [
            (json!({"automation": {"ph": {"deadband": 0.1}}}), "deadband"),
            (json!({"automation": {"orp": {}}}), "orp"),
            (
                json!({"automation": {"ph": {"dead_band": -1}}}),
                "dead_band",
            ),
            (
                json!({"automation": {"ph": {"max_dose_ms": 700000}}}),
                "max_dose_ms",
            ),
            (
                json!({"automation": {"ph": {"min_dose_ms": 6000}}}),
                "min_dose_ms",
            ),
            (
                json!({"automation": {"ph": {"ms_per_unit": 0}}}),
                "ms_per_unit",
            ),
            (
                json!({"automation": {"ph": {"min_interval_sec": "60"}}}),
                "min_interval_sec",
            ),
            (
                json!({"automation": {"ph": {"down_channel": ""}}}),
                "down_channel",
            ),
        ] {
            let e = Limits::for_zone(Quantity::Ph, &caps).unwrap_err();
            assert!(e.contains(needle), "{caps}: {e}");
        }
    }
}
