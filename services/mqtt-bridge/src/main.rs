//! mqtt-bridge: REST → MQTT commands, tracked to their final status.

use common::runtime::service;
use mqtt_bridge::{App, SERVICE};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    service::main(
        SERVICE,
        || Ok(()),
        |settings, ()| App::build(settings),
        App::run_until_stopped,
    )
    .await
}
