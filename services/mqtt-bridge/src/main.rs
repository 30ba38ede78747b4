//! mqtt-bridge: REST → MQTT commands, tracked to their final status.

use common::settings::Settings;
use mqtt_bridge::App;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::load()?;
    common::runtime::logging::init(settings.log_format);
    let shutdown = common::runtime::shutdown::shutdown_token();
    let app = App::build(settings).await?;
    app.run_until_stopped(shutdown).await
}
