//! Firmware mode against real (private) brokers, with a tiny backend played
//! by the test: it answers time requests when told to and pushes NodeConfigs.
//! What is checked is what a backend would see on the brokers.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use common::QoS;
use common::mqtt::{MqttConfig, MqttConnection};
use common::settings::DEV_NODE_SECRET;
use hmac::{Hmac, Mac};
use node_sim::settings::SimMode;
use node_sim::{App, FirmwareNode, SimSettings};
use proto::payloads::{
    CommandResponse, NodeConfig, NodeHello, NodeState, ResponseStatus, Status, Telemetry,
    TimeResponse,
};
use proto::topics::{TIME_REQUEST, TIME_RESPONSE};
use serde_json::{Value, json};
use sha2::Sha256;
use support::{Recorder, Seen, WAIT, new_cmd_id, now_secs, settings};
use testkit::{TestBroker, TestDb, eventually};
use tokio::sync::mpsc;
use tokio_util::sync::{CancellationToken, DropGuard};

use proto::topics::GLOBAL_NODE_HELLO;

const NEW_SECRET: &str = "nd-x-secret-of-at-least-32-characters!!";

/// The backend's time service on one broker: answers every
/// `hydro/time/request` with the current time once `answering` is set.
struct TimeResponder {
    answering: Arc<AtomicBool>,
    _stop: DropGuard,
}

impl TimeResponder {
    async fn start(url: &str, answering: bool) -> TimeResponder {
        let stop = CancellationToken::new();
        let (tx, mut rx) = mpsc::channel(256);
        let conn = MqttConnection::start(
            testkit::login(MqttConfig::new("time", url, "time-responder")),
            Some(tx),
            stop.clone(),
        )
        .unwrap();
        conn.subscribe(TIME_REQUEST, QoS::AtLeastOnce).unwrap();
        conn.wait_connected(WAIT).await.unwrap();
        let flag = Arc::new(AtomicBool::new(answering));
        let on = flag.clone();
        tokio::spawn(async move {
            while let Some(_request) = rx.recv().await {
                if on.load(Ordering::SeqCst) {
                    let answer = serde_json::to_vec(&TimeResponse::at(now_secs())).unwrap();
                    let _ = conn.publish(TIME_RESPONSE, answer, false).await;
                }
            }
        });
        TimeResponder {
            answering: flag,
            _stop: stop.drop_guard(),
        }
    }

    fn answer(&self) {
        self.answering.store(true, Ordering::SeqCst);
    }
}

