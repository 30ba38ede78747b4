//! What a batch's node messages change: `nodes` (status, where the node is
//! observed, heartbeat figures), the `node_offline` alert and the
//! `NODE_ONLINE` / `NODE_OFFLINE` / `NODE_RESTARTING` zone events.
//!
//! Rules, applied per node in arrival order ([`plan`]):
//! - every uplink the node itself sent (telemetry, heartbeat, event, error,
//!   status) on broker B records that the node is on B
//!   (`observed_broker_id = B`, `observed_at` moves forward), and one from a
//!   node marked OFFLINE makes it ONLINE again;
//! - a status OFFLINE or RESTARTING, or the broker's last will, from a
//!   broker that is not the node's observed one changes nothing
//!   (`other_broker`): a broker restarted with old retained last wills cannot
//!   take down nodes that moved away from it;
//! - a status ONLINE from another broker whose `ts` is more than
//!   [`STALE_SLACK_SEC`] older than the node's `observed_at` is a retained
//!   replay (`stale`) and changes nothing, so it cannot pull the observation
//!   back to a broker the node left. From the node's own broker an ONLINE
//!   always counts: it moves nothing.
//! - a node with no observation yet (or on a broker missing from the
//!   `brokers` table, which cannot be recorded) is taken at its word.
//!
//! The rules are pure ([`plan`]); `common::store::nodes` reads and writes the
//! rows, for a whole batch in a statement or a few, not per message.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
pub use common::store::nodes::NodeStatus;
use common::store::nodes::{NodeState as Locked, StateUpdate};
use common::store::zone_events::ZoneEvent;
use proto::payloads::NodeState;
use serde_json::json;

/// How much older than the node's last observation (seconds) an ONLINE from
/// another broker must be to count as a retained replay. The node's `ts` is
/// whole seconds from a clock synced to ours, and `observed_at` is rewritten
/// at most every 5 s: a fresh ONLINE can look a few seconds old, a replay
/// left behind by a failover is older than that.
pub const STALE_SLACK_SEC: i64 = 10;

/// The alert type a vanished node raises.
pub const NODE_OFFLINE_ALERT: &str = "node_offline";

/// `observed_at` is written again only once it is this far behind: a node
/// sending every second costs one row update per 5 s, not one per batch.
pub const OBSERVED_RESOLUTION: chrono::TimeDelta = chrono::TimeDelta::seconds(5);

/// A status `ts` below this is a node whose clock is not set: it says
/// nothing about how old the status is.
const MIN_CLOCK_TS: i64 = 1_000_000_000;

/// A node as the message names it, resolved.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Target<'a> {
    pub node_id: i64,
    pub zone_id: Option<i64>,
    pub node_uid: &'a str,
}

/// What one message says about its node.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum What {
    /// Telemetry, heartbeat, event or error (`kind`): the node is alive there.
    Uplink(&'static str),
    /// A status the node published; `ts` by its clock, in seconds.
    Status { state: NodeState, ts: i64 },
    /// The broker's last will for the node.
    Lwt,
}

/// One message of a batch about a bound node, in arrival order.
#[derive(Debug, Clone, Copy)]
pub struct Happening<'a> {
    pub target: Target<'a>,
    /// The broker it arrived on.
    pub broker: &'a str,
    /// When it arrived.
    pub at: DateTime<Utc>,
    pub what: What,
}

/// A node's row as read under lock.
#[derive(Debug, Clone, PartialEq)]
pub struct Known {
    pub status: NodeStatus,
    pub observed_broker: Option<String>,
    pub observed_at: Option<DateTime<Utc>>,
}

/// The row status a node's own status message sets.
fn status_of(s: NodeState) -> NodeStatus {
    match s {
        NodeState::Online => NodeStatus::Online,
        NodeState::Offline => NodeStatus::Offline,
        NodeState::Restarting => NodeStatus::Restarting,
    }
}

impl Known {
    /// The locked rows of a batch, by node id.
    pub fn by_id(rows: Vec<Locked>) -> HashMap<i64, Known> {
        rows.into_iter()
            .map(|r| {
                let known = Known {
                    status: r.status,
                    observed_broker: r.observed_broker,
                    observed_at: r.observed_at,
                };
                (r.id, known)
            })
            .collect()
    }
}

/// Why a status or last will changed nothing (`node_status_ignored_total{reason}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ignored {
    /// From a broker that is not the node's observed one.
    OtherBroker,
    /// An ONLINE older than what is known of the node: a retained replay.
    Stale,
}

impl Ignored {
    /// The bounded label of `node_status_ignored_total{reason}`.
    pub fn reason(self) -> &'static str {
        match self {
            Ignored::OtherBroker => "other_broker",
            Ignored::Stale => "stale",
        }
    }
}

