//! Where nodes go: the three strategies of the contract (section 7) as pure
//! functions over a snapshot of the brokers and nodes, so broker-registry
//! (new nodes, rebalancing) and failover (moving a dead broker's nodes) place
//! nodes by the same rules, and every rule is unit-tested.
//!
//! - **static**: `node_id % n` over the usable general brokers, sorted by id;
//! - **dynamic**: the usable general broker with the least projected load
//!   (its load index plus an estimate for each node this plan already gave it);
//! - **priority**: nodes of `critical` zones on `dedicated` brokers (least
//!   projected load among them), every other node dynamic.
//!
//! Only a node that can be moved is ever planned a move ([`NodeView::movable`]:
//! a `config_update` node always, a `node_config` node while it is observed
//! on a live broker, through which its NodeConfig goes; a `none` node never),
//! and an empty broker is seen from where nodes really are (observed), not
//! only from the assignments.
//!
//! Usable: enabled, not draining, not OFFLINE. General brokers have the role
//! `primary` or `optional`; a `standby` broker joins them only while a general
//! broker is OFFLINE (hot standby). When no general broker is usable, any
//! usable broker takes the node rather than none.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::placement::broker_status::BrokerStatus;

/// How nodes are placed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Strategy {
    Static,
    Dynamic,
    Priority,
}

impl Strategy {
    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::Static => "static",
            Strategy::Dynamic => "dynamic",
            Strategy::Priority => "priority",
        }
    }
}

impl std::str::FromStr for Strategy {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "static" => Ok(Strategy::Static),
            "dynamic" => Ok(Strategy::Dynamic),
            "priority" => Ok(Strategy::Priority),
            other => Err(format!(
                "`{other}` is not a strategy: use static, dynamic or priority"
            )),
        }
    }
}

/// `brokers.role`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Primary,
    Standby,
    Optional,
    Dedicated,
}

impl std::str::FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "primary" => Ok(Role::Primary),
            "standby" => Ok(Role::Standby),
            "optional" => Ok(Role::Optional),
            "dedicated" => Ok(Role::Dedicated),
            other => Err(format!(
                "`{other}` is not a role: use primary, standby, optional or dedicated"
            )),
        }
    }
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Primary => "primary",
            Role::Standby => "standby",
            Role::Optional => "optional",
            Role::Dedicated => "dedicated",
        }
    }
}

/// A broker as the planner sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct BrokerView {
    pub id: String,
    pub role: Role,
    pub status: BrokerStatus,
    pub enabled: bool,
    pub draining: bool,
    pub load_index: f64,
}

impl BrokerView {
    fn usable(&self) -> bool {
        self.enabled && !self.draining && self.status.takes_nodes()
    }
}

/// How a node can be moved (`nodes.move_via`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MoveVia {
    /// A retained `config/update` with fallbacks (node-sim's classic nodes).
    ConfigUpdate,
    /// A NodeConfig push naming the new broker (the firmware).
    NodeConfig,
    /// Not at all.
    None,
}

impl std::str::FromStr for MoveVia {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "config_update" => Ok(MoveVia::ConfigUpdate),
            "node_config" => Ok(MoveVia::NodeConfig),
            "none" => Ok(MoveVia::None),
            other => Err(format!(
                "`{other}` is not a move means: use config_update, node_config or none"
            )),
        }
    }
}

/// A node as the planner sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeView {
    pub node_id: i64,
    /// In a zone with priority `critical`.
    pub critical: bool,
    /// Its broker now, if it has an assignment.
    pub current: Option<String>,
    /// Moved recently: a rebalance leaves it where it is (no flapping).
    pub cooling: bool,
    /// How it can be moved.
    pub via: MoveVia,
    /// The broker it is observed on, if any.
    pub observed: Option<String>,
    /// Observed on a broker that is up (a NodeConfig can reach it there).
    pub reachable: bool,
}

impl NodeView {
    /// Whether a move can reach this node (see the module doc).
    pub fn movable(&self) -> bool {
        match self.via {
            MoveVia::ConfigUpdate => true,
            MoveVia::NodeConfig => self.reachable,
            MoveVia::None => false,
        }
    }

    /// Where it really is: observed, else assigned.
    fn placed(&self) -> Option<&str> {
        self.observed.as_deref().or(self.current.as_deref())
    }
}

/// One node to a broker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Move {
    pub node_id: i64,
    pub from: Option<String>,
    pub to: String,
}

