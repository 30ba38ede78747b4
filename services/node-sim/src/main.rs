//! The `node-sim` binary: settings from the environment, then run until
//! SIGINT or SIGTERM.

use common::runtime::service;
use common::settings::FromEnv;
use node_sim::{App, SERVICE, SimSettings};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    service::main(
        SERVICE,
        SimSettings::load,
        |settings, sim| App::build(sim, settings),
        App::run_until_stopped,
    )
    .await
}
