//! device-registry: unbound nodes, binds to zones, NodeConfig pushes.

use common::runtime::service;
use common::settings::Settings;
use device_registry::{App, DeviceSettings, SERVICE};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::load()?;
    let device = DeviceSettings::load()?;
    let log_format = settings.log_format;
    service::run(
        SERVICE,
        log_format,
        App::build(settings, device),
        App::run_until_stopped,
    )
    .await
}
