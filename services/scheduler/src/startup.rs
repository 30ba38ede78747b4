//! Wiring: database, broker connections and the shared command send path,
//! the firing lease, the tick loop, and the HTTP server (`/metrics`,
//! `/health`).

use common::runtime::lease::LeaseGuard;
use common::runtime::service::Base;
use common::settings::{Settings, Uses};

use crate::tick::{self, Scheduler};
use crate::{DEFAULT_PORT, LEASE_NAME, SERVICE, SchedulerSettings};

common::service_app! {
    /// A built scheduler, listening but not yet serving.
    pub struct App {
        lease: LeaseGuard,
    }
}

impl App {
    /// Connects to PostgreSQL (migrating it) and the brokers, competes for
    /// the lease, starts the tick loop and binds `HTTP_PORT` (0 picks a
    /// free port).
    pub async fn build(settings: Settings, scheduler: SchedulerSettings) -> anyhow::Result<App> {
        let base = Base::start(SERVICE, &settings, &Uses::backend([])).await?;
        let (brokers, sender) = base.command_sender(&settings).await?;
        // A standby fires within ~8 s of a dead holder.
        let lease = base.lease(LEASE_NAME);
        let lease_watch = lease.clone();
        let worker = Scheduler::new(
            base.pool.clone(),
            sender,
            lease,
            scheduler.catch_up_max_age(),
        );
        base.tasks
            .spawn(tick::run(worker, scheduler.tick(), base.stop.clone()));

        let health = base.health(&brokers);
        let runner = base
            .bind_ops(&settings, DEFAULT_PORT, health, brokers)
            .await?;
        Ok(App {
            runner,
            lease: lease_watch,
        })
    }

    /// Watches whether this instance holds the lease and so fires (for tests).
    pub fn lease(&self) -> LeaseGuard {
        self.lease.clone()
    }
}
