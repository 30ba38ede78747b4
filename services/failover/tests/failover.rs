//! Failover on three private brokers with real node-sim nodes, the registry,
//! the bridge and one or two failover instances.

mod helpers;

use std::time::Duration;

use helpers::{Cluster, FAST_SUSPECT_PROBE, Options, WAIT};
use testkit::{count_comes_to, eventually};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killing_a_broker_moves_all_its_nodes_and_commands_keep_flowing() {
    let mut c = Cluster::settled(Options::default()).await;
    let victim = "mqtt2";
    let moved = c.nodes_on(victim).await;
    assert!(
        !moved.is_empty(),
        "static assignment gives every broker nodes"
    );

    c.broker_mut(victim).kill();
    // Commands to the victim's nodes right after the kill: each waits for
    // its node's move and goes out on the new broker.
    let mut ids = Vec::new();
    let sends = futures::future::join_all(moved.iter().map(|n| c.command(n))).await;
    for (status, id) in sends {
        assert_eq!(status, 200, "a command during the move is not refused");
        ids.push(id.expect("command id"));
    }
    c.wait_failed_over(victim).await;

    assert_eq!(c.broker_status(victim).await, "OFFLINE");
    let (nodes_moved, kind): (i32, String) =
        sqlx::query_as("SELECT nodes_moved, kind FROM failover_events WHERE broker_id = $1")
            .bind(victim)
            .fetch_one(c.pool())
            .await
            .expect("one failover event");
    assert_eq!(nodes_moved as usize, moved.len());
    assert_eq!(kind, "failover");
    let alert = "SELECT status FROM alerts WHERE type = 'broker_offline' AND broker_id = $1";
    let alert = c.text_of(alert, victim).await;
    assert_eq!(alert, "ACTIVE");
    // Nothing points at the dead broker, and the nodes really are elsewhere.
    assert!(c.nodes_on(victim).await.is_empty());
    for uid in &moved {
        let node = c.sim_nodes.iter().find(|n| n.uid() == uid).unwrap();
        assert!(node.is_connected(), "{uid} reconnected");
        assert_ne!(
            node.link().broker_url(),
            c.url_of(victim),
            "{uid} left the dead broker"
        );
    }
    // A command the dead broker acknowledged but never delivered (what a
    // kill in the middle of a publish leaves): the bridge publishes it again
    // on the node's new broker, and the node answers it.
    let stranded = format!("stranded-{}", moved[0]);
    sqlx::query(
        "INSERT INTO commands (cmd_id, zone_id, node_id, channel, cmd, status, source, broker_id, sent_at) \
         SELECT $1, n.zone_id, n.id, $3, 'ping', 'SENT', 'api', $4, now() FROM nodes n WHERE n.uid = $2",
    )
    .bind(&stranded)
    .bind(&moved[0])
    .bind(c.first_channel(&moved[0]))
    .bind(victim)
    .execute(c.pool())
    .await
    .unwrap();
    ids.push(stranded);
    // Commands after the move, to every node, flow as before.
    for n in c.sim_nodes.iter() {
        let (status, id) = c.command(n.uid()).await;
        assert_eq!(status, 200);
        ids.push(id.unwrap());
    }
    let statuses = c.final_statuses(&ids).await;
    assert_eq!(statuses.get("DONE"), Some(&ids.len()), "{statuses:?}");
    // And they went out on the nodes' new brokers.
    let on_dead: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM commands WHERE cmd_id = ANY($1) AND broker_id = $2",
    )
    .bind(&ids)
    .bind(victim)
    .fetch_one(c.pool())
    .await
    .unwrap();
    assert_eq!(on_dead, 0);
}

