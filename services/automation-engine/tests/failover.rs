//! Two engine processes on one database: one decides, the other stands by;
//! killing the decider (SIGKILL: no lease release) hands the work over.

mod helpers;

use std::process::{Child, Command, Stdio};

use chrono::{DateTime, Utc};
use helpers::*;
use testkit::{eventually, free_port};

/// A real automation-engine process, killed when dropped.
struct Engine {
    child: Child,
    port: u16,
}

impl Engine {
    fn spawn(vars: &[(String, String)]) -> Engine {
        let port = free_port();
        let child = Command::new(env!("CARGO_BIN_EXE_automation-engine"))
            .envs(vars.iter().map(|(k, v)| (k, v)))
            .env("HTTP_PORT", port.to_string())
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("the automation-engine binary runs");
        Engine { child, port }
    }

    async fn healthy(&self) -> bool {
        let url = format!("http://127.0.0.1:{}/health", self.port);
        matches!(reqwest::get(url).await, Ok(r) if r.status().is_success())
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The pid in the decision lease's holder (`automation-engine@host:pid:random`).
async fn leader_pid(pool: &sqlx::PgPool) -> Option<u32> {
    let holder: Option<String> =
        sqlx::query_scalar("SELECT holder FROM leases WHERE name = $1 AND expires_at > now()")
            .bind(automation_engine::LEASE_NAME)
            .fetch_optional(pool)
            .await
            .unwrap();
    holder?.rsplit(':').nth(1)?.parse().ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_leader_hands_the_work_to_the_standby() {
    let w = greenhouse(1, 1, &[]).await;
    let pool = &w.db.pool;
    // Short doses, no interval: while pH stays high, each finished dose is
    // followed by the next, so work after the kill is visible.
    back_to_back_doses(pool, "zn-1").await;
    ph(pool, "nd-ph-1", 6.8).await;
    ph_recipe(pool, "zn-1").await;

    let mut engines = [Engine::spawn(&w.vars), Engine::spawn(&w.vars)];
    let both_up = eventually(WAIT, || async {
        (engines[0].healthy().await && engines[1].healthy().await).then_some(())
    })
    .await;
    assert!(both_up.is_some(), "both engines serve /health");
    let pids = [engines[0].child.id(), engines[1].child.id()];
    let done = "SELECT count(*) FROM commands WHERE source = 'automation' AND status = 'DONE'";
    assert!(wait_count(pool, done, 1).await >= 1, "the leader doses");
    let leader = leader_pid(pool).await.expect("a leader holds the lease");
    let (dead, standby) = if leader == pids[0] { (0, 1) } else { (1, 0) };
    assert_eq!(pids[dead], leader);

    engines[dead].child.kill().expect("SIGKILL the leader");
    engines[dead].child.wait().unwrap();
    let killed_at: DateTime<Utc> = sqlx::query_scalar("SELECT now()")
        .fetch_one(pool)
        .await
        .unwrap();

    let took_over = eventually(WAIT, || async {
        (leader_pid(pool).await == Some(pids[standby])).then_some(())
    })
    .await;
    assert!(took_over.is_some(), "the standby holds the lease");
    let resumed = eventually(WAIT, || async {
        let n: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM commands WHERE source = 'automation' AND status = 'DONE' AND created_at > $1",
        )
        .bind(killed_at)
        .fetch_one(pool)
        .await
        .unwrap();
        (n > 0).then_some(())
    })
    .await;
    assert!(resumed.is_some(), "the standby doses after the kill");
    assert!(engines[standby].healthy().await);
}
