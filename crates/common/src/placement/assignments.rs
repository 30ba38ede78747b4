//! The node → broker mapping (`node_broker_assignments`) and the move
//! protocol every writer of it follows (broker-registry's assignment engine,
//! the failover service):
//!
//! 1. [`record_moves`] writes the new broker with `confirmed_at` NULL and a
//!    `config_ts` strictly above the node's previous one, in one statement
//!    (a move whose node is no longer on the broker it was planned from is
//!    skipped, so two writers never undo each other);
//! 2. [`carry_out`] tells each moved node by the means it supports
//!    (`nodes.move_via`): a `config_update` node gets the retained
//!    `nodes/{node}/config/update` ([`announce`], signed with the node's
//!    secret like its commands) on every broker this
//!    process is connected to — wherever the node is now and wherever its
//!    fallback list will lead it; a `node_config` node (the firmware) gets
//!    a NodeConfig naming the new broker's host/port on its config topic,
//!    through the broker it is observed on ([`push_node_configs`]); a node
//!    that cannot be moved (`none`) is never planned a move (see
//!    [`snapshot`]) and never announced one;
//! 3. the node reconnects and publishes its status ONLINE (or, firmware, its
//!    `config_report`) on the new broker; [`confirm_from_message`] (run by
//!    every consumer of status messages) sets `confirmed_at` when that status
//!    arrives there live (or, replayed from the retained store, with a `ts`
//!    no older than the config), and [`follow_observations`] when the node is
//!    observed there (`nodes.observed_broker_id`, written from its uplink).
//!
//! Where a node that cannot follow a `config/update` is, is where it is
//! observed: [`follow_observations`] gives such a node an assignment to the
//! broker it is seen on (confirmed), follows it when it reappears elsewhere,
//! and takes back a NodeConfig move the node did not make in time.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use futures::StreamExt;
use serde::Serialize;
use sqlx::PgPool;
use tracing::{debug, warn};

use crate::metrics as m;
use crate::mqtt::Inbound;
use crate::mqtt::pool::BrokerPool;
use crate::placement::balance::{BrokerView, Move, MoveVia, NodeView, Role};
use crate::placement::broker_status::BrokerStatus;
use crate::placement::node_config;
use proto::payloads::{ConfigUpdate, NodeState, Status};
use proto::signing;
use proto::topics::{NodeTopic, TopicKind, config_update_topic};

/// Concurrent retained publishes while announcing a batch of moves.
const ANNOUNCE_CONCURRENCY: usize = 64;

/// One node's row, with the node uid.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct Assignment {
    pub node_id: i64,
    pub node_uid: String,
    pub broker_id: String,
    pub strategy: String,
    pub assigned_at: chrono::DateTime<chrono::Utc>,
    pub confirmed_at: Option<chrono::DateTime<chrono::Utc>>,
    pub previous_broker_id: Option<String>,
    pub config_ts: i64,
    /// How the node can be moved: `config_update`, `node_config` or `none`.
    pub move_via: String,
    /// The broker its uplink last arrived on, and when.
    pub observed_broker_id: Option<String>,
    pub observed_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// `nodes.move_via` of a node that follows a retained config/update.
pub const VIA_CONFIG_UPDATE: &str = "config_update";
/// `nodes.move_via` of a node moved by a NodeConfig push (the firmware).
pub const VIA_NODE_CONFIG: &str = "node_config";

/// The select list of [`Assignment`]; callers add `WHERE`/`ORDER BY`.
pub const ASSIGNMENT_QUERY: &str = "\
    SELECT a.node_id, n.uid AS node_uid, a.broker_id, a.strategy, a.assigned_at, \
           a.confirmed_at, a.previous_broker_id, a.config_ts, n.move_via, \
           n.observed_broker_id, n.observed_at \
    FROM node_broker_assignments a JOIN nodes n ON n.id = a.node_id ";