/// The load index one node adds to a broker: one connection and about 1.6
/// messages a second under broker-registry's load index formula (its
/// `load_index` module checks the two agree). Only spreads the nodes of one
/// plan; the measured figures replace it at the next health sample.
pub const NODE_LOAD_ESTIMATE: f64 = 0.0006;

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

#[cfg(test)]
mod tests {
    use super::*;

    fn broker(id: &str, role: Role, load: f64) -> BrokerView {
        BrokerView {
            id: id.into(),
            role,
            status: BrokerStatus::Good,
            enabled: true,
            draining: false,
            load_index: load,
        }
    }

    fn three() -> Vec<BrokerView> {
        vec![
            broker("mqtt1", Role::Primary, 0.1),
            broker("mqtt2", Role::Primary, 0.1),
            broker("mqtt3", Role::Primary, 0.1),
        ]
    }

    fn node(id: i64, current: Option<&str>) -> NodeView {
        NodeView {
            node_id: id,
            critical: false,
            current: current.map(Into::into),
            cooling: false,
            via: MoveVia::ConfigUpdate,
            observed: None,
            reachable: true,
        }
    }

    fn targets(moves: &[Move]) -> Vec<(i64, &str)> {
        moves.iter().map(|m| (m.node_id, m.to.as_str())).collect()
    }

    #[test]
    fn static_is_node_id_modulo_usable_brokers() {
        let nodes: Vec<_> = (1..=6).map(|i| node(i, None)).collect();
        let moves = assign_new(Strategy::Static, &three(), &nodes);
        assert_eq!(
            targets(&moves),
            [
                (1, "mqtt2"),
                (2, "mqtt3"),
                (3, "mqtt1"),
                (4, "mqtt2"),
                (5, "mqtt3"),
                (6, "mqtt1")
            ]
        );
        // An OFFLINE broker is not counted.
        let mut brokers = three();
        brokers[1].status = BrokerStatus::Offline;
        let moves = assign_new(Strategy::Static, &brokers, &nodes);
        assert_eq!(
            targets(&moves),
            [
                (1, "mqtt3"),
                (2, "mqtt1"),
                (3, "mqtt3"),
                (4, "mqtt1"),
                (5, "mqtt3"),
                (6, "mqtt1")
            ]
        );
    }

    #[test]
    fn dynamic_fills_the_least_loaded_first() {
        let brokers = vec![
            broker("a", Role::Primary, 0.30),
            broker("b", Role::Primary, 0.10),
            broker("c", Role::Optional, 0.1005),
        ];
        let nodes: Vec<_> = (1..=4).map(|i| node(i, None)).collect();
        let moves = assign_new(Strategy::Dynamic, &brokers, &nodes);
        // b (0.1000) then c (0.1005) then b, c: each placement adds its estimate.
        let to: Vec<&str> = moves.iter().map(|m| m.to.as_str()).collect();
        assert!(!to.contains(&"a"), "{to:?}");
        assert_eq!(to.iter().filter(|t| **t == "b").count(), 2);
        assert_eq!(to.iter().filter(|t| **t == "c").count(), 2);
    }

    #[test]
    fn priority_puts_critical_zones_on_dedicated_brokers() {
        let mut brokers = three();
        brokers.push(broker("ded", Role::Dedicated, 0.9));
        let mut nodes: Vec<_> = (1..=4).map(|i| node(i, None)).collect();
        nodes[0].critical = true;
        nodes[2].critical = true;
        let moves = assign_new(Strategy::Priority, &brokers, &nodes);
        for m in &moves {
            let critical = m.node_id == 1 || m.node_id == 3;
            assert_eq!(m.to == "ded", critical, "{m:?}");
        }
        // Without a usable dedicated broker, critical nodes go with the rest.
        brokers[3].status = BrokerStatus::Offline;
        let moves = assign_new(Strategy::Priority, &brokers, &nodes);
        assert!(moves.iter().all(|m| m.to != "ded"));
        assert_eq!(moves.len(), 4);
    }

    #[test]
    fn standby_takes_nodes_only_while_a_general_broker_is_offline() {
        let mut brokers = vec![
            broker("p1", Role::Primary, 0.5),
            broker("p2", Role::Primary, 0.5),
            broker("sb", Role::Standby, 0.0),
        ];
        let nodes: Vec<_> = (1..=3).map(|i| node(i, None)).collect();
        let moves = assign_new(Strategy::Dynamic, &brokers, &nodes);
        assert!(moves.iter().all(|m| m.to != "sb"), "{moves:?}");
        brokers[0].status = BrokerStatus::Offline;
        let on_p1: Vec<_> = (1..=3).map(|i| node(i, Some("p1"))).collect();
        let moves = evacuate(Strategy::Dynamic, &brokers, &on_p1, "p1");
        assert_eq!(moves.len(), 3);
        assert!(moves.iter().any(|m| m.to == "sb"), "{moves:?}");
        assert!(moves.iter().all(|m| m.to != "p1"));
    }

