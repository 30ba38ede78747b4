//! broker-registry: brokers, their health, node assignment and the dashboard.

use broker_registry::{App, RegistrySettings};
use common::settings::Settings;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::load()?;
    let registry = RegistrySettings::load()?;
    common::runtime::logging::init(settings.log_format);
    let shutdown = common::runtime::shutdown::shutdown_token();
    let app = App::build(settings, registry).await?;
    app.run_until_stopped(shutdown).await
}
