//! The command path when things break: a broker dies for 5 s in the middle of
//! a stream of commands; the bridge instance that sweeps timeouts is killed.

mod helpers;

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::json;
use testkit::{TestBroker, TestDb, eventually, free_port};

/// A stream of commands from 6 clients; the broker is killed at 2 s and back
/// at 7 s. Every command must end DONE, TIMEOUT or SEND_FAILED — none left
/// QUEUED, SENT or ACK — and each client's commands are accepted again after
/// the restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_down_for_5s_leaves_no_command_unfinished() {
    common::runtime::logging::init_for_tests();
    let mut setup = helpers::spawn_with_sim(
        &[
            ("COMMAND_TIMEOUT_SEC", "4"),
            ("MQTT_PUBLISH_TIMEOUT_MS", "1500"),
        ],
        2,
        6,
    )
    .await;
    let (url, db, broker, stop) = (
        setup.bridge.base.clone(),
        &setup.db,
        &mut setup.broker,
        setup.stop.clone(),
    );
    let http = reqwest::Client::new();
    // Set once the broker is back. Each client then keeps sending until one
    // of its commands is accepted, within a bound of many reconnect backoffs:
    // a fixed window after the restart could fall inside a backoff sleep.
    let resumed = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..6)
        .map(|k| {
            let http = http.clone();
            let url = url.clone();
            let resumed = resumed.clone();
            tokio::spawn(async move {
                let mut answers: BTreeMap<u16, u32> = BTreeMap::new();
                let mut accepted_after_restart = false;
                let mut deadline = None;
                loop {
                    let back = resumed.load(Ordering::SeqCst);
                    if back && deadline.is_none() {
                        deadline = Some(tokio::time::Instant::now() + Duration::from_secs(60));
                    }
                    if deadline.is_some_and(|d| tokio::time::Instant::now() > d) {
                        break;
                    }
                    let node = ["nd-ph-1", "nd-ph-2", "nd-ec-3", "nd-ec-4"][k % 4];
                    let r = http
                        .post(format!("{url}/bridge/nodes/{node}/commands"))
                        .json(&json!({"cmd": "ping", "channel": if node.starts_with("nd-ph") { "pump_acid" } else { "pump_nutrients" }}))
                        .send()
                        .await;
                    let status = r.map(|r| r.status().as_u16()).unwrap_or(0);
                    *answers.entry(status).or_default() += 1;
                    if status == 200 && back {
                        accepted_after_restart = true;
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                (answers, accepted_after_restart)
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(2)).await;
    broker.kill();
    tokio::time::sleep(Duration::from_secs(5)).await;
    broker.resume().await;
    resumed.store(true, Ordering::SeqCst);

    let mut answers: BTreeMap<u16, u32> = BTreeMap::new();
    let mut accepted_after_restart = 0;
    for c in clients {
        let (a, ok) = c.await.unwrap();
        accepted_after_restart += u32::from(ok);
        for (k, v) in a {
            *answers.entry(k).or_default() += v;
        }
    }
    assert!(
        answers.keys().all(|s| [200, 503].contains(s)),
        "only 200 or 503 answers: {answers:?}"
    );
    assert!(
        answers.get(&503).copied().unwrap_or(0) > 0,
        "the outage was seen: {answers:?}"
    );
    assert_eq!(
        accepted_after_restart, 6,
        "every client's commands are accepted again after the broker is back: {answers:?}"
    );

    let settled = eventually(Duration::from_secs(30), || async {
        let open: i64 =
            sqlx::query_scalar("SELECT count(*) FROM commands WHERE finished_at IS NULL")
                .fetch_one(&db.pool)
                .await
                .unwrap();
        (open == 0).then_some(())
    })
    .await;
    let counts: Vec<(String, i64)> =
        sqlx::query_as("SELECT status, count(*) FROM commands GROUP BY status ORDER BY status")
            .fetch_all(&db.pool)
            .await
            .unwrap();
    assert!(settled.is_some(), "commands left unfinished: {counts:?}");
    for (status, _) in &counts {
        assert!(
            ["DONE", "TIMEOUT", "SEND_FAILED"].contains(&status.as_str()),
            "{counts:?}"
        );
    }
    let count_of = |s: &str| counts.iter().find(|(k, _)| k == s).map_or(0, |(_, n)| *n);
    assert_eq!(
        count_of("SEND_FAILED"),
        i64::from(answers.get(&503).copied().unwrap_or(0)),
        "each 503 is one SEND_FAILED row: {counts:?}"
    );
    assert!(count_of("DONE") > 0, "{counts:?}");
    stop.cancel();
}

struct Bridge(Child);

impl Drop for Bridge {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_bridge(db: &TestDb, broker: &TestBroker) -> Bridge {
    let child = Command::new(env!("CARGO_BIN_EXE_mqtt-bridge"))
        .env_clear()
        .env("DATABASE_URL", &db.url)
        .env("MQTT_PORT", broker.port.to_string())
        .env("MQTT_USER", testkit::backend_login().user)
        .env("MQTT_PASS", testkit::backend_login().pass)
        .env("HTTP_PORT", free_port().to_string())
        .env("COMMAND_TIMEOUT_SEC", "1")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the mqtt-bridge binary");
    Bridge(child)
}

async fn lease_holder(db: &TestDb) -> Option<String> {
    sqlx::query_scalar("SELECT holder FROM leases WHERE name = $1 AND expires_at > now()")
        .bind(mqtt_bridge::sweeper::LEASE_NAME)
        .fetch_optional(&db.pool)
        .await
        .unwrap()
}

/// Two bridge processes; the one holding the sweeper lease is killed with
/// SIGKILL. The other takes the lease within seconds and sweeps.
#[tokio::test]
async fn killing_the_sweeping_bridge_hands_sweeping_to_the_other() {
    let db = TestDb::new().await;
    helpers::seed(&db.pool).await;
    let broker = TestBroker::start().await;
    let mut bridges = [start_bridge(&db, &broker), start_bridge(&db, &broker)];
    let holder = eventually(Duration::from_secs(30), || lease_holder(&db))
        .await
        .expect("one bridge takes the lease");
    let pid_of = |holder: &str| {
        holder
            .split(':')
            .nth(1)
            .and_then(|p| p.parse::<u32>().ok())
            .expect("holder names its pid")
    };
    let killed = pid_of(&holder);
    let victim = bridges
        .iter_mut()
        .position(|b| b.0.id() == killed)
        .expect("the holder is one of ours");
    bridges[victim].0.kill().unwrap(); // SIGKILL: no release, the lease must expire
    bridges[victim].0.wait().unwrap();

    // A command stuck in SENT, as if sent just before the crash.
    sqlx::query(
        "INSERT INTO commands (cmd_id, zone_id, node_id, channel, cmd, status, source, created_at, sent_at) \
         SELECT 'orphan', zone_id, id, 'pump_acid', 'run_pump', 'SENT', 'api', now() - interval '1 minute', now() - interval '1 minute' \
         FROM nodes WHERE uid = 'nd-ph-1'",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    let survivor = bridges[1 - victim].0.id();
    let new_holder = eventually(Duration::from_secs(30), || async {
        lease_holder(&db).await.filter(|h| pid_of(h) == survivor)
    })
    .await;
    assert!(
        new_holder.is_some(),
        "the surviving bridge takes over the lease"
    );
    let swept = eventually(Duration::from_secs(15), || async {
        let s: String = sqlx::query_scalar("SELECT status FROM commands WHERE cmd_id = 'orphan'")
            .fetch_one(&db.pool)
            .await
            .unwrap();
        (s == "TIMEOUT").then_some(())
    })
    .await;
    assert!(swept.is_some(), "the survivor sweeps the orphaned command");
}
