//! The MQTT connection against a real Mosquitto of the test's own: publishes
//! are acknowledged, failures are reported, and a broker restart loses no
//! publish that was reported successful.

use std::collections::HashSet;
use std::time::Duration;

use common::QoS;
use common::mqtt::{Inbound, MqttConfig, MqttConnection, MqttError};
use testkit::{TestBroker, eventually};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Publishes `payload` on `topic` until something arrives in `rx` (the
/// subscription is made just after CONNACK, so the first tries may miss).
async fn publish_until_received<T>(
    publisher: &MqttConnection,
    topic: &str,
    payload: &str,
    rx: &mut mpsc::Receiver<T>,
) -> Option<T> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while tokio::time::Instant::now() < deadline {
        if publisher
            .publish(topic, payload.to_owned(), false)
            .await
            .is_ok()
            && let Ok(Some(got)) = tokio::time::timeout(Duration::from_millis(200), rx.recv()).await
        {
            return Some(got);
        }
    }
    None
}

/// [`publish_until_received`] that must be heard (else panics saying
/// `what`), on `topic`.
async fn heard(
    publisher: &MqttConnection,
    (topic, payload): (&str, &str),
    rx: &mut mpsc::Receiver<Inbound>,
    what: &str,
) -> Inbound {
    let got = publish_until_received(publisher, topic, payload, rx)
        .await
        .expect(what);
    assert_eq!(got.topic, topic);
    got
}

fn config(broker: &TestBroker, prefix: &str) -> MqttConfig {
    let mut c = broker.config_as(&broker.backend(), "test", prefix);
    c.publish_timeout = Duration::from_secs(10);
    c
}

/// A connection with `config`, once it is connected.
async fn connected(
    config: MqttConfig,
    inbox: Option<mpsc::Sender<Inbound>>,
    stop: &CancellationToken,
) -> MqttConnection {
    testkit::client::connect(config, inbox, Duration::from_secs(10), stop).await
}

/// A connected subscriber to `filter`, and what it receives.
async fn subscriber(
    config: MqttConfig,
    filter: &str,
    stop: &CancellationToken,
) -> (MqttConnection, mpsc::Receiver<Inbound>) {
    testkit::client::listen(config, &[filter], Duration::from_secs(10), stop).await
}

/// Waits until `conn` has noticed its broker is gone.
async fn until_disconnected(conn: &MqttConnection) {
    eventually(Duration::from_secs(30), || async {
        (!conn.is_connected()).then_some(())
    })
    .await
    .unwrap();
}

/// Brings `broker` back once `sub` has noticed it gone, and waits until
/// `sub` is connected again.
async fn resume_under(broker: &mut TestBroker, sub: &MqttConnection) {
    until_disconnected(sub).await;
    broker.resume().await;
    sub.wait_connected(Duration::from_secs(15)).await.unwrap();
}

/// A publisher on `broker` (not waited for: the tests publish until heard).
fn publisher(broker: &TestBroker, stop: &CancellationToken) -> MqttConnection {
    MqttConnection::start(config(broker, "pub"), None, stop.clone()).unwrap()
}

/// Takes `broker` down (`take_down`: [`TestBroker::stop`] or
/// [`TestBroker::kill`]) `after` a while, for `down`, then brings it back.
async fn outage(
    broker: &mut TestBroker,
    take_down: fn(&mut TestBroker),
    (after, down): (Duration, Duration),
) {
    tokio::time::sleep(after).await;
    take_down(broker);
    tokio::time::sleep(down).await;
    broker.resume().await;
}

/// A payload and what publishing it gave.
type Published = (String, Result<(), MqttError>);

/// `streams` concurrent tasks, each publishing `per_stream` payloads
/// (`payload(stream, i)`) on `topic` with `pause` between them; each task
/// returns what every publish gave.
fn spawn_streams(
    publisher: &MqttConnection,
    topic: &'static str,
    streams: u32,
    per_stream: u32,
    pause: Duration,
    payload: fn(u32, u32) -> String,
) -> Vec<tokio::task::JoinHandle<Vec<Published>>> {
    (0..streams)
        .map(|k| {
            let p = publisher.clone();
            tokio::spawn(async move {
                let mut results = Vec::new();
                for i in 0..per_stream {
                    let body = payload(k, i);
                    let result = p.publish(topic, body.clone(), false).await.map(|_| ());
                    results.push((body, result));
                    tokio::time::sleep(pause).await;
                }
                results
            })
        })
        .collect()
}

