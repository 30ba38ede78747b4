//! The `node-sim` binary: settings from the environment, then run until
//! SIGINT or SIGTERM.

use anyhow::Context;
use common::settings::Settings;
use node_sim::{App, SimSettings};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::load().context("shared settings")?;
    common::runtime::logging::init(settings.log_format);
    let sim = SimSettings::load().context("node-sim settings")?;
    let shutdown = common::runtime::shutdown::shutdown_token();
    let app = App::build(sim, settings).await?;
    app.run_until_stopped(shutdown).await
}