struct Running {
    node: FirmwareNode,
    port: u16,
    stop: CancellationToken,
    app: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl Running {
    /// Stops the simulator cleanly and waits for it.
    async fn stop(mut self) {
        self.stop.cancel();
        if let Some(app) = self.app.take() {
            tokio::time::timeout(WAIT, app)
                .await
                .expect("stops in time")
                .unwrap()
                .unwrap();
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// One pH firmware node on `url`, with a hardware seed of the test's own.
async fn boot(url: &str) -> Running {
    boot_with(url, &format!("t-{}", uuid::Uuid::new_v4().simple()), None).await
}

async fn boot_with(url: &str, seed: &str, state_dir: Option<&std::path::Path>) -> Running {
    boot_custom(url, seed, state_dir, |_| {}, settings(&[])).await
}

async fn boot_custom(
    url: &str,
    seed: &str,
    state_dir: Option<&std::path::Path>,
    adjust: impl FnOnce(&mut SimSettings),
    shared: common::settings::Settings,
) -> Running {
    let mut sim = SimSettings {
        mode: SimMode::Firmware,
        zones: 1,
        nodes: 1,
        telemetry_interval_ms: 200,
        heartbeat_interval_ms: 300,
        time_retry_ms: 300,
        hardware_seed: seed.to_owned(),
        state_dir: state_dir.map(ToOwned::to_owned),
        broker_url: Some(url.to_owned()),
        ..SimSettings::default()
    };
    adjust(&mut sim);
    let app = App::build(sim, shared).await.expect("app builds");
    assert!(app.nodes().is_empty(), "no classic node in firmware mode");
    let node = app.firmware_nodes()[0].clone();
    let port = app.port();
    let stop = CancellationToken::new();
    let app = tokio::spawn(app.run_until_stopped(stop.clone()));
    Running {
        node,
        port,
        stop,
        app: Some(app),
    }
}

fn hmac_hex(secret: &str, text: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(text.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// A `dose` of `{"ml": 2.0}` signed as the firmware verifies it: over the
/// canonical text, where cJSON prints 2.0 as `2`.
fn dose_command(cmd_id: &str, ts: i64, secret: &str) -> Vec<u8> {
    let canonical =
        format!(r#"{{"cmd":"dose","cmd_id":"{cmd_id}","params":{{"ml":2}},"ts":{ts}}}"#);
    let sig = hmac_hex(secret, &canonical);
    format!(r#"{{"cmd_id":"{cmd_id}","cmd":"dose","params":{{"ml":2.0}},"ts":{ts},"sig":"{sig}"}}"#)
        .into_bytes()
}

fn responses(seen: &[Seen], cmd_id: &str) -> Vec<CommandResponse> {
    seen.iter()
        .filter(|s| s.topic.ends_with("/command_response"))
        .filter_map(|s| CommandResponse::decode(&s.payload).ok())
        .filter(|r| r.cmd_id == cmd_id)
        .collect()
}

async fn wait_response(r: &Recorder, cmd_id: &str, status: ResponseStatus) -> CommandResponse {
    eventually(WAIT, || async {
        responses(&r.seen.lock().unwrap(), cmd_id)
            .into_iter()
            .find(|x| x.status == status)
    })
    .await
    .unwrap_or_else(|| {
        panic!(
            "{cmd_id}: no {status:?}; got {:?}",
            responses(&r.seen.lock().unwrap(), cmd_id)
        )
    })
}

/// Whether `topic` holds a retained message: what a late subscriber gets.
async fn retained(url: &str, topic: &str) -> Seen {
    let late = Recorder::start(url, topic).await;
    eventually(WAIT, || async {
        late.seen.lock().unwrap().iter().find(|s| s.retain).cloned()
    })
    .await
    .unwrap_or_else(|| panic!("nothing retained on {topic}"))
}

async fn wait_seen(r: &Recorder, what: &str, check: impl Fn(&Seen) -> bool) -> Seen {
    eventually(WAIT, || async {
        r.seen.lock().unwrap().iter().find(|s| check(s)).cloned()
    })
    .await
    .unwrap_or_else(|| panic!("never saw {what}"))
}

#[tokio::test]
async fn an_unbound_node_says_nothing_with_a_ts_until_it_has_the_time() {
    let broker = TestBroker::start().await;
    let backend = TimeResponder::start(&broker.url(), false).await;
    let all = Recorder::start(&broker.url(), "hydro/#").await;
    let r = boot(&broker.url()).await;
    let hw = r.node.hardware_id().to_owned();
    assert!(hw.starts_with("esp32-") && hw.len() == 18, "{hw}");
    let temp = format!("hydro/gh-temp/zn-temp/{hw}");

    // Hello on the global topic, as the firmware sends it.
    let hello = wait_seen(&all, "node_hello", |s| s.topic == "hydro/node_hello").await;
    let hello = NodeHello::decode(&hello.payload).unwrap();
    assert_eq!(hello.hardware_id, hw);
    assert_eq!(hello.node_type.as_deref(), Some("ph"));
    assert!(hello.fw_version.is_some());
    assert!(hello.capabilities.contains(&"ph".to_owned()));
    assert!(!hello.capabilities.iter().any(|c| c == "config_update"));
    assert_eq!(hello.extra["message_type"], "node_hello");

    // Unanswered, it keeps asking; two requests span a telemetry period.
    eventually(WAIT, || async {
        (all.with_suffix(TIME_REQUEST).len() >= 3).then_some(())
    })
    .await
    .expect("time requests repeated");
    let request: Value = serde_json::from_slice(&all.with_suffix(TIME_REQUEST)[0].payload).unwrap();
    assert_eq!(request["message_type"], "time_request");

    // A command now is refused: the node cannot judge its ts.
    let cmd_id = new_cmd_id();
    let payload = dose_command(&cmd_id, now_secs(), DEV_NODE_SECRET);
    all.conn
        .publish(&format!("{temp}/pump_acid/command"), payload, false)
        .await
        .unwrap();
    let refused = wait_response(&all, &cmd_id, ResponseStatus::Error).await;
    assert_eq!(refused.error_code.as_deref(), Some("time_not_synced"));
    assert_eq!(responses(&all.seen.lock().unwrap(), &cmd_id).len(), 1);
    assert!(r.node.is_connected());
    assert!(!r.node.is_time_synced());
    {
        let seen = all.seen.lock().unwrap();
        let early: Vec<&str> = seen
            .iter()
            .filter(|s| {
                ["/status", "/telemetry", "/heartbeat", "/config_report"]
                    .iter()
                    .any(|k| s.topic.ends_with(k))
            })
            .map(|s| s.topic.as_str())
            .collect();
        assert!(
            early.is_empty(),
            "published before the time sync: {early:?}"
        );
    }

    // The backend answers: ONLINE (retained), its config report and
    // telemetry, all in the temp namespace.
    backend.answer();
    wait_seen(&all, "status", |s| s.topic == format!("{temp}/status")).await;
    let status = retained(&broker.url(), &format!("{temp}/status")).await;
    assert_eq!(
        Status::decode(&status.payload).unwrap().status,
        NodeState::Online
    );
    let ph = wait_seen(&all, "pH telemetry", |s| {
        s.topic == format!("{temp}/ph_sensor/telemetry")
    })
    .await;
    let t = Telemetry::decode(&ph.payload, 0).unwrap();
    assert!((t.ts - now_secs()).abs() < 60, "{}", t.ts);
    assert!((3.5..=9.0).contains(&t.value));
    let report = wait_seen(&all, "config_report", |s| {
        s.topic == format!("{temp}/config_report")
    })
    .await;
    let report = NodeConfig::decode(&report.payload).unwrap();
    assert_eq!(
        (
            report.node_id.as_str(),
            report.gh_uid.as_str(),
            report.zone_uid.as_str()
        ),
        (hw.as_str(), "gh-temp", "zn-temp")
    );
    assert!(report.channels.iter().any(|c| c.name == "pump_acid"));
    assert!(r.node.is_time_synced());

    // Synced, a command signed with the default secret runs.
    let cmd_id = new_cmd_id();
    all.conn
        .publish(
            &format!("{temp}/pump_acid/command"),
            dose_command(&cmd_id, now_secs(), DEV_NODE_SECRET),
            false,
        )
        .await
        .unwrap();
    let done = wait_response(&all, &cmd_id, ResponseStatus::Done).await;
    assert!(
        (done.ts / 1000 - now_secs()).abs() < 60,
        "ts in ms: {}",
        done.ts
    );
}

#[tokio::test]
async fn a_pushed_config_binds_and_moves_the_node_to_another_broker() {
    let (b1, b2) = (TestBroker::start().await, TestBroker::start().await);
    let _t1 = TimeResponder::start(&b1.url(), true).await;
    let _t2 = TimeResponder::start(&b2.url(), true).await;
    let on_b1 = Recorder::start(&b1.url(), "hydro/#").await;
    let on_b2 = Recorder::start(&b2.url(), "hydro/gh-1/zn-1/nd-x/#").await;
    let r = boot(&b1.url()).await;
    let hw = r.node.hardware_id().to_owned();
    let temp = format!("hydro/gh-temp/zn-temp/{hw}");
    wait_seen(&on_b1, "ONLINE", |s| s.topic == format!("{temp}/status")).await;

    // A move by config/update is not for this node: it stays where it is.
    on_b1
        .conn
        .publish(
            &format!("nodes/{hw}/config/update"),
            json!({"mqtt_broker": b2.url(), "broker_id": "b2", "fallback": [], "ts": now_secs()})
                .to_string(),
            true,
        )
        .await
        .unwrap();

    let config = json!({
        "node_id": "nd-x", "version": 3, "type": "ph", "gh_uid": "gh-1", "zone_uid": "zn-1",
        "channels": [
            {"name": "ph_sensor", "type": "SENSOR", "metric": "PH", "unit": "pH", "poll_interval_ms": 3000},
            {"name": "pump_acid", "type": "ACTUATOR", "actuator_type": "PUMP"}
        ],
        "wifi": {"configured": true},
        "mqtt": {"host": "127.0.0.1", "port": b2.port, "keepalive": 30},
        "node_secret": NEW_SECRET
    });
    on_b1
        .conn
        .publish(&format!("{temp}/config"), config.to_string(), false)
        .await
        .unwrap();

    let ns = "hydro/gh-1/zn-1/nd-x";
    let report = wait_seen(&on_b2, "config_report", |s| {
        s.topic == format!("{ns}/config_report")
    })
    .await;
    let raw: Value = serde_json::from_slice(&report.payload).unwrap();
    assert!(raw.get("node_secret").is_none(), "{raw}");
    let report = NodeConfig::decode(&report.payload).unwrap();
    assert_eq!(report.node_id, "nd-x");
    assert!(report.fw_version.is_some());
    assert_eq!(report.mqtt["port"], b2.port);
    wait_seen(&on_b2, "ONLINE on b2", |s| {
        s.topic == format!("{ns}/status")
    })
    .await;
    let status = retained(&b2.url(), &format!("{ns}/status")).await;
    assert_eq!(
        Status::decode(&status.payload).unwrap().status,
        NodeState::Online
    );
    wait_seen(&on_b2, "telemetry on b2", |s| {
        s.topic == format!("{ns}/ph_sensor/telemetry")
    })
    .await;
    assert_eq!(r.node.broker_url().as_deref(), Some(b2.url().as_str()));
    assert_eq!(r.node.namespace().node, "nd-x");
    // It left b1 cleanly: no last will there.
    assert!(on_b1.with_suffix("/lwt").is_empty());

    let command = |cmd_id: &str, ts: i64, secret: &str| {
        let payload = dose_command(cmd_id, ts, secret);
        let conn = on_b2.conn.clone();
        async move {
            conn.publish(&format!("{ns}/pump_acid/command"), payload, false)
                .await
                .unwrap();
        }
    };

    let good = new_cmd_id();
    command(&good, now_secs(), NEW_SECRET).await;
    let ack = wait_response(&on_b2, &good, ResponseStatus::Ack).await;
    let done = wait_response(&on_b2, &good, ResponseStatus::Done).await;
    assert!(ack.ts <= done.ts);
    assert_eq!(r.node.commands_executed(), 1);

    let wrong = new_cmd_id();
    command(&wrong, now_secs(), DEV_NODE_SECRET).await;
    let refused = wait_response(&on_b2, &wrong, ResponseStatus::Error).await;
    assert_eq!(refused.error_code.as_deref(), Some("invalid_signature"));

    let stale = new_cmd_id();
    command(&stale, now_secs() - 30, NEW_SECRET).await;
    let refused = wait_response(&on_b2, &stale, ResponseStatus::Error).await;
    assert_eq!(refused.error_code.as_deref(), Some("timestamp_expired"));
    assert_eq!(r.node.commands_executed(), 1);
    assert_eq!(r.node.broker_url().as_deref(), Some(b2.url().as_str()));
}

#[tokio::test]
async fn a_restarted_node_keeps_its_binding_and_an_unbind_sends_it_back() {
    let broker = TestBroker::start().await;
    let _backend = TimeResponder::start(&broker.url(), true).await;
    let dir =
        std::env::temp_dir().join(format!("node-sim-state-{}", uuid::Uuid::new_v4().simple()));
    let seed = format!("t-{}", uuid::Uuid::new_v4().simple());
    let first = Recorder::start(&broker.url(), "hydro/#").await;
    let r = boot_with(&broker.url(), &seed, Some(&dir)).await;
    let hw = r.node.hardware_id().to_owned();
    let temp = format!("hydro/gh-temp/zn-temp/{hw}");
    wait_seen(&first, "ONLINE", |s| s.topic == format!("{temp}/status")).await;

    // Bound in place (same broker): the report comes from the new namespace.
    let ns = "hydro/gh-1/zn-2/nd-y";
    let config = |gh: &str, zone: &str, node: &str| {
        json!({
            "node_id": node, "version": 3, "type": "ph", "gh_uid": gh, "zone_uid": zone,
            "channels": [{"name": "ph_sensor", "type": "SENSOR", "metric": "PH", "unit": "pH"}],
            "wifi": {"configured": true},
            "mqtt": {"host": "127.0.0.1", "port": broker.port, "keepalive": 30},
            "node_secret": NEW_SECRET
        })
        .to_string()
    };
    first
        .conn
        .publish(
            &format!("{temp}/config"),
            config("gh-1", "zn-2", "nd-y"),
            false,
        )
        .await
        .unwrap();
    wait_seen(&first, "config_report", |s| {
        s.topic == format!("{ns}/config_report")
    })
    .await;
    // The same config naming another broker is "unchanged" to the firmware
    // (it compares without wifi/mqtt): reported again from here, not applied.
    let elsewhere =
        config("gh-1", "zn-2", "nd-y").replace(&format!("\"port\":{}", broker.port), "\"port\":1");
    assert!(
        elsewhere.contains("\"port\":1,") || elsewhere.contains("\"port\":1}"),
        "{elsewhere}"
    );
    first
        .conn
        .publish(&format!("{ns}/config"), elsewhere, false)
        .await
        .unwrap();
    eventually(WAIT, || async {
        (first.with_suffix(&format!("{ns}/config_report")).len() >= 2).then_some(())
    })
    .await
    .expect("a second config_report");
    for report in first.with_suffix(&format!("{ns}/config_report")) {
        let report = NodeConfig::decode(&report.payload).unwrap();
        assert_eq!(report.mqtt["port"], broker.port);
    }
    assert_eq!(r.node.broker_url(), Some(broker.url()));

    let saved = std::fs::read_to_string(dir.join(format!("{hw}.json"))).expect("config saved");
    assert!(
        saved.contains(NEW_SECRET) && saved.contains("nd-y"),
        "{saved}"
    );
    let listed: Vec<Value> =
        reqwest::get(format!("http://127.0.0.1:{}/sim/firmware-nodes", r.port))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    assert_eq!(listed[0]["hardware_id"], hw);
    assert_eq!(listed[0]["bound"], true);
    assert_eq!(listed[0]["node"], "nd-y");
    r.stop().await;

    // Restarted with the same seed and state: bound at once, no hello.
    let second = Recorder::start(&broker.url(), "hydro/#").await;
    let r = boot_with(&broker.url(), &seed, Some(&dir)).await;
    assert_eq!(r.node.hardware_id(), hw);
    assert_eq!(r.node.namespace().node, "nd-y");
    let live = |s: &Seen, topic: &str| !s.retain && s.topic == topic;
    wait_seen(&second, "ONLINE after restart", |s| {
        live(s, &format!("{ns}/status"))
    })
    .await;
    assert!(
        second.with_suffix(GLOBAL_NODE_HELLO).is_empty(),
        "a bound node says no hello"
    );

    // An unbind (a temp config while bound): back to the temp namespace.
    second
        .conn
        .publish(
            &format!("{ns}/config"),
            config("gh-temp", "zn-temp", &hw),
            false,
        )
        .await
        .unwrap();
    wait_seen(&second, "ONLINE in the temp namespace", |s| {
        live(s, &format!("{temp}/status"))
    })
    .await;
    let hello = wait_seen(&second, "hello after the unbind", |s| {
        s.topic == GLOBAL_NODE_HELLO
    })
    .await;
    assert_eq!(NodeHello::decode(&hello.payload).unwrap().hardware_id, hw);
    assert!(r.node.namespace().is_temp());
    r.stop().await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn seeding_in_firmware_mode_writes_the_zones_but_no_node() {
    let db = TestDb::new().await;
    let broker = TestBroker::start().await;
    let greenhouse = format!("gh-t{}", &uuid::Uuid::new_v4().simple().to_string()[..10]);
    let gh = greenhouse.clone();
    let r = boot_custom(
        &broker.url(),
        "seeded",
        None,
        move |sim| {
            sim.seed_db = true;
            sim.greenhouse = gh;
            sim.zones = 2;
            sim.nodes = 3;
        },
        settings(&[("DATABASE_URL", &db.url)]),
    )
    .await;
    let count = |sql: &'static str| {
        let pool = db.pool.clone();
        async move {
            let (n,): (i64,) = sqlx::query_as(sql).fetch_one(&pool).await.unwrap();
            n
        }
    };
    assert_eq!(count("SELECT count(*) FROM zones").await, 2);
    assert_eq!(count("SELECT count(*) FROM greenhouses").await, 1);
    assert_eq!(count("SELECT count(*) FROM nodes").await, 0);
    let (uid,): (String,) = sqlx::query_as("SELECT uid FROM greenhouses")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(uid, greenhouse);
    assert!(!r.node.namespace().node.is_empty());
    r.stop().await;
}