    #[test]
    fn evacuate_moves_every_node_of_the_dead_broker_and_no_other() {
        let mut brokers = three();
        brokers[0].status = BrokerStatus::Offline;
        let nodes = vec![
            node(1, Some("mqtt1")),
            node(2, Some("mqtt2")),
            node(3, Some("mqtt1")),
        ];
        for strategy in [Strategy::Static, Strategy::Dynamic, Strategy::Priority] {
            let moves = evacuate(strategy, &brokers, &nodes, "mqtt1");
            assert_eq!(moves.iter().map(|m| m.node_id).collect::<Vec<_>>(), [1, 3]);
            assert!(moves.iter().all(|m| m.to != "mqtt1"));
        }
        // Nothing usable: nobody moves anywhere.
        for b in &mut brokers {
            b.status = BrokerStatus::Offline;
        }
        assert!(evacuate(Strategy::Dynamic, &brokers, &nodes, "mqtt1").is_empty());
    }

    #[test]
    fn rebalance_respects_threshold_limit_and_cooldown() {
        let brokers = vec![
            broker("a", Role::Primary, 0.40),
            broker("b", Role::Primary, 0.10),
        ];
        let mut nodes: Vec<_> = (1..=40).map(|i| node(i, Some("a"))).collect();
        nodes.extend((41..=50).map(|i| node(i, Some("b"))));
        let limits = RebalanceLimits {
            threshold: 0.05,
            max_moves: 100,
            fill_empty: false,
        };
        let moves = rebalance(Strategy::Dynamic, &brokers, &nodes, limits);
        assert!(!moves.is_empty());
        assert!(
            moves
                .iter()
                .all(|m| m.from.as_deref() == Some("a") && m.to == "b")
        );
        // a: 0.01 per node. Stops once the spread is within the threshold.
        let n = moves.len() as f64;
        let spread = (0.40 - 0.01 * n) - (0.10 + 0.01 * n);
        assert!(
            spread <= 0.05 + 1e-9 && spread > 0.05 - 0.02 - 1e-9,
            "{n} moves, spread {spread}"
        );
        // Below the threshold nothing moves: no flapping on noise.
        let calm = vec![
            broker("a", Role::Primary, 0.12),
            broker("b", Role::Primary, 0.10),
        ];
        assert!(rebalance(Strategy::Dynamic, &calm, &nodes, limits).is_empty());
        // The rate limit.
        let few = RebalanceLimits {
            max_moves: 3,
            ..limits
        };
        assert_eq!(rebalance(Strategy::Dynamic, &brokers, &nodes, few).len(), 3);
        // Nodes that moved recently stay...
        for n in &mut nodes {
            n.cooling = true;
        }
        assert!(rebalance(Strategy::Dynamic, &brokers, &nodes, limits).is_empty());
        // ...unless their broker is being drained.
        let mut draining = brokers.clone();
        draining[0].draining = true;
        let moves = rebalance(Strategy::Dynamic, &draining, &nodes, limits);
        assert_eq!(moves.len(), 40);
        assert!(moves.iter().all(|m| m.to == "b"));
    }

    #[test]
    fn rebalance_drains_and_returns_static_placement() {
        let mut brokers = three();
        brokers[1].draining = true;
        let nodes = vec![node(1, Some("mqtt2")), node(2, Some("mqtt3"))];
        let limits = RebalanceLimits {
            threshold: 1.0,
            max_moves: 10,
            fill_empty: false,
        };
        let moves = rebalance(Strategy::Dynamic, &brokers, &nodes, limits);
        assert_eq!(moves.len(), 1);
        assert_eq!(moves[0].node_id, 1);
        assert_ne!(moves[0].to, "mqtt2");
        // Static: a node off its node_id % n broker goes back (after a recovery).
        let nodes = vec![node(1, Some("mqtt1")), node(2, Some("mqtt3"))];
        let moves = rebalance(Strategy::Static, &three(), &nodes, limits);
        assert_eq!(targets(&moves), [(1, "mqtt2")]);
    }

