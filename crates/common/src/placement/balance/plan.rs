//! The plans: where new nodes go, where a dead broker's nodes go, and
//! which nodes a rebalance moves, under its limits.

use std::collections::{BTreeMap, BTreeSet};

use super::*;
use crate::placement::broker_status::BrokerStatus;

/// The brokers nodes may go to, split by purpose.
struct Pools<'a> {
    general: Vec<&'a BrokerView>,
    dedicated: Vec<&'a BrokerView>,
}

fn pools(brokers: &[BrokerView]) -> Pools<'_> {
    let standby_active = brokers.iter().any(|b| {
        matches!(b.role, Role::Primary | Role::Optional)
            && b.enabled
            && b.status == BrokerStatus::Offline
    });
    let mut general: Vec<&BrokerView> = brokers
        .iter()
        .filter(|b| b.usable())
        .filter(|b| match b.role {
            Role::Primary | Role::Optional => true,
            Role::Standby => standby_active,
            Role::Dedicated => false,
        })
        .collect();
    let mut dedicated: Vec<&BrokerView> = brokers
        .iter()
        .filter(|b| b.usable() && b.role == Role::Dedicated)
        .collect();
    general.sort_by(|a, b| a.id.cmp(&b.id));
    dedicated.sort_by(|a, b| a.id.cmp(&b.id));
    if general.is_empty() {
        // Better any broker than none: a standby or dedicated one takes them.
        general = brokers.iter().filter(|b| b.usable()).collect();
        general.sort_by(|a, b| a.id.cmp(&b.id));
    }
    Pools { general, dedicated }
}

/// Places nodes one by one, remembering what it gave each broker.
pub struct Planner<'a> {
    strategy: Strategy,
    pools: Pools<'a>,
    projected: BTreeMap<&'a str, f64>,
}

impl<'a> Planner<'a> {
    pub fn new(strategy: Strategy, brokers: &'a [BrokerView]) -> Self {
        let projected = brokers
            .iter()
            .map(|b| (b.id.as_str(), b.load_index.max(0.0)))
            .collect();
        Planner {
            strategy,
            pools: pools(brokers),
            projected,
        }
    }

    /// Whether `broker_id` may keep or take a node like `node`.
    pub fn fits(&self, node: &NodeView, broker_id: &str) -> bool {
        self.pool_for(node).iter().any(|b| b.id == broker_id)
    }

    fn pool_for(&self, node: &NodeView) -> &[&'a BrokerView] {
        if self.strategy == Strategy::Priority && node.critical && !self.pools.dedicated.is_empty()
        {
            &self.pools.dedicated
        } else {
            &self.pools.general
        }
    }

    /// The broker for `node` (None when no broker is usable), counted into
    /// the projection.
    pub fn place(&mut self, node: &NodeView) -> Option<String> {
        let pool = self.pool_for(node);
        let chosen: &BrokerView = match self.strategy {
            Strategy::Static => {
                let n = pool.len() as i64;
                (n > 0).then(|| pool[node.node_id.rem_euclid(n.max(1)) as usize])?
            }
            _ => pool.iter().copied().min_by(|a, b| {
                let la = self.projected[a.id.as_str()];
                let lb = self.projected[b.id.as_str()];
                la.total_cmp(&lb).then_with(|| a.id.cmp(&b.id))
            })?,
        };
        *self.projected.get_mut(chosen.id.as_str())? += NODE_LOAD_ESTIMATE;
        Some(chosen.id.clone())
    }

    /// Takes a node's load off its broker in the projection.
    fn release(&mut self, broker_id: &str, load: f64) {
        if let Some(l) = self.projected.get_mut(broker_id) {
            *l = (*l - load).max(0.0);
        }
    }
}

/// Brokers for `config_update` nodes that have none yet (any other node is
/// assigned where it is observed; see `crate::placement::observed`).
pub fn assign_new(strategy: Strategy, brokers: &[BrokerView], nodes: &[NodeView]) -> Vec<Move> {
    let mut planner = Planner::new(strategy, brokers);
    nodes
        .iter()
        .filter(|n| n.current.is_none() && n.via == MoveVia::ConfigUpdate)
        .filter_map(|n| {
            planner.place(n).map(|to| Move {
                node_id: n.node_id,
                from: None,
                to,
            })
        })
        .collect()
}

