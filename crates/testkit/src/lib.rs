//! Helpers for tests against the real services: a fresh database per test and
//! a private Mosquitto broker that a test may stop and start, authenticated
//! like the project's own brokers. Not used by any production path.

pub mod process;
pub mod recipes;

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
        common::store::db::MIGRATOR
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

/// A broker login.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub user: String,
    pub pass: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("user", &self.user)
            .field("pass", &"<redacted>")
            .finish()
    }
}

impl Credentials {
    fn random(user: &str) -> Credentials {
        Credentials {
            user: user.to_owned(),
            pass: random_password(),
        }
    }

    /// Logs `config` in with these credentials.
    pub fn apply(&self, config: &mut common::mqtt::MqttConfig) {
        config.username = Some(self.user.clone());
        config.password = Some(self.pass.clone().into());
    }
}

/// The dynamic-security plugin Debian's and the eclipse-mosquitto image's
/// Mosquitto ship.
const DYNSEC_PLUGINS: &[&str] = &[
    "/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so",
    "/usr/lib/aarch64-linux-gnu/mosquitto_dynamic_security.so",
    "/usr/lib/mosquitto_dynamic_security.so",
];

/// The roles and the client-id patterns every broker of the project runs
/// with (scripts/broker.sh and the compose files use the same files).
const ROLES_FILE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../deploy/mosquitto/roles.json"
);
const ACL_FILE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/mosquitto/acl");

/// A Mosquitto broker of the test's own, on a free port, with persistence
/// in a temporary directory. Killed when dropped.
///
/// It is authenticated like the project's brokers: no anonymous clients, the
/// dynamic-security plugin with the roles of `deploy/mosquitto/roles.json`,
/// the acl_file of `deploy/mosquitto/acl`, and random passwords of its own
/// for the dynsec admin, one backend account and the unbound nodes'
/// `hydro-provision` (drawn once per test process: every broker of a test
/// knows the same logins, as a service's one login works on each broker). The accounts live in the broker's directory, so
/// [`TestBroker::stop`]/[`TestBroker::kill`] and [`TestBroker::resume`]
/// keep them (and any account a test created through the admin).
pub struct TestBroker {
    pub port: u16,
    dir: PathBuf,
    child: Option<Child>,
    admin: Credentials,
    backend: Credentials,
    provision: Credentials,
}

impl TestBroker {
    pub async fn start() -> TestBroker {
        let port = free_port();
        let dir = std::env::temp_dir().join(format!(
            "hydro-test-broker-{port}-{}",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&dir).expect("broker dir");
        let [admin, backend, provision] = test_accounts().clone();
        let dynsec = dir.join("dynamic-security.json");
        std::fs::write(&dynsec, dynsec_file(&admin, &backend, &provision))
            .expect("dynamic-security.json");
        let acl = dir.join("acl");
        std::fs::copy(ACL_FILE, &acl).expect("tests need deploy/mosquitto/acl");
        let plugin = DYNSEC_PLUGINS
            .iter()
            .find(|p| std::path::Path::new(p).exists())
            .expect("tests need mosquitto_dynamic_security.so (run `make services`)");
        let conf = format!(
            "listener {port} 127.0.0.1\nallow_anonymous false\nplugin {plugin}\nplugin_opt_config_file {}\nacl_file {}\nmessage_size_limit {}\npersistence true\npersistence_location {}/\nmax_queued_messages 100000\nset_tcp_nodelay false\nsys_interval 1\nuser root\n",
            dynsec.display(),
            acl.display(),
            proto::payloads::MAX_PAYLOAD_BYTES,
            dir.display()
        );
        std::fs::write(dir.join("mosquitto.conf"), conf).expect("broker config");
        let mut broker = TestBroker {
            port,
            dir,
            child: None,
            admin,
            backend,
            provision,
        };
        broker.resume().await;
        broker
    }

    pub fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }

    /// The dynamic-security admin (creates node accounts, as device-registry does).
    pub fn admin(&self) -> Credentials {
        self.admin.clone()
    }

    /// An account with the services' role `hydro-backend`.
    pub fn backend(&self) -> Credentials {
        self.backend.clone()
    }

    /// `hydro-provision`, the login of unbound nodes.
    pub fn provision(&self) -> Credentials {
        self.provision.clone()
    }

    /// A connection config for this broker, logged in as [`TestBroker::backend`];
    /// broker id `test`, client ids `test-…`.
    pub fn backend_config(&self) -> common::mqtt::MqttConfig {
        self.config_as(&self.backend, "test", "test")
    }

    /// A connection config for this broker with `broker_id` and a client id
    /// prefix, logged in as `who`.
    pub fn config_as(
        &self,
        who: &Credentials,
        broker_id: &str,
        client_prefix: &str,
    ) -> common::mqtt::MqttConfig {
        let mut config = common::mqtt::MqttConfig::new(broker_id, &self.url(), client_prefix);
        who.apply(&mut config);
        config
    }

