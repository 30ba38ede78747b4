//! `GET /health`: each dependency and its state; 503 when a required one
//! is down.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::mqtt::pool::BrokerPool;

/// Something a service depends on, checked by `/health`.
#[derive(Clone)]
pub enum Dependency {
    Postgres(PgPool),
    Redis(deadpool_redis::Pool),
    /// Every broker of the pool; up when at least one is connected.
    Brokers(BrokerPool),
    /// A check of the service's own: its detail and whether it is up.
    Custom {
        name: &'static str,
        check: std::sync::Arc<dyn Fn() -> (Value, bool) + Send + Sync>,
    },
}

impl Dependency {
    async fn check(&self) -> (String, Value, bool) {
        match self {
            Dependency::Postgres(pool) => {
                let up = crate::store::db::ping(pool).await;
                ("postgres".into(), json!({ "state": state(up) }), up)
            }
            Dependency::Redis(pool) => {
                let up = crate::store::redis::ping(pool).await;
                ("redis".into(), json!({ "state": state(up) }), up)
            }
            Dependency::Brokers(brokers) => {
                let all = brokers.all();
                let each: serde_json::Map<String, Value> = all
                    .iter()
                    .map(|c| (c.broker_id().to_owned(), json!(state(c.is_connected()))))
                    .collect();
                let up = all.iter().any(|c| c.is_connected());
                (
                    "mqtt".into(),
                    json!({ "state": state(up), "brokers": each }),
                    up,
                )
            }
            Dependency::Custom { name, check } => {
                let (mut detail, up) = check();
                detail["state"] = json!(state(up));
                ((*name).to_owned(), detail, up)
            }
        }
    }
}

pub(super) fn state(up: bool) -> &'static str {
    if up { "up" } else { "down" }
}

/// What `/health` reports for one service.
#[derive(Clone)]
pub struct Health {
    service: &'static str,
    /// (dependency, required)
    dependencies: Vec<(Dependency, bool)>,
}

impl Health {
    pub fn new(service: &'static str) -> Self {
        Health {
            service,
            dependencies: Vec::new(),
        }
    }

    /// A dependency without which the service cannot do its job: 503 when down.
    pub fn require(mut self, d: Dependency) -> Self {
        self.dependencies.push((d, true));
        self
    }

    /// A dependency that is reported but does not fail the check.
    pub fn optional(mut self, d: Dependency) -> Self {
        self.dependencies.push((d, false));
        self
    }

    async fn report(&self) -> (bool, Value) {
        let checks =
            futures::future::join_all(self.dependencies.iter().map(|(d, _)| d.check())).await;
        let mut healthy = true;
        let mut deps = serde_json::Map::new();
        for ((name, mut detail, up), (_, required)) in checks.into_iter().zip(&self.dependencies) {
            healthy &= up || !required;
            detail["required"] = json!(required);
            deps.insert(name, detail);
        }
        let body = json!({
            "service": self.service,
            "status": if healthy { "ok" } else { "unavailable" },
            "version": env!("CARGO_PKG_VERSION"),
            "dependencies": deps,
        });
        (healthy, body)
    }
}

pub(super) async fn health_report(State(health): State<Health>) -> Response {
    let (healthy, body) = health.report().await;
    let code = if healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(body)).into_response()
}
