//! A service's life: [`main`] builds it (abandoned at once on SIGTERM or
//! Ctrl-C, even while start-up waits for PostgreSQL, Redis or a broker),
//! then a [`Runner`] serves HTTP until shutdown, stops the background work
//! (waiting for it at most 10 s) and closes the broker connections with a
//! DISCONNECT.

use std::future::Future;
use std::time::Duration;

use axum::Router;
use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use crate::commands::CommandSender;
use crate::mqtt::pool::BrokerPool;
use crate::runtime::auth::{Access, ApiToken};
use crate::runtime::http::{Dependency, Health};
use crate::runtime::lease::{Lease, LeaseGuard};
use crate::runtime::{logging, shutdown};
use crate::settings::{Settings, SettingsError, Uses};
use crate::store::db;

/// The longest the background work may take to stop.
const STOP_DEADLINE: Duration = Duration::from_secs(10);

/// A service's whole `main`: the shared settings and the service's own
/// (`load`), logging, the shutdown token (SIGTERM, Ctrl-C), then `build`,
/// then `serve` until shutdown. A signal during `build` drops it at once and
/// the process exits cleanly: start-up waits up to 30 s for PostgreSQL or
/// Redis, and an operator's stop must not wait for that.
pub async fn main<O, S, B, F, R>(
    name: &'static str,
    load: fn() -> Result<O, SettingsError>,
    build: impl FnOnce(Settings, O) -> B,
    serve: F,
) -> anyhow::Result<()>
where
    B: Future<Output = anyhow::Result<S>>,
    F: FnOnce(S, CancellationToken) -> R,
    R: Future<Output = anyhow::Result<()>>,
{
    let settings = Settings::load()?;
    let own = load()?;
    logging::init(settings.log_format);
    let shutdown = shutdown::shutdown_token();
    let service = tokio::select! {
        built = build(settings, own) => built?,
        () = shutdown.cancelled() => {
            info!(service = name, "Stopped during start-up, before serving.");
            return Ok(());
        }
    };
    serve(service, shutdown).await
}

/// How long a service's lease outlives a dead holder: a standby takes over
/// within about 8 s.
pub const LEASE_TTL: Duration = Duration::from_secs(6);

/// What every service is built from: its secrets checked (production
/// refuses dev defaults), PostgreSQL opened and migrated, the token that
/// stops its background work and the tracker that waits for it.
pub struct Base {
    pub name: &'static str,
    /// This instance's name as a lease holder (`Lease::holder_id`).
    pub holder: String,
    pub pool: PgPool,
    /// Cancelled when the service stops; its background tasks watch it.
    pub stop: CancellationToken,
    pub tasks: TaskTracker,
}

