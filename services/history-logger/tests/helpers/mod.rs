//! A history-logger test world: a fresh database with a small greenhouse, a
//! private Mosquitto, and a Redis stream and dead-letter list of the test's
//! own (unique key prefix), so tests run in parallel on one Redis.

#![allow(dead_code)] // each test file uses its own part of the helpers

use std::sync::Arc;
use std::time::Duration;

use common::mqtt::{MqttConfig, MqttConnection};
use common::settings::{FromEnv, Settings};
use deadpool_redis::redis;
use history_logger::ingest::IngestStats;
use history_logger::queue::Queue;
use history_logger::{App, HistorySettings};
use serde_json::Value;
use testkit::{TestBroker, TestDb, eventually};
use tokio_util::sync::CancellationToken;

pub use testkit::redis_url;

/// Database, broker and Redis keys of one test.
pub struct World {
    pub db: TestDb,
    pub broker: TestBroker,
    pub stream: String,
    pub dead_letter: String,
    pub redis: deadpool_redis::Pool,
    pub stop: CancellationToken,
}

/// A running instance.
pub struct Running {
    pub port: u16,
    pub stats: Arc<IngestStats>,
    pub queue: Queue,
    pub stop: CancellationToken,
}

impl World {
    /// Seeds greenhouse `gh-t` with zone `zn-a` (nodes `nd-1`, `nd-2`) and
    /// zone `zn-b` (node `nd-3`), and their channels: `nd-1` `ph_sensor` (PH)
    /// and `pump_acid`, `nd-2` `ec_sensor` (EC), `nd-3` `temp_air`
    /// (TEMPERATURE) and `humidity` (HUMIDITY).
    pub async fn new() -> World {
        common::runtime::logging::init_for_tests();
        let db = TestDb::new().await;
        testkit::seed_zones(&db.pool, ("gh-t", "Test"), &[("zn-a", "A"), ("zn-b", "B")]).await;
        sqlx::raw_sql(
            "INSERT INTO nodes (uid, zone_id, type) SELECT 'nd-1', id, 'ph' FROM zones WHERE uid = 'zn-a';
             INSERT INTO nodes (uid, zone_id, type) SELECT 'nd-2', id, 'ec' FROM zones WHERE uid = 'zn-a';
             INSERT INTO nodes (uid, zone_id, type) SELECT 'nd-3', id, 'climate' FROM zones WHERE uid = 'zn-b';
             INSERT INTO node_channels (node_id, channel, type, metric_type)
             SELECT n.id, c.channel, c.type, c.metric_type FROM nodes n
               JOIN (VALUES ('nd-1', 'ph_sensor', 'sensor', 'PH'),
                            ('nd-1', 'pump_acid', 'actuator', NULL),
                            ('nd-2', 'ec_sensor', 'sensor', 'EC'),
                            ('nd-3', 'temp_air', 'sensor', 'TEMPERATURE'),
                            ('nd-3', 'humidity', 'sensor', 'HUMIDITY'))
                    AS c(node, channel, type, metric_type) ON c.node = n.uid;",
        )
        .execute(&db.pool)
        .await
        .expect("seed");
        let broker = TestBroker::start().await;
        let prefix = format!("hl-test-{}", uuid::Uuid::new_v4().simple());
        World {
            db,
            broker,
            stream: format!("{prefix}:uplink"),
            dead_letter: format!("{prefix}:dead-letter"),
            redis: common::store::redis::create_pool(&redis_url(), 4).expect("redis pool"),
            stop: CancellationToken::new(),
        }
    }

    pub fn settings(&self, instance: &str, extra: &[(&str, &str)]) -> (Settings, HistorySettings) {
        let mut vars = testkit::service_vars(
            &self.db.url,
            self.broker.port,
            &[
                ("REDIS_URL", &redis_url()),
                ("TELEMETRY_FLUSH_MS", "100"),
                ("HISTORY_STREAM", &self.stream),
                ("HISTORY_DEAD_LETTER_KEY", &self.dead_letter),
                ("INSTANCE_ID", instance),
            ],
        );
        testkit::set_vars(&mut vars, extra);
        testkit::settings(&vars, HistorySettings::from_vars)
    }

    /// Builds an instance, waits until it is subscribed, and runs it on the
    /// current runtime until the world (or its own token) stops.
    pub async fn start(&self, instance: &str, extra: &[(&str, &str)]) -> Running {
        let (settings, history) = self.settings(instance, extra);
        let app = App::build(settings, history).await.expect("app builds");
        let mut running = settle(&app).await;
        running.stop = self.stop.child_token();
        tokio::spawn(app.run_until_stopped(running.stop.clone()));
        running
    }

    /// A fresh world with instance `hl-a` running (`extra` for it), and a
    /// client that plays the nodes.
    pub async fn with_logger(extra: &[(&str, &str)]) -> (World, Running, MqttConnection) {
        let world = World::new().await;
        let running = world.start("hl-a", extra).await;
        let nodes = world.publisher().await;
        (world, running, nodes)
    }

    /// The newest reading's value and time (`telemetry_last`), if any.
    pub async fn last(&self) -> Option<(f64, i64)> {
        sqlx::query_as("SELECT value, extract(epoch FROM ts)::int8 FROM telemetry_last")
            .fetch_optional(&self.db.pool)
            .await
            .unwrap()
    }