/// Writes `moves` (see the module doc) with `strategy` as the reason; returns
/// the rows written. A move from `None` only creates a missing row.
pub async fn record_moves(
    pool: &PgPool,
    moves: &[Move],
    strategy: &str,
) -> Result<Vec<Assignment>, sqlx::Error> {
    if moves.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<i64> = sqlx::query_scalar(
        "WITH m AS (SELECT * FROM UNNEST($1::int8[], $2::text[], $3::text[]) AS m(node_id, from_id, to_id)), \
         upd AS (UPDATE node_broker_assignments a \
                 SET broker_id = m.to_id, previous_broker_id = a.broker_id, strategy = $4, \
                     assigned_at = now(), confirmed_at = NULL, \
                     config_ts = GREATEST(floor(extract(epoch FROM now()))::int8, a.config_ts + 1) \
                 FROM m WHERE a.node_id = m.node_id AND a.broker_id = m.from_id AND m.to_id <> m.from_id \
                 RETURNING a.node_id), \
         ins AS (INSERT INTO node_broker_assignments (node_id, broker_id, strategy, config_ts) \
                 SELECT m.node_id, m.to_id, $4, floor(extract(epoch FROM now()))::int8 \
                 FROM m JOIN nodes n ON n.id = m.node_id WHERE m.from_id IS NULL \
                 ON CONFLICT (node_id) DO NOTHING RETURNING node_id) \
         SELECT node_id FROM upd UNION ALL SELECT node_id FROM ins",
    )
    .bind(moves.iter().map(|m| m.node_id).collect::<Vec<_>>())
    .bind(moves.iter().map(|m| m.from.as_deref()).collect::<Vec<_>>())
    .bind(moves.iter().map(|m| m.to.as_str()).collect::<Vec<_>>())
    .bind(strategy)
    .fetch_all(pool)
    .await?;
    metrics::counter!(m::NODE_MOVES, "strategy" => strategy.to_owned()).increment(ids.len() as u64);
    sqlx::query_as(&format!(
        "{ASSIGNMENT_QUERY} WHERE a.node_id = ANY($1) ORDER BY a.node_id"
    ))
    .bind(&ids)
    .fetch_all(pool)
    .await
}

/// A broker's id and URL, for config/update payloads.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct BrokerAddress {
    pub id: String,
    pub url: String,
}

/// Brokers a node may be sent to or fall back to: enabled, not draining,
/// not OFFLINE, by id.
pub async fn reachable_brokers(pool: &PgPool) -> Result<Vec<BrokerAddress>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, url FROM brokers WHERE enabled AND NOT draining AND status <> 'OFFLINE' ORDER BY id",
    )
    .fetch_all(pool)
    .await
}

/// The config/update for a node assigned to `broker_id`. Its fallback list
/// is every other reachable broker, starting after the assigned one in id
/// order, so the nodes of one broker spread over the others when it dies.
/// `None` when the broker is unknown.
pub fn config_for(
    assignment: &Assignment,
    brokers: &[BrokerAddress],
    all_urls: &BTreeMap<String, String>,
) -> Option<ConfigUpdate> {
    let url = all_urls.get(&assignment.broker_id)?;
    let start = brokers
        .iter()
        .position(|b| b.id > assignment.broker_id)
        .unwrap_or(0);
    let fallback = brokers[start..]
        .iter()
        .chain(&brokers[..start])
        .filter(|b| b.id != assignment.broker_id)
        .map(|b| b.url.clone())
        .collect();
    Some(ConfigUpdate {
        mqtt_broker: url.clone(),
        broker_id: assignment.broker_id.clone(),
        fallback,
        ts: assignment.config_ts,
        sig: String::new(),
    })
}

/// Every broker's URL by id, disabled or down ones included.
pub async fn broker_urls(pool: &PgPool) -> Result<BTreeMap<String, String>, sqlx::Error> {
    let rows: Vec<(String, String)> = sqlx::query_as("SELECT id, url FROM brokers")
        .fetch_all(pool)
        .await?;
    Ok(rows.into_iter().collect())
}

