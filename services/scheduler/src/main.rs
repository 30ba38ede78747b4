//! scheduler: irrigation and lighting from recipe phases.

use common::runtime::service;
use common::settings::Settings;
use scheduler::{App, SERVICE, SchedulerSettings};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::load()?;
    let scheduler = SchedulerSettings::load()?;
    let log_format = settings.log_format;
    service::run(
        SERVICE,
        log_format,
        App::build(settings, scheduler),
        App::run_until_stopped,
    )
    .await
}
