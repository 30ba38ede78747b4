//! The advisor (issue 15, seed section 13): from the current figures (per
//! node message rates, signal and command counts; broker load, latency and
//! failover history; zone priorities) it proposes concrete moves, each with
//! the numbers that justify it ([`rules`]), optionally asks a language
//! model for more ([`model`]), and passes every suggestion through one
//! [`guard`]. Suggestions are stored (`common::store::advisor_suggestions`),
//! refused ones with their reason; applying one ([`run::apply`]) goes
//! through the engine's path of a manual rebalance and is audited.
//!
//! [`Inputs`] is the snapshot the rules, the guard and the model see;
//! [`gather`] reads it.

pub mod guard;
pub mod model;
pub mod rules;
pub mod run;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};
use common::placement::balance::{RebalanceLimits, Role, Strategy};
use common::placement::broker_status::BrokerStatus;
use common::store::advisor_suggestions::SuggestionSource;
use common::store::{
    broker_health_samples, broker_status_changes, brokers, failover_events, nodes,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::PgPool;
use tokio::time::Instant;

use model::ModelConfig;

/// The advisor's own state: the optional model and when it was last asked.
pub struct Advisor {
    pub model: Option<ModelConfig>,
    /// The model is asked at most this often (the dashboard polls).
    pub model_interval: Duration,
    http: reqwest::Client,
    last_asked: Mutex<Option<Instant>>,
}

impl Advisor {
    pub fn new(model: Option<ModelConfig>, model_interval: Duration) -> Self {
        Advisor {
            model,
            model_interval,
            http: reqwest::Client::new(),
            last_asked: Mutex::new(None),
        }
    }

    /// The model, when it is set and due (marked asked now).
    fn model_due(&self) -> Option<&ModelConfig> {
        let model = self.model.as_ref()?;
        let mut last = self.last_asked.lock().unwrap_or_else(|e| e.into_inner());
        if last.is_some_and(|at| at.elapsed() < self.model_interval) {
            return None;
        }
        *last = Some(Instant::now());
        Some(model)
    }
}

/// How far back node and broker figures are taken.
pub const FIGURES_WINDOW: Duration = Duration::from_secs(15 * 60);
/// How recent a return from OFFLINE (or a failover) counts as a recovery.
pub const RECOVERY_WINDOW: Duration = Duration::from_secs(60 * 60);
/// How far back failovers are counted.
pub const FAILOVER_WINDOW: Duration = Duration::from_secs(24 * 60 * 60);

proto::text_enum! {
    /// What the advisor can propose.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(rename_all = "snake_case")]
    pub enum Kind {
        /// Move nodes off an overloaded (or unhealthy) broker.
        OffloadBroker => "offload_broker",
        /// Give a critical zone a broker of its own.
        DedicateBroker => "dedicate_broker",
        /// Put the nodes of quiet zones on one broker.
        MergeQuietZones => "merge_quiet_zones",
        /// Place nodes by another strategy.
        SwitchStrategy => "switch_strategy",
        /// Refill a broker that came back after a failure.
        RestoreSpread => "restore_spread",
        /// Look at nodes with a poor signal or odd command rates.
        InspectNodes => "inspect_nodes",
    }
}

/// The kind stored for a model answer that named none of [`Kind`].
pub const INVALID_KIND: &str = "invalid";

/// One node to one broker, as a suggestion names it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProposedMove {
    pub node_uid: String,
    #[serde(default)]
    pub from: Option<String>,
    pub to: String,
}

/// A suggestion before the guard.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Proposal {
    /// A [`Kind`] by name (a model may name anything; the guard decides).
    pub kind: String,
    pub source: SuggestionSource,
    /// One sentence with the numbers.
    pub summary: String,
    /// The figures that justify it.
    pub evidence: Value,
    pub moves: Vec<ProposedMove>,
    /// For `switch_strategy`: the strategy to switch to.
    pub strategy: Option<String>,
    /// What, besides kind, moves and strategy, makes it this suggestion
    /// (a zone, a list of nodes): part of its fingerprint.
    #[serde(skip)]
    pub key: String,
}

/// A broker's figures.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BrokerFigures {
    pub id: String,
    pub role: Role,
    pub status: BrokerStatus,
    pub enabled: bool,
    pub draining: bool,
    pub load_index: f64,
    pub msgs_per_sec: f64,
    pub latency_ms: Option<f64>,
    /// Nodes assigned to it.
    pub nodes: usize,
    /// Over [`FIGURES_WINDOW`].
    pub avg_latency_ms: Option<f64>,
    pub failed_probes: i64,
    /// Failovers within [`FAILOVER_WINDOW`].
    pub failovers: i64,
    /// Its latest return from OFFLINE (or failover) within [`RECOVERY_WINDOW`].
    pub recovered_at: Option<DateTime<Utc>>,
}

