//! Wiring: database, broker connections and the shared command send path,
//! the decision lease, the cycle loop, and the HTTP server (`/metrics`,
//! `/health`).

use common::runtime::service::Base;
use common::settings::{Settings, Uses};

use crate::cycle::{self, Engine};
use crate::{AutomationSettings, DEFAULT_PORT, LEASE_NAME, SERVICE};

common::service_app! {
    /// A built engine, listening but not yet serving.
    pub struct App {}
}

impl App {
    /// Connects to PostgreSQL (migrating it) and the brokers, competes for
    /// the lease, starts the cycle loop and binds `HTTP_PORT` (0 picks a
    /// free port).
    pub async fn build(settings: Settings, automation: AutomationSettings) -> anyhow::Result<App> {
        let base = Base::start(SERVICE, &settings, &Uses::backend([])).await?;
        let (brokers, sender) = base.command_sender(&settings).await?;
        // The standby decides within ~8 s of a dead holder.
        let lease = base.lease(LEASE_NAME);
        let engine = Engine::new(
            base.pool.clone(),
            sender,
            lease,
            automation.target_cycle_time(),
            automation.event_repeat(),
        );
        base.tasks
            .spawn(cycle::run(engine, automation.interval(), base.stop.clone()));

        let health = base.health(&brokers);
        let runner = base
            .bind_ops(&settings, DEFAULT_PORT, health, brokers)
            .await?;
        Ok(App { runner })
    }
}
