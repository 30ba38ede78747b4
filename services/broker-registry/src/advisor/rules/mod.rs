//! The built-in rules: pure functions of an [`Inputs`] snapshot, one per
//! kind of the seed's section 13, each stating its numbers. Moves never
//! exceed the rate limit (`max_moves`): what is left waits for the next
//! round, and the evidence says how much.

use std::collections::{BTreeMap, BTreeSet};

use common::placement::balance::NODE_LOAD_ESTIMATE;
use common::placement::broker_status::BrokerStatus;
use common::store::advisor_suggestions::SuggestionSource;
use serde_json::{Value, json};

mod strategy;
mod zones;

pub use strategy::*;
pub use zones::*;

use super::{BrokerFigures, Inputs, Kind, NodeFacts, Proposal, ProposedMove};

/// A signal weaker than this (dBm) is poor.
pub const POOR_RSSI: i16 = -85;
/// Commands per hour from which a node's rate may be odd...
pub const BUSY_COMMANDS_PER_HOUR: f64 = 60.0;
/// ...when it is also this many times the median of the nodes.
pub const ODD_COMMAND_FACTOR: f64 = 5.0;
/// A zone whose nodes send fewer uplinks a minute than this (each) is quiet.
pub const QUIET_UPLINKS_PER_MIN: f64 = 0.2;
/// The most nodes one `inspect_nodes` names.
pub const MAX_INSPECTED: usize = 20;

/// Every rule's suggestions.
pub fn all(inputs: &Inputs) -> Vec<Proposal> {
    let mut out = Vec::new();
    out.extend(restore_spread(inputs));
    out.extend(offload_broker(inputs));
    out.extend(dedicate_broker(inputs));
    out.extend(merge_quiet_zones(inputs));
    out.extend(switch_strategy(inputs));
    out.extend(inspect_nodes(inputs));
    out
}

pub(super) fn proposal(
    kind: Kind,
    summary: String,
    evidence: Value,
    moves: Vec<ProposedMove>,
) -> Proposal {
    Proposal {
        kind: kind.as_str().to_owned(),
        source: SuggestionSource::Rules,
        summary,
        evidence,
        moves,
        strategy: None,
        key: String::new(),
    }
}

/// Nodes per broker (assigned), for the evidence.
fn counts(inputs: &Inputs) -> BTreeMap<&str, usize> {
    inputs
        .brokers
        .iter()
        .map(|b| (b.id.as_str(), b.nodes))
        .collect()
}

pub(super) fn list(names: &[&str]) -> String {
    names.join(", ")
}

/// Nodes a rule may move off `broker`: assigned there, movable, not cooling
/// unless `any_cooling`.
fn movable_on<'a>(
    inputs: &'a Inputs,
    broker: &str,
    any_cooling: bool,
) -> impl Iterator<Item = &'a NodeFacts> {
    let broker = broker.to_owned();
    inputs.nodes.iter().filter(move |n| {
        n.broker.as_deref() == Some(broker.as_str()) && n.movable && (any_cooling || !n.cooling)
    })
}

/// A broker that came back (OFFLINE → up, or a failover, within the
/// recovery window), GOOD, holding under three quarters of its fair share
/// of the nodes of the general brokers and at least two nodes short: nodes of the fullest brokers go back to it, at
/// most the rate limit now (the move cooldown does not hold: a failover
/// moved them).
pub fn restore_spread(inputs: &Inputs) -> Vec<Proposal> {
    let general: Vec<&BrokerFigures> = inputs.brokers.iter().filter(|b| b.takes_moves()).collect();
    let total: usize = general.iter().map(|b| b.nodes).sum();
    let share = total / general.len().max(1);
    let mut out = Vec::new();
    for r in general.iter().filter(|b| b.recovered_at.is_some()) {
        if share < r.nodes + 2 || r.nodes * 4 >= share * 3 {
            continue;
        }
        let mut held: BTreeMap<&str, usize> =
            general.iter().map(|b| (b.id.as_str(), b.nodes)).collect();
        let mut taken: BTreeSet<i64> = BTreeSet::new();
        let mut moves = Vec::new();
        while held[r.id.as_str()] < share && moves.len() < inputs.max_moves {
            let Some((&from, &count)) = held
                .iter()
                .filter(|(b, _)| **b != r.id)
                .max_by_key(|(b, n)| (**n, std::cmp::Reverse(**b)))
            else {
                break;
            };
            if count <= held[r.id.as_str()] + 1 {
                break;
            }
            let Some(node) = movable_on(inputs, from, true).find(|n| !taken.contains(&n.id)) else {
                held.remove(from);
                continue;
            };
            taken.insert(node.id);
            *held.get_mut(from).expect("held") -= 1;
            *held.get_mut(r.id.as_str()).expect("held") += 1;
            moves.push(ProposedMove {
                node_uid: node.uid.clone(),
                from: Some(from.to_owned()),
                to: r.id.clone(),
            });
        }
        if moves.is_empty() {
            continue;
        }
        let others: Vec<String> = general
            .iter()
            .filter(|b| b.id != r.id)
            .map(|b| format!("{} {}", b.id, b.nodes))
            .collect();
        let remaining = share.saturating_sub(r.nodes + moves.len());
        let summary = format!(
            "{} is back and GOOD with {} nodes while the others carry {} (fair share {share}): move {} nodes to it now, {remaining} more in later rounds.",
            r.id,
            r.nodes,
            others.join(", "),
            moves.len()
        );
        let evidence = json!({
            "broker": r.id, "recovered_at": r.recovered_at, "nodes": counts(inputs),
            "fair_share": share, "moves_now": moves.len(), "remaining": remaining,
            "rate_limit": inputs.max_moves,
        });
        let mut p = proposal(Kind::RestoreSpread, summary, evidence, moves);
        p.key = r.id.clone();
        out.push(p);
    }
    out
}

