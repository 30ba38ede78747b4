//! broker-registry: brokers, their health, node assignment and the dashboard.

use broker_registry::{App, RegistrySettings, SERVICE};
use common::runtime::service;
use common::settings::Settings;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::load()?;
    let registry = RegistrySettings::load()?;
    let log_format = settings.log_format;
    service::run(
        SERVICE,
        log_format,
        App::build(settings, registry),
        App::run_until_stopped,
    )
    .await
}
