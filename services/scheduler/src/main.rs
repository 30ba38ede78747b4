//! scheduler: irrigation and lighting from recipe phases.

use common::settings::Settings;
use scheduler::{App, SchedulerSettings};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::load()?;
    let scheduler = SchedulerSettings::load()?;
    common::runtime::logging::init(settings.log_format);
    let shutdown = common::runtime::shutdown::shutdown_token();
    let app = App::build(settings, scheduler).await?;
    app.run_until_stopped(shutdown).await
}