    /// `MQTT_HOST`, `MQTT_PORT`, `MQTT_USER`, `MQTT_PASS` for a service's
    /// settings: this broker, logged in as the backend account.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            ("MQTT_HOST".into(), "127.0.0.1".into()),
            ("MQTT_PORT".into(), self.port.to_string()),
            ("MQTT_USER".into(), self.backend.user.clone()),
            ("MQTT_PASS".into(), self.backend.pass.clone()),
        ]
    }

    /// An account administrator on this broker, logged in as its dynsec
    /// admin as device-registry's is (connected and listening for answers);
    /// its connection ends with `stop`.
    pub async fn admin_connection(
        &self,
        stop: &tokio_util::sync::CancellationToken,
    ) -> common::mqtt::accounts::Admin {
        use common::mqtt::accounts::{Admin, RESPONSE_TOPIC, Responses};
        let (responses, inbox) = Responses::start(stop.clone());
        let mut config = self.config_as(&self.admin, "test-admin", "test-admin");
        config.publish_timeout = Duration::from_secs(5);
        let connection = common::mqtt::MqttConnection::start(config, Some(inbox), stop.clone())
            .expect("admin connection");
        connection
            .subscribe(RESPONSE_TOPIC, common::QoS::AtLeastOnce)
            .expect("subscribe to the dynsec answers");
        connection
            .wait_connected(Duration::from_secs(10))
            .await
            .expect("the broker's admin logs in");
        Admin {
            connection,
            responses,
        }
    }

    /// Runs dynamic-security `commands` as this broker's admin (what
    /// `mosquitto_ctrl dynsec` does); panics unless every one succeeds.
    pub async fn dynsec(
        &self,
        commands: Vec<serde_json::Value>,
    ) -> Vec<common::mqtt::accounts::CommandResult> {
        let stop = tokio_util::sync::CancellationToken::new();
        let admin = self.admin_connection(&stop).await;
        let results = admin
            .responses
            .execute(&admin.connection, commands)
            .await
            .expect("the broker answers the dynsec commands");
        stop.cancel();
        assert!(
            results.iter().all(|r| r.error.is_none()),
            "dynsec commands failed: {results:?}"
        );
        results
    }

    /// Does on this broker what device-registry does on every broker: gives
    /// every node of `pool` that has a broker password
    /// (`nodes.mqtt_password`, e.g. seeded by node-sim) its account, and
    /// removes other node accounts. For tests that run node-sim without
    /// device-registry; call it after node-sim has seeded (its nodes keep
    /// reconnecting until their accounts exist).
    pub async fn sync_node_accounts(&self, pool: &PgPool) -> common::mqtt::accounts::SyncReport {
        let accounts = common::mqtt::accounts::load_accounts(pool)
            .await
            .expect("read the node accounts");
        let stop = tokio_util::sync::CancellationToken::new();
        let admin = self.admin_connection(&stop).await;
        let report = common::mqtt::accounts::sync_nodes(&admin, &accounts)
            .await
            .expect("sync the node accounts");
        stop.cancel();
        assert!(report.failed.is_empty(), "{report:?}");
        report
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

/// The accounts of every [`TestBroker`] of this test process: random, and the
/// same on each broker, as the services' logins are the same on every broker
/// they use (one `MQTT_USER`/`MQTT_PASS` for a whole pool).
fn test_accounts() -> &'static [Credentials; 3] {
    static ACCOUNTS: std::sync::OnceLock<[Credentials; 3]> = std::sync::OnceLock::new();
    ACCOUNTS.get_or_init(|| {
        [
            Credentials::random("hydro-admin"),
            Credentials::random("hydro-test-backend"),
            Credentials::random("hydro-provision"),
        ]
    })
}

/// The backend account every [`TestBroker`] of this process knows.
pub fn backend_login() -> Credentials {
    test_accounts()[1].clone()
}

/// `config` logged in as [`backend_login`]: for a test that has a broker's
/// URL rather than its [`TestBroker`].
pub fn login(mut config: common::mqtt::MqttConfig) -> common::mqtt::MqttConfig {
    backend_login().apply(&mut config);
    config
}

/// `MQTT_USER` and `MQTT_PASS` of [`backend_login`], for a service's settings.
pub fn login_vars() -> [(String, String); 2] {
    let who = backend_login();
    [
        ("MQTT_USER".into(), who.user),
        ("MQTT_PASS".into(), who.pass),
    ]
}

/// 32 random letters and digits.
fn random_password() -> String {
    use rand::distr::{Alphanumeric, SampleString};
    Alphanumeric.sample_string(&mut rand::rng(), 32)
}