/// Publishes the retained config/update of each assignment of a
/// `config_update` node on every broker of `brokers` that is connected (a
/// dead one is skipped, not waited for); any other node is skipped: it
/// would not follow it. `only` limits it to one broker (a broker that came
/// back, or joined). Each is signed with the node's secret, or
/// `default_secret` when it has none (the key its commands are signed with).
/// Returns how many publishes the brokers acknowledged.
pub async fn announce(
    pool: &PgPool,
    brokers: &BrokerPool,
    assignments: &[Assignment],
    only: Option<&str>,
    default_secret: &str,
) -> Result<usize, sqlx::Error> {
    let reachable = reachable_brokers(pool).await?;
    let urls = broker_urls(pool).await?;
    let ids: Vec<i64> = assignments
        .iter()
        .filter(|a| a.move_via == VIA_CONFIG_UPDATE)
        .map(|a| a.node_id)
        .collect();
    let secrets: HashMap<i64, Option<String>> = sqlx::query_as::<_, (i64, Option<String>)>(
        "SELECT id, secret FROM nodes WHERE id = ANY($1)",
    )
    .bind(&ids)
    .fetch_all(pool)
    .await?
    .into_iter()
    .collect();
    let connections: Vec<_> = brokers
        .all()
        .into_iter()
        .filter(|c| c.is_connected() && only.is_none_or(|o| c.broker_id() == o))
        .collect();
    let mut publishes = Vec::new();
    for a in assignments
        .iter()
        .filter(|a| a.move_via == VIA_CONFIG_UPDATE)
    {
        let Some(config) = config_for(a, &reachable, &urls) else {
            warn!(node = %a.node_uid, broker = %a.broker_id, "Assignment to an unknown broker; not announced.");
            continue;
        };
        let secret = secrets
            .get(&a.node_id)
            .and_then(Option::as_deref)
            .unwrap_or(default_secret);
        let config = signing::sign_config_update(secret.as_bytes(), config);
        let payload = bytes::Bytes::from(serde_json::to_vec(&config).expect("config serialises"));
        let topic = config_update_topic(&a.node_uid);
        for c in &connections {
            publishes.push((c.clone(), topic.clone(), payload.clone()));
        }
    }
    let acknowledged = futures::stream::iter(publishes)
        .map(|(c, topic, payload)| async move {
            match c.publish(&topic, payload, true).await {
                Ok(()) => true,
                Err(e) => {
                    debug!(broker = %c.broker_id(), %topic, error = %e, "Config update not published.");
                    false
                }
            }
        })
        .buffer_unordered(ANNOUNCE_CONCURRENCY)
        .filter(|ok| std::future::ready(*ok))
        .count()
        .await;
    Ok(acknowledged)
}

/// Tells each node of `written` (rows [`record_moves`] just wrote) of its
/// move by the means it supports: config/updates for `config_update` nodes
/// ([`announce`]), NodeConfig pushes for `node_config` nodes
/// ([`push_node_configs`]). Returns (config/updates acknowledged, NodeConfigs
/// published).
pub async fn carry_out(
    pool: &PgPool,
    brokers: &BrokerPool,
    written: &[Assignment],
    default_secret: &str,
) -> Result<(usize, usize), sqlx::Error> {
    let announced = announce(pool, brokers, written, None, default_secret).await?;
    let pushed = push_node_configs(pool, brokers, written, default_secret).await?;
    Ok((announced, pushed))
}

/// Publishes, for each assignment of a `node_config` node, a NodeConfig
/// naming its assigned broker's host/port on the node's current config topic,
/// through the broker the node is observed on (the only one it listens to).
/// A node not observed on a connected broker is skipped: the move is taken
/// back by [`crate::placement::observed::follow_observations`] when it is not made in
/// time. Returns how many were published.
pub async fn push_node_configs(
    pool: &PgPool,
    brokers: &BrokerPool,
    assignments: &[Assignment],
    default_secret: &str,
) -> Result<usize, sqlx::Error> {
    let urls = broker_urls(pool).await?;
    let mut pushed = 0;
    for a in assignments.iter().filter(|a| a.move_via == VIA_NODE_CONFIG) {
        let Some(url) = urls.get(&a.broker_id) else {
            warn!(node = %a.node_uid, broker = %a.broker_id, "Move to an unknown broker; no NodeConfig pushed.");
            continue;
        };
        let Some(connection) = a
            .observed_broker_id
            .as_deref()
            .and_then(|b| brokers.get(b))
            .filter(|c| c.is_connected())
        else {
            warn!(node = %a.node_uid, observed = ?a.observed_broker_id, "Node not reachable where it is observed; its NodeConfig move waits to be taken back.");
            continue;
        };
        let config = match node_config::build(pool, a.node_id, None, url, default_secret).await {
            Ok(c) => c,
            Err(node_config::NodeConfigError::Db(e)) => return Err(e),
            Err(e) => {
                warn!(node = %a.node_uid, error = %e, "Could not build the node's NodeConfig.");
                continue;
            }
        };
        let topic = node_config::config_topic(&config.gh_uid, &config.zone_uid, &config.node_id);
        match node_config::publish(&connection, &topic, &config).await {
            Ok(()) => {
                pushed += 1;
                metrics::counter!(m::NODE_CONFIG_MOVES).increment(1);
                debug!(node = %a.node_uid, to = %a.broker_id, via = %connection.broker_id(), "NodeConfig naming the new broker pushed.");
            }
            Err(e) => {
                warn!(node = %a.node_uid, error = %e, "NodeConfig move not published; it is taken back if the node does not move.")
            }
        }
    }
    Ok(pushed)
}

