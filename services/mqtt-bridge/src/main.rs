//! mqtt-bridge: REST → MQTT commands, tracked to their final status.

use common::runtime::service;
use common::settings::FromEnv;
use mqtt_bridge::{App, BridgeSettings, SERVICE};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    service::main(
        SERVICE,
        BridgeSettings::load,
        App::build,
        App::run_until_stopped,
    )
    .await
}