    #[test]
    fn only_nodes_a_move_can_reach_are_planned_moves() {
        let mut brokers = three();
        brokers[0].status = BrokerStatus::Offline;
        let mut nodes = vec![
            node(1, Some("mqtt1")),
            node(2, Some("mqtt1")),
            node(3, Some("mqtt1")),
            node(4, None),
        ];
        // 2: firmware, observed on the dead broker (unreachable); 3: cannot move.
        nodes[1].via = MoveVia::NodeConfig;
        nodes[1].observed = Some("mqtt1".into());
        nodes[1].reachable = false;
        nodes[2].via = MoveVia::None;
        nodes[3].via = MoveVia::NodeConfig;
        let moves = evacuate(Strategy::Dynamic, &brokers, &nodes, "mqtt1");
        assert_eq!(moves.iter().map(|m| m.node_id).collect::<Vec<_>>(), [1]);
        // A firmware node is never placed by strategy: it is assigned where seen.
        assert!(assign_new(Strategy::Static, &three(), &nodes).is_empty());
        let limits = RebalanceLimits {
            threshold: 0.01,
            max_moves: 10,
            fill_empty: true,
        };
        let moves = rebalance(Strategy::Dynamic, &brokers, &nodes, limits);
        assert!(moves.iter().all(|m| m.node_id == 1), "{moves:?}");
        // Reachable where it is observed, a firmware node may be moved.
        nodes[1].reachable = true;
        let moves = rebalance(Strategy::Dynamic, &brokers, &nodes, limits);
        assert!(moves.iter().any(|m| m.node_id == 2), "{moves:?}");
        assert!(moves.iter().all(|m| m.node_id != 3), "{moves:?}");
    }

    #[test]
    fn an_empty_broker_gets_nodes_back_gradually_from_where_nodes_really_are() {
        // mqtt3 just recovered: nodes are on mqtt1/mqtt2, load figures calm.
        let brokers = three();
        let mut nodes: Vec<_> = (1..=12)
            .map(|i| node(i, Some(if i <= 8 { "mqtt1" } else { "mqtt2" })))
            .collect();
        let limits = RebalanceLimits {
            threshold: 1.0,
            max_moves: 1,
            fill_empty: true,
        };
        // One move per round, from the fullest broker.
        let moves = rebalance(Strategy::Dynamic, &brokers, &nodes, limits);
        assert_eq!(moves.len(), 1);
        assert_eq!(
            (moves[0].from.as_deref(), moves[0].to.as_str()),
            (Some("mqtt1"), "mqtt3")
        );
        // Up to a fair share (12 / 3 = 4), the fullest giving.
        let more = RebalanceLimits {
            max_moves: 10,
            ..limits
        };
        let refill = [(1, "mqtt3"), (2, "mqtt3"), (3, "mqtt3"), (4, "mqtt3")];
        let moves = rebalance(Strategy::Priority, &brokers, &nodes, more);
        assert_eq!(targets(&moves), refill);
        // Even when every node was just placed (all cooling down): an empty
        // GOOD broker is not left empty while the others carry the load.
        let mut cooling = nodes.clone();
        cooling.iter_mut().for_each(|n| n.cooling = true);
        let moves = rebalance(Strategy::Dynamic, &brokers, &cooling, more);
        assert_eq!(targets(&moves), refill);
        // Assigned there but really still elsewhere: still empty.
        nodes[8].current = Some("mqtt3".into());
        nodes[8].observed = Some("mqtt2".into());
        let moves = rebalance(Strategy::Dynamic, &brokers, &nodes, more);
        assert_eq!(moves.len(), 4, "{moves:?}");
        // Configured off: the load figures alone decide (calm: nothing).
        let off = RebalanceLimits {
            fill_empty: false,
            ..more
        };
        nodes[8].current = Some("mqtt2".into());
        assert!(rebalance(Strategy::Dynamic, &brokers, &nodes, off).is_empty());
        // A standby broker is not general: it stays empty.
        let mut with_standby = three();
        with_standby[2].role = Role::Standby;
        let moves = rebalance(Strategy::Dynamic, &with_standby, &nodes, more);
        assert!(moves.iter().all(|m| m.to != "mqtt3"), "{moves:?}");
        // (the two general ones even out: 8/4 → 6/6)
        assert_eq!(targets(&moves), [(1, "mqtt2"), (2, "mqtt2")]);
    }

    #[test]
    fn strategy_names() {
        assert_eq!("Static".parse::<Strategy>(), Ok(Strategy::Static));
        assert_eq!("priority".parse::<Strategy>(), Ok(Strategy::Priority));
        assert!("random".parse::<Strategy>().unwrap_err().contains("static"));
        assert_eq!("dedicated".parse::<Role>(), Ok(Role::Dedicated));
        assert!("master".parse::<Role>().is_err());
    }
}
