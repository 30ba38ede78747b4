//! What the dashboard reads besides the broker API: `GET /api/brokers/history`
//! (each broker's samples of the last `?minutes=` (1 to 1440, 60 by default),
//! at most 120 points per broker), `GET /api/zones/map` (zones × brokers),
//! `GET /api/nodes` (every node, with its brokers, rates and unbound state)
//! and `GET /api/stream`, a server-sent event stream: a `snapshot` of the
//! brokers every two seconds and a `broker-status` event when one changes.

use common::runtime::api_error::ApiResult;
use common::runtime::api_error::ok;
use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::time::Duration;

use axum::Router;
use axum::extract::{Query, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::routing::get;
use common::placement::broker_status::BrokerStatus;
use common::store::broker_health_samples::{self, HealthPoint};
use common::store::{brokers, failover_events, nodes, zones};
use futures::{Stream, StreamExt};
use serde::Deserialize;
use serde_json::json;
use sqlx::PgPool;
use tracing::warn;

use super::ApiState;
use crate::error::ApiError;

pub fn router() -> Router<ApiState> {
    Router::new()
        .route("/api/brokers/history", get(history))
        .route("/api/zones/map", get(zone_map))
        .route("/api/nodes", get(node_list))
        .route("/api/stream", get(stream))
}

/// The most points a chart gets per broker.
const MAX_POINTS: u32 = 120;
/// The longest window a chart covers: a day.
const MAX_MINUTES: u32 = 1440;
/// How often the stream sends a snapshot.
const SNAPSHOT_EVERY: Duration = Duration::from_secs(2);

#[derive(Deserialize)]
struct Window {
    minutes: Option<u32>,
}

async fn history(State(s): State<ApiState>, Query(w): Query<Window>) -> ApiResult {
    let minutes = match w.minutes.unwrap_or(60) {
        m @ 1..=MAX_MINUTES => m,
        m => {
            return Err(ApiError::bad_request(
                "invalid_query",
                format!("`minutes` must be between 1 and {MAX_MINUTES}, not {m}"),
            ));
        }
    };
    let window = Duration::from_secs(u64::from(minutes) * 60);
    let points = broker_health_samples::history(&s.pool, window, MAX_POINTS).await?;
    let mut by_broker: BTreeMap<String, Vec<HealthPoint>> = BTreeMap::new();
    for p in points {
        by_broker.entry(p.broker_id.clone()).or_default().push(p);
    }
    Ok(ok(json!({ "minutes": minutes, "brokers": by_broker })))
}

async fn zone_map(State(s): State<ApiState>) -> ApiResult {
    let cells = zones::broker_map(&s.pool).await?;
    Ok(ok(cells))
}

async fn node_list(State(s): State<ApiState>) -> ApiResult {
    let rows = nodes::overview(&s.pool).await?;
    Ok(ok(rows))
}

/// The stream, until the client leaves or the service stops (a stream
/// left open would hold the graceful shutdown up).
async fn stream(State(s): State<ApiState>) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let mut ticks = tokio::time::interval(SNAPSHOT_EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let start = Watch {
        pool: s.pool.clone(),
        ticks,
        statuses: HashMap::new(),
    };
    let events = futures::stream::unfold(start, |mut watch| async move {
        watch.ticks.tick().await;
        let events = watch.next().await;
        Some((futures::stream::iter(events.into_iter().map(Ok)), watch))
    })
    .flatten()
    .take_until(s.stop.clone().cancelled_owned());
    Sse::new(events).keep_alive(KeepAlive::default())
}

/// One client's stream: the statuses it was last sent.
struct Watch {
    pool: PgPool,
    ticks: tokio::time::Interval,
    statuses: HashMap<String, BrokerStatus>,
}

impl Watch {
    /// A `broker-status` event per broker whose status changed since the last
    /// tick (none on the first), then the snapshot; nothing when the database
    /// does not answer (the client keeps its last figures).
    async fn next(&mut self) -> Vec<Event> {
        let (brokers, latest) = match tokio::try_join!(
            brokers::overview(&self.pool),
            failover_events::recent(&self.pool, 1)
        ) {
            Ok(read) => read,
            Err(e) => {
                warn!(error = %e, "Dashboard stream could not read the brokers.");
                return Vec::new();
            }
        };
        let mut events = Vec::new();
        for b in &brokers {
            let before = self.statuses.insert(b.id.clone(), b.status);
            if let Some(before) = before.filter(|before| *before != b.status) {
                let change = json!({ "broker": b.id, "from": before, "to": b.status });
                events.push(
                    Event::default()
                        .event("broker-status")
                        .data(change.to_string()),
                );
            }
        }
        let snapshot = json!({
            "at": chrono::Utc::now(),
            "brokers": brokers,
            "latest_failover": latest.into_iter().next(),
        });
        events.push(
            Event::default()
                .event("snapshot")
                .data(snapshot.to_string()),
        );
        events
    }
}