/// A usable broker that is DEGRADED or CRITICAL, or whose load index is
/// above the least loaded GOOD general broker's by more than the rebalance
/// threshold: about half its excess goes to the least loaded GOOD brokers.
pub fn offload_broker(inputs: &Inputs) -> Vec<Proposal> {
    let mut targets: Vec<&BrokerFigures> =
        inputs.brokers.iter().filter(|b| b.takes_moves()).collect();
    targets.sort_by(|a, b| {
        a.load_index
            .total_cmp(&b.load_index)
            .then_with(|| a.id.cmp(&b.id))
    });
    let mut out = Vec::new();
    for b in &inputs.brokers {
        if !b.enabled || b.nodes == 0 || b.status == BrokerStatus::Offline {
            continue;
        }
        let to: Vec<&&BrokerFigures> = targets.iter().filter(|t| t.id != b.id).collect();
        let Some(least) = to.first() else { continue };
        let unhealthy = matches!(b.status, BrokerStatus::Degraded | BrokerStatus::Critical);
        let excess = b.load_index - least.load_index;
        if !unhealthy && excess <= inputs.threshold {
            continue;
        }
        let per_node = (b.load_index / b.nodes as f64).max(NODE_LOAD_ESTIMATE);
        let wanted = if unhealthy {
            b.nodes.div_ceil(2)
        } else {
            ((excess / 2.0 / per_node).ceil() as usize).max(1)
        };
        let moves: Vec<ProposedMove> = movable_on(inputs, &b.id, false)
            .take(wanted.min(inputs.max_moves))
            .zip(to.iter().cycle())
            .map(|(n, t)| ProposedMove {
                node_uid: n.uid.clone(),
                from: Some(b.id.clone()),
                to: t.id.clone(),
            })
            .collect();
        if moves.is_empty() {
            continue;
        }
        let summary = format!(
            "{} is {} with load index {:.3} ({} nodes, {:.1} msg/s, latency {}) against {:.3} on {}: move {} of its nodes to {}.",
            b.id,
            b.status.as_str(),
            b.load_index,
            b.nodes,
            b.msgs_per_sec,
            b.avg_latency_ms
                .or(b.latency_ms)
                .map_or("unknown".into(), |l| format!("{l:.0} ms")),
            least.load_index,
            least.id,
            moves.len(),
            list(
                &to.iter()
                    .take(moves.len())
                    .map(|t| t.id.as_str())
                    .collect::<Vec<_>>()
            ),
        );
        let evidence = json!({
            "broker": b.id, "status": b.status.as_str(), "load_index": b.load_index,
            "msgs_per_sec": b.msgs_per_sec, "avg_latency_ms": b.avg_latency_ms, "nodes": b.nodes,
            "targets": to.iter().map(|t| json!({"broker": t.id, "load_index": t.load_index, "nodes": t.nodes})).collect::<Vec<_>>(),
            "threshold": inputs.threshold, "wanted": wanted, "rate_limit": inputs.max_moves,
        });
        let mut p = proposal(Kind::OffloadBroker, summary, evidence, moves);
        p.key = b.id.clone();
        out.push(p);
    }
    out
}

/// Nodes with a signal under [`POOR_RSSI`], or sent at least
/// [`BUSY_COMMANDS_PER_HOUR`] commands an hour and [`ODD_COMMAND_FACTOR`]
/// times the median: one suggestion naming them (at most [`MAX_INSPECTED`]).
pub fn inspect_nodes(inputs: &Inputs) -> Vec<Proposal> {
    let mut rates: Vec<f64> = inputs.nodes.iter().map(|n| n.commands_per_hour).collect();
    rates.sort_by(f64::total_cmp);
    let median = rates.get(rates.len() / 2).copied().unwrap_or(0.0);
    let odd = |n: &NodeFacts| {
        n.commands_per_hour >= BUSY_COMMANDS_PER_HOUR
            && n.commands_per_hour >= ODD_COMMAND_FACTOR * median
    };
    let poor = |n: &NodeFacts| n.rssi.is_some_and(|r| r < POOR_RSSI);
    let flagged: Vec<&NodeFacts> = inputs
        .nodes
        .iter()
        .filter(|n| poor(n) || odd(n))
        .take(MAX_INSPECTED)
        .collect();
    if flagged.is_empty() {
        return Vec::new();
    }
    let described: Vec<String> = flagged
        .iter()
        .map(|n| match (poor(n), odd(n)) {
            (true, true) => format!(
                "{} (RSSI {} dBm, {:.0} commands/h)",
                n.uid,
                n.rssi.unwrap_or(0),
                n.commands_per_hour
            ),
            (true, false) => format!("{} (RSSI {} dBm)", n.uid, n.rssi.unwrap_or(0)),
            _ => format!("{} ({:.0} commands/h)", n.uid, n.commands_per_hour),
        })
        .collect();
    let summary = format!(
        "Look at {} nodes with a signal under {POOR_RSSI} dBm or command rates far above the median of {median:.1}/h: {}.",
        flagged.len(),
        described.join(", ")
    );
    let evidence = json!({
        "nodes": flagged.iter().map(|n| json!({"node_uid": n.uid, "rssi": n.rssi, "commands_per_hour": n.commands_per_hour, "broker": n.broker})).collect::<Vec<_>>(),
        "median_commands_per_hour": median, "poor_rssi_dbm": POOR_RSSI,
    });
    let mut p = proposal(Kind::InspectNodes, summary, evidence, Vec::new());
    p.key = flagged
        .iter()
        .map(|n| n.uid.as_str())
        .collect::<Vec<_>>()
        .join(",");
    vec![p]
}
