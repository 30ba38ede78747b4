//! The zone rules: a critical zone's own broker, quiet zones together.

use std::collections::{BTreeMap, BTreeSet};

use common::placement::balance::Role;
use common::placement::broker_status::BrokerStatus;
use serde_json::json;

use super::{
    BrokerFigures, Inputs, Kind, NodeFacts, Proposal, ProposedMove, QUIET_UPLINKS_PER_MIN, list,
    proposal,
};

/// A critical zone whose nodes share brokers with other nodes while those
/// brokers had failovers or are not GOOD: its nodes go to a GOOD dedicated
/// broker if there is one; otherwise the suggestion says to add one.
pub fn dedicate_broker(inputs: &Inputs) -> Vec<Proposal> {
    let dedicated = inputs.brokers.iter().find(|b| {
        b.role == Role::Dedicated && b.enabled && !b.draining && b.status == BrokerStatus::Good
    });
    let zones: BTreeSet<&str> = inputs
        .nodes
        .iter()
        .filter(|n| n.critical)
        .filter_map(|n| n.zone.as_deref())
        .collect();
    let mut out = Vec::new();
    for zone in zones {
        let members: Vec<&NodeFacts> = inputs
            .nodes
            .iter()
            .filter(|n| n.zone.as_deref() == Some(zone))
            .collect();
        let on: BTreeSet<&str> = members.iter().filter_map(|n| n.broker.as_deref()).collect();
        let shared: Vec<&BrokerFigures> = on
            .iter()
            .filter_map(|id| inputs.broker(id))
            .filter(|b| b.role != Role::Dedicated)
            .collect();
        let failovers: i64 = shared.iter().map(|b| b.failovers).sum();
        let unhealthy: Vec<&str> = shared
            .iter()
            .filter(|b| b.status != BrokerStatus::Good)
            .map(|b| b.id.as_str())
            .collect();
        if shared.is_empty() || (failovers == 0 && unhealthy.is_empty()) {
            continue;
        }
        let others = inputs
            .nodes
            .iter()
            .filter(|n| {
                n.zone.as_deref() != Some(zone)
                    && n.broker.as_deref().is_some_and(|b| on.contains(b))
            })
            .count();
        let names: Vec<&str> = shared.iter().map(|b| b.id.as_str()).collect();
        let (moves, action) = match dedicated {
            Some(d) => {
                let moves: Vec<ProposedMove> = members
                    .iter()
                    .filter(|n| {
                        n.movable
                            && n.broker.as_deref() != Some(d.id.as_str())
                            && n.broker.is_some()
                    })
                    .take(inputs.max_moves)
                    .map(|n| ProposedMove {
                        node_uid: n.uid.clone(),
                        from: n.broker.clone(),
                        to: d.id.clone(),
                    })
                    .collect();
                let action = format!(
                    "move {} of them to the dedicated broker {}",
                    moves.len(),
                    d.id
                );
                (moves, action)
            }
            None => (
                Vec::new(),
                "add a broker with role dedicated and use the priority strategy".to_owned(),
            ),
        };
        let summary = format!(
            "Critical zone {zone} has {} nodes on {} together with {others} other nodes; those brokers had {failovers} failovers in 24 h{}: {action}.",
            members.len(),
            list(&names),
            if unhealthy.is_empty() {
                String::new()
            } else {
                format!(" and {} not GOOD", list(&unhealthy))
            },
        );
        let evidence = json!({
            "zone": zone, "zone_nodes": members.len(), "brokers": names, "other_nodes": others,
            "failovers_24h": failovers, "not_good": unhealthy, "dedicated_broker": dedicated.map(|d| &d.id),
        });
        let mut p = proposal(Kind::DedicateBroker, summary, evidence, moves);
        p.key = zone.to_owned();
        out.push(p);
    }
    out
}

/// Two or more quiet zones (normal priority, every node under
/// [`QUIET_UPLINKS_PER_MIN`]) whose nodes are spread over several brokers:
/// they go to the GOOD general broker that holds most of them.
pub fn merge_quiet_zones(inputs: &Inputs) -> Vec<Proposal> {
    let mut zones: BTreeMap<&str, Vec<&NodeFacts>> = BTreeMap::new();
    for n in &inputs.nodes {
        if let Some(z) = n.zone.as_deref() {
            zones.entry(z).or_default().push(n);
        }
    }
    zones.retain(|_, nodes| {
        nodes
            .iter()
            .all(|n| !n.critical && n.uplinks_per_min < QUIET_UPLINKS_PER_MIN)
    });
    let quiet: Vec<&NodeFacts> = zones.values().flatten().copied().collect();
    let mut held: BTreeMap<&str, usize> = BTreeMap::new();
    for b in quiet.iter().filter_map(|n| n.broker.as_deref()) {
        *held.entry(b).or_default() += 1;
    }
    if zones.len() < 2 || held.len() < 2 {
        return Vec::new();
    }
    let Some((target, _)) = held
        .iter()
        .filter(|(b, _)| inputs.broker(b).is_some_and(BrokerFigures::takes_moves))
        .max_by_key(|(b, n)| (**n, std::cmp::Reverse(**b)))
    else {
        return Vec::new();
    };
    let moves: Vec<ProposedMove> = quiet
        .iter()
        .filter(|n| {
            n.movable && !n.cooling && n.broker.is_some() && n.broker.as_deref() != Some(*target)
        })
        .take(inputs.max_moves)
        .map(|n| ProposedMove {
            node_uid: n.uid.clone(),
            from: n.broker.clone(),
            to: (*target).to_owned(),
        })
        .collect();
    if moves.is_empty() {
        return Vec::new();
    }
    let rate: f64 = quiet.iter().map(|n| n.uplinks_per_min).sum();
    let names: Vec<&str> = zones.keys().copied().collect();
    let summary = format!(
        "Quiet zones {} ({} nodes, {rate:.2} uplinks/min together) are spread over {} brokers: move {} of their nodes to {target}, which holds {} of them.",
        list(&names),
        quiet.len(),
        held.len(),
        moves.len(),
        held[*target],
    );
    let evidence = json!({ "zones": names, "nodes": quiet.len(), "uplinks_per_min": rate, "by_broker": held, "target": target });
    let mut p = proposal(Kind::MergeQuietZones, summary, evidence, moves);
    p.key = list(&names);
    vec![p]
}
