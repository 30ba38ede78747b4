//! failover: moves the nodes of dead brokers.

use common::settings::Settings;
use failover::{App, FailoverSettings};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::load()?;
    let failover = FailoverSettings::load()?;
    common::runtime::logging::init(settings.log_format);
    let shutdown = common::runtime::shutdown::shutdown_token();
    let app = App::build(settings, failover).await?;
    app.run_until_stopped(shutdown).await
}
