//! The `nodes` table as placement reads it: the planner's view of each
//! node, stranded nodes, secrets for signing config/updates and what a
//! NodeConfig is built from. Used by `common::placement` and broker-registry.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sqlx::PgExecutor;

use crate::placement::balance::{MoveVia, NodeView};

/// A node's command secret (`None`: the default secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeSecret {
    pub id: i64,
    pub secret: Option<String>,
}

queries! {
    /// The secrets of the nodes `ids`.
    pub fn secrets(db, ids: &[i64]) -> Vec<NodeSecret> {
        fetch_all(query_as!(NodeSecret, "SELECT id, secret FROM nodes WHERE id = ANY($1)", ids))
    }
}

/// What a NodeConfig for one node is built from.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigSource {
    pub uid: String,
    pub node_type: String,
    /// Its greenhouse and zone, when it is placed.
    pub gh_uid: Option<String>,
    pub zone_uid: Option<String>,
    pub secret: Option<String>,
    /// The NodeConfig it last reported.
    pub config: Option<Value>,
    pub mqtt_password: Option<String>,
}

queries! {
    /// What NodeConfigs for node `id` are built from, if it exists.
    pub fn config_source(db, id: i64) -> Option<ConfigSource> {
        fetch_optional(query_as!(
            ConfigSource,
            r#"SELECT n.uid, n.type AS node_type, g.uid AS "gh_uid?", z.uid AS "zone_uid?",
                      n.secret, n.config, n.mqtt_password
               FROM nodes n LEFT JOIN zones z ON z.id = n.zone_id
               LEFT JOIN greenhouses g ON g.id = z.greenhouse_id WHERE n.id = $1"#,
            id
        ))
    }

    /// Every node as the planner sees it, by id; a node a plan moved within
    /// `cooldown_secs` is cooling (not one a failover forced off its broker, or
    /// that moved by itself).
    pub fn views(db, cooldown_secs: f64) -> Vec<NodeView> {
        fetch_all(query_as!(
            NodeView,
            r#"SELECT n.id AS node_id, COALESCE(z.priority = 'critical', false) AS "critical!",
                      a.broker_id AS "current?",
                      COALESCE(a.assigned_at > now() - make_interval(secs => $1)
                               AND a.strategy NOT IN ('failover', 'observed'), false) AS "cooling!",
                      n.move_via AS "via: _", n.observed_broker_id AS observed,
                      COALESCE(o.enabled AND o.status <> 'OFFLINE', false) AS "reachable!"
               FROM nodes n LEFT JOIN zones z ON z.id = n.zone_id
               LEFT JOIN node_broker_assignments a ON a.node_id = n.id
               LEFT JOIN brokers o ON o.id = n.observed_broker_id ORDER BY n.id"#,
            cooldown_secs
        ))
    }
}

/// A node stranded on a dead broker.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct StrandedNode {
    pub node_id: i64,
    pub node_uid: String,
    pub move_via: MoveVia,
    /// The OFFLINE broker it was last on.
    pub broker_id: String,
    pub observed_at: Option<DateTime<Utc>>,
}

/// Every node that cannot follow a `config/update` whose route is an
/// OFFLINE broker (`broker` limits it to one), by uid. A runtime query: the
/// route is [`crate::route_broker_sql!`], which a checked query cannot
/// take in.
pub async fn stranded(
    db: impl PgExecutor<'_>,
    broker: Option<&str>,
) -> Result<Vec<StrandedNode>, sqlx::Error> {
    sqlx::query_as(concat!(
        "SELECT n.id AS node_id, n.uid AS node_uid, n.move_via, b.id AS broker_id, n.observed_at \
         FROM nodes n LEFT JOIN node_broker_assignments a ON a.node_id = n.id \
         JOIN brokers b ON b.id = ",
        crate::route_broker_sql!(),
        " WHERE n.move_via <> 'config_update' AND b.status = 'OFFLINE' \
           AND ($1::text IS NULL OR b.id = $1) ORDER BY n.uid"
    ))
    .bind(broker)
    .fetch_all(db)
    .await
}