#[tokio::test]
async fn publish_reaches_a_subscriber_and_reports_success() {
    let broker = TestBroker::start().await;
    let stop = CancellationToken::new();
    let (_sub, mut rx) = subscriber(config(&broker, "sub"), "hydro/test/t/#", &stop).await;
    let publisher = publisher(&broker, &stop);
    // The subscription is made right after CONNACK; give it a moment by
    // publishing until the first message arrives.
    let got = heard(
        &publisher,
        ("hydro/test/t/1", "hello"),
        &mut rx,
        "subscriber receives",
    )
    .await;
    assert_eq!(&got.payload[..], b"hello");
    assert_eq!(publisher.pending_publishes(), 0);
    stop.cancel();
}

#[tokio::test]
async fn publish_without_a_broker_fails_within_the_timeout() {
    let broker = TestBroker::start().await;
    let mut c = broker.config_as(&broker.backend(), "gone", "pub");
    drop(broker); // nothing listens on that port any more
    c.publish_timeout = Duration::from_millis(500);
    let stop = CancellationToken::new();
    let publisher = MqttConnection::start(c, None, stop.clone()).unwrap();
    let started = std::time::Instant::now();
    let err = publisher
        .publish("hydro/test/t/1", "x", false)
        .await
        .unwrap_err();
    assert_eq!(err, MqttError::NotConnected);
    assert!(started.elapsed() < Duration::from_secs(5));
    stop.cancel();
}

/// The broker is restarted in the middle of a stream of
/// publishes. Every publish reported Ok must reach the subscriber (which has
/// a persistent session, so the broker keeps its messages across the
/// restart), and publishes after the restart succeed.
#[tokio::test]
async fn broker_restart_loses_no_acknowledged_publish() {
    let mut broker = TestBroker::start().await;
    let stop = CancellationToken::new();

    // A raw rumqttc subscriber with a persistent session: the broker queues
    // its messages while it is away and restores the session after a restart.
    let mut options = rumqttc::v5::MqttOptions::new("persistent-sub", "127.0.0.1", broker.port);
    options
        .set_clean_start(false)
        .set_session_expiry_interval(Some(3600))
        .set_keep_alive(Duration::from_secs(5));
    let login = broker.backend();
    options.set_credentials(login.user, login.pass);
    let (sub, mut events) = rumqttc::v5::AsyncClient::new(options, 1000);
    sub.subscribe("hydro/test/stream/#", QoS::AtLeastOnce)
        .await
        .unwrap();
    let (seen_tx, mut seen_rx) = mpsc::channel::<u32>(10_000);
    let sub_stop = stop.clone();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = sub_stop.cancelled() => return,
                e = events.poll() => match e {
                    Ok(rumqttc::v5::Event::Incoming(rumqttc::v5::mqttbytes::v5::Packet::Publish(p))) => {
                        let n: u32 = std::str::from_utf8(&p.payload).unwrap().parse().unwrap();
                        let _ = seen_tx.send(n).await;
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        }
    });

    let publisher = connected(config(&broker, "pub"), None, &stop).await;
    // Wait until the subscription is in place before counting.
    publish_until_received(&publisher, "hydro/test/stream/probe", "0", &mut seen_rx)
        .await
        .expect("subscriber ready");

    // Four concurrent streams, so several publishes are in flight when the
    // broker goes away.
    let streams = spawn_streams(
        &publisher,
        "hydro/test/stream/n",
        4,
        100,
        Duration::from_millis(10),
        |k, i| (1 + k * 100 + i).to_string(),
    );
    let (after, down) = (Duration::from_millis(400), Duration::from_millis(1500));
    outage(&mut broker, TestBroker::stop, (after, down)).await;
    let mut acknowledged = Vec::new();
    for s in streams {
        for (n, result) in s.await.unwrap() {
            // The outage (1.5 s) is shorter than the publish timeout (10 s):
            // every publish, in flight or issued while away, must succeed.
            result.unwrap_or_else(|e| panic!("publish {n} failed across the restart: {e}"));
            acknowledged.push(n.parse::<u32>().unwrap());
        }
    }

    // Publishes after the restart succeed.
    publisher
        .wait_connected(Duration::from_secs(10))
        .await
        .unwrap();
    publisher
        .publish("hydro/test/stream/n", "1000", false)
        .await
        .expect("publish after restart");

    let mut seen = HashSet::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !(seen.contains(&1000) && acknowledged.iter().all(|n| seen.contains(n))) {
        match tokio::time::timeout_at(deadline, seen_rx.recv()).await {
            Ok(Some(n)) => {
                seen.insert(n);
            }
            _ => break,
        }
    }
    let missing: Vec<u32> = acknowledged
        .iter()
        .copied()
        .filter(|n| !seen.contains(n))
        .collect();
    assert!(
        missing.is_empty() && seen.contains(&1000),
        "acknowledged but never delivered: {missing:?}"
    );
    stop.cancel();
}