/// The brokers and nodes as the planner sees them; nodes a rebalance or an
/// assignment moved within `cooldown` are marked cooling (a node a failover
/// forced off its broker, or that moved by itself, may be moved back as soon
/// as the spread calls for it: that is recovery, not flapping).
pub async fn snapshot(
    pool: &PgPool,
    cooldown: Duration,
) -> Result<(Vec<BrokerView>, Vec<NodeView>), sqlx::Error> {
    let rows: Vec<(String, String, String, bool, bool, f64)> = sqlx::query_as(
        "SELECT id, role, status, enabled, draining, load_index FROM brokers ORDER BY id",
    )
    .fetch_all(pool)
    .await?;
    let brokers = rows
        .into_iter()
        .map(
            |(id, role, status, enabled, draining, load_index)| BrokerView {
                id,
                role: role.parse().unwrap_or(Role::Primary),
                status: status.parse().unwrap_or(BrokerStatus::Good),
                enabled,
                draining,
                load_index,
            },
        )
        .collect();
    type Row = (
        i64,
        bool,
        Option<String>,
        bool,
        String,
        Option<String>,
        bool,
    );
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT n.id, COALESCE(z.priority = 'critical', false), a.broker_id, \
                COALESCE(a.assigned_at > now() - make_interval(secs => $1) \
                         AND a.strategy NOT IN ('failover', 'observed'), false), \
                n.move_via, n.observed_broker_id, \
                COALESCE(o.enabled AND o.status <> 'OFFLINE', false) \
         FROM nodes n LEFT JOIN zones z ON z.id = n.zone_id \
         LEFT JOIN node_broker_assignments a ON a.node_id = n.id \
         LEFT JOIN brokers o ON o.id = n.observed_broker_id ORDER BY n.id",
    )
    .bind(cooldown.as_secs_f64())
    .fetch_all(pool)
    .await?;
    let nodes = rows
        .into_iter()
        .map(
            |(node_id, critical, current, cooling, via, observed, reachable)| NodeView {
                node_id,
                critical,
                current,
                cooling,
                via: via.parse().unwrap_or(MoveVia::None),
                observed,
                reachable,
            },
        )
        .collect();
    Ok((brokers, nodes))
}

/// Every assignment (for announcing them all again on one broker).
pub async fn all(pool: &PgPool) -> Result<Vec<Assignment>, sqlx::Error> {
    sqlx::query_as(&format!("{ASSIGNMENT_QUERY} ORDER BY a.node_id"))
        .fetch_all(pool)
        .await
}

/// Marks the move of `node_uid` to `broker_id` confirmed, given a status
/// ONLINE that arrived there: `live` (published while we were subscribed,
/// so after the node got there), or replayed from the retained store with
/// `ts` no older than the config. True when this confirmed it.
pub async fn confirm(
    pool: &PgPool,
    node_uid: &str,
    broker_id: &str,
    live: bool,
    ts: i64,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE node_broker_assignments a SET confirmed_at = now() FROM nodes n \
         WHERE n.uid = $1 AND a.node_id = n.id AND a.broker_id = $2 \
           AND a.confirmed_at IS NULL AND ($3 OR $4 >= a.config_ts)",
    )
    .bind(node_uid)
    .bind(broker_id)
    .bind(live)
    .bind(ts)
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Reads a service's inbox until `stop`: each message goes first to
/// `consume` (a probe echo, a `$SYS` figure, uplink it watches); what it
/// does not take may be a node status that confirms a move.
pub async fn confirm_moves_from(
    mut inbox: tokio::sync::mpsc::Receiver<Inbound>,
    pool: PgPool,
    stop: tokio_util::sync::CancellationToken,
    mut consume: impl FnMut(&Inbound) -> bool,
) {
    loop {
        let message = tokio::select! {
            _ = stop.cancelled() => return,
            m = inbox.recv() => match m { Some(m) => m, None => return },
        };
        if consume(&message) {
            continue;
        }
        if let Err(e) = confirm_from_message(&pool, &message).await {
            warn!(error = %e, "Could not confirm a move from a node status.");
        }
    }
}

