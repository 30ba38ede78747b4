//! The `node-sim` binary: settings from the environment, then run until
//! SIGINT or SIGTERM.

use anyhow::Context;
use common::runtime::service;
use common::settings::Settings;
use node_sim::{App, SERVICE, SimSettings};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::load().context("shared settings")?;
    let sim = SimSettings::load().context("node-sim settings")?;
    let log_format = settings.log_format;
    service::run(
        SERVICE,
        log_format,
        App::build(sim, settings),
        App::run_until_stopped,
    )
    .await
}
