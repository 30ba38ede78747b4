//! A private Mosquitto per test, authenticated like the project's brokers
//! (dynamic security, the acl_file, no anonymous clients), that a test may
//! kill, stop, resume or freeze; and the logins tests use.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use sqlx::PgPool;

use crate::dynsec::{Credentials, dynsec_file};
use crate::net::free_port;

/// The dynamic-security plugin Debian's and the eclipse-mosquitto image's
/// Mosquitto ship.
const DYNSEC_PLUGINS: &[&str] = &[
    "/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so",
    "/usr/lib/aarch64-linux-gnu/mosquitto_dynamic_security.so",
    "/usr/lib/mosquitto_dynamic_security.so",
];

const ACL_FILE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/mosquitto/acl");

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