/// Confirms a move from a status ONLINE or a live `config_report`, if the
/// message is one (any other message is ignored). True when a move was
/// confirmed.
pub async fn confirm_from_message(pool: &PgPool, message: &Inbound) -> Result<bool, sqlx::Error> {
    let Ok(topic) = NodeTopic::parse(&message.topic) else {
        return Ok(false);
    };
    // A firmware node answers a NodeConfig with its config_report from the
    // new broker: arriving there live, it confirms the move.
    if topic.kind == TopicKind::ConfigReport && !message.retain {
        let confirmed = confirm(pool, &topic.node, &message.broker_id, true, 0).await?;
        if confirmed {
            metrics::counter!(m::NODE_MOVES_CONFIRMED).increment(1);
        }
        return Ok(confirmed);
    }
    if topic.kind != TopicKind::Status {
        return Ok(false);
    }
    let Ok(status) = Status::decode(&message.payload) else {
        return Ok(false);
    };
    if status.status != NodeState::Online {
        return Ok(false);
    }
    // A retained copy is flagged as such only when the broker replays it
    // on subscribe; a status published while we listen arrives unflagged.
    let live = !message.retain;
    let confirmed = confirm(pool, &topic.node, &message.broker_id, live, status.ts).await?;
    if confirmed {
        metrics::counter!(m::NODE_MOVES_CONFIRMED).increment(1);
        debug!(node = %topic.node, broker = %message.broker_id, "Move confirmed.");
    }
    Ok(confirmed)
}

/// The node's broker now and whether its last move is confirmed.
pub async fn current(pool: &PgPool, node_id: i64) -> Result<Option<(String, bool)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT broker_id, confirmed_at IS NOT NULL FROM node_broker_assignments WHERE node_id = $1",
    )
    .bind(node_id)
    .fetch_optional(pool)
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assignment(broker: &str) -> Assignment {
        Assignment {
            node_id: 1,
            node_uid: "nd-1".into(),
            broker_id: broker.into(),
            strategy: "static".into(),
            assigned_at: chrono::Utc::now(),
            confirmed_at: None,
            previous_broker_id: None,
            config_ts: 1_737_979_200,
            move_via: VIA_CONFIG_UPDATE.into(),
            observed_broker_id: None,
            observed_at: None,
        }
    }

    #[test]
    fn config_falls_back_to_the_other_brokers_in_rotation() {
        let brokers: Vec<BrokerAddress> = ["m1", "m2", "m3"]
            .iter()
            .map(|id| BrokerAddress {
                id: (*id).into(),
                url: format!("mqtt://{id}:1883"),
            })
            .collect();
        let urls: BTreeMap<String, String> = brokers
            .iter()
            .map(|b| (b.id.clone(), b.url.clone()))
            .collect();
        let c = config_for(&assignment("m2"), &brokers, &urls).unwrap();
        assert_eq!(c.mqtt_broker, "mqtt://m2:1883");
        assert_eq!(c.broker_id, "m2");
        assert_eq!(c.fallback, ["mqtt://m3:1883", "mqtt://m1:1883"]);
        assert_eq!(c.ts, 1_737_979_200);
        let c = config_for(&assignment("m3"), &brokers, &urls).unwrap();
        assert_eq!(c.fallback, ["mqtt://m1:1883", "mqtt://m2:1883"]);
        // Assigned to a broker that is down (not reachable): all others.
        let c = config_for(&assignment("m2"), &brokers[..1], &urls).unwrap();
        assert_eq!(c.fallback, ["mqtt://m1:1883"]);
        assert!(config_for(&assignment("m9"), &brokers, &urls).is_none());
    }
}
