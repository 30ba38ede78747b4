//! Wiring: database, broker connections and the shared command send path,
//! the decision lease, the cycle loop, and the HTTP server (`/metrics`,
//! `/health`).

use std::time::Duration;

use common::commands::CommandSender;
use common::commands::status_writer::StatusWriter;
use common::mqtt::pool::BrokerPool;
use common::runtime::http::{Dependency, Health};
use common::runtime::lease::Lease;
use common::runtime::service::Runner;
use common::settings::{Settings, Uses};
use common::store::db;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::cycle::{self, Engine};
use crate::{AutomationSettings, DEFAULT_PORT, LEASE_NAME, SERVICE};

/// How long the lease outlives a dead holder: the standby decides within ~8 s.
const LEASE_TTL: Duration = Duration::from_secs(6);

/// A built engine, listening but not yet serving.
pub struct App {
    runner: Runner,
    pool: PgPool,
}

impl App {
    /// Connects to PostgreSQL (migrating it) and the brokers, competes for
    /// the lease, starts the cycle loop and binds `HTTP_PORT` (0 picks a
    /// free port).
    pub async fn build(settings: Settings, automation: AutomationSettings) -> anyhow::Result<App> {
        settings.refuse_dev_defaults(&[Uses::Mqtt, Uses::Database, Uses::NodeSecret])?;
        let stop = CancellationToken::new();
        settings.warn_if_dev_node_secret();
        let pool = db::open(&settings, &stop).await?;
        let brokers = BrokerPool::connect(&settings, &pool, SERVICE, None, &stop).await?;
        let sender = CommandSender::new(
            pool.clone(),
            brokers.clone(),
            settings.node_default_secret.clone(),
            StatusWriter::spawn(pool.clone()),
        );
        let lease = Lease::new(
            pool.clone(),
            LEASE_NAME,
            &Lease::holder_id(SERVICE),
            LEASE_TTL,
        )
        .spawn(stop.clone());
        let engine = Engine::new(
            pool.clone(),
            sender,
            lease,
            automation.target_cycle_time(),
            automation.event_repeat(),
        );
        let tasks = TaskTracker::new();
        tasks.spawn(cycle::run(engine, automation.interval(), stop.clone()));

        let health = Health::new(SERVICE)
            .require(Dependency::Postgres(pool.clone()))
            .require(Dependency::Brokers(brokers.clone()));
        let router = common::runtime::http::ops_only_router(health);
        let runner = Runner::bind(
            SERVICE,
            settings.http_addr(DEFAULT_PORT),
            router,
            tasks,
            stop,
            brokers,
        )
        .await?;
        Ok(App { runner, pool })
    }

    /// The port `/metrics` and `/health` listen on.
    pub fn port(&self) -> u16 {
        self.runner.port()
    }

    /// The database pool (for tests).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Serves until `shutdown`, then stops the cycle loop (a cycle in
    /// progress may finish, for at most 10 s) and releases the lease.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        self.runner.run_until_stopped(shutdown).await
    }
}