/// Every node of `dead` that has fallbacks (`config_update`) to another
/// broker (failover): no limit, no cooldown. The others stay: a firmware
/// node listens only to its dead broker (stranded until it reappears), and
/// one already seen elsewhere is followed there by `crate::placement::observed`.
pub fn evacuate(
    strategy: Strategy,
    brokers: &[BrokerView],
    nodes: &[NodeView],
    dead: &str,
) -> Vec<Move> {
    let mut planner = Planner::new(strategy, brokers);
    nodes
        .iter()
        .filter(|n| n.current.as_deref() == Some(dead) && n.via == MoveVia::ConfigUpdate)
        .filter_map(|n| {
            let to = planner.place(n)?;
            (to != dead).then(|| Move {
                node_id: n.node_id,
                from: Some(dead.to_owned()),
                to,
            })
        })
        .collect()
}

/// Limits of a rebalance.
#[derive(Debug, Clone, Copy)]
pub struct RebalanceLimits {
    /// Moves happen only while the most and least loaded usable general
    /// brokers differ by more than this (load index units).
    pub threshold: f64,
    /// At most this many moves per plan.
    pub max_moves: usize,
    /// Give a usable general broker holding less than a fair share of the
    /// nodes (a recovered one) nodes from the fullest one, up to that share,
    /// whatever the load figures say (dynamic and priority; static places by
    /// id).
    pub fill_empty: bool,
}

/// A rebalance: first the nodes that must move (their broker is no longer
/// usable for them: draining, disabled, OFFLINE, a standby no longer needed,
/// or the wrong kind for their zone under priority; for static, any node not
/// on its `node_id % n` broker), then — for dynamic and priority — nodes from
/// the most to the least loaded general broker while the spread is above the
/// threshold; with `fill_empty`, a general broker that holds (observed, else
/// assigned) less than a fair share first gets nodes of the fullest one,
/// whatever their cooldown. Otherwise nodes that moved recently stay unless
/// their broker is no longer usable for them; a node that cannot be moved
/// always stays; never more than `max_moves`.
pub fn rebalance(
    strategy: Strategy,
    brokers: &[BrokerView],
    nodes: &[NodeView],
    limits: RebalanceLimits,
) -> Vec<Move> {
    let mut planner = Planner::new(strategy, brokers);
    let mut moves = Vec::new();
    let mut moved = BTreeSet::new();
    let counts = count_by_broker(nodes);
    let per_node = |b: &str| -> f64 {
        let load = brokers
            .iter()
            .find(|x| x.id == b)
            .map_or(0.0, |x| x.load_index);
        let n = counts.get(b).copied().unwrap_or(0).max(1) as f64;
        (load / n).max(NODE_LOAD_ESTIMATE)
    };
    // Nodes that must move: whatever their cooldown when their broker is no
    // longer theirs to use; off their static place only once cooled down.
    for node in nodes {
        let Some(current) = node.current.as_deref() else {
            continue;
        };
        if moves.len() >= limits.max_moves {
            return moves;
        }
        if !node.movable() {
            continue;
        }
        let unusable = !planner.fits(node, current);
        let off_static = strategy == Strategy::Static
            && !node.cooling
            && Planner::new(strategy, brokers)
                .place(node)
                .is_some_and(|b| b != current);
        if !(unusable || off_static) {
            continue;
        }
        planner.release(current, per_node(current));
        if let Some(to) = planner.place(node).filter(|to| to != current) {
            moved.insert(node.node_id);
            moves.push(Move {
                node_id: node.node_id,
                from: Some(current.to_owned()),
                to,
            });
        }
    }
    if strategy == Strategy::Static {
        return moves;
    }
    let general: Vec<String> = planner.pools.general.iter().map(|b| b.id.clone()).collect();
    if limits.fill_empty {
        fill_empty(
            &mut planner,
            &general,
            nodes,
            limits.max_moves,
            &per_node,
            &mut moved,
            &mut moves,
        );
    }
    // Spread the load of the general brokers.
    while moves.len() < limits.max_moves {
        let load = |id: &String| planner.projected[id.as_str()];
        let (Some(max), Some(min)) = (
            general.iter().max_by(|a, b| load(a).total_cmp(&load(b))),
            general.iter().min_by(|a, b| load(a).total_cmp(&load(b))),
        ) else {
            break;
        };
        let unit = per_node(max);
        // Stop when one more move would not narrow the spread.
        if load(max) - load(min) <= limits.threshold.max(unit) {
            break;
        }
        let Some(node) = nodes.iter().find(|n| {
            n.current.as_deref() == Some(max.as_str())
                && n.movable()
                && !n.cooling
                && !moved.contains(&n.node_id)
                && planner.fits(n, min)
        }) else {
            break;
        };
        let (max, min) = (max.clone(), min.clone());
        planner.release(&max, unit);
        *planner
            .projected
            .get_mut(min.as_str())
            .expect("general broker") += unit;
        moved.insert(node.node_id);
        moves.push(Move {
            node_id: node.node_id,
            from: Some(max),
            to: min,
        });
    }
    moves
}