/// The confirm window on real brokers (the watcher probes through real
/// connections, so it cannot run on a paused clock): a broker frozen for
/// less than the window moves nothing, and a dead one is failed over no
/// sooner than `FAILOVER_CONFIRM_PROBES` suspect probes after its death,
/// then within a bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_blip_moves_nothing_and_a_death_is_decided_after_the_confirm_window() {
    // A wide window, so that neither a busy machine nor the blip below can
    // be mistaken for it: 12 failed probes, 2.5 s at the least.
    const CONFIRM: u32 = 12;
    let mut c = Cluster::settled(Options {
        extra: vec![("FAILOVER_CONFIRM_PROBES".into(), CONFIRM.to_string())],
        ..Options::default()
    })
    .await;
    let victim = "mqtt3";
    let offline_or_event = format!(
        "SELECT (SELECT count(*) FROM failover_events WHERE broker_id = '{victim}') \
           + (SELECT count(*) FROM broker_status_changes WHERE broker_id = '{victim}' AND to_status = 'OFFLINE')"
    );

    // A blip: frozen 4 s, each probe times out after 1 s, so at most a few
    // fail in a row before a good one clears the suspicion.
    c.broker_mut(victim).freeze(true);
    tokio::time::sleep(Duration::from_secs(4)).await;
    c.broker_mut(victim).freeze(false);
    // Nothing to wait for: the claim is that nothing happens. Several
    // suspect periods after the thaw, nothing has.
    tokio::time::sleep(FAST_SUSPECT_PROBE * CONFIRM).await;
    assert_eq!(
        testkit::count(c.pool(), &offline_or_event).await,
        0,
        "a blip shorter than the confirm window failed the broker over"
    );

    // A death: probes fail at once (no connection), one per suspect period.
    let killed_at: chrono::DateTime<chrono::Utc> = sqlx::query_scalar("SELECT now()")
        .fetch_one(c.pool())
        .await
        .unwrap();
    c.broker_mut(victim).kill();
    c.wait_failed_over(victim).await;
    let decided_at: chrono::DateTime<chrono::Utc> =
        sqlx::query_scalar("SELECT started_at FROM failover_events WHERE broker_id = $1")
            .bind(victim)
            .fetch_one(c.pool())
            .await
            .expect("one failover event");
    // Each failure after the first two waits a suspect period. The first two
    // need not: a probe in flight at the kill fails, and the dropped
    // connection wakes the loop to probe again at once. (`killed_at` is read
    // before the kill, so a slow machine can only lengthen the gap measured.)
    let window = FAST_SUSPECT_PROBE * (CONFIRM - 2);
    let gap = (decided_at - killed_at).to_std().unwrap_or_default();
    assert!(
        gap >= window,
        "decided {gap:?} after the kill, inside the confirm window ({window:?})"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_broker_that_recovers_is_not_flapped() {
    let mut c = Cluster::settled(Options::default()).await;
    let victim = "mqtt3";
    c.broker_mut(victim).kill();
    c.wait_failed_over(victim).await;
    c.broker_mut(victim).resume().await;

    let good = eventually(WAIT, || async {
        (c.broker_status(victim).await == "GOOD").then_some(())
    })
    .await;
    assert!(good.is_some(), "the broker is GOOD again once it answers");
    // Some time at GOOD: no second failover, no node sent back in a hurry
    // (only a rebalance returns them, and the registry here does not run one).
    tokio::time::sleep(Duration::from_secs(3)).await;
    let changes: Vec<(Option<String>, String)> = sqlx::query_as(
        "SELECT from_status, to_status FROM broker_status_changes WHERE broker_id = $1 \
         AND (from_status = 'OFFLINE' OR to_status = 'OFFLINE') ORDER BY id",
    )
    .bind(victim)
    .fetch_all(c.pool())
    .await
    .unwrap();
    assert_eq!(changes.len(), 2, "down once, up once: {changes:?}");
    assert_eq!(changes[0].1, "OFFLINE");
    assert_eq!(changes[1], (Some("OFFLINE".into()), "GOOD".into()));
    let events: i64 =
        sqlx::query_scalar("SELECT count(*) FROM failover_events WHERE broker_id = $1")
            .bind(victim)
            .fetch_one(c.pool())
            .await
            .unwrap();
    assert_eq!(events, 1);
    assert!(c.nodes_on(victim).await.is_empty());
    let resolved: String = sqlx::query_scalar(
        "SELECT status FROM alerts WHERE type = 'broker_offline' AND broker_id = $1",
    )
    .bind(victim)
    .fetch_one(c.pool())
    .await
    .unwrap();
    assert_eq!(resolved, "RESOLVED");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_failover_instances_never_both_act_and_a_standby_takes_over() {
    let options = Options {
        failovers: 2,
        ..Options::default()
    };
    let mut c = Cluster::settled(options).await;
    c.broker_mut("mqtt2").kill();
    c.wait_failed_over("mqtt2").await;

    let first: Vec<(String, i32)> = sqlx::query_as(
        "SELECT details->>'decided_by', nodes_moved FROM failover_events WHERE broker_id = 'mqtt2'",
    )
    .fetch_all(c.pool())
    .await
    .unwrap();
    assert_eq!(first.len(), 1, "one decision: {first:?}");
    let holders: Vec<String> = c.failovers.iter().map(|(h, _)| h.clone()).collect();
    let actor = first[0].0.clone();
    assert!(holders.contains(&actor), "{actor} is one of {holders:?}");
    // Every moved node was moved once: one move each, from mqtt2.
    let moves: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM node_broker_assignments WHERE previous_broker_id = 'mqtt2' AND strategy = 'failover'",
    )
    .fetch_one(c.pool())
    .await
    .unwrap();
    assert_eq!(moves, i64::from(first[0].1));

    // The acting instance goes away; the standby decides the next failover.
    let (_, token) = c.failovers.iter().find(|(h, _)| *h == actor).unwrap();
    token.cancel();
    c.broker_mut("mqtt3").kill();
    c.wait_failed_over("mqtt3").await;
    let second: String = sqlx::query_scalar(
        "SELECT details->>'decided_by' FROM failover_events WHERE broker_id = 'mqtt3'",
    )
    .fetch_one(c.pool())
    .await
    .unwrap();
    assert_ne!(second, actor, "the standby took over");
    // Everything is on the one broker left.
    assert!(c.assignments().await.iter().all(|(_, b, _)| b == "mqtt1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failover_moves_nodes_with_fallbacks_strands_the_others_and_closes_at_its_deadline() {
    let c = Cluster::settled(Options {
        extra: vec![("FAILOVER_EVENT_DEADLINE_SEC".into(), "15".into())],
        ..Options::default()
    })
    .await;
    let victim = "mqtt2";
    let moved = c.nodes_on(victim).await;
    assert!(!moved.is_empty());
    // Two firmware nodes on the victim: no fallbacks, only it to listen on.
    sqlx::raw_sql(
        "INSERT INTO nodes (uid, zone_id, type, move_via, observed_broker_id, observed_at) \
           SELECT 'nd-fw-' || i, (SELECT min(id) FROM zones), 'ph', 'node_config', 'mqtt2', now() \
           FROM generate_series(1, 2) i;",
    )
    .execute(c.pool())
    .await
    .unwrap();
    let adopted = "SELECT count(*) FROM node_broker_assignments a JOIN nodes n ON n.id = a.node_id \
         WHERE n.uid LIKE 'nd-fw-%' AND a.broker_id = 'mqtt2' AND a.confirmed_at IS NOT NULL";
    assert!(
        count_comes_to(c.pool(), adopted, WAIT, |n| n == 2).await,
        "firmware nodes are assigned where they are seen"
    );

    let mut c = c;
    c.broker_mut(victim).kill();
    // The event closes at its deadline (its firmware nodes never settle it).
    let event = eventually(WAIT, || async {
        sqlx::query_as::<_, (i32, serde_json::Value, f64)>(
            "SELECT nodes_moved, details, extract(epoch FROM finished_at - started_at)::float8 \
             FROM failover_events WHERE broker_id = $1 AND finished_at IS NOT NULL",
        )
        .bind(victim)
        .fetch_optional(c.pool())
        .await
        .ok()
        .flatten()
    })
    .await
    .expect("the failover event finishes");
    let (nodes_moved, details, seconds) = event;
    assert_eq!(nodes_moved as usize, moved.len(), "{details}");
    assert_eq!(details["moved"], moved.len(), "{details}");
    assert_eq!(details["confirmed"], moved.len(), "{details}");
    assert_eq!(details["stranded"], 2, "{details}");
    assert!(
        seconds >= 15.0,
        "closed at its deadline, not before: {seconds}"
    );
    // The nodes with fallbacks are elsewhere and confirmed; none was told to
    // move the firmware nodes, which stay stranded on the dead broker.
    for uid in &moved {
        let node = c.sim_nodes.iter().find(|n| n.uid() == uid).unwrap();
        assert_ne!(node.link().broker_url(), c.url_of(victim), "{uid} moved");
    }
    let stranded = |c: &Cluster| {
        let (http, url) = (c.http.clone(), format!("{}/api/nodes/stranded", c.registry));
        async move {
            let body: serde_json::Value = http.get(url).send().await.ok()?.json().await.ok()?;
            let mut uids: Vec<String> = body["data"]
                .as_array()?
                .iter()
                .map(|n| n["node_uid"].as_str().unwrap_or_default().to_owned())
                .collect();
            uids.sort();
            Some(uids)
        }
    };
    assert_eq!(
        stranded(&c).await.unwrap(),
        ["nd-fw-1", "nd-fw-2"],
        "shown as stranded"
    );
    // One reappears on another broker: followed there, no longer stranded.
    sqlx::query(
        "UPDATE nodes SET observed_broker_id = 'mqtt1', observed_at = now() + interval '1 second' \
         WHERE uid = 'nd-fw-1'",
    )
    .execute(c.pool())
    .await
    .unwrap();
    let back = eventually(WAIT, || async {
        let on: String = sqlx::query_scalar(
            "SELECT a.broker_id FROM node_broker_assignments a JOIN nodes n ON n.id = a.node_id \
             WHERE n.uid = 'nd-fw-1'",
        )
        .fetch_one(c.pool())
        .await
        .ok()?;
        let left = stranded(&c).await?;
        (on == "mqtt1" && left == ["nd-fw-2"]).then_some(())
    })
    .await;
    assert!(back.is_some(), "a stranded node that reappears is followed");
}
