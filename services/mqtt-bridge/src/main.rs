//! mqtt-bridge: REST → MQTT commands, tracked to their final status.

use common::runtime::service;
use common::settings::Settings;
use mqtt_bridge::{App, SERVICE};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::load()?;
    let log_format = settings.log_format;
    service::run(
        SERVICE,
        log_format,
        App::build(settings),
        App::run_until_stopped,
    )
    .await
}
