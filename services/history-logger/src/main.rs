//! history-logger: node uplink → Redis stream → PostgreSQL in batches.

use common::settings::Settings;
use history_logger::{App, HistorySettings};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::load()?;
    let history = HistorySettings::load()?;
    common::runtime::logging::init(settings.log_format);
    let shutdown = common::runtime::shutdown::shutdown_token();
    let app = App::build(settings, history).await?;
    app.run_until_stopped(shutdown).await
}