impl BrokerFigures {
    /// Usable, GOOD and of a general role: a broker the rules move nodes to.
    pub fn takes_moves(&self) -> bool {
        self.enabled
            && !self.draining
            && self.status == BrokerStatus::Good
            && matches!(self.role, Role::Primary | Role::Optional)
    }
}

/// A node's figures and how it can be moved.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NodeFacts {
    pub id: i64,
    pub uid: String,
    pub zone: Option<String>,
    pub critical: bool,
    pub rssi: Option<i16>,
    /// Telemetry samples per minute over [`FIGURES_WINDOW`].
    pub uplinks_per_min: f64,
    /// Commands per hour over [`FIGURES_WINDOW`].
    pub commands_per_hour: f64,
    /// Its assigned broker.
    pub broker: Option<String>,
    /// A move can reach it.
    pub movable: bool,
    /// Moved by a rebalance within the cooldown.
    pub cooling: bool,
}

/// The snapshot the rules, the guard and the model see.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Inputs {
    pub strategy: Strategy,
    /// `REBALANCE_THRESHOLD`, and the rate limit: at most `max_moves` per step.
    pub threshold: f64,
    pub max_moves: usize,
    pub brokers: Vec<BrokerFigures>,
    pub nodes: Vec<NodeFacts>,
}

impl Inputs {
    pub fn broker(&self, id: &str) -> Option<&BrokerFigures> {
        self.brokers.iter().find(|b| b.id == id)
    }

    pub fn node(&self, uid: &str) -> Option<&NodeFacts> {
        self.nodes.iter().find(|n| n.uid == uid)
    }
}

/// Reads the figures.
pub async fn gather(
    pool: &PgPool,
    strategy: Strategy,
    limits: RebalanceLimits,
    cooldown: Duration,
) -> Result<Inputs, sqlx::Error> {
    let window = FIGURES_WINDOW.as_secs_f64();
    let listed = brokers::overview(pool).await?;
    let health: BTreeMap<String, broker_health_samples::HealthSummary> =
        broker_health_samples::summary(pool, window)
            .await?
            .into_iter()
            .map(|h| (h.broker_id.clone(), h))
            .collect();
    let failovers = failover_events::counts_since(pool, FAILOVER_WINDOW.as_secs_f64()).await?;
    let recoveries =
        broker_status_changes::recent_recoveries(pool, RECOVERY_WINDOW.as_secs_f64()).await?;
    let recent_failover = |id: &str| {
        failovers
            .iter()
            .find(|f| f.broker_id == id)
            .filter(|f| {
                Utc::now() - f.last_started_at
                    < chrono::Duration::from_std(RECOVERY_WINDOW).unwrap_or_default()
            })
            .map(|f| f.last_started_at)
    };
    let brokers = listed
        .into_iter()
        .map(|b| {
            let h = health.get(&b.id);
            let recovered_at = recoveries
                .iter()
                .find(|r| r.broker_id == b.id)
                .map(|r| r.changed_at)
                .or_else(|| recent_failover(&b.id));
            BrokerFigures {
                role: b.role,
                status: b.status,
                enabled: b.enabled,
                draining: b.draining,
                load_index: b.load_index,
                msgs_per_sec: b.msgs_per_sec,
                latency_ms: b.latency_ms,
                nodes: usize::try_from(b.nodes).unwrap_or(0),
                avg_latency_ms: h.and_then(|h| h.avg_latency_ms),
                failed_probes: h.map_or(0, |h| h.failed_probes),
                failovers: failovers
                    .iter()
                    .find(|f| f.broker_id == b.id)
                    .map_or(0, |f| f.failovers),
                recovered_at,
                id: b.id,
            }
        })
        .collect();
    let (_, views) = common::placement::assignments::snapshot(pool, cooldown).await?;
    let minutes = window / 60.0;
    let nodes = nodes::advisor_figures(pool, window)
        .await?
        .into_iter()
        .map(|f| {
            let view = views.iter().find(|v| v.node_id == f.node_id);
            NodeFacts {
                id: f.node_id,
                uid: f.uid,
                zone: f.zone_uid,
                critical: f.critical,
                rssi: f.rssi,
                uplinks_per_min: f.uplinks as f64 / minutes,
                commands_per_hour: f.commands as f64 / (minutes / 60.0),
                broker: view.and_then(|v| v.current.clone()),
                movable: view.is_some_and(|v| v.movable()),
                cooling: view.is_some_and(|v| v.cooling),
            }
        })
        .collect();
    Ok(Inputs {
        strategy,
        threshold: limits.threshold,
        max_moves: limits.max_moves,
        brokers,
        nodes,
    })
}
