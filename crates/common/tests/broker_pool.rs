//! A pool made with `BrokerPool::connect_following` follows the `brokers`
//! table: what history-logger relies on to pick up added brokers without a
//! restart.

use std::time::Duration;

use common::QoS;
use common::mqtt::MqttConnection;
use common::mqtt::pool::BrokerPool;
use common::settings::Settings;
use testkit::{TestBroker, TestDb, env_vars, eventually};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(30);

#[tokio::test]
async fn a_following_pool_connects_added_brokers_subscribes_them_and_lets_removed_ones_go() {
    let db = TestDb::new().await;
    let first = TestBroker::start().await;
    let second = TestBroker::start().await;
    let settings = Settings::from_vars(env_vars(&first.env())).unwrap();
    let stop = CancellationToken::new();
    let _guard = stop.clone().drop_guard();
    let (tx, mut inbox) = mpsc::channel(64);
    let pool = BrokerPool::connect_following(&settings, &db.pool, "test", Some(tx), &stop, |c| {
        c.client_id = format!("follower-{}", c.broker_id);
    })
    .await
    .unwrap();
    pool.subscribe_all("hydro/test/probe/#", QoS::AtLeastOnce)
        .unwrap();
    assert_eq!(pool.ids(), ["mqtt1"]);

    // A broker registered later is connected and subscribed, with no call.
    testkit::register_brokers(&db.pool, &[("b2".to_owned(), second.url())]).await;
    let added = eventually(WAIT, || async {
        pool.get("b2").filter(MqttConnection::is_connected)
    })
    .await
    .expect("the new broker is connected");
    assert_eq!(added.broker_id(), "b2");
    let publisher = testkit::client::connect(
        second.config_as(&second.backend(), "b2", "publisher"),
        None,
        WAIT,
        &stop,
    )
    .await;
    // The subscription is made right after CONNACK; retry until it is in place.
    let mut message = None;
    for _ in 0..100 {
        publisher
            .publish("hydro/test/probe/x", "hello", false)
            .await
            .unwrap();
        if let Ok(Some(m)) = tokio::time::timeout(Duration::from_millis(300), inbox.recv()).await {
            message = Some(m);
            break;
        }
    }
    let message = message.expect("a message on the new broker reaches the pool's inbox");
    assert_eq!(&*message.broker_id, "b2");
    assert_eq!(message.topic, "hydro/test/probe/x");

    // Disabled: the connection goes; the default broker never does.
    sqlx::query("UPDATE brokers SET enabled = false WHERE id = 'b2'")
        .execute(&db.pool)
        .await
        .unwrap();
    eventually(WAIT, || async { pool.get("b2").is_none().then_some(()) })
        .await
        .expect("a disabled broker is let go");
    eventually(WAIT, || async { (!added.is_connected()).then_some(()) })
        .await
        .expect("its connection is closed");
    assert_eq!(pool.ids(), ["mqtt1"]);

    // Enabled again at another URL: connected there.
    let third = TestBroker::start().await;
    sqlx::query("UPDATE brokers SET enabled = true, url = $1 WHERE id = 'b2'")
        .bind(third.url())
        .execute(&db.pool)
        .await
        .unwrap();
    eventually(WAIT, || async {
        pool.get("b2")
            .filter(MqttConnection::is_connected)
            .map(|_| ())
    })
    .await
    .expect("re-enabled at its new URL");
}
