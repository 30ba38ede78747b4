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
use sqlx::PgPool;
use tracing::{debug, warn};

use crate::metrics as m;
use crate::mqtt::Inbound;
use crate::mqtt::pool::BrokerPool;
use crate::placement::balance::{BrokerView, Move, MoveVia, NodeView};
use crate::placement::node_config;
use crate::store::{brokers, node_broker_assignments, nodes};
use proto::payloads::{ConfigUpdate, NodeState, Status};
use proto::signing;
use proto::topics::{NodeTopic, TopicKind, config_update_topic};

/// Concurrent retained publishes while announcing a batch of moves.
const ANNOUNCE_CONCURRENCY: usize = 64;

pub use crate::store::brokers::BrokerAddress;
pub use crate::store::node_broker_assignments::Assignment;

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
    let ids = node_broker_assignments::record_moves(pool, moves, strategy).await?;
    metrics::counter!(m::NODE_MOVES, "strategy" => strategy.to_owned()).increment(ids.len() as u64);
    node_broker_assignments::select(pool, Some(&ids)).await
}

/// Brokers a node may be sent to or fall back to: enabled, not draining,
/// not OFFLINE, by id.
pub async fn reachable_brokers(pool: &PgPool) -> Result<Vec<BrokerAddress>, sqlx::Error> {
    brokers::reachable(pool).await
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
    let rows = brokers::all(pool).await?;
    Ok(rows.into_iter().map(|b| (b.id, b.url)).collect())
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
        .filter(|a| a.move_via == MoveVia::ConfigUpdate)
        .map(|a| a.node_id)
        .collect();
    let secrets: HashMap<i64, Option<String>> = nodes::secrets(pool, &ids)
        .await?
        .into_iter()
        .map(|n| (n.id, n.secret))
        .collect();
    let connections: Vec<_> = brokers
        .all()
        .into_iter()
        .filter(|c| c.is_connected() && only.is_none_or(|o| c.broker_id() == o))
        .collect();
    let mut publishes = Vec::new();
    for a in assignments
        .iter()
        .filter(|a| a.move_via == MoveVia::ConfigUpdate)
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
    for a in assignments
        .iter()
        .filter(|a| a.move_via == MoveVia::NodeConfig)
    {
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
    let brokers = brokers::views(pool).await?;
    let nodes = nodes::views(pool, cooldown.as_secs_f64()).await?;
    Ok((brokers, nodes))
}

/// Every assignment (for announcing them all again on one broker).
pub async fn all(pool: &PgPool) -> Result<Vec<Assignment>, sqlx::Error> {
    node_broker_assignments::select(pool, None).await
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
    node_broker_assignments::confirm(pool, node_uid, broker_id, live, ts).await
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
            move_via: MoveVia::ConfigUpdate,
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
