//! failover: moves the nodes of dead brokers.

use common::runtime::service;
use common::settings::Settings;
use failover::{App, FailoverSettings, SERVICE};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::load()?;
    let failover = FailoverSettings::load()?;
    let log_format = settings.log_format;
    service::run(
        SERVICE,
        log_format,
        App::build(settings, failover),
        App::run_until_stopped,
    )
    .await
}
