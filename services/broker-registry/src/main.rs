//! broker-registry: brokers, their health, node assignment and the dashboard.

use broker_registry::{App, RegistrySettings, SERVICE};
use common::runtime::service;
use common::settings::FromEnv;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    service::main(
        SERVICE,
        RegistrySettings::load,
        App::build,
        App::run_until_stopped,
    )
    .await
}
