//! scheduler: irrigation and lighting from recipe phases.

use common::runtime::service;
use common::settings::FromEnv;
use scheduler::{App, SERVICE, SchedulerSettings};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    service::main(
        SERVICE,
        SchedulerSettings::load,
        App::build,
        App::run_until_stopped,
    )
    .await
}
