//! The unit tests of `node_state`.

use super::*;

const T: Target<'static> = Target {
    node_id: 1,
    zone_id: Some(9),
    node_uid: "nd-1",
};

fn at(s: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_800_000_000 + s, 0).unwrap()
}

fn h(broker: &'static str, s: i64, what: What) -> Happening<'static> {
    Happening {
        target: T,
        broker,
        at: at(s),
        what,
    }
}

fn status(state: NodeState, ts_s: i64) -> What {
    What::Status {
        state,
        ts: 1_800_000_000 + ts_s,
    }
}

fn known(status: NodeStatus, broker: Option<&str>, observed_s: Option<i64>) -> HashMap<i64, Known> {
    HashMap::from([(
        1,
        Known {
            status,
            observed_broker: broker.map(str::to_owned),
            observed_at: observed_s.map(at),
        },
    )])
}

fn kinds(p: &Plan<'_>) -> Vec<String> {
    p.events.iter().map(|e| e.kind.to_string()).collect()
}

#[test]
fn a_last_will_from_another_broker_changes_nothing() {
    let k = known(NodeStatus::Online, Some("b2"), Some(10));
    let p = plan(
        &k,
        &[
            h("b1", 20, What::Lwt),
            h("b1", 21, status(NodeState::Offline, 21)),
        ],
    );
    assert!(p.rows.is_empty() && p.events.is_empty() && p.raise.is_empty());
    assert_eq!(
        p.ignored.iter().map(|(_, r)| *r).collect::<Vec<_>>(),
        vec![Ignored::OtherBroker, Ignored::OtherBroker]
    );
    // From its own broker it takes the node down.
    let p = plan(&k, &[h("b2", 20, What::Lwt)]);
    assert_eq!(kinds(&p), vec!["NODE_OFFLINE"]);
    assert_eq!(p.raise.len(), 1);
    assert_eq!(p.rows[0].status, NodeStatus::Offline);
    assert_eq!(p.rows[0].observed_broker.as_deref(), Some("b2"));
}

#[test]
fn uplink_brings_an_offline_node_back_and_moves_the_observation() {
    let k = known(NodeStatus::Offline, Some("b1"), Some(0));
    let p = plan(&k, &[h("b2", 30, What::Uplink("telemetry"))]);
    assert_eq!(kinds(&p), vec!["NODE_ONLINE"]);
    assert_eq!(p.events[0].payload["source"], "telemetry");
    assert_eq!(p.resolve, vec![1]);
    let row = &p.rows[0];
    assert_eq!(
        (row.status, row.observed_broker.as_deref(), row.observed_at),
        (NodeStatus::Online, Some("b2"), Some(at(30)))
    );
    // Now a last will on the old broker is ignored within the same batch.
    let p = plan(
        &k,
        &[
            h("b2", 30, What::Uplink("heartbeat")),
            h("b1", 31, What::Lwt),
        ],
    );
    assert_eq!(p.rows[0].status, NodeStatus::Online);
    assert_eq!(p.ignored.len(), 1);
}

#[test]
fn a_stale_online_does_not_move_the_observation() {
    let k = known(NodeStatus::Online, Some("b2"), Some(100));
    let p = plan(&k, &[h("b1", 101, status(NodeState::Online, 50))]);
    assert!(p.rows.is_empty());
    assert_eq!(p.ignored[0].1, Ignored::Stale);
    // Within the slack (whole-second ts, a lagging observation) it counts.
    let p = plan(&k, &[h("b1", 101, status(NodeState::Online, 95))]);
    assert!(p.ignored.is_empty());
    // From the node's own broker an ONLINE always counts.
    let p = plan(&k, &[h("b2", 101, status(NodeState::Online, 50))]);
    assert!(p.ignored.is_empty());
    // A fresh one does (the node moved back).
    let p = plan(&k, &[h("b1", 101, status(NodeState::Online, 101))]);
    assert_eq!(p.rows[0].observed_broker.as_deref(), Some("b1"));
    assert_eq!(p.rows[0].seen, Some(at(101)));
    // A node without a set clock is taken at its word.
    let p = plan(
        &k,
        &[h(
            "b1",
            101,
            What::Status {
                state: NodeState::Online,
                ts: 5,
            },
        )],
    );
    assert!(p.ignored.is_empty());
}

#[test]
fn observed_at_is_written_only_when_it_fell_behind() {
    let k = known(NodeStatus::Online, Some("b1"), Some(0));
    let p = plan(&k, &[h("b1", 2, What::Uplink("telemetry"))]);
    assert!(p.rows.is_empty(), "2 s newer: not worth a write");
    assert_eq!(p.after[&1].observed_at, Some(at(2)));
    let p = plan(&k, &[h("b1", 5, What::Uplink("telemetry"))]);
    assert_eq!(p.rows.len(), 1);
    assert!(p.events.is_empty());
}

#[test]
fn unobserved_nodes_follow_every_status_in_order_and_restarting_is_kept() {
    let k = known(NodeStatus::Unknown, None, None);
    let p = plan(
        &k,
        &[
            h("b1", 1, status(NodeState::Offline, 1)),
            h("b1", 2, status(NodeState::Online, 2)),
            h("b1", 3, status(NodeState::Restarting, 3)),
        ],
    );
    assert_eq!(
        kinds(&p),
        vec!["NODE_OFFLINE", "NODE_ONLINE", "NODE_RESTARTING"]
    );
    assert_eq!(p.rows[0].status, NodeStatus::Restarting);
    assert!(p.raise.is_empty());
    assert_eq!(p.resolve, Vec::<i64>::new());
    // Repeating a status is no event; a deleted node is skipped.
    let p = plan(
        &known(NodeStatus::Offline, None, None),
        &[h("b1", 1, What::Lwt)],
    );
    assert!(p.events.is_empty());
    assert_eq!(p.raise.len(), 1);
    assert!(
        plan(&HashMap::new(), &[h("b1", 1, What::Lwt)])
            .rows
            .is_empty()
    );
}
