//! history-logger: node uplink → Redis stream → PostgreSQL in batches.

use common::runtime::service;
use common::settings::FromEnv;
use history_logger::{App, HistorySettings, SERVICE};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    service::main(
        SERVICE,
        HistorySettings::load,
        App::build,
        App::run_until_stopped,
    )
    .await
}
