//! Helpers for tests and benchmarks against the real services (a
//! dev-dependency only; no production crate depends on it):
//! - [`db`]: a fresh database per test, counts and waits over it;
//! - [`broker`]: a private Mosquitto per test, authenticated like the
//!   project's brokers, and the logins tests use;
//! - [`net`]: free ports and a TCP proxy that cuts a connection;
//! - [`process`]: a service binary as its own process (signals);
//! - [`recipes`]: recipes and phases for automation and scheduling tests;
//! - below: waits, settings refusals, benchmark knobs and verdicts.

pub mod broker;
pub mod db;
mod dynsec;
pub mod net;
pub mod process;
pub mod recipes;

pub use broker::{TestBroker, backend_login, login, login_vars};
pub use db::{COUNT_WAIT, TestDb, admin_url, count, wait_count, zone_event_payloads};
pub use dynsec::Credentials;
pub use net::{TcpProxy, free_port};

use std::time::Duration;

/// Polls `check` until it returns `Some`, for at most `timeout`; a generous
/// timeout keeps tests green on a slow, busy machine without fixed sleeps.
pub async fn eventually<T, F, Fut>(timeout: Duration, mut check: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return Some(v);
        }
        if tokio::time::Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub use common::settings::env_vars;

/// Asserts that `T` refuses each `(variable, value)` set alone, with an error
/// that names the variable (in any case).
#[track_caller]
pub fn assert_each_refused<T: common::settings::FromEnv + std::fmt::Debug>(cases: &[(&str, &str)]) {
    for (k, v) in cases {
        let err = T::from_vars(env_vars(&[(k, v)])).unwrap_err().to_string();
        assert!(
            err.to_lowercase().contains(&k.to_lowercase()),
            "{k}={v}: {err}"
        );
    }
}

/// `REDIS_URL`, else the local development Redis.
pub fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// A benchmark knob: the variable as a number, else `default`.
pub fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The machine's 1, 5 and 15 minute load averages, for benchmark reports.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

pub use common::runtime::http::metric_sum;

/// The text of `GET {base}/metrics`: a service's figures for a test to read
/// (with [`metric_sum`], say). Panics when the service does not answer.
pub async fn scrape_metrics(base: &str) -> String {
    reqwest::get(format!("{base}/metrics"))
        .await
        .and_then(|r| r.error_for_status())
        .unwrap_or_else(|e| panic!("GET {base}/metrics: {e}"))
        .text()
        .await
        .unwrap_or_else(|e| panic!("GET {base}/metrics: {e}"))
}

/// A benchmark's verdict: prints each goal as met or MISSED and the overall
/// acceptance; returns the goals missed (empty when all are met).
pub fn judge(checks: &[(bool, String)]) -> Vec<&str> {
    println!();
    for (ok, what) in checks {
        println!("  {} {what}", if *ok { "met    " } else { "MISSED " });
    }
    let missed: Vec<&str> = checks
        .iter()
        .filter(|(ok, _)| !ok)
        .map(|(_, w)| w.as_str())
        .collect();
    println!(
        "acceptance: {}",
        if missed.is_empty() { "MET" } else { "NOT MET" }
    );
    missed
}