/// Gives each general broker that holds less than a fair share of the nodes
/// (their number over the general brokers', at least one; counted where
/// nodes really are) nodes of the fullest one until it holds that much,
/// while the fullest keeps more than the receiver will have, moved recently
/// or not. Bounded by `max_moves`, so a recovered broker is refilled over
/// several rounds; beyond the share the load spread decides.
fn fill_empty(
    planner: &mut Planner<'_>,
    general: &[String],
    nodes: &[NodeView],
    max_moves: usize,
    per_node: &dyn Fn(&str) -> f64,
    moved: &mut BTreeSet<i64>,
    moves: &mut Vec<Move>,
) {
    let mut held: BTreeMap<&str, usize> = general.iter().map(|b| (b.as_str(), 0)).collect();
    for n in nodes {
        if let Some(b) = n.placed().and_then(|b| held.get_mut(b)) {
            *b += 1;
        }
    }
    let total: usize = held.values().sum();
    let share = (total / general.len().max(1)).max(1);
    let empty: Vec<&str> = held
        .iter()
        .filter(|(_, n)| **n < share)
        .map(|(b, _)| *b)
        .collect();
    for to in empty {
        while held[to] < share && moves.len() < max_moves {
            let Some((&from, &count)) = held
                .iter()
                .max_by_key(|(b, n)| (**n, std::cmp::Reverse(**b)))
            else {
                return;
            };
            if count <= held[to] + 1 {
                break;
            }
            // The move cooldown does not hold here: a broker under its share
            // (empty after its recovery, or left out by the first placement)
            // is refilled now, and the fill cannot swing back — it takes only
            // from the fullest broker, stops at the share, and the spread
            // step below keeps the cooldown.
            let Some(node) = nodes.iter().find(|n| {
                n.placed() == Some(from)
                    && n.current.as_deref() == Some(from)
                    && n.movable()
                    && !moved.contains(&n.node_id)
                    && planner.fits(n, to)
            }) else {
                break;
            };
            let unit = per_node(from);
            planner.release(from, unit);
            if let Some(l) = planner.projected.get_mut(to) {
                *l += unit;
            }
            *held.get_mut(from).expect("general broker") -= 1;
            *held.get_mut(to).expect("general broker") += 1;
            moved.insert(node.node_id);
            moves.push(Move {
                node_id: node.node_id,
                from: Some(from.to_owned()),
                to: to.to_owned(),
            });
        }
    }
}

fn count_by_broker(nodes: &[NodeView]) -> BTreeMap<&str, usize> {
    let mut counts = BTreeMap::new();
    for n in nodes {
        if let Some(b) = n.current.as_deref() {
            *counts.entry(b).or_default() += 1;
        }
    }
    counts
}
