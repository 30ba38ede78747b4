//! Building and running the simulator: seed the database (if asked), start
//! every node, bind HTTP; then serve until shutdown and stop the nodes cleanly.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use common::runtime::auth::{Access, ApiToken};
use common::runtime::http::{Dependency, Health, api_router, serve};
use common::settings::{FromEnv, Settings, Uses};
use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::api::{self, ApiState};
use crate::faults::Faults;
use crate::firmware::{FirmwareContext, FirmwareNode};
use crate::layout::{Layout, layout};
use crate::metrics as m;
use crate::node::{NodeContext, SimNode};
use crate::seed::seed;
use crate::settings::{SimMode, SimSettings};

/// node-sim's port when `HTTP_PORT` is not set (contract section 1).
pub const DEFAULT_HTTP_PORT: u16 = 9405;
/// How long start-up waits for PostgreSQL when seeding.
const DB_WAIT: Duration = Duration::from_secs(30);

/// A built simulator: nodes running, HTTP bound, not yet serving.
pub struct App {
    port: u16,
    listener: TcpListener,
    router: Router,
    layout: Layout,
    nodes: Arc<[SimNode]>,
    firmware: Arc<[FirmwareNode]>,
    faults: Arc<Faults>,
    pool: Option<PgPool>,
}

impl App {
    /// Seeds the database when `SIM_SEED_DB` asks for it, starts the nodes
    /// (they connect in the background) and binds `HTTP_PORT` (default 9405;
    /// 0 picks a free port, see [`App::port`]). In firmware mode the nodes
    /// are [`FirmwareNode`]s and only the greenhouse and zones are seeded.
    pub async fn build(sim: SimSettings, settings: Settings) -> anyhow::Result<App> {
        sim.validate()?;
        let mut uses = vec![
            Uses::NodeSecret,
            Uses::ApiToken {
                name: "SIM_API_TOKEN",
                value: sim.api_token.as_ref(),
            },
        ];
        if sim.seed_db {
            uses.push(Uses::Database);
        }
        settings.refuse_dev_defaults(&uses)?;
        let access = Access::new(
            ApiToken::from_secret(sim.api_token.as_ref()),
            settings.http.reads_require_token_or(false),
        );
        let layout = layout(&sim);
        // Each seeded node's own secret and broker password.
        let mut credentials = HashMap::new();
        let pool = if sim.seed_db {
            // A stuck database fails after DB_WAIT; a shutdown meanwhile drops
            // the whole build (common::runtime::service::main).
            let pool = common::store::db::connect_and_migrate(
                settings.pg.options(),
                settings.pg.max_connections.min(4),
                DB_WAIT,
                &CancellationToken::new(),
            )
            .await
            .context("could not prepare PostgreSQL for seeding")?;
            // Firmware nodes register themselves (hello) and are bound later.
            let seeded = match sim.mode {
                SimMode::Classic => layout.clone(),
                SimMode::Firmware => Layout {
                    zones: layout.zones.clone(),
                    nodes: Vec::new(),
                },
            };
            seed(&pool, &seeded, &sim.greenhouse)
                .await
                .context("could not seed the database")?;
            let uids: Vec<&str> = seeded.nodes.iter().map(|n| n.uid.as_str()).collect();
            credentials = crate::seed::credentials(&pool, &uids)
                .await
                .context("could not read the nodes' credentials")?;
            if sim.seed_recipe {
                crate::demo_recipe::seed(&pool, &layout, &sim.greenhouse)
                    .await
                    .context("could not seed the demo recipe")?;
            }
            Some(pool)
        } else {
            None
        };
        settings.warn_if_dev_node_secret();

        let faults = Arc::new(Faults::from_settings(&sim));
        let broker_urls = sim.broker_urls_or(&settings);
        let (http_host, http_port) = settings.http.addr(DEFAULT_HTTP_PORT);
        let (nodes, firmware): (Arc<[SimNode]>, Arc<[FirmwareNode]>) = match sim.mode {
            SimMode::Classic => {
                let ctx = Arc::new(NodeContext {
                    greenhouse: sim.greenhouse.clone(),
                    broker_urls: broker_urls.clone(),
                    settings,
                    faults: faults.clone(),
                    telemetry_interval: sim.telemetry_interval(),
                    heartbeat_interval: sim.heartbeat_interval(),
                    fallback_after: sim.fallback_after(),
                    tcp_nodelay: sim.tcp_nodelay,
                    credentials,
                });
                let nodes = layout
                    .nodes
                    .iter()
                    .map(|spec| SimNode::start(spec.clone(), ctx.clone()))
                    .collect::<Result<Vec<_>, _>>()
                    .context("could not start the simulated nodes")?;
                (nodes.into(), Arc::from([]))
            }
            SimMode::Firmware => {
                let ctx = Arc::new(FirmwareContext {
                    broker_urls: broker_urls.clone(),
                    settings,
                    faults: faults.clone(),
                    telemetry_interval: sim.telemetry_interval(),
                    heartbeat_interval: sim.heartbeat_interval(),
                    time_retry: sim.time_retry(),
                    hardware_seed: sim.hardware_seed.clone(),
                    state_dir: sim.state_dir.clone(),
                    apply_connectivity_only: sim.fw_apply_mqtt_only,
                    tcp_nodelay: sim.tcp_nodelay,
                    provision_login: sim.provision_login(),
                });
                let nodes: Vec<FirmwareNode> = layout
                    .nodes
                    .iter()
                    .map(|spec| FirmwareNode::start(spec.clone(), ctx.clone()))
                    .collect();
                for n in &nodes {
                    info!(
                        hardware_id = n.hardware_id(),
                        kind = n.spec().kind.as_str(),
                        "Firmware node booted."
                    );
                }
                (Arc::from([]), nodes.into())
            }
        };
        info!(
            greenhouse = %sim.greenhouse,
            mode = ?sim.mode,
            zones = layout.zones.len(),
            nodes = nodes.len() + firmware.len(),
            brokers = %broker_urls.join(","),
            "Nodes started."
        );

        // Up while any node is connected; a node's connection changes when
        // it moves to another broker, so the check asks the nodes each time.
        let fleet = nodes.clone();
        let fw_fleet = firmware.clone();
        let mut health = Health::new(crate::SERVICE).require(Dependency::Custom {
            name: "mqtt",
            check: Arc::new(move || {
                let connected = fleet.iter().filter(|n| n.is_connected()).count()
                    + fw_fleet.iter().filter(|n| n.is_connected()).count();
                let total = fleet.len() + fw_fleet.len();
                let detail = serde_json::json!({ "nodes": total, "connected": connected });
                (detail, connected > 0)
            }),
        });
        if let Some(pool) = &pool {
            health = health.optional(Dependency::Postgres(pool.clone()));
        }
        let api = api::router(ApiState {
            nodes: nodes.clone(),
            firmware: firmware.clone(),
            faults: faults.clone(),
        });
        let router = api_router(api, access, health);

        let listener = TcpListener::bind((http_host.as_str(), http_port))
            .await
            .with_context(|| {
                format!("could not listen on {http_host}:{http_port} (HTTP_HOST, HTTP_PORT)")
            })?;
        let port = listener.local_addr()?.port();
        info!(port, "HTTP bound.");
        Ok(App {
            port,
            listener,
            router,
            layout,
            nodes,
            firmware,
            faults,
            pool,
        })
    }

