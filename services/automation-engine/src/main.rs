//! automation-engine: pH/EC correction for zones with an active recipe.

use automation_engine::{App, AutomationSettings};
use common::settings::Settings;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::load()?;
    let automation = AutomationSettings::load()?;
    common::runtime::logging::init(settings.log_format);
    let shutdown = common::runtime::shutdown::shutdown_token();
    let app = App::build(settings, automation).await?;
    app.run_until_stopped(shutdown).await
}
