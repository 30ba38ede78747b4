//! Unit tests of node-sim's settings: defaults, values read, errors naming
//! their variable, and the spread of nodes over the broker list.

use super::*;

use common::settings::FromEnv;

use testkit::env_vars as vars;

#[test]
fn defaults() {
    let s = SimSettings::from_vars(vars::<&str, &str>(&[])).unwrap();
    assert_eq!(s.greenhouse, "gh-1");
    assert_eq!((s.zones, s.nodes), (3, 20));
    assert_eq!(s.telemetry_interval_ms, 5_000);
    assert_eq!(s.heartbeat_interval_ms, 15_000);
    assert!(!s.seed_db);
    assert_eq!(s.probes, 0);
    assert!(s.tcp_nodelay);
    assert_eq!(s.drop_responses, 0.0);
    assert!(s.broker_url.is_none());
    assert_eq!(s.mode, SimMode::Classic);
    assert_eq!(s.hardware_seed, "node-sim");
    assert!(s.state_dir.is_none());
    assert_eq!(s.time_retry_ms, 5_000);
    assert!(s.api_token.is_none());
    assert!(!s.fw_apply_mqtt_only);
    let shared = common::settings::Settings::from_vars(vars::<&str, &str>(&[])).unwrap();
    assert_eq!(s.broker_url_or(&shared), "mqtt://127.0.0.1:1883");
    assert_eq!(s.broker_urls_or(&shared), ["mqtt://127.0.0.1:1883"]);
}

#[test]
fn nodes_spread_over_the_broker_list() {
    let s = SimSettings::from_vars(vars(&[
        (
            "SIM_BROKER_URLS",
            "mqtt://127.0.0.1:1883, mqtt://127.0.0.1:1884,mqtt://127.0.0.1:1885",
        ),
        ("SIM_BROKER_URL", "mqtt://127.0.0.1:1999"),
    ]))
    .unwrap();
    let shared = common::settings::Settings::from_vars(vars::<&str, &str>(&[])).unwrap();
    let urls = s.broker_urls_or(&shared);
    let ports: Vec<&str> = (0..7)
        .map(|i| broker_for(&urls, i).rsplit(':').next().unwrap())
        .collect();
    assert_eq!(
        ports,
        ["1883", "1884", "1885", "1883", "1884", "1885", "1883"]
    );
    let (own, fallback) = brokers_for(&urls, 4);
    assert_eq!(own, "mqtt://127.0.0.1:1884");
    assert_eq!(fallback, ["mqtt://127.0.0.1:1885", "mqtt://127.0.0.1:1883"]);
    // Without the list, every node goes to SIM_BROKER_URL.
    let s = SimSettings::from_vars(vars(&[("SIM_BROKER_URL", "mqtt://127.0.0.1:1999")])).unwrap();
    let urls = s.broker_urls_or(&shared);
    assert!((0..4).all(|i| broker_for(&urls, i) == "mqtt://127.0.0.1:1999"));
}

#[test]
fn values_are_read() {
    let s = SimSettings::from_vars(vars(&[
        ("SIM_GREENHOUSE", "gh-test"),
        ("SIM_ZONES", "2"),
        ("SIM_NODES", "7"),
        ("SIM_SEED_DB", "true"),
        ("SIM_DROP_RESPONSES", "0.25"),
        ("SIM_RESPONSE_DELAY_MS", "100"),
        ("SIM_BROKER_URL", "mqtt://127.0.0.1:1884"),
        ("SIM_PROBES", "8"),
        ("SIM_TCP_NODELAY", "false"),
        ("SIM_MODE", "Firmware"),
        ("SIM_HARDWARE_SEED", "bench-a"),
        ("SIM_STATE_DIR", "/tmp/sim-state"),
        ("SIM_TIME_RETRY_MS", "1000"),
        ("SIM_FW_APPLY_MQTT_ONLY", "true"),
    ]))
    .unwrap();
    assert_eq!(s.mode, SimMode::Firmware);
    assert_eq!(s.hardware_seed, "bench-a");
    assert_eq!(
        s.state_dir.as_deref(),
        Some(std::path::Path::new("/tmp/sim-state"))
    );
    assert_eq!(s.time_retry_ms, 1_000);
    assert!(s.fw_apply_mqtt_only);
    assert_eq!(s.probes, 8);
    assert!(!s.tcp_nodelay);
    assert_eq!(s.greenhouse, "gh-test");
    assert_eq!((s.zones, s.nodes), (2, 7));
    assert!(s.seed_db);
    assert_eq!(s.drop_responses, 0.25);
    assert_eq!(s.response_delay_ms, 100);
    assert_eq!(s.broker_url.as_deref(), Some("mqtt://127.0.0.1:1884"));
}

#[test]
fn bad_values_name_the_variable() {
    testkit::assert_each_refused::<SimSettings>(&[
        ("SIM_ZONES", "0"),
        ("SIM_NODES", "0"),
        ("SIM_TELEMETRY_INTERVAL_MS", "5"),
        ("SIM_HEARTBEAT_INTERVAL_MS", "1"),
        ("SIM_FALLBACK_AFTER_MS", "5"),
        ("SIM_DROP_RESPONSES", "1.5"),
        ("SIM_DUPLICATE_RESPONSES", "-0.1"),
        ("SIM_RESPONSE_DELAY_MS", "9999999"),
        ("SIM_BROKER_URL", "tcp://x:1"),
        ("SIM_BROKER_URLS", "mqtt://127.0.0.1:1883,tcp://x:1"),
        ("SIM_BROKER_URLS", " , "),
        ("SIM_GREENHOUSE", "gh/1"),
        ("SIM_PROBES", "17"),
        ("SIM_TCP_NODELAY", "maybe"),
        ("SIM_MODE", "legacy"),
        ("SIM_TIME_RETRY_MS", "5"),
        ("SIM_FW_APPLY_MQTT_ONLY", "perhaps"),
    ]);
}

#[test]
fn values_are_trimmed_and_blank_is_unset() {
    let s = SimSettings::from_vars(vars(&[
        ("SIM_ZONES", " 4 "),
        ("SIM_MODE", " firmware "),
        ("SIM_TCP_NODELAY", ""),
        ("SIM_SEED_DB", " "),
        ("SIM_BROKER_URL", ""),
        ("SIM_STATE_DIR", " "),
        ("SIM_API_TOKEN", ""),
    ]))
    .unwrap();
    assert_eq!(s.zones, 4);
    assert_eq!(s.mode, SimMode::Firmware);
    assert!(s.tcp_nodelay, "blank is unset: the default, true");
    assert!(!s.seed_db);
    assert!(s.broker_url.is_none());
    assert!(s.state_dir.is_none());
    assert!(s.api_token.is_none());
}
