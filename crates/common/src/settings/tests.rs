//! The unit tests of `settings`.

use super::*;

use super::env_vars as vars;
use secrecy::ExposeSecret;

#[test]
fn defaults_point_at_localhost() {
    let s = Settings::from_vars(vars::<&str, &str>(&[])).unwrap();
    assert_eq!(s.mqtt.host, "127.0.0.1");
    assert_eq!(s.mqtt.port, 1883);
    assert_eq!(s.pg.db, "hydro_dev");
    assert_eq!(s.log_format, LogFormat::Text);
    assert!(s.http.api_token.is_none());
    assert!(s.uses_dev_node_secret());
    assert_eq!(s.mqtt.default_broker_url(), "mqtt://127.0.0.1:1883");
    assert_eq!(s.http.port_or(9000), 9000);
}

#[test]
fn contract_names_are_read() {
    let s = Settings::from_vars(vars(&[
        ("MQTT_HOST", "mqtt1"),
        ("MQTT_PORT", "1884"),
        ("MQTT_TLS", "1"),
        ("PG_PASS", "12345"),
        ("BRIDGE_API_TOKEN", "t0k3n"),
        ("LOG_FORMAT", "json"),
        ("HTTP_PORT", "0"),
    ]))
    .unwrap();
    assert_eq!(s.mqtt.default_broker_url(), "mqtts://mqtt1:1884");
    assert_eq!(s.pg.pass.expose_secret(), "12345");
    assert_eq!(s.log_format, LogFormat::Json);
    assert_eq!(s.http.port_or(9000), 0);
    assert_eq!(s.http.api_token.as_ref().unwrap().expose_secret(), "t0k3n");
}

#[test]
fn secrets_never_print() {
    let s = Settings::from_vars(vars(&[
        ("BRIDGE_API_TOKEN", "super-secret-token"),
        ("PG_PASS", "pg-secret"),
        ("DATABASE_URL", "postgres://u:dburl-secret@h/db"),
    ]))
    .unwrap();
    let printed = format!("{s:?}");
    for secret in [
        "super-secret-token",
        "pg-secret",
        "dburl-secret",
        DEV_NODE_SECRET,
    ] {
        assert!(!printed.contains(secret), "{secret} leaked: {printed}");
    }
}

#[test]
fn bad_values_name_the_variable() {
    for (k, v, needle) in [
        ("MQTT_PORT", "0", "MQTT_PORT"),
        ("MQTT_PORT", "abc", "mqtt_port"),
        ("MQTT_TLS", "maybe", "mqtt_tls"),
        ("LOG_FORMAT", "xml", "log_format"),
        ("DATABASE_URL", "mysql://x", "DATABASE_URL"),
        ("REDIS_URL", "localhost:6379", "REDIS_URL"),
        // A value that does not convert to its type, trimmed or not.
        ("MQTT_PORT", " 70000 ", "mqtt_port"),
        ("PG_PORT", "-1", "pg_port"),
        ("PG_MAX_CONNECTIONS", "1.5", "pg_max_connections"),
        ("HTTP_PORT", "eighty", "http_port"),
        ("HTTP_READS_REQUIRE_TOKEN", "2", "http_reads_require_token"),
    ] {
        let err = refusal(k, v);
        assert!(err.contains(needle), "{k}={v}: {err}");
    }
}

/// The error of settings from `k=v` alone.
fn refusal(k: &str, v: &str) -> String {
    Settings::from_vars(vars(&[(k, v)]))
        .unwrap_err()
        .to_string()
}

#[test]
fn database_url_wins_over_pieces() {
    let s = Settings::from_vars(vars(&[
        ("DATABASE_URL", "postgres://a:b@dbhost:6543/other"),
        ("PG_HOST", "ignored"),
    ]))
    .unwrap();
    let o = s.pg.options();
    assert_eq!(o.get_host(), "dbhost");
    assert_eq!(o.get_port(), 6543);
    assert_eq!(o.get_database(), Some("other"));
}

#[test]
fn http_host_and_reads_are_read() {
    let s = Settings::from_vars(vars::<&str, &str>(&[])).unwrap();
    assert_eq!(s.http.addr(9403), ("0.0.0.0".to_owned(), 9403));
    assert!(s.http.reads_require_token_or(true));
    assert!(!s.http.reads_require_token_or(false));
    let s = Settings::from_vars(vars(&[
        ("HTTP_HOST", "127.0.0.1"),
        ("HTTP_PORT", "8080"),
        ("HTTP_READS_REQUIRE_TOKEN", "true"),
    ]))
    .unwrap();
    assert_eq!(s.http.addr(9403), ("127.0.0.1".to_owned(), 8080));
    assert!(s.http.reads_require_token_or(false));
    // A blank HTTP_HOST is unset (see `from_env`): the default, every interface.
    let s = Settings::from_vars(vars(&[("HTTP_HOST", " ")])).unwrap();
    assert_eq!(s.http.addr(9403), ("0.0.0.0".to_owned(), 9403));
    for (k, v) in [
        ("HTTP_READS_REQUIRE_TOKEN", "maybe"),
        ("HYDRO_ENV", "producton"),
    ] {
        let err = refusal(k, v);
        assert!(
            err.to_lowercase().contains(&k.to_lowercase()),
            "{k}={v}: {err}"
        );
    }
}

#[test]
fn values_are_trimmed_and_blank_is_unset() {
    let s = Settings::from_vars(vars(&[
        ("MQTT_HOST", " mqtt2 "),
        ("MQTT_PORT", " 1884 "),
        ("MQTT_TLS", " Yes "),
        ("PG_PORT", ""),
        ("PG_PASS", "  "),
        ("MQTT_PASS", ""),
        ("BRIDGE_API_TOKEN", " "),
        ("HTTP_PORT", " "),
        ("HTTP_READS_REQUIRE_TOKEN", ""),
        ("LOG_FORMAT", " "),
        ("NODE_DEFAULT_SECRET", ""),
        ("HYDRO_ENV", ""),
    ]))
    .unwrap();
    assert_eq!(s.mqtt.default_broker_url(), "mqtts://mqtt2:1884");
    assert_eq!(s.pg.port, 5432);
    assert_eq!(s.pg.pass.expose_secret(), "hydro");
    assert!(s.mqtt.pass.is_none());
    assert!(s.http.api_token.is_none());
    assert_eq!(s.http.port_or(9000), 9000);
    assert!(s.http.reads_require_token.is_none());
    assert_eq!(s.log_format, LogFormat::Text);
    assert!(s.uses_dev_node_secret());
    assert!(s.hydro_env.is_none());
}

#[test]
fn within_refuses_outside_its_bounds_naming_them() {
    assert!(within("X_SEC", 1, 1, 3_600).is_ok() && within("X_SEC", 3_600, 1, 3_600).is_ok());
    let err = within("X_SEC", 0, 1, 3_600).unwrap_err().to_string();
    assert!(err.contains("X_SEC must be between 1 and 3600"), "{err}");
    assert!(within("Y", f64::NAN, 0.01, 3_600.0).is_err());
    assert!(within("Y", f64::INFINITY, 0.01, 3_600.0).is_err());
}