    /// Starts an instance on a runtime of its own, to be killed by dropping
    /// that runtime (`shutdown_background`: no flush, no ack, no DISCONNECT).
    pub async fn start_doomed(
        &self,
        instance: &str,
        extra: &[(&str, &str)],
    ) -> (tokio::runtime::Runtime, Running) {
        let (settings, history) = self.settings(instance, extra);
        let doomed = tokio::runtime::Runtime::new().expect("a runtime");
        let running = doomed
            .spawn(async move {
                let app = App::build(settings, history).await.expect("app builds");
                let running = settle(&app).await;
                tokio::spawn(app.run_until_stopped(running.stop.clone()));
                running
            })
            .await
            .expect("the instance starts");
        (doomed, running)
    }

    /// Adds `brokers` (id, broker) to the `brokers` table, with this world's
    /// own broker as `mqtt1`, so an instance started after connects to all.
    pub async fn register(&self, brokers: &[(&str, &TestBroker)]) {
        let mut all = vec![("mqtt1".to_owned(), self.broker.url())];
        all.extend(brokers.iter().map(|(id, b)| ((*id).to_owned(), b.url())));
        testkit::register_brokers(&self.db.pool, &all).await;
    }

    /// A client that plays the nodes.
    pub async fn publisher(&self) -> MqttConnection {
        client("mqtt1", &self.broker, None, &self.stop).await
    }

    pub async fn count(&self, sql: &str) -> i64 {
        sqlx::query_scalar(sql)
            .fetch_one(&self.db.pool)
            .await
            .expect("count query")
    }

    /// Waits until `sql` counts `want` (and returns the last count seen).
    pub async fn wait_count(&self, sql: &str, want: i64) -> i64 {
        let reached = eventually(Duration::from_secs(30), || async {
            let n = self.count(sql).await;
            (n == want).then_some(n)
        })
        .await;
        match reached {
            Some(n) => n,
            None => self.count(sql).await,
        }
    }

    /// Checks that each `(sql, n)` counts `n` now.
    pub async fn assert_counts(&self, counts: &[(&str, i64)]) {
        for (sql, n) in counts {
            assert_eq!(self.count(sql).await, *n, "{sql}");
        }
    }

    /// Waits until each `(sql, n)` counts `n`, in turn, and checks it does.
    pub async fn assert_reached(&self, counts: &[(&str, i64)]) {
        for (sql, n) in counts {
            assert_eq!(self.wait_count(sql, *n).await, *n, "{sql}");
        }
    }

    /// The dead-letter records, newest first.
    pub async fn dead_letters(&self) -> Vec<Value> {
        let mut c = self.redis.get().await.expect("redis");
        let items: Vec<String> = redis::cmd("LRANGE")
            .arg(&self.dead_letter)
            .arg(0)
            .arg(-1)
            .query_async(&mut c)
            .await
            .expect("LRANGE");
        items
            .iter()
            .map(|s| serde_json::from_str(s).expect("json record"))
            .collect()
    }
}

/// A proxy to the test Redis, and the `REDIS_URL` through it.
pub async fn proxied_redis() -> (testkit::TcpProxy, String) {
    let url = redis_url();
    let (host, port) = url
        .trim_start_matches("redis://")
        .trim_end_matches('/')
        .rsplit_once(':')
        .map(|(h, p)| (h.to_owned(), p.parse::<u16>().expect("redis port")))
        .expect("REDIS_URL is redis://host:port");
    let proxy = testkit::TcpProxy::start((host, port)).await;
    let proxied = format!("redis://127.0.0.1:{}", proxy.port);
    (proxy, proxied)
}

/// Waits until the app's broker connections are up and their subscriptions
/// are in place (a publish after them is answered after them).
pub async fn settle(app: &App) -> Running {
    for conn in app.brokers().all() {
        conn.wait_connected(Duration::from_secs(10))
            .await
            .expect("logger connects");
        testkit::client::settle(&conn).await;
    }
    Running {
        port: app.port(),
        stats: app.stats(),
        queue: app.queue().clone(),
        stop: CancellationToken::new(),
    }
}

impl Drop for World {
    fn drop(&mut self) {
        self.stop.cancel();
        let keys = [self.stream.clone(), self.dead_letter.clone()];
        let _ = std::thread::spawn(move || {
            let client = redis::Client::open(redis_url()).ok()?;
            let mut c = client.get_connection().ok()?;
            redis::cmd("DEL").arg(&keys).query::<()>(&mut c).ok()
        })
        .join();
    }
}

/// A connected client of `broker` (called `id`), passing what it receives to
/// `inbox`.
pub async fn client(
    id: &str,
    broker: &TestBroker,
    inbox: Option<tokio::sync::mpsc::Sender<common::mqtt::Inbound>>,
    stop: &CancellationToken,
) -> MqttConnection {
    let config = testkit::login(MqttConfig::new(id, &broker.url(), "test-client"));
    testkit::client::connect(config, inbox, Duration::from_secs(10), stop).await
}

/// A telemetry payload.
pub fn reading(metric: &str, value: f64, ts: i64) -> String {
    format!(r#"{{"metric_type":"{metric}","value":{value},"ts":{ts}}}"#)
}

/// Publishes QoS 1 and waits for the broker's PUBACK.
pub async fn publish(c: &MqttConnection, topic: &str, payload: impl Into<bytes_like::Payload>) {
    c.publish(topic, payload.into().0, false)
        .await
        .expect("publish");
}

pub mod bytes_like {
    /// Anything a test publishes.
    pub struct Payload(pub Vec<u8>);
    impl From<String> for Payload {
        fn from(s: String) -> Self {
            Payload(s.into_bytes())
        }
    }
    impl From<&str> for Payload {
        fn from(s: &str) -> Self {
            Payload(s.as_bytes().to_vec())
        }
    }
    impl From<Vec<u8>> for Payload {
        fn from(v: Vec<u8>) -> Self {
            Payload(v)
        }
    }
}

pub const TELEMETRY_ROWS: &str = "SELECT count(*) FROM telemetry_samples";
