//! Helpers for tests and benchmarks against the real services (a
//! dev-dependency only; no production crate depends on it):
//! - [`db`]: a fresh database per test, counts and waits over it;
//! - [`broker`]: a private Mosquitto per test, authenticated like the
//!   project's brokers, and the logins tests use;
//! - [`client`]: a test's own MQTT clients (listening, settled);
//! - [`http`]: a service's HTTP API as a test calls it, a service run for a test;
//! - [`net`]: free ports and a TCP proxy that cuts a connection;
//! - [`process`]: a service binary as its own process (signals);
//! - [`recipes`]: recipes and phases for automation and scheduling tests;
//! - [`vars`]: the variables a service under test starts with, its settings;
//! - [`stack`] (feature `stack`): node-sim and mqtt-bridge, a simulated
//!   greenhouse behind the bridge;
//! - below: waits, settings refusals, a stop token that stops on drop, [`wraps!`] for a
//!   test's world, benchmark knobs and verdicts.

pub mod broker;
pub mod client;
pub mod db;
mod dynsec;
pub mod http;
pub mod net;
pub mod process;
pub mod recipes;
#[cfg(feature = "stack")]
pub mod stack;
pub mod vars;

pub use broker::{TestBroker, backend_login, login, login_vars};
pub use db::{
    COUNT_WAIT, TestDb, admin_url, count, count_comes_to, register_brokers, scalar, scalar_for,
    seed_zones, wait_count, zone_event_payloads,
};
pub use dynsec::Credentials;
pub use http::Service;
pub use net::{TcpProxy, free_port};
#[cfg(feature = "stack")]
pub use stack::SimStack;
pub use vars::{service_vars, set_vars, settings};

use std::time::Duration;

/// Lets a test's world stand for the part it wraps (`Deref`), so the test
/// reads that part's fields through it: `testkit::wraps!(World => stack: SimStack);`.
#[macro_export]
macro_rules! wraps {
    ($outer:ty => $field:tt: $inner:ty) => {
        impl std::ops::Deref for $outer {
            type Target = $inner;

            fn deref(&self) -> &$inner {
                &self.$field
            }
        }
    };
}

/// A stop token that stops what it was handed to when this is dropped: a
/// test's world stops its services with it.
pub struct StopOnDrop(tokio_util::sync::CancellationToken);

impl StopOnDrop {
    pub fn new() -> StopOnDrop {
        StopOnDrop(tokio_util::sync::CancellationToken::new())
    }

    /// A token cancelled with this one, and on its own drop.
    pub fn child(&self) -> StopOnDrop {
        StopOnDrop(self.0.child_token())
    }
}

impl Default for StopOnDrop {
    fn default() -> Self {
        StopOnDrop::new()
    }
}

impl std::ops::Deref for StopOnDrop {
    type Target = tokio_util::sync::CancellationToken;

    fn deref(&self) -> &tokio_util::sync::CancellationToken {
        &self.0
    }
}

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.cancel();
    }
}

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

/// The sum of the `series` (a name, labels allowed) on `GET {base}/metrics`;
/// 0 when the service has none of it.
pub async fn scrape_metric(base: &str, series: &str) -> f64 {
    metric_sum(&scrape_metrics(base).await, series)
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
