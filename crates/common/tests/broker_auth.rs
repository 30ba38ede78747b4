//! `TestBroker` is authenticated like the project's brokers: no anonymous
//! clients, a wrong password is refused, only the backend role joins shared
//! subscriptions, an unbound node's login is held to its own hardware id, and
//! the accounts survive a restart.

use std::time::Duration;

use common::QoS;
use rumqttc::v5::mqttbytes::v5::{Packet, SubscribeReasonCode};
use rumqttc::v5::{AsyncClient, Event, MqttOptions};
use testkit::{Credentials, TestBroker};
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(10);

/// A raw MQTT 5 client (for CONNACK and SUBACK reason codes).
fn raw(
    broker: &TestBroker,
    client_id: &str,
    who: Option<&Credentials>,
) -> (AsyncClient, rumqttc::v5::EventLoop) {
    let mut options = MqttOptions::new(client_id, "127.0.0.1", broker.port);
    if let Some(who) = who {
        options.set_credentials(who.user.clone(), who.pass.clone());
    }
    AsyncClient::new(options, 16)
}

/// Polls until the connection is accepted (Ok) or refused (Err).
async fn connack(events: &mut rumqttc::v5::EventLoop) -> Result<(), String> {
    tokio::time::timeout(WAIT, async {
        loop {
            match events.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => return Ok(()),
                Ok(_) => {}
                Err(e) => return Err(e.to_string()),
            }
        }
    })
    .await
    .expect("a CONNACK")
}

/// Subscribes and answers the SUBACK's reason code.
async fn suback(
    client: &AsyncClient,
    events: &mut rumqttc::v5::EventLoop,
    filter: &str,
) -> SubscribeReasonCode {
    client.subscribe(filter, QoS::AtLeastOnce).await.unwrap();
    tokio::time::timeout(WAIT, async {
        loop {
            if let Event::Incoming(Packet::SubAck(ack)) = events.poll().await.unwrap() {
                return ack.return_codes[0];
            }
        }
    })
    .await
    .expect("a SUBACK")
}

#[tokio::test]
async fn anonymous_clients_and_wrong_passwords_are_refused() {
    let broker = TestBroker::start().await;
    let (_c, mut events) = raw(&broker, "anonymous", None);
    assert!(connack(&mut events).await.is_err());
    let wrong = Credentials {
        user: broker.backend().user,
        pass: "not-the-password".into(),
    };
    let (_c, mut events) = raw(&broker, "wrong", Some(&wrong));
    assert!(connack(&mut events).await.is_err());
    let (_c, mut events) = raw(&broker, "backend", Some(&broker.backend()));
    assert_eq!(connack(&mut events).await, Ok(()));
}

#[tokio::test]
async fn only_the_backend_joins_shared_subscriptions() {
    let broker = TestBroker::start().await;
    let (backend, mut events) = raw(&broker, "backend", Some(&broker.backend()));
    connack(&mut events).await.unwrap();
    let granted = SubscribeReasonCode::Success(QoS::AtLeastOnce);
    for filter in [
        "$share/history-logger/hydro/+/+/+/+/telemetry",
        "hydro/#",
        "nodes/+/config/update",
        "$SYS/broker/#",
    ] {
        assert_eq!(
            suback(&backend, &mut events, filter).await,
            granted,
            "{filter}"
        );
    }
    assert_ne!(suback(&backend, &mut events, "other/#").await, granted);

    let (node, mut events) = raw(&broker, "hw-1", Some(&broker.provision()));
    connack(&mut events).await.unwrap();
    for filter in [
        "$share/history-logger/hydro/+/+/+/+/telemetry",
        "$share/history-logger/hydro/#",
        "hydro/#",
        "nodes/#",
    ] {
        assert_eq!(
            suback(&node, &mut events, filter).await,
            SubscribeReasonCode::NotAuthorized,
            "{filter}"
        );
    }
    assert_eq!(
        suback(&node, &mut events, "hydro/gh-temp/zn-temp/hw-1/config").await,
        granted
    );
}

#[tokio::test]
async fn an_unbound_node_receives_and_publishes_only_as_its_own_hardware_id() {
    let broker = TestBroker::start().await;
    let stop = CancellationToken::new();
    let _guard = stop.clone().drop_guard();
    let (backend, mut backend_rx) = testkit::client::listen(
        broker.backend_config(),
        &["hydro/gh-temp/zn-temp/#"],
        WAIT,
        &stop,
    )
    .await;

    let mut config = broker.config_as(&broker.provision(), "test", "unused");
    config.client_id = "hw-1".into();
    let (node, mut node_rx) =
        testkit::client::listen(config, &["hydro/gh-temp/zn-temp/+/config"], WAIT, &stop).await;

    // Downlink: another hardware id's config never arrives, its own does.
    let mut own = None;
    for _ in 0..50 {
        backend
            .publish("hydro/gh-temp/zn-temp/hw-2/config", "{}", false)
            .await
            .unwrap();
        backend
            .publish("hydro/gh-temp/zn-temp/hw-1/config", "{}", false)
            .await
            .unwrap();
        if let Ok(Some(m)) = tokio::time::timeout(Duration::from_millis(200), node_rx.recv()).await
        {
            own = Some(m);
            break;
        }
    }
    assert_eq!(
        own.expect("its own config").topic,
        "hydro/gh-temp/zn-temp/hw-1/config"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    while let Ok(m) = node_rx.try_recv() {
        assert_eq!(m.topic, "hydro/gh-temp/zn-temp/hw-1/config");
    }

    // Uplink: publishing as another hardware id reaches nobody.
    while backend_rx.try_recv().is_ok() {}
    let _ = node
        .publish("hydro/gh-temp/zn-temp/hw-2/status", "{}", false)
        .await;
    node.publish("hydro/gh-temp/zn-temp/hw-1/status", "{}", false)
        .await
        .unwrap();
    let mut seen = Vec::new();
    while let Ok(Some(m)) =
        tokio::time::timeout(Duration::from_millis(500), backend_rx.recv()).await
    {
        if m.topic.ends_with("/status") {
            seen.push(m.topic);
        }
    }
    assert_eq!(seen, ["hydro/gh-temp/zn-temp/hw-1/status"]);
}

#[tokio::test]
async fn accounts_survive_a_restart() {
    let mut broker = TestBroker::start().await;
    broker.kill();
    broker.resume().await;
    let (_c, mut events) = raw(&broker, "backend", Some(&broker.backend()));
    assert_eq!(connack(&mut events).await, Ok(()));
    let (_c, mut events) = raw(&broker, "anonymous", None);
    assert!(connack(&mut events).await.is_err());
}
