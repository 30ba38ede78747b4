//! device-registry: unbound nodes, binds to zones, NodeConfig pushes.

use common::settings::Settings;
use device_registry::{App, DeviceSettings};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::load()?;
    let device = DeviceSettings::load()?;
    common::runtime::logging::init(settings.log_format);
    let shutdown = common::runtime::shutdown::shutdown_token();
    let app = App::build(settings, device).await?;
    app.run_until_stopped(shutdown).await
}