/// The dynamic-security plugin's JSON file, written before the broker starts
/// (quicker than `mosquitto_ctrl` against a running broker): the `admin` role
/// `mosquitto_ctrl dynsec init` creates, the project's roles and default
/// access from `deploy/mosquitto/roles.json` (a `$CONTROL` command list),
/// and the three accounts.
fn dynsec_file(admin: &Credentials, backend: &Credentials, provision: &Credentials) -> String {
    use serde_json::{Value, json};
    let text = std::fs::read_to_string(ROLES_FILE).expect("tests need deploy/mosquitto/roles.json");
    let doc: Value = serde_json::from_str(&text).expect("roles.json is JSON");
    let mut roles = vec![json!({
        "rolename": "admin",
        "acls": [
            {"acltype": "publishClientSend", "topic": "$CONTROL/dynamic-security/#", "allow": true},
            {"acltype": "publishClientReceive", "topic": "$CONTROL/dynamic-security/#", "allow": true},
            {"acltype": "subscribePattern", "topic": "$CONTROL/dynamic-security/#", "allow": true},
            {"acltype": "publishClientReceive", "topic": "$SYS/#", "allow": true},
            {"acltype": "subscribePattern", "topic": "$SYS/#", "allow": true},
            {"acltype": "publishClientReceive", "topic": "#", "allow": true},
            {"acltype": "subscribePattern", "topic": "#", "allow": true},
            {"acltype": "unsubscribePattern", "topic": "#", "allow": true}
        ]
    })];
    let mut default_access = serde_json::Map::new();
    for command in doc["commands"].as_array().expect("roles.json: commands") {
        match command["command"].as_str() {
            Some("createRole") => roles.push(json!({
                "rolename": command["rolename"],
                "acls": command["acls"],
            })),
            Some("setDefaultACLAccess") => {
                for acl in command["acls"].as_array().expect("acls") {
                    let kind = acl["acltype"].as_str().expect("acltype").to_owned();
                    default_access.insert(kind, acl["allow"].clone());
                }
            }
            other => panic!("roles.json: unexpected command {other:?}"),
        }
    }
    use common::mqtt::accounts::{FLOOR_PRIORITY, FLOOR_ROLE};
    let client = |who: &Credentials, roles: &[(&str, i32)]| {
        let salt: [u8; 12] = rand::random();
        json!({
            "username": who.user,
            "password": base64(&pbkdf2_sha512(who.pass.as_bytes(), &salt, DYNSEC_ITERATIONS)),
            "salt": base64(&salt),
            "iterations": DYNSEC_ITERATIONS,
            "roles": roles
                .iter()
                .map(|(name, priority)| json!({"rolename": name, "priority": priority}))
                .collect::<Vec<_>>(),
        })
    };
    let file = json!({
        "clients": [
            client(admin, &[("admin", 0)]),
            client(backend, &[("hydro-backend", 0), (FLOOR_ROLE, FLOOR_PRIORITY)]),
            client(provision, &[("hydro-provision", 0), (FLOOR_ROLE, FLOOR_PRIORITY)]),
        ],
        "roles": roles,
        "defaultACLAccess": default_access,
    });
    serde_json::to_string_pretty(&file).expect("json")
}

/// What `mosquitto_ctrl` uses on 2.0 (the plugin accepts any count it is given).
const DYNSEC_ITERATIONS: u32 = 101;

/// PBKDF2-HMAC-SHA512 with one 64-byte block: how the dynamic-security
/// plugin hashes a password (over the raw salt bytes).
fn pbkdf2_sha512(password: &[u8], salt: &[u8], iterations: u32) -> [u8; 64] {
    use hmac::{Hmac, Mac};
    let key = Hmac::<sha2::Sha512>::new_from_slice(password).expect("HMAC takes any key");
    let mut block = key.clone();
    block.update(salt);
    block.update(&1u32.to_be_bytes());
    let mut u: [u8; 64] = block.finalize().into_bytes().into();
    let mut out = u;
    for _ in 1..iterations {
        let mut round = key.clone();
        round.update(&u);
        u = round.finalize().into_bytes().into();
        out.iter_mut().zip(u).for_each(|(o, x)| *o ^= x);
    }
    out
}

/// Standard base64 with padding (the plugin's encoding of salt and hash).
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
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

pub use common::settings::env_vars;

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

pub use common::runtime::http::metric_sum;

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_hash_matches_a_file_mosquitto_ctrl_wrote() {
        // `mosquitto_ctrl dynsec init f hydro-admin secretpw` on 2.0.11 wrote
        // salt "ieuiBCgXwoynwQQe" and this password hash.
        let salt = hex::decode("89eba2042817c28ca7c1041e").unwrap();
        assert_eq!(base64(&salt), "ieuiBCgXwoynwQQe");
        assert_eq!(
            base64(&pbkdf2_sha512(b"secretpw", &salt, 101)),
            "7rLRbr/3JY39e8o58swfHZ/H7KjFc8mnNiAL+7zZISYB4vakycADMLEvCDD7j/B7emXLIdbUC2NWJwakeHnrTw=="
        );
    }

    #[test]
    fn base64_pads() {
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b""), "");
    }
}
