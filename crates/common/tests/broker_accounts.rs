//! Node accounts on a real Mosquitto with the dynamic-security plugin: a node
//! account publishes its own uplink and nothing else, reads its own downlink
//! and nothing else; a changed password takes effect; a re-sync leaves an
//! unchanged account connected; a removed account is refused; two syncs
//! racing to create one account both succeed.

use std::time::Duration;

use common::mqtt::accounts::{
    Admin, Namespace, NodeAccount, create_missing_nodes, remove_nodes, sync_nodes,
};
use common::mqtt::{Inbound, MqttConfig, MqttConnection, MqttError};
use secrecy::SecretString;
use testkit::TestBroker;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// A connection config for `broker` logged in as `user`.
fn config(broker: &TestBroker, user: &str, pass: &str) -> MqttConfig {
    let mut c = MqttConfig::new("test", &broker.url(), user);
    c.username = Some(user.to_owned());
    c.password = Some(SecretString::from(pass));
    c.publish_timeout = Duration::from_secs(5);
    c
}

/// `user` logged in on `broker`, once connected.
async fn logged_in(
    broker: &TestBroker,
    user: &str,
    pass: &str,
    stop: &CancellationToken,
) -> MqttConnection {
    let c = config(broker, user, pass);
    testkit::client::connect(c, None, Duration::from_secs(10), stop).await
}

/// Whether `broker` refuses `user` (no connection within 2 s).
async fn refused(broker: &TestBroker, user: &str, pass: &str, stop: &CancellationToken) -> bool {
    let c = config(broker, user, pass);
    testkit::client::try_connect(c, Duration::from_secs(2), stop)
        .await
        .is_none()
}

/// A broker of the test's own and its dynsec admin, connected until `stop`.
async fn broker_and_admin() -> (TestBroker, CancellationToken, Admin) {
    let broker = TestBroker::start().await;
    let stop = CancellationToken::new();
    let admin = broker.admin_connection(&stop).await;
    (broker, stop, admin)
}

fn account(uid: &str, zone: &str, password: &str) -> NodeAccount {
    NodeAccount {
        uid: uid.into(),
        namespaces: vec![Namespace {
            gh_uid: "gh-1".into(),
            zone_uid: zone.into(),
        }],
        password: SecretString::from(password),
    }
}

/// Topics arriving until `expected` has (within 10 s), then any more within
/// `quiet`: what must arrive is waited for, not given a fixed window; what
/// must not arrive has `quiet` to show itself.
async fn receive_until(
    rx: &mut mpsc::Receiver<Inbound>,
    expected: &str,
    quiet: Duration,
) -> Vec<String> {
    let mut got = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(m) = rx.recv().await {
            let done = m.topic == expected;
            got.push(m.topic);
            if done {
                return;
            }
        }
    })
    .await;
    let deadline = tokio::time::Instant::now() + quiet;
    while let Ok(Some(m)) = tokio::time::timeout_at(deadline, rx.recv()).await {
        got.push(m.topic);
    }
    got
}

/// The broker's backend account (role `hydro-backend`), logged in.
async fn backend(broker: &TestBroker, stop: &CancellationToken) -> MqttConnection {
    let who = broker.backend();
    logged_in(broker, &who.user, &who.pass, stop).await
}

const PW_A: &str = "pa-0123456789abcdef0123456789abcdef";
const PW_A2: &str = "pa-fedcba9876543210fedcba9876543210";
const PW_B: &str = "pb-0123456789abcdef0123456789abcdef";

#[tokio::test]
async fn a_node_account_uses_its_own_topics_only() {
    let (broker, stop, admin) = broker_and_admin().await;
    let report = sync_nodes(
        &admin,
        &[account("nd-a", "zn-1", PW_A), account("nd-b", "zn-2", PW_B)],
    )
    .await
    .unwrap();
    assert_eq!((report.created, report.failed.len()), (2, 0), "{report:?}");

    // A backend account sends commands and watches everything that gets through.
    let backend = backend(&broker, &stop).await;
    let backend_login = broker.backend();
    let (watcher, mut watched) = testkit::client::listen(
        config(&broker, &backend_login.user, &backend_login.pass),
        &["hydro/#"],
        Duration::from_secs(10),
        &stop,
    )
    .await;
    testkit::client::settle(&watcher).await;

    let (a, mut a_rx) = testkit::client::listen(
        config(&broker, "nd-a", PW_A),
        &[
            "hydro/gh-1/zn-1/nd-a/+/command",
            "hydro/gh-1/zn-2/nd-b/+/command",
            "hydro/#",
        ],
        Duration::from_secs(10),
        &stop,
    )
    .await;

    // Answered after its subscriptions (in order): they are settled from here.
    let own = "hydro/gh-1/zn-1/nd-a/ph_sensor/telemetry";
    a.publish(own, "{}", false).await.expect("own telemetry");
    for forged in [
        "hydro/gh-1/zn-2/nd-b/ph_sensor/telemetry",
        "hydro/gh-1/zn-2/nd-a/ph_sensor/telemetry",
        "hydro/gh-1/zn-1/nd-a/ph_sensor/command",
        "nodes/nd-a/config/update",
        "hydro/time/response",
    ] {
        let refused = a.publish(forged, "{}", false).await;
        assert!(
            matches!(refused, Err(MqttError::Refused(_))),
            "{forged}: {refused:?}"
        );
    }
    a.publish("hydro/node_hello", "{}", false)
        .await
        .expect("global hello");
    let seen = receive_until(&mut watched, own, Duration::from_millis(500)).await;
    assert!(seen.contains(&own.to_owned()), "{seen:?}");
    assert!(seen.iter().all(|t| !t.contains("zn-2")), "{seen:?}");

    // Commands: its own arrive; another node's never do (subscription refused).
    let own_command = "hydro/gh-1/zn-1/nd-a/pump/command";
    backend.publish(own_command, "{}", false).await.unwrap();
    backend
        .publish("hydro/gh-1/zn-2/nd-b/pump/command", "{}", false)
        .await
        .unwrap();
    let got = receive_until(&mut a_rx, own_command, Duration::from_millis(800)).await;
    assert_eq!(got, vec![own_command.to_owned()]);
    stop.cancel();
}

