//! The strategies' and the planner's cases.

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

/// Rebalance limits: the load `threshold`, at most `max_moves`, and
/// whether an empty broker is filled.
fn rebalance_limits(threshold: f64, max_moves: usize, fill_empty: bool) -> RebalanceLimits {
    RebalanceLimits {
        threshold,
        max_moves,
        fill_empty,
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
    let limits = rebalance_limits(0.05, 100, false);
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
    let limits = rebalance_limits(1.0, 10, false);
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
    let limits = rebalance_limits(0.01, 10, true);
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
    let limits = rebalance_limits(1.0, 1, true);
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
    assert_eq!("node_config".parse::<MoveVia>(), Ok(MoveVia::NodeConfig));
    // The errors, word for word (the strategy's after trimming and lowercasing).
    assert_eq!(
        " Random ".parse::<Strategy>(),
        Err("`random` is not a strategy: use static, dynamic or priority".to_owned())
    );
    assert_eq!(
        "master".parse::<Role>(),
        Err("`master` is not a role: use primary, standby, optional or dedicated".to_owned())
    );
    assert_eq!(
        "push".parse::<MoveVia>(),
        Err("`push` is not a move means: use config_update, node_config or none".to_owned())
    );
}
