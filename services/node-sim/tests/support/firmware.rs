//! Firmware-mode helpers: the backend's time service played by the test, a
//! firmware node booted on a broker, commands signed as the firmware
//! verifies them, and waits for what it publishes.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use hmac::{Hmac, Mac};
use node_sim::settings::SimMode;
use node_sim::{App, FirmwareNode, SimSettings};
use proto::payloads::{CommandResponse, ResponseStatus, TimeResponse};
use proto::topics::{TIME_REQUEST, TIME_RESPONSE};
use sha2::Sha256;
use testkit::{StopOnDrop, eventually};
use tokio_util::sync::DropGuard;

use super::{Recorder, Seen, WAIT, listener, now_secs, settings};

pub const NEW_SECRET: &str = "nd-x-secret-of-at-least-32-characters!!";

/// The backend's time service on one broker: answers every
/// `hydro/time/request` with the current time once `answering` is set.
pub struct TimeResponder {
    answering: Arc<AtomicBool>,
    _stop: DropGuard,
}

impl TimeResponder {
    pub async fn start(url: &str, answering: bool) -> TimeResponder {
        let (conn, mut rx, stop) = listener(url, ("time", "time-responder"), TIME_REQUEST).await;
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
            _stop: stop,
        }
    }

    pub fn answer(&self) {
        self.answering.store(true, Ordering::SeqCst);
    }
}

/// A NodeConfig as device-registry pushes it: pH node `node_id` in
/// gh-1/zn-1 with its sensor and acid pump, on 127.0.0.1:`port` (`login`
/// adds to its `mqtt` section), with `secret`.
pub fn ph_config(node_id: &str, port: u16, login: serde_json::Value, secret: &str) -> String {
    let mut mqtt = serde_json::json!({"host": "127.0.0.1", "port": port, "keepalive": 30});
    if let (Some(section), Some(more)) = (mqtt.as_object_mut(), login.as_object()) {
        section.extend(more.clone());
    }
    serde_json::json!({
        "node_id": node_id, "version": 3, "type": "ph", "gh_uid": "gh-1", "zone_uid": "zn-1",
        "channels": [
            {"name": "ph_sensor", "type": "SENSOR", "metric": "PH", "unit": "pH", "poll_interval_ms": 3000},
            {"name": "pump_acid", "type": "ACTUATOR", "actuator_type": "PUMP"}
        ],
        "wifi": {"configured": true},
        "mqtt": mqtt,
        "node_secret": secret
    })
    .to_string()
}

pub struct Running {
    pub node: FirmwareNode,
    pub port: u16,
    stop: StopOnDrop,
    app: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl Running {
    /// Stops the simulator cleanly and waits for it.
    pub async fn stop(mut self) {
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

/// One pH firmware node on `url`, with a hardware seed of the test's own.
pub async fn boot(url: &str) -> Running {
    boot_with(url, &format!("t-{}", uuid::Uuid::new_v4().simple()), None).await
}

pub async fn boot_with(url: &str, seed: &str, state_dir: Option<&std::path::Path>) -> Running {
    boot_custom(url, seed, state_dir, |_| {}, settings(&[])).await
}

pub async fn boot_custom(
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
    let stop = StopOnDrop::new();
    let app = tokio::spawn(app.run_until_stopped(stop.clone()));
    Running {
        node,
        port,
        stop,
        app: Some(app),
    }
}

pub fn hmac_hex(secret: &str, text: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(text.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// A `dose` of `{"ml": 2.0}` signed as the firmware verifies it: over the
/// canonical text, where cJSON prints 2.0 as `2`.
pub fn dose_command(cmd_id: &str, ts: i64, secret: &str) -> Vec<u8> {
    let canonical =
        format!(r#"{{"cmd":"dose","cmd_id":"{cmd_id}","params":{{"ml":2}},"ts":{ts}}}"#);
    let sig = hmac_hex(secret, &canonical);
    format!(r#"{{"cmd_id":"{cmd_id}","cmd":"dose","params":{{"ml":2.0}},"ts":{ts},"sig":"{sig}"}}"#)
        .into_bytes()
}

pub fn responses(seen: &[Seen], cmd_id: &str) -> Vec<CommandResponse> {
    seen.iter()
        .filter(|s| s.topic.ends_with("/command_response"))
        .filter_map(|s| CommandResponse::decode(&s.payload).ok())
        .filter(|r| r.cmd_id == cmd_id)
        .collect()
}

pub async fn wait_response(r: &Recorder, cmd_id: &str, status: ResponseStatus) -> CommandResponse {
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
pub async fn retained(url: &str, topic: &str) -> Seen {
    let late = Recorder::start(url, topic).await;
    eventually(WAIT, || async {
        late.seen.lock().unwrap().iter().find(|s| s.retain).cloned()
    })
    .await
    .unwrap_or_else(|| panic!("nothing retained on {topic}"))
}

pub async fn wait_seen(r: &Recorder, what: &str, check: impl Fn(&Seen) -> bool) -> Seen {
    eventually(WAIT, || async {
        r.seen.lock().unwrap().iter().find(|s| check(s)).cloned()
    })
    .await
    .unwrap_or_else(|| panic!("never saw {what}"))
}
