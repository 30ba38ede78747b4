//! automation-engine: pH/EC correction for zones with an active recipe.

use automation_engine::{App, AutomationSettings, SERVICE};
use common::runtime::service;
use common::settings::FromEnv;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    service::main(
        SERVICE,
        AutomationSettings::load,
        App::build,
        App::run_until_stopped,
    )
    .await
}