    /// The HTTP port actually bound.
    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// Every running classic node, in layout order (none in firmware mode).
    pub fn nodes(&self) -> &Arc<[SimNode]> {
        &self.nodes
    }

    /// Every running firmware-mode node, in layout order (none in classic mode).
    pub fn firmware_nodes(&self) -> &Arc<[FirmwareNode]> {
        &self.firmware
    }

    /// The node called `uid`.
    pub fn node(&self, uid: &str) -> Option<&SimNode> {
        self.nodes.iter().find(|n| n.uid() == uid)
    }

    /// The fault settings, changeable while running.
    pub fn faults(&self) -> &Arc<Faults> {
        &self.faults
    }

    /// Serves HTTP until `shutdown`, then stops every node cleanly.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let served = serve(self.listener, self.router, shutdown.clone()).await;
        // If serving failed on its own, the nodes must still go.
        shutdown.cancel();
        futures::future::join_all(self.nodes.iter().map(SimNode::stop)).await;
        futures::future::join_all(self.firmware.iter().map(FirmwareNode::stop)).await;
        if let Some(pool) = self.pool {
            pool.close().await;
        }
        // What became of the readings, for a reading ledger from outside
        // (make compose-test): made = acknowledged + dropped from full
        // buffers + still unsent; acknowledged ones with a repeated key are
        // stored once.
        let text = common::runtime::http::metrics_handle().render();
        let total = |name: &str| common::runtime::http::metric_sum(&text, name) as u64;
        info!(
            generated = total(m::TELEMETRY_GENERATED),
            published = total(m::TELEMETRY_PUBLISHED),
            buffer_dropped = total(m::TELEMETRY_BUFFER_DROPPED),
            repeated_keys = total(m::TELEMETRY_REPEATED_KEYS),
            "Telemetry totals."
        );
        info!("Stopped.");
        served.context("HTTP server failed")
    }
}
