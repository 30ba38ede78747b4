//! failover: moves the nodes of dead brokers.

use common::runtime::service;
use common::settings::FromEnv;
use failover::{App, FailoverSettings, SERVICE};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    service::main(
        SERVICE,
        FailoverSettings::load,
        App::build,
        App::run_until_stopped,
    )
    .await
}
