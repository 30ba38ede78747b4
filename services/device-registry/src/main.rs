//! device-registry: unbound nodes, binds to zones, NodeConfig pushes.

use common::runtime::service;
use common::settings::FromEnv;
use device_registry::{App, DeviceSettings, SERVICE};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    service::main(
        SERVICE,
        DeviceSettings::load,
        App::build,
        App::run_until_stopped,
    )
    .await
}