impl Base {
    /// Refuses to start on the dev defaults of the secrets it `uses` (with
    /// `HYDRO_ENV=production`), warns when it signs with the development
    /// node secret, then opens PostgreSQL (waiting up to 30 s for it).
    pub async fn start(
        name: &'static str,
        settings: &Settings,
        uses: &[Uses<'_>],
    ) -> anyhow::Result<Base> {
        settings.refuse_dev_defaults(uses)?;
        if uses.iter().any(|u| matches!(u, Uses::NodeSecret)) {
            settings.warn_if_dev_node_secret();
        }
        let stop = CancellationToken::new();
        let pool = db::open(settings, &stop).await?;
        Ok(Base {
            name,
            holder: Lease::holder_id(name),
            pool,
            stop,
            tasks: TaskTracker::new(),
        })
    }

    /// Connects to every broker (to publish, with no inbox) and makes the
    /// sender of commands whose statuses it records itself: what a service
    /// that only sends commands (automation, scheduler) needs.
    pub async fn command_sender(
        &self,
        settings: &Settings,
    ) -> anyhow::Result<(BrokerPool, CommandSender)> {
        let brokers =
            BrokerPool::connect(settings, &self.pool, self.name, None, &self.stop).await?;
        let sender = CommandSender::with_status_writer(
            self.pool.clone(),
            brokers.clone(),
            settings.node_default_secret.clone(),
        );
        Ok((brokers, sender))
    }

    /// The lease `lease` ([`LEASE_TTL`]), competed for until the service stops.
    pub fn lease(&self, lease: &str) -> LeaseGuard {
        Lease::new(self.pool.clone(), lease, &self.holder, LEASE_TTL).spawn(self.stop.clone())
    }

    /// Health that needs PostgreSQL and the brokers.
    pub fn health(&self, brokers: &BrokerPool) -> Health {
        Health::new(self.name)
            .require(Dependency::Postgres(self.pool.clone()))
            .require(Dependency::Brokers(brokers.clone()))
    }

    /// Binds the service's `api` behind `token` (reads too when
    /// `HTTP_READS_REQUIRE_TOKEN` says so, else when `reads_guarded`), beside
    /// `/health` (`health`, usually [`Base::health`]) and `/metrics`.
    #[allow(clippy::too_many_arguments)]
    pub async fn bind_api(
        self,
        settings: &Settings,
        default_port: u16,
        api: Router,
        token: ApiToken,
        reads_guarded: bool,
        health: Health,
        brokers: BrokerPool,
    ) -> std::io::Result<Runner> {
        let access = Access::new(token, settings.http.reads_require_token_or(reads_guarded));
        let router = crate::runtime::http::api_router(api, access, health);
        self.bind(settings, default_port, router, brokers).await
    }

    /// Binds `/health` (`health`, usually [`Base::health`]) and `/metrics`
    /// only: what a service without an API of its own serves.
    pub async fn bind_ops(
        self,
        settings: &Settings,
        default_port: u16,
        health: Health,
        brokers: BrokerPool,
    ) -> std::io::Result<Runner> {
        let router = crate::runtime::http::ops_only_router(health);
        self.bind(settings, default_port, router, brokers).await
    }

    /// Binds the service's HTTP address (`HTTP_HOST`, `HTTP_PORT`, else
    /// `default_port`) for `router`: the runner that serves it.
    pub async fn bind(
        self,
        settings: &Settings,
        default_port: u16,
        router: Router,
        brokers: BrokerPool,
    ) -> std::io::Result<Runner> {
        Runner::bind(self, settings.http.addr(default_port), router, brokers).await
    }
}

/// What a built service runs: its bound listener and router, its background
/// tasks and the token that stops them, its database pool and its broker
/// connections. A service's `App` derefs to it ([`crate::service_app!`]),
/// so tests reach `port()`, `pool()` and `brokers()` the same way on each.
pub struct Runner {
    name: &'static str,
    listener: TcpListener,
    router: Router,
    tasks: TaskTracker,
    /// Cancelled when the service stops; the background tasks watch it.
    stop: CancellationToken,
    pool: PgPool,
    brokers: BrokerPool,
}

/// Declares a service's `App`: the struct, with its [`Runner`] as field
/// `runner` besides the fields given, `Deref<Target = Runner>` (`port()`,
/// `pool()`, `brokers()`) and `run_until_stopped`, which serves until
/// `shutdown`, then stops the background work (waiting for it at most 10 s)
/// and leaves the brokers.
///
/// ```text
/// common::service_app! {
///     /// A built scheduler, listening but not yet serving.
///     pub struct App { lease: LeaseGuard }
/// }
/// ```
#[macro_export]
macro_rules! service_app {
    (
        $(#[$meta:meta])*
        $vis:vis struct $app:ident { $($(#[$field_meta:meta])* $field:ident: $ty:ty),* $(,)? }
    ) => {
        $(#[$meta])*
        $vis struct $app {
            runner: $crate::runtime::service::Runner,
            $($(#[$field_meta])* $field: $ty,)*
        }

        impl std::ops::Deref for $app {
            type Target = $crate::runtime::service::Runner;
            fn deref(&self) -> &Self::Target {
                &self.runner
            }
        }

        impl $app {
            /// Serves until `shutdown`, then stops the background work
            /// (waiting for it at most 10 s) and leaves the brokers.
            pub async fn run_until_stopped(
                self,
                shutdown: tokio_util::sync::CancellationToken,
            ) -> anyhow::Result<()> {
                self.runner.run_until_stopped(shutdown).await
            }
        }
    };
}

impl Runner {
    /// Binds `addr` (`HTTP_HOST`, `HTTP_PORT`: see `Settings::http_addr`;
    /// port 0 picks a free one) for `router`.
    async fn bind(
        base: Base,
        addr: (String, u16),
        router: Router,
        brokers: BrokerPool,
    ) -> std::io::Result<Runner> {
        let listener = TcpListener::bind((addr.0.as_str(), addr.1))
            .await
            .map_err(|e| {
                std::io::Error::new(
                    e.kind(),
                    format!(
                        "could not listen on {}:{} (HTTP_HOST, HTTP_PORT): {e}",
                        addr.0, addr.1
                    ),
                )
            })?;
        let runner = Runner {
            name: base.name,
            listener,
            router,
            tasks: base.tasks,
            stop: base.stop,
            pool: base.pool,
            brokers,
        };
        info!(service = runner.name, host = %addr.0, port = runner.port(), "Listening.");
        Ok(runner)
    }

    /// The port the service listens on.
    pub fn port(&self) -> u16 {
        self.listener
            .local_addr()
            .map(|a| a.port())
            .unwrap_or_default()
    }

    /// The service's database pool.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The service's broker connections.
    pub fn brokers(&self) -> &BrokerPool {
        &self.brokers
    }

    /// Serves until `shutdown` (or until serving fails), then stops.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let stop = self.stop.clone();
        tokio::spawn(async move {
            shutdown.cancelled().await;
            stop.cancel();
        });
        let served =
            crate::runtime::http::serve(self.listener, self.router, self.stop.clone()).await;
        self.stop.cancel();
        self.tasks.close();
        if tokio::time::timeout(STOP_DEADLINE, self.tasks.wait())
            .await
            .is_err()
        {
            warn!(
                service = self.name,
                "Background tasks did not stop within 10 s."
            );
        }
        for connection in self.brokers.all() {
            connection.disconnect().await;
        }
        info!(service = self.name, "Stopped.");
        Ok(served?)
    }
}