/// Subscriptions come back after a restart without a session.
#[tokio::test]
async fn subscriptions_are_restored_after_reconnect() {
    let mut broker = TestBroker::start().await;
    let stop = CancellationToken::new();
    let (sub, mut rx) = subscriber(config(&broker, "sub"), "hydro/test/r/#", &stop).await;
    broker.kill();
    // Wait until the subscriber noticed, then bring the broker back (its
    // persistent store has no session for a clean-start client).
    resume_under(&mut broker, &sub).await;
    let publisher = publisher(&broker, &stop);
    let again = ("hydro/test/r/1", "again");
    heard(&publisher, again, &mut rx, "message after reconnect").await;
    stop.cancel();
}

/// The broker crashes (SIGKILL) with publishes in flight and comes back
/// within the publish timeout: none of them is reported failed, because the
/// unacknowledged ones are sent again after the reconnect.
#[tokio::test]
async fn broker_crash_in_flight_publishes_are_resent() {
    let mut broker = TestBroker::start().await;
    let stop = CancellationToken::new();
    let publisher = connected(config(&broker, "pub"), None, &stop).await;
    let streams = spawn_streams(
        &publisher,
        "hydro/test/crash/n",
        8,
        300,
        Duration::from_millis(3),
        |k, i| format!("{k}-{i}"),
    );
    let (after, down) = (Duration::from_millis(300), Duration::from_millis(1000));
    outage(&mut broker, TestBroker::kill, (after, down)).await;
    let mut failures = Vec::new();
    for s in streams {
        failures.extend(
            s.await
                .unwrap()
                .into_iter()
                .filter_map(|(body, r)| r.err().map(|e| format!("{body}: {e}"))),
        );
    }
    assert!(
        failures.is_empty(),
        "{} publishes failed: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    assert_eq!(publisher.pending_publishes(), 0);
    stop.cancel();
}

/// A persistent session (as history-logger's) with a shared subscription
/// survives a broker restart: Mosquitto hands back the session from its
/// persistence file without the shared subscription (and says the session is
/// present), so the subscriptions are made again after every connect. Seen on
/// `make up`: after 1884 came back, history-logger stored nothing from it.
#[tokio::test]
async fn shared_subscription_of_a_persistent_session_survives_a_broker_restart() {
    let mut broker = TestBroker::start().await;
    let stop = CancellationToken::new();
    let mut c = config(&broker, "persistent");
    c.client_id = format!("persistent-{}", uuid::Uuid::new_v4().simple());
    c.session_expiry = Some(3600);
    let (sub, mut rx) = subscriber(c, "$share/g/hydro/test/s/#", &stop).await;
    let publisher = publisher(&broker, &stop);
    publish_until_received(&publisher, "hydro/test/s/1", "before", &mut rx)
        .await
        .expect("subscribed before the crash");
    // A clean stop: the broker saves the session to its persistence file.
    broker.stop();
    resume_under(&mut broker, &sub).await;
    while rx.try_recv().is_ok() {}
    let after = ("hydro/test/s/2", "after");
    heard(&publisher, after, &mut rx, "message after the restart").await;
    stop.cancel();
}

/// A connection stopped right after `disconnect()` has sent its DISCONNECT:
/// the broker publishes no last will (a node switching brokers must not be
/// declared gone by the one it leaves).
#[tokio::test]
async fn disconnect_then_stop_leaves_no_last_will() {
    let broker = TestBroker::start().await;
    let stop = CancellationToken::new();
    let (_watcher, mut rx) =
        subscriber(config(&broker, "watcher"), "hydro/test/will/#", &stop).await;
    let publisher = publisher(&broker, &stop);
    publish_until_received(&publisher, "hydro/test/will/probe", "probe", &mut rx)
        .await
        .expect("watcher subscribed");
    for i in 0..10 {
        let own_stop = CancellationToken::new();
        let mut c = config(&broker, "leaving");
        c.last_will = Some(common::LastWill::new(
            format!("hydro/test/will/{i}"),
            "offline",
            QoS::AtLeastOnce,
            false,
            None,
        ));
        let leaving = connected(c, None, &own_stop).await;
        leaving.disconnect().await;
        own_stop.cancel();
    }
    // Any will would arrive within this; a probe after it proves delivery.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut wills = Vec::new();
    while let Ok(m) = rx.try_recv() {
        if m.topic != "hydro/test/will/probe" {
            wills.push(m.topic);
        }
    }
    assert!(wills.is_empty(), "last wills published: {wills:?}");
    stop.cancel();
}
