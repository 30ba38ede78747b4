//! The `nodes` table: every node, its zone, secrets, the NodeConfig it
//! reported, how it can be moved and where it is observed. Read here for
//! placement (the planner's view, stranded nodes, secrets for signing
//! config/updates, what a NodeConfig is built from); node-sim seeds its
//! simulated nodes and reads back their credentials.

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

/// The secrets of the nodes `ids`.
pub async fn secrets(db: impl PgExecutor<'_>, ids: &[i64]) -> Result<Vec<NodeSecret>, sqlx::Error> {
    sqlx::query_as!(
        NodeSecret,
        "SELECT id, secret FROM nodes WHERE id = ANY($1)",
        ids
    )
    .fetch_all(db)
    .await
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

/// What NodeConfigs for node `id` are built from, if it exists.
pub async fn config_source(
    db: impl PgExecutor<'_>,
    id: i64,
) -> Result<Option<ConfigSource>, sqlx::Error> {
    sqlx::query_as!(
        ConfigSource,
        r#"SELECT n.uid, n.type AS node_type, g.uid AS "gh_uid?", z.uid AS "zone_uid?", n.secret,
                  n.config, n.mqtt_password
           FROM nodes n LEFT JOIN zones z ON z.id = n.zone_id
           LEFT JOIN greenhouses g ON g.id = z.greenhouse_id WHERE n.id = $1"#,
        id
    )
    .fetch_optional(db)
    .await
}

/// Every node as the planner sees it, by id; a node a plan moved within
/// `cooldown_secs` is cooling (not one a failover forced off its broker, or
/// that moved by itself).
pub async fn views(
    db: impl PgExecutor<'_>,
    cooldown_secs: f64,
) -> Result<Vec<NodeView>, sqlx::Error> {
    sqlx::query_as!(
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
    )
    .fetch_all(db)
    .await
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

/// The simulated nodes to seed: uid, zone uid and type of each.
#[derive(Debug, Clone, Copy)]
pub struct SeedNodes<'a> {
    pub uids: &'a [String],
    pub zones: &'a [String],
    pub kinds: &'a [String],
    /// Every node's `fw_version` and `move_via`.
    pub fw_version: &'a str,
    pub move_via: MoveVia,
}

/// Upserts `nodes` into their zones (by zone uid); a node already there
/// with the same zone, type, firmware and move means is left alone.
/// Returns the rows written.
pub async fn seed(db: impl PgExecutor<'_>, nodes: SeedNodes<'_>) -> Result<u64, sqlx::Error> {
    let done = sqlx::query!(
        "INSERT INTO nodes (uid, zone_id, type, fw_version, move_via)
         SELECT t.uid, z.id, t.kind, $4, $5
         FROM UNNEST($1::text[], $2::text[], $3::text[]) AS t (uid, zone, kind)
         JOIN zones z ON z.uid = t.zone
         ON CONFLICT (uid) DO UPDATE
         SET zone_id = EXCLUDED.zone_id, type = EXCLUDED.type,
             fw_version = EXCLUDED.fw_version, move_via = EXCLUDED.move_via, updated_at = now()
         WHERE (nodes.zone_id, nodes.type, nodes.fw_version, nodes.move_via)
               IS DISTINCT FROM (EXCLUDED.zone_id, EXCLUDED.type, EXCLUDED.fw_version, EXCLUDED.move_via)",
        nodes.uids,
        nodes.zones,
        nodes.kinds,
        nodes.fw_version,
        nodes.move_via as _
    )
    .execute(db)
    .await?;
    Ok(done.rows_affected())
}

/// Gives each node of `uids` lacking one the secret and broker password at
/// its index in `secrets` and `passwords`; what a node has is kept.
pub async fn fill_credentials(
    db: impl PgExecutor<'_>,
    uids: &[String],
    secrets: &[String],
    passwords: &[String],
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "UPDATE nodes n SET secret = COALESCE(n.secret, t.secret),
                mqtt_password = COALESCE(n.mqtt_password, t.password), updated_at = now()
           FROM UNNEST($1::text[], $2::text[], $3::text[]) AS t (uid, secret, password)
          WHERE n.uid = t.uid AND (n.secret IS NULL OR n.mqtt_password IS NULL)",
        uids,
        secrets,
        passwords
    )
    .execute(db)
    .await?;
    Ok(())
}

/// A node's command secret and broker password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub uid: String,
    pub secret: String,
    pub mqtt_password: Option<String>,
}

/// The credentials of the nodes `uids` that have a secret.
pub async fn credentials(
    db: impl PgExecutor<'_>,
    uids: &[String],
) -> Result<Vec<Credentials>, sqlx::Error> {
    sqlx::query_as!(
        Credentials,
        r#"SELECT uid, secret AS "secret!", mqtt_password FROM nodes
           WHERE uid = ANY($1) AND secret IS NOT NULL"#,
        uids
    )
    .fetch_all(db)
    .await
}
