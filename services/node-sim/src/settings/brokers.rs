//! The brokers the nodes connect to (`SIM_BROKER_URLS`, `SIM_BROKER_URL`,
//! else the shared default) and which node starts on which, with its
//! fallback list.

use super::SimSettings;

impl SimSettings {
    /// The brokers the nodes connect to: `SIM_BROKER_URLS`, else the one of
    /// [`SimSettings::broker_url_or`]. Never empty.
    pub fn broker_urls_or(&self, settings: &common::settings::Settings) -> Vec<String> {
        match &self.broker_urls {
            Some(list) if !split_urls(list).is_empty() => {
                split_urls(list).into_iter().map(str::to_owned).collect()
            }
            _ => vec![self.broker_url_or(settings)],
        }
    }

    /// The broker URL: `SIM_BROKER_URL`, else the shared default broker.
    pub fn broker_url_or(&self, settings: &common::settings::Settings) -> String {
        self.broker_url
            .clone()
            .unwrap_or_else(|| settings.mqtt.default_broker_url())
    }
}

/// The non-empty entries of a comma-separated list, trimmed.
pub(super) fn split_urls(list: &str) -> Vec<&str> {
    list.split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .collect()
}

/// The broker of node `index` (layout order): entry `index % n`.
pub fn broker_for(urls: &[String], index: usize) -> &str {
    &urls[index % urls.len()]
}

/// The broker node `index` starts on and its fallback list: the other
/// entries in order, starting after its own, so the nodes of a broker that
/// dies spread over the others.
pub fn brokers_for(urls: &[String], index: usize) -> (&str, Vec<String>) {
    let n = urls.len();
    let own = index % n;
    let fallback = (1..n).map(|k| urls[(own + k) % n].clone()).collect();
    (&urls[own], fallback)
}
