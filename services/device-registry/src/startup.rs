//! Wiring: database, connections to every broker of the `brokers` table
//! (following it), the shared subscriptions (hello, temp namespace,
//! config_report), the inbox consumer, the bind expiry, and the HTTP server
//! with its bearer-token API.

use axum::http::StatusCode;
use axum::response::IntoResponse;
use common::auth::{ApiToken, require_token};
use common::brokers::BrokerPool;
use common::http::{Dependency, Health};
use common::service::Runner;
use common::settings::Settings;
use common::topics::{GLOBAL_NODE_HELLO, TEMP_GREENHOUSE, TEMP_ZONE, TopicKind};
use common::{QoS, db};
use sqlx::PgPool;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::warn;

use crate::error::ApiError;
use crate::pushes::Registry;
use crate::settings::DeviceSettings;
use crate::uplink::Uplink;
use crate::{DEFAULT_PORT, SERVICE, binds, routes};

/// The shared-subscription filters of group `group`: both hello topics, the
/// whole temp namespace, and every node's config_report.
pub fn filters(group: &str) -> Vec<String> {
    vec![
        format!("$share/{group}/{GLOBAL_NODE_HELLO}"),
        TopicKind::NodeHello.shared_filter(group),
        format!("$share/{group}/hydro/{TEMP_GREENHOUSE}/{TEMP_ZONE}/#"),
        TopicKind::ConfigReport.shared_filter(group),
    ]
}

/// A built registry, listening but not yet serving.
pub struct App {
    runner: Runner,
    pool: PgPool,
    brokers: BrokerPool,
}

impl App {
    /// Connects to PostgreSQL (migrating it) and to every broker, subscribes,
    /// starts the background work and binds `HTTP_PORT` (0 picks a free port).
    pub async fn build(settings: Settings, device: DeviceSettings) -> anyhow::Result<App> {
        let stop = CancellationToken::new();
        let token = ApiToken::from_secret(device.api_token(settings.bridge_api_token.as_ref()));
        if token.0.is_none() {
            warn!(
                "Neither DEVICE_REGISTRY_API_TOKEN nor BRIDGE_API_TOKEN is set: the node API accepts requests without a token."
            );
        }
        settings.warn_if_dev_node_secret();
        let pool = db::open(&settings, &stop).await?;

        let (inbox_tx, inbox_rx) = mpsc::channel(4096);
        let brokers =
            BrokerPool::connect_following(&settings, &pool, SERVICE, Some(inbox_tx), &stop, |_| {})
                .await?;
        for filter in filters(settings.share_group_or(SERVICE)) {
            brokers.subscribe_all(&filter, QoS::AtLeastOnce)?;
        }

        let tasks = TaskTracker::new();
        tasks.spawn(
            Uplink::new(pool.clone(), device.unbound_write_interval()).run(inbox_rx, stop.clone()),
        );
        tasks.spawn(binds::expire_loop(
            pool.clone(),
            device.expiry_interval(),
            stop.clone(),
        ));

        let registry = Registry {
            pool: pool.clone(),
            brokers: brokers.clone(),
            default_secret: settings.node_default_secret.clone(),
            default_broker_url: settings.default_broker_url(),
            bind_ttl: device.bind_ttl(),
        };
        let api = routes::router(registry)
            .layer(axum::middleware::from_fn_with_state(token, require_token));
        let health = Health::new(SERVICE)
            .require(Dependency::Postgres(pool.clone()))
            .require(Dependency::Brokers(brokers.clone()));
        let router = api
            .merge(common::http::ops_router(health))
            .fallback(not_found)
            .method_not_allowed_fallback(method_not_allowed)
            .layer(axum::middleware::from_fn(common::http::track_requests));
        let runner = Runner::bind(
            SERVICE,
            settings.http_port_or(DEFAULT_PORT),
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

    /// Serves until `shutdown`, then stops the background work.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        self.runner.run_until_stopped(shutdown).await
    }
}

async fn not_found() -> impl IntoResponse {
    ApiError::not_found(
        "route_not_found",
        "no such endpoint; see the README for the API",
    )
}

async fn method_not_allowed() -> impl IntoResponse {
    (
        StatusCode::METHOD_NOT_ALLOWED,
        axum::Json(
            serde_json::json!({"status":"error","code":"method_not_allowed","message":"this endpoint does not take that method"}),
        ),
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn filters_cover_both_hellos_the_temp_namespace_and_reports() {
        assert_eq!(
            super::filters("device-registry"),
            [
                "$share/device-registry/hydro/node_hello",
                "$share/device-registry/hydro/+/+/+/node_hello",
                "$share/device-registry/hydro/gh-temp/zn-temp/#",
                "$share/device-registry/hydro/+/+/+/config_report",
            ]
        );
    }
}