#[tokio::test]
async fn resync_keeps_unchanged_accounts_connected_and_applies_changes() {
    let (broker, stop, admin) = broker_and_admin().await;
    let accounts = [account("nd-a", "zn-1", PW_A), account("nd-b", "zn-1", PW_B)];
    sync_nodes(&admin, &accounts).await.unwrap();

    let a = logged_in(&broker, "nd-a", PW_A, &stop).await;
    let b = logged_in(&broker, "nd-b", PW_B, &stop).await;
    let mut a_state = a.connected_watch();
    a_state.mark_unchanged();

    // The same accounts again: no command, nobody kicked.
    let again = sync_nodes(&admin, &accounts).await.unwrap();
    assert_eq!((again.unchanged, again.created, again.updated), (2, 0, 0));
    // A change to b only: a stays connected.
    let moved = sync_nodes(
        &admin,
        &[account("nd-a", "zn-1", PW_A), account("nd-b", "zn-2", PW_B)],
    )
    .await
    .unwrap();
    assert_eq!((moved.unchanged, moved.updated), (1, 1), "{moved:?}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !a_state.has_changed().unwrap(),
        "an unchanged account was disconnected"
    );
    // b's new namespace works once it is back.
    b.publish("hydro/gh-1/zn-2/nd-b/ph_sensor/telemetry", "{}", false)
        .await
        .expect("moved node publishes in its new zone");
    assert!(
        b.publish("hydro/gh-1/zn-1/nd-b/ph_sensor/telemetry", "{}", false)
            .await
            .is_err()
    );

    // A new password: the old one is refused, the new one works.
    let changed = sync_nodes(
        &admin,
        &[
            account("nd-a", "zn-1", PW_A2),
            account("nd-b", "zn-2", PW_B),
        ],
    )
    .await
    .unwrap();
    assert_eq!(changed.updated, 1, "{changed:?}");
    assert!(refused(&broker, "nd-a", PW_A, &stop).await);
    let _new = logged_in(&broker, "nd-a", PW_A2, &stop).await;

    // a no longer listed: its account is gone.
    let removed = sync_nodes(&admin, &[account("nd-b", "zn-2", PW_B)])
        .await
        .unwrap();
    assert_eq!(removed.deleted, 1, "{removed:?}");
    assert!(refused(&broker, "nd-a", PW_A2, &stop).await);
    // And the admin's own account is never a node account.
    let who = broker.admin();
    let _admin_again = logged_in(&broker, &who.user, &who.pass, &stop).await;

    // remove_nodes deletes exactly the named node.
    let r = remove_nodes(&admin, &["nd-b".into()]).await.unwrap();
    assert_eq!(r.deleted, 1);
    assert!(refused(&broker, "nd-b", PW_B, &stop).await);
    stop.cancel();
}

/// A bind creates the node's account while the periodic sync, which read the
/// same row, creates it too: both listed the broker before either created it.
/// The loser must see the account there, not fail the bind.
#[tokio::test]
async fn two_syncs_creating_one_account_both_succeed() {
    // The broker lives to the end of the test.
    let (_broker, stop, admin) = broker_and_admin().await;
    for round in 0..5 {
        let accounts = vec![account(&format!("nd-race-{round}"), "zn-1", "pw-race")];
        let (bind, periodic) = tokio::join!(
            create_missing_nodes(&admin, &accounts),
            sync_nodes(&admin, &accounts)
        );
        let (bind, periodic) = (bind.unwrap(), periodic.unwrap());
        assert!(bind.failed.is_empty(), "round {round}: bind {bind:?}");
        assert!(
            periodic.failed.is_empty(),
            "round {round}: sync {periodic:?}"
        );
    }
    stop.cancel();
}
