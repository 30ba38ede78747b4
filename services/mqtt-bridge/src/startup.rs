//! Wiring: database, broker connections, the response consumer, the timeout
//! sweeper and the redelivery of stranded commands under their lease, and
//! the HTTP server.

use std::sync::Arc;
use std::time::Duration;

use common::commands::CommandSender;
use common::commands::status_writer::StatusWriter;
use common::mqtt::pool::BrokerPool;
use common::runtime::http::{Dependency, Health};
use common::runtime::lease::Lease;
use common::runtime::service::Runner;
use common::settings::{Settings, Uses};
use common::{QoS, store::db};
use proto::topics::TopicKind;
use secrecy::ExposeSecret;
use sqlx::PgPool;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::warn;

use crate::auth::{Access, ApiToken};
use crate::routes::commands::{self, CommandsState};
use crate::{DEFAULT_PORT, SERVICE, redelivery, responses, sweeper};

/// How long a lease outlives its holder: a standby sweeps within ~8 s.
const LEASE_TTL: Duration = Duration::from_secs(6);

/// A built bridge, listening but not yet serving.
pub struct App {
    runner: Runner,
    pool: PgPool,
    brokers: BrokerPool,
}

impl App {
    /// Connects to PostgreSQL (migrating it) and the brokers, starts the
    /// background work and binds `HTTP_PORT` (0 picks a free port).
    pub async fn build(settings: Settings) -> anyhow::Result<App> {
        settings.refuse_dev_defaults(&[
            Uses::Mqtt,
            Uses::Database,
            Uses::NodeSecret,
            Uses::Secret {
                name: "BRIDGE_API_TOKEN",
                value: settings.bridge_api_token.as_ref(),
            },
        ])?;
        let stop = CancellationToken::new();
        if settings.bridge_api_token.is_none() {
            warn!("BRIDGE_API_TOKEN is not set: the command API accepts requests without a token.");
        }
        settings.warn_if_dev_node_secret();
        let pool = db::open(&settings, &stop).await?;

        let (inbox_tx, inbox_rx) = mpsc::channel(8192);
        let brokers = BrokerPool::connect(&settings, &pool, SERVICE, Some(inbox_tx), &stop).await?;
        let group = settings.share_group_or(SERVICE);
        brokers.subscribe_all(
            &TopicKind::CommandResponse.shared_filter(group),
            QoS::AtLeastOnce,
        )?;

        let tasks = TaskTracker::new();
        let status = StatusWriter::spawn(pool.clone());
        tasks.spawn(responses::run(
            pool.clone(),
            status.clone(),
            inbox_rx,
            stop.clone(),
        ));
        let lease = Lease::new(
            pool.clone(),
            sweeper::LEASE_NAME,
            &Lease::holder_id(SERVICE),
            LEASE_TTL,
        )
        .spawn(stop.clone());
        tasks.spawn(sweeper::run(
            pool.clone(),
            settings.command_timeout(),
            lease.clone(),
            stop.clone(),
        ));

        let sender = CommandSender::new(
            pool.clone(),
            brokers.clone(),
            settings.node_default_secret.clone(),
            status,
        );
        tasks.spawn(redelivery::run(
            pool.clone(),
            sender.clone(),
            lease,
            stop.clone(),
        ));
        let state = CommandsState {
            pool: pool.clone(),
            sender,
            replay_wait: settings.publish_timeout() + Duration::from_secs(1),
            targets: Default::default(),
            tasks: tasks.clone(),
        };
        let token = ApiToken(
            settings
                .bridge_api_token
                .as_ref()
                .map(|t| Arc::from(t.expose_secret())),
        );
        let health = Health::new(SERVICE)
            .require(Dependency::Postgres(pool.clone()))
            .require(Dependency::Brokers(brokers.clone()));
        // Reads (a command's status) were always guarded here; they stay so
        // unless HTTP_READS_REQUIRE_TOKEN=false.
        let access = Access::new(token, settings.reads_require_token_or(true));
        let router = common::runtime::http::api_router(commands::router(state), access, health);

        let runner = Runner::bind(
            SERVICE,
            settings.http_addr(DEFAULT_PORT),
            router,
            tasks,
            stop,
            brokers.clone(),
        )
        .await?;
        Ok(App {
            runner,
            pool,
            brokers,
        })
    }

    /// The port the API listens on.
    pub fn port(&self) -> u16 {
        self.runner.port()
    }

    /// The database pool (for tests).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The broker connections (for tests).
    pub fn brokers(&self) -> &BrokerPool {
        &self.brokers
    }

    /// Serves until `shutdown`, then stops the background work, waiting for
    /// it at most 10 s.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        self.runner.run_until_stopped(shutdown).await
    }
}