/// What a batch changes.
#[derive(Debug, Default)]
pub struct Plan<'a> {
    /// Rows to write, sorted by node id.
    pub rows: Vec<StateUpdate>,
    /// `NODE_ONLINE` / `NODE_OFFLINE` / `NODE_RESTARTING`, in arrival order.
    pub events: Vec<ZoneEvent>,
    /// Nodes that ended ONLINE after coming (back) online: their alert resolves.
    pub resolve: Vec<i64>,
    /// Nodes that ended OFFLINE after going offline: their alert is raised.
    pub raise: Vec<(Target<'a>, &'static str)>,
    /// Statuses and last wills that changed nothing, and why.
    pub ignored: Vec<(Happening<'a>, Ignored)>,
    /// Every node's state after the batch (for the writer's cache).
    pub after: HashMap<i64, Known>,
}

/// Applies the rules of this module to `known` rows, one happening at a time.
pub fn plan<'a>(known: &HashMap<i64, Known>, happenings: &[Happening<'a>]) -> Plan<'a> {
    struct Node<'a> {
        now: Known,
        dirty: bool,
        seen: Option<DateTime<Utc>>,
        came_online: bool,
        went_offline: Option<(Target<'a>, &'static str)>,
    }
    let mut plan = Plan::default();
    let mut nodes: HashMap<i64, Node<'a>> = HashMap::new();
    let mut order = Vec::new();
    for h in happenings {
        let id = h.target.node_id;
        let Some(before) = known.get(&id) else {
            continue; // deleted meanwhile
        };
        let node = nodes.entry(id).or_insert_with(|| {
            order.push(id);
            Node {
                now: before.clone(),
                dirty: false,
                seen: None,
                came_online: false,
                went_offline: None,
            }
        });
        let other_broker = node
            .now
            .observed_broker
            .as_deref()
            .is_some_and(|b| b != h.broker);
        let (new, source) = match h.what {
            What::Uplink(kind) => {
                let back = (node.now.status == NodeStatus::Offline).then_some(NodeStatus::Online);
                (back, kind)
            }
            What::Status {
                state: NodeState::Online,
                ts,
            } => {
                let stale = other_broker
                    && ts >= MIN_CLOCK_TS
                    && node
                        .now
                        .observed_at
                        .is_some_and(|o| ts < o.timestamp() - STALE_SLACK_SEC);
                if stale {
                    plan.ignored.push((*h, Ignored::Stale));
                    continue;
                }
                node.seen = node.seen.max(Some(h.at));
                (Some(NodeStatus::Online), "status")
            }
            What::Status { state, .. } => {
                if other_broker {
                    plan.ignored.push((*h, Ignored::OtherBroker));
                    continue;
                }
                (Some(status_of(state)), "status")
            }
            What::Lwt => {
                if other_broker {
                    plan.ignored.push((*h, Ignored::OtherBroker));
                    continue;
                }
                (Some(NodeStatus::Offline), "lwt")
            }
        };
        if h.what != What::Lwt {
            observe(&mut node.now, h, &mut node.dirty, before);
        }
        if let Some(new) = new {
            if new != node.now.status {
                plan.events.push(ZoneEvent {
                    zone_id: h.target.zone_id,
                    kind: match new {
                        NodeStatus::Online => "NODE_ONLINE",
                        NodeStatus::Offline => "NODE_OFFLINE",
                        _ => "NODE_RESTARTING",
                    }
                    .into(),
                    payload: json!({ "node_uid": h.target.node_uid, "source": source, "broker": h.broker }),
                    at: Some(h.at),
                });
                node.now.status = new;
                node.dirty = true;
            }
            match new {
                NodeStatus::Online => {
                    node.came_online = true;
                    node.went_offline = None;
                }
                NodeStatus::Offline => {
                    node.came_online = false;
                    node.went_offline = Some((h.target, source));
                }
                _ => {}
            }
        }
        if node.seen.is_some() {
            node.dirty = true;
        }
    }
    for id in order {
        let node = nodes.remove(&id).expect("every id in order has a node");
        if node.dirty {
            plan.rows.push(StateUpdate {
                node_id: id,
                status: node.now.status,
                observed_broker: node.now.observed_broker.clone(),
                observed_at: node.now.observed_at,
                seen: node.seen,
            });
        }
        match node.now.status {
            NodeStatus::Online if node.came_online => plan.resolve.push(id),
            NodeStatus::Offline => plan.raise.extend(node.went_offline),
            _ => {}
        }
        plan.after.insert(id, node.now);
    }
    plan.rows.sort_by_key(|r| r.node_id);
    plan
}

/// Records that the node is on `h.broker` since `h.at`; marks the row to be
/// written when the broker changed or `observed_at` fell
/// [`OBSERVED_RESOLUTION`] behind what was stored.
fn observe(now: &mut Known, h: &Happening<'_>, dirty: &mut bool, stored: &Known) {
    if now.observed_broker.as_deref() != Some(h.broker) {
        now.observed_broker = Some(h.broker.to_owned());
        now.observed_at = Some(h.at);
    } else {
        now.observed_at = now.observed_at.max(Some(h.at));
    }
    let moved = now.observed_broker != stored.observed_broker;
    let behind = match (stored.observed_at, now.observed_at) {
        (Some(old), Some(new)) => new - old >= OBSERVED_RESOLUTION,
        (None, Some(_)) => true,
        _ => false,
    };
    if moved || behind {
        *dirty = true;
    }
}

#[cfg(test)]
mod tests;
