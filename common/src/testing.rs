//! Helpers for tests against the real services: a fresh database per test and
//! a private Mosquitto broker that a test may stop and start. Not used by any
//! production path.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgConnection, PgPool};

/// The admin connection tests create databases through: `DATABASE_URL`, else
/// the local development database.
pub fn admin_url() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://hydro:hydro@127.0.0.1:5432/hydro_dev".into())
}

/// A freshly created and migrated database, dropped when this value is.
pub struct TestDb {
    pub pool: PgPool,
    pub name: String,
    pub url: String,
}

impl TestDb {
    pub async fn new() -> TestDb {
        let admin = admin_url();
        let name = format!("hydro_test_{}", uuid::Uuid::new_v4().simple());
        let mut conn = PgConnection::connect(&admin).await.unwrap_or_else(|e| {
            panic!("tests need PostgreSQL at {admin} (run `make services`): {e}")
        });
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await
            .expect("create test database");
        conn.close().await.ok();
        let options = PgConnectOptions::from_str(&admin)
            .expect("admin url")
            .database(&name);
        let url = format!(
            "{}/{}",
            admin.rsplit_once('/').expect("url has a database").0,
            name
        );
        let pool = PgPoolOptions::new()
            .max_connections(20)
            .connect_with(options)
            .await
            .expect("connect test database");
        crate::db::MIGRATOR
            .run(&pool)
            .await
            .expect("migrations apply to an empty database");
        TestDb { pool, name, url }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let name = self.name.clone();
        let admin = admin_url();
        // Drop runs inside the test's runtime; a thread of its own may block.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            rt.block_on(async {
                let mut conn = PgConnection::connect(&admin).await.ok()?;
                sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .execute(&mut conn)
                    .await
                    .ok()
            })
        })
        .join();
    }
}

/// A free TCP port on 127.0.0.1 (free when asked; good enough for tests).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind port 0")
        .local_addr()
        .expect("local addr")
        .port()
}

