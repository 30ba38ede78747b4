//! history-logger: node uplink → Redis stream → PostgreSQL in batches.

use common::runtime::service;
use common::settings::Settings;
use history_logger::{App, HistorySettings, SERVICE};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::load()?;
    let history = HistorySettings::load()?;
    let log_format = settings.log_format;
    service::run(
        SERVICE,
        log_format,
        App::build(settings, history),
        App::run_until_stopped,
    )
    .await
}
