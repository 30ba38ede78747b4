//! What the engine corrects: pH and EC, named as the recipes and the
//! zones' capabilities name them, read from the metric their readings carry.

use serde::Serialize;

proto::text_enum! {
    /// What the engine corrects; its text is the key in
    /// `recipe_phases.targets` and in `zones.capabilities.automation`.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
    #[serde(rename_all = "lowercase")]
    pub enum Quantity {
        Ph => "ph",
        Ec => "ec",
    }
}

impl Quantity {
    /// `telemetry_last.metric_type` of its readings.
    pub fn metric_type(self) -> &'static str {
        match self {
            Quantity::Ph => "PH",
            Quantity::Ec => "EC",
        }
    }
}
