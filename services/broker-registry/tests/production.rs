//! `HYDRO_ENV=production` at process level: the binary refuses to start on
//! development defaults, naming each variable, before it touches anything.

use std::process::Command;
use std::time::{Duration, Instant};

/// Runs the binary with exactly `vars`; its exit status and stderr. A start
/// that passes the check would go on to wait for the database: the run is cut
/// after 5 s, which the test reports as a start.
fn run(vars: &[(&str, &str)]) -> (Option<i32>, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_broker-registry"))
        .env_clear()
        .envs(vars.iter().copied())
        .env("HTTP_PORT", "0")
        // Nothing listens here: a start that got past the check fails fast.
        .env("PG_PORT", "1")
        .env("MQTT_PORT", "1")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the binary runs");
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(5) {
        if child.try_wait().expect("wait").is_some() {
            let out = child.wait_with_output().expect("output");
            return (
                out.status.code(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().ok();
    let out = child.wait_with_output().expect("output");
    (None, String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn production_refuses_to_start_on_dev_defaults() {
    let (code, stderr) = run(&[("HYDRO_ENV", "production")]);
    assert_ne!(code, Some(0), "{stderr}");
    assert!(code.is_some(), "it did not exit: {stderr}");
    for name in [
        "HYDRO_ENV=production",
        "MQTT_USER",
        "MQTT_PASS",
        "PG_PASS",
        "NODE_DEFAULT_SECRET",
        "BROKER_REGISTRY_API_TOKEN",
    ] {
        assert!(stderr.contains(name), "{name} not named: {stderr}");
    }

    // The dev token of `make up` is refused by name too.
    let (code, stderr) = run(&[
        ("HYDRO_ENV", "production"),
        ("MQTT_USER", "hydro-broker-registry"),
        ("MQTT_PASS", "b7d1e0f3a9c2-broker-pass"),
        ("PG_PASS", "pg-real-pass-4e1"),
        ("NODE_DEFAULT_SECRET", "node-secret-81b2c3"),
        ("BRIDGE_API_TOKEN", "dev-token"),
    ]);
    assert!(code.is_some_and(|c| c != 0), "{stderr}");
    assert!(stderr.contains("BRIDGE_API_TOKEN"), "{stderr}");
    assert!(!stderr.contains("NODE_DEFAULT_SECRET"), "{stderr}");
    assert!(
        !stderr.contains("dev-token"),
        "a secret was printed: {stderr}"
    );
}

#[test]
fn production_with_real_secrets_passes_the_check() {
    let (_, stderr) = run(&[
        ("HYDRO_ENV", "production"),
        ("MQTT_USER", "hydro-broker-registry"),
        ("MQTT_PASS", "b7d1e0f3a9c2-broker-pass"),
        ("PG_PASS", "pg-real-pass-4e1"),
        ("NODE_DEFAULT_SECRET", "node-secret-81b2c3"),
        ("BROKER_REGISTRY_API_TOKEN", "3f0c9a7e5b1d-registry"),
    ]);
    assert!(
        !stderr.contains("refuses to start"),
        "real secrets were refused: {stderr}"
    );
}
