//! automation-engine: pH/EC correction for zones with an active recipe.

use automation_engine::{App, AutomationSettings, SERVICE};
use common::runtime::service;
use common::settings::Settings;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::load()?;
    let automation = AutomationSettings::load()?;
    let log_format = settings.log_format;
    service::run(
        SERVICE,
        log_format,
        App::build(settings, automation),
        App::run_until_stopped,
    )
    .await
}