/// A Mosquitto broker of the test's own, on a free port, with persistence
/// in a temporary directory. Killed when dropped.
pub struct TestBroker {
    pub port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl TestBroker {
    pub async fn start() -> TestBroker {
        let port = free_port();
        let dir = std::env::temp_dir().join(format!(
            "hydro-test-broker-{port}-{}",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&dir).expect("broker dir");
        let conf = format!(
            "listener {port} 127.0.0.1\nallow_anonymous true\npersistence true\npersistence_location {}/\nmax_queued_messages 100000\nset_tcp_nodelay false\nsys_interval 1\nuser root\n",
            dir.display()
        );
        std::fs::write(dir.join("mosquitto.conf"), conf).expect("broker config");
        let mut broker = TestBroker {
            port,
            dir,
            child: None,
        };
        broker.resume().await;
        broker
    }

    pub fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }

    /// Kills the broker abruptly (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops the broker cleanly (SIGTERM), as a restart by an operator would:
    /// it saves its sessions and queued messages first.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(child.id().to_string())
                .status();
            let _ = child.wait();
        }
    }

    /// Starts the broker again on the same port and waits until it listens.
    pub async fn resume(&mut self) {
        assert!(self.child.is_none(), "broker already running");
        let child = Command::new("mosquitto")
            .arg("-c")
            .arg(self.dir.join("mosquitto.conf"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("tests need the mosquitto binary (run `make services`)");
        self.child = Some(child);
        for _ in 0..200 {
            if tokio::net::TcpStream::connect(("127.0.0.1", self.port))
                .await
                .is_ok()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("mosquitto did not start on port {}", self.port);
    }

    /// Freezes (`true`, SIGSTOP) or thaws (`false`, SIGCONT) the broker:
    /// connections stay open, nothing is answered meanwhile (a stalled
    /// broker, a slow network).
    pub fn freeze(&self, frozen: bool) {
        if let Some(child) = &self.child {
            let _ = Command::new("kill")
                .arg(if frozen { "-STOP" } else { "-CONT" })
                .arg(child.id().to_string())
                .status();
        }
    }
}

impl Drop for TestBroker {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// How long the database helpers below wait for a count.
pub const COUNT_WAIT: Duration = Duration::from_secs(60);

/// `SELECT count(*)` of a query.
pub async fn count(pool: &PgPool, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.expect(sql)
}

/// Waits (up to [`COUNT_WAIT`]) until `sql`'s count reaches at least `n`;
/// answers the last count.
pub async fn wait_count(pool: &PgPool, sql: &str, n: i64) -> i64 {
    let reached = eventually(COUNT_WAIT, || async {
        let c = count(pool, sql).await;
        (c >= n).then_some(c)
    })
    .await;
    match reached {
        Some(c) => c,
        None => count(pool, sql).await,
    }
}

/// The payloads of the zone events of type `kind` in zone `zone`, oldest first.
pub async fn zone_event_payloads(pool: &PgPool, zone: &str, kind: &str) -> Vec<serde_json::Value> {
    sqlx::query_scalar(
        "SELECT e.payload_json FROM zone_events e JOIN zones z ON z.id = e.zone_id \
         WHERE z.uid = $1 AND e.type = $2 ORDER BY e.id",
    )
    .bind(zone)
    .bind(kind)
    .fetch_all(pool)
    .await
    .expect("events")
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

/// Variables for `Settings::from_vars` and friends, instead of the process
/// environment.
pub fn env_vars<K: AsRef<str>, V: AsRef<str>>(
    pairs: &[(K, V)],
) -> Option<std::collections::HashMap<String, String>> {
    Some(
        pairs
            .iter()
            .map(|(k, v)| (k.as_ref().to_owned(), v.as_ref().to_owned()))
            .collect(),
    )
}

/// A TCP proxy to a real service that a test can cut and restore, to make
/// PostgreSQL or Redis unreachable for a while: when cut, every live
/// connection is closed and nothing listens (new connects are refused).
pub struct TcpProxy {
    pub port: u16,
    open: tokio::sync::watch::Sender<bool>,
}

impl TcpProxy {
    /// Starts forwarding 127.0.0.1:`port` (a free port) to `upstream`.
    pub async fn start(upstream: (String, u16)) -> TcpProxy {
        let port = free_port();
        let (open, mut rx) = tokio::sync::watch::channel(true);
        tokio::spawn(async move {
            loop {
                if !*rx.borrow() && rx.wait_for(|o| *o).await.is_err() {
                    return;
                }
                let Ok(listener) = tokio::net::TcpListener::bind(("127.0.0.1", port)).await else {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                };
                loop {
                    tokio::select! {
                        accepted = listener.accept() => {
                            let Ok((mut client, _)) = accepted else { continue };
                            let upstream = upstream.clone();
                            let mut cut = rx.clone();
                            tokio::spawn(async move {
                                let Ok(mut server) = tokio::net::TcpStream::connect(upstream).await else { return };
                                tokio::select! {
                                    _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                                    _ = cut.wait_for(|o| !*o) => {}
                                }
                            });
                        }
                        changed = rx.changed() => {
                            if changed.is_err() { return; }
                            if !*rx.borrow() { break; } // cut: stop listening
                        }
                    }
                }
            }
        });
        TcpProxy { port, open }
    }

    /// Closes every connection through the proxy and refuses new ones.
    pub fn cut(&self) {
        self.open.send_replace(false);
    }

    /// Listens and forwards again.
    pub fn restore(&self) {
        self.open.send_replace(true);
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

/// The sum of every series of `name` in a Prometheus text (benchmarks read
/// their in-process counters this way). `name` may carry labels:
/// `uplink_received_total{kind="telemetry"}`.
pub fn metric_sum(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|r| r.starts_with(' ') || r.starts_with('{'))
        })
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum()
}
