//! The strategy rule: another strategy, with its predicted spread.

use std::collections::BTreeMap;

use common::placement::balance::{
    self, BrokerView, MoveVia, NODE_LOAD_ESTIMATE, NodeView, Role, Strategy,
};
use common::placement::broker_status::BrokerStatus;
use serde_json::json;

use super::{BrokerFigures, Inputs, Kind, Proposal, proposal};

/// The load spread (max − min projected load index over the usable general
/// brokers) and nodes per broker if every node were placed afresh by
/// `strategy`: each broker's own load without its nodes, plus an estimate
/// per node placed.
pub fn predicted_spread(inputs: &Inputs, strategy: Strategy) -> (f64, BTreeMap<String, usize>) {
    let views: Vec<BrokerView> = inputs
        .brokers
        .iter()
        .map(|b| BrokerView {
            id: b.id.clone(),
            role: b.role,
            status: b.status,
            enabled: b.enabled,
            draining: b.draining,
            load_index: (b.load_index - b.nodes as f64 * NODE_LOAD_ESTIMATE).max(0.0),
        })
        .collect();
    let nodes: Vec<NodeView> = inputs
        .nodes
        .iter()
        .map(|n| NodeView {
            node_id: n.id,
            critical: n.critical,
            current: None,
            cooling: false,
            via: MoveVia::ConfigUpdate,
            observed: None,
            reachable: true,
        })
        .collect();
    let mut placed: BTreeMap<String, usize> = BTreeMap::new();
    for m in balance::assign_new(strategy, &views, &nodes) {
        *placed.entry(m.to).or_default() += 1;
    }
    let loads: Vec<f64> = views
        .iter()
        .filter(|v| inputs.broker(&v.id).is_some_and(BrokerFigures::takes_moves))
        .map(|v| v.load_index + placed.get(&v.id).copied().unwrap_or(0) as f64 * NODE_LOAD_ESTIMATE)
        .collect();
    let spread = loads.iter().copied().fold(f64::MIN, f64::max)
        - loads.iter().copied().fold(f64::MAX, f64::min);
    (spread.max(0.0), placed)
}

/// Another strategy whose predicted load spread is lower than the current
/// one's by more than the threshold, or `priority` when critical nodes
/// exist, a GOOD dedicated broker waits for them and the strategy is not
/// priority.
pub fn switch_strategy(inputs: &Inputs) -> Vec<Proposal> {
    let current = inputs.strategy;
    let (now, now_placed) = predicted_spread(inputs, current);
    let dedicated_ready = inputs.brokers.iter().any(|b| {
        b.role == Role::Dedicated && b.enabled && !b.draining && b.status == BrokerStatus::Good
    });
    let critical = inputs.nodes.iter().filter(|n| n.critical).count();
    let candidate = if current != Strategy::Priority && dedicated_ready && critical > 0 {
        Some((
            Strategy::Priority,
            format!("{critical} critical nodes and a GOOD dedicated broker waiting for them"),
        ))
    } else {
        [Strategy::Dynamic, Strategy::Static, Strategy::Priority]
            .into_iter()
            .filter(|s| *s != current)
            .map(|s| (s, predicted_spread(inputs, s).0))
            .filter(|(_, spread)| now - spread > inputs.threshold)
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(s, spread)| {
                (
                    s,
                    format!("predicted load spread {spread:.3} instead of {now:.3}"),
                )
            })
    };
    let Some((to, why)) = candidate else {
        return Vec::new();
    };
    let (then, then_placed) = predicted_spread(inputs, to);
    let summary = format!(
        "Switch the strategy from {} to {}: {why}.",
        current.as_str(),
        to.as_str()
    );
    let evidence = json!({
        "from": current.as_str(), "to": to.as_str(),
        "predicted": {
            current.as_str(): { "load_spread": now, "nodes": now_placed },
            to.as_str(): { "load_spread": then, "nodes": then_placed },
        },
        "critical_nodes": critical, "threshold": inputs.threshold,
    });
    let mut p = proposal(Kind::SwitchStrategy, summary, evidence, Vec::new());
    p.strategy = Some(to.as_str().to_owned());
    vec![p]
}
