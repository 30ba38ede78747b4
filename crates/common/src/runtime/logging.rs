//! Tracing setup: text for people, JSON for log shippers; `RUST_LOG` filters.

use tracing_subscriber::EnvFilter;

use crate::settings::LogFormat;

/// What is logged when `RUST_LOG` is not set: `info` for our crates, `warn`
/// for the chattier dependencies.
pub const DEFAULT_FILTER: &str = "info,rumqttc=warn,sqlx=warn";

fn filter(default_filter: &str) -> EnvFilter {
    EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter))
}

/// Installs the global subscriber. Calling it twice is harmless (tests).
pub fn init(format: LogFormat) {
    init_with_default(format, DEFAULT_FILTER);
}

/// Like [`init`], with another filter for when `RUST_LOG` is not set.
pub fn init_with_default(format: LogFormat, default_filter: &str) {
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter(default_filter))
        .with_target(true);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

/// For tests: lines go through the test harness, so they show only for a
/// failing test.
pub fn init_for_tests() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter(DEFAULT_FILTER))
        .with_test_writer()
        .try_init();
}
