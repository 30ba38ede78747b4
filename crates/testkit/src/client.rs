//! A test's own MQTT clients: one connected (passing what it receives to an
//! inbox of the test's), one that listens on topic filters, and the probe
//! publish that settles a client's subscriptions.

use std::time::Duration;

use common::QoS;
use common::mqtt::{Inbound, MqttConfig, MqttConnection};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Room in a listener's inbox: enough for every message of a burst test.
const INBOX: usize = 100_000;

/// A client with `config` (what it receives goes to `inbox`), connected
/// within `wait`. It stops with `stop`.
pub async fn connect(
    config: MqttConfig,
    inbox: Option<mpsc::Sender<Inbound>>,
    wait: Duration,
    stop: &CancellationToken,
) -> MqttConnection {
    let client = MqttConnection::start(config, inbox, stop.clone()).expect("test client");
    client
        .wait_connected(wait)
        .await
        .expect("test client connects");
    client
}

/// A login attempt: the client with `config` if it connects within `wait`
/// (it then stops with `stop`); `None` if the broker refuses it or does not
/// answer, and the attempt stops retrying.
pub async fn try_connect(
    config: MqttConfig,
    wait: Duration,
    stop: &CancellationToken,
) -> Option<MqttConnection> {
    let attempt = stop.child_token();
    let client = MqttConnection::start(config, None, attempt.clone()).expect("test client");
    if client.wait_connected(wait).await.is_ok() {
        Some(client)
    } else {
        attempt.cancel();
        None
    }
}

/// A client with `config` subscribed to `filters` (QoS 1), connected within
/// `wait`; what it receives comes out of the returned inbox. It stops with
/// `stop`.
pub async fn listen(
    config: MqttConfig,
    filters: &[&str],
    wait: Duration,
    stop: &CancellationToken,
) -> (MqttConnection, mpsc::Receiver<Inbound>) {
    let (tx, inbox) = mpsc::channel(INBOX);
    let client = connect(config, Some(tx), wait, stop).await;
    for filter in filters {
        client
            .subscribe(filter, QoS::AtLeastOnce)
            .expect("test client subscribes");
    }
    (client, inbox)
}

/// Returns once `client`'s subscriptions are in place: they are made right
/// after CONNACK, and the broker handles a client's packets in order, so
/// the PUBACK of a probe publish comes after them.
pub async fn settle(client: &MqttConnection) {
    client
        .publish("hydro-probe/settle", "x", false)
        .await
        .expect("settle publish");
}
