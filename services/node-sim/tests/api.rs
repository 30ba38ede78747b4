//! The simulator's HTTP API under issue 11's trust rules: the fault switches
//! need `SIM_API_TOKEN`, reads stay open unless configured otherwise, every
//! error is JSON, and production refuses the dev defaults.

mod support;

use node_sim::{App, SimSettings};
use secrecy::SecretString;
use serde_json::Value;
use support::{TestSim, settings, sim_settings};

const TOKEN: &str = "sim-test-token";

fn with_token(mut sim: SimSettings) -> SimSettings {
    sim.api_token = Some(SecretString::from(TOKEN));
    sim
}

async fn faults(sim: &TestSim, token: Option<&str>) -> (u16, Value) {
    let mut r = sim.http.get(sim.url("/sim/faults"));
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    let r = r.send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

async fn put_faults(sim: &TestSim, body: &str, token: Option<&str>) -> (u16, Value) {
    let mut r = sim
        .http
        .put(sim.url("/sim/faults"))
        .header("content-type", "application/json")
        .body(body.to_owned());
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    let r = r.send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn fault_switches_need_the_token() {
    let mut sim = TestSim::start_with(with_token(sim_settings(1, 1)), settings(&[])).await;
    let (status, before) = faults(&sim, None).await;
    assert_eq!(status, 200, "reads are open by default");
    for token in [None, Some("wrong")] {
        let (status, answer) = put_faults(&sim, r#"{"drop_responses":1.0}"#, token).await;
        assert_eq!(status, 401, "{answer}");
        assert_eq!(answer["code"], "unauthorized", "{answer}");
    }
    assert_eq!(
        faults(&sim, None).await.1,
        before,
        "a refused write changed the faults"
    );
    let (status, answer) = put_faults(&sim, r#"{"drop_responses":1.0}"#, Some(TOKEN)).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(faults(&sim, None).await.1["drop_responses"], 1.0);

    // Errors are JSON, in the one shape.
    for (body, status, code) in [
        ("{", 400, "invalid_json"),
        (r#"{"drop_responses":2}"#, 400, "invalid_field"),
        (r#"{"nope":1}"#, 400, "unknown_field"),
    ] {
        let (got, answer) = put_faults(&sim, body, Some(TOKEN)).await;
        assert_eq!(
            (got, answer["code"].as_str()),
            (status, Some(code)),
            "{body}: {answer}"
        );
        assert_eq!(answer["status"], "error");
    }
    for (method, path, status, code) in [
        (reqwest::Method::GET, "/sim/nope", 404, "route_not_found"),
        // A method no route takes is 405 with or without a token.
        (
            reqwest::Method::DELETE,
            "/sim/faults",
            405,
            "method_not_allowed",
        ),
        (
            reqwest::Method::POST,
            "/sim/nodes",
            405,
            "method_not_allowed",
        ),
    ] {
        let r = sim
            .http
            .request(method.clone(), sim.url(path))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), status, "{method} {path}");
        let answer: Value = r.json().await.unwrap();
        assert_eq!(answer["code"], code, "{method} {path}");
    }
    let r = sim
        .http
        .delete(sim.url("/sim/faults"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 405);
    assert_eq!(
        r.json::<Value>().await.unwrap()["code"],
        "method_not_allowed"
    );
    sim.stop().await;
}

#[tokio::test]
async fn reads_can_be_guarded() {
    let mut sim = TestSim::start_with(
        with_token(sim_settings(1, 1)),
        settings(&[("HTTP_READS_REQUIRE_TOKEN", "true")]),
    )
    .await;
    for path in ["/sim/faults", "/sim/nodes", "/sim/firmware-nodes"] {
        let r = sim.http.get(sim.url(path)).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 401, "{path}");
        let r = sim
            .http
            .get(sim.url(path))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200, "{path}");
    }
    // /health is 503 until a node is connected: wait for it, then the
    // probe answers without a token.
    sim.wait_all_connected().await;
    let r = sim.http.get(sim.url("/health")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200, "probes stay open");
    sim.stop().await;
}

#[tokio::test]
async fn production_refuses_dev_defaults_naming_them() {
    let prod = settings(&[("HYDRO_ENV", "production")]);
    let Err(e) = App::build(sim_settings(1, 1), prod).await else {
        panic!("node-sim started in production on dev defaults");
    };
    let message = format!("{e:#}");
    for name in ["NODE_DEFAULT_SECRET", "SIM_API_TOKEN"] {
        assert!(message.contains(name), "{name}: {message}");
    }
    let prod = settings(&[
        ("HYDRO_ENV", "production"),
        ("NODE_DEFAULT_SECRET", "a-real-node-secret-5e6f"),
    ]);
    let mut sim = with_token(sim_settings(1, 1));
    sim.broker_url = Some("mqtt://127.0.0.1:1".into());
    let app = App::build(sim, prod).await.expect("real secrets start");
    drop(app);
}
