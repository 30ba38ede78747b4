//! What the engine corrects: pH and EC, named as the recipes and the
//! zones' capabilities name them, read from the metric their readings carry.

use proto::payloads::MetricType;
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
    /// The metric its readings carry.
    pub fn metric(self) -> MetricType {
        match self {
            Quantity::Ph => MetricType::Ph,
            Quantity::Ec => MetricType::Ec,
        }
    }

    /// `telemetry_last.metric_type` of its readings.
    pub fn metric_type(self) -> &'static str {
        self.metric().as_str()
    }
}
