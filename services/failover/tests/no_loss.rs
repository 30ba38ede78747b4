//! No reading lost across a broker failover: history-logger, two brokers and
//! a few node-sim nodes; one broker is killed while they publish. Every
//! reading made is stored exactly once, and every delivery history-logger
//! received is accounted for: inserted, absorbed as a redelivery (a reading
//! replayed after the cut that had already arrived), or refused.
//!
//! A test binary of its own: it reads the process-wide metrics recorder.

mod helpers;

use std::time::Duration;

use helpers::{Cluster, Options};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_broker_loses_no_reading_and_doubles_none() {
    // Installed before the cluster starts: every service records into it.
    common::runtime::http::metrics_handle();
    let mut c = Cluster::settled(Options {
        brokers: 2,
        nodes: 6,
        zones: 2,
        history: true,
        ..Options::default()
    })
    .await;
    let victim = "mqtt2";
    assert!(
        !c.nodes_on(victim).await.is_empty(),
        "static assignment gives both brokers nodes"
    );
    // Readings flow to both brokers, then one dies (SIGKILL) mid-stream.
    tokio::time::sleep(Duration::from_secs(3)).await;
    c.broker_mut(victim).kill();
    c.wait_failed_over(victim).await;
    // Readings flow on the healthy broker, buffered ones replayed.
    tokio::time::sleep(Duration::from_secs(3)).await;

    let ledger = c.stop_nodes_and_drain().await.expect("nodes stop");
    println!("{ledger:?}");
    assert!(ledger.generated > 0, "the nodes made readings");
    assert_eq!(
        ledger.buffer_dropped, 0,
        "no node buffer overflowed in a few seconds"
    );
    assert_eq!(
        (ledger.lost(), ledger.duplicated()),
        (0, 0),
        "every reading that should land is stored exactly once: {ledger:?}"
    );
    assert_eq!(
        ledger.unaccounted(),
        0,
        "every delivery is inserted, absorbed or refused: {ledger:?}"
    );
    assert_eq!(
        ledger.inserted, ledger.rows,
        "each stored row was inserted once; replays were absorbed, not stored"
    );
    assert_eq!(ledger.dropped, 0, "nothing refused: {ledger:?}");
    c.stop.cancel();
}
