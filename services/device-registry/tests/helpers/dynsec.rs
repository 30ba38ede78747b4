//! A Mosquitto of the test's own with the dynamic-security plugin and
//! anonymous access off: `hydro-admin` (dynsec admin), a backend account and
//! the provision login. (Until `common::testing::TestBroker` speaks dynsec.)

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::testing::free_port;

pub const ADMIN: &str = "hydro-admin";
pub const BACKEND_USER: &str = "hydro-device-registry";
pub const BACKEND_PASS: &str = "test-backend-0123456789abcdef0123";
pub const PROVISION_USER: &str = "hydro-provision";
pub const PROVISION_PASS: &str = "test-provision-0123456789abcdef01";

pub struct DynsecBroker {
    pub port: u16,
    pub admin_pass: String,
    dir: PathBuf,
    child: Child,
}

impl DynsecBroker {
    pub async fn start() -> DynsecBroker {
        let port = free_port();
        let dir = std::env::temp_dir().join(format!(
            "hydro-dynsec-{port}-{}",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let admin_pass = uuid::Uuid::new_v4().simple().to_string();
        let dynsec = dir.join("dynsec.json");
        run(Command::new("mosquitto_ctrl")
            .args(["dynsec", "init"])
            .arg(&dynsec)
            .args([ADMIN, &admin_pass]));
        let conf = format!(
            "listener {port} 127.0.0.1\nallow_anonymous false\nuser root\n\
             plugin /usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so\n\
             plugin_opt_config_file {}\nmessage_size_limit 16384\n",
            dynsec.display()
        );
        std::fs::write(dir.join("mosquitto.conf"), conf).unwrap();
        let child = Command::new("mosquitto")
            .arg("-c")
            .arg(dir.join("mosquitto.conf"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("tests need mosquitto");
        for _ in 0..200 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        let broker = DynsecBroker {
            port,
            admin_pass,
            dir,
            child,
        };
        // The backend's role (simplified: everything under hydro/ and
        // nodes/, any subscription) and the provision login's (the temp
        // namespace, the global hello and the time topics).
        for args in [
            vec!["createRole", "test-backend"],
            vec![
                "addRoleACL",
                "test-backend",
                "publishClientSend",
                "hydro/#",
                "allow",
            ],
            vec![
                "addRoleACL",
                "test-backend",
                "publishClientSend",
                "nodes/#",
                "allow",
            ],
            vec![
                "addRoleACL",
                "test-backend",
                "subscribePattern",
                "#",
                "allow",
            ],
            vec!["createClient", BACKEND_USER, "-p", BACKEND_PASS],
            vec!["addClientRole", BACKEND_USER, "test-backend"],
            vec!["createRole", "test-provision"],
            vec![
                "addRoleACL",
                "test-provision",
                "publishClientSend",
                "hydro/node_hello",
                "allow",
            ],
            vec![
                "addRoleACL",
                "test-provision",
                "publishClientSend",
                "hydro/gh-temp/zn-temp/#",
                "allow",
            ],
            vec![
                "addRoleACL",
                "test-provision",
                "subscribePattern",
                "hydro/gh-temp/zn-temp/#",
                "allow",
            ],
            vec!["createClient", PROVISION_USER, "-p", PROVISION_PASS],
            vec![
                "addRoleACL",
                "test-provision",
                "publishClientSend",
                "hydro/time/request",
                "allow",
            ],
            vec![
                "addRoleACL",
                "test-provision",
                "subscribePattern",
                "hydro/time/response",
                "allow",
            ],
            vec!["addClientRole", PROVISION_USER, "test-provision"],
        ] {
            broker.ctrl(&args);
        }
        broker
    }

    pub fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }

    /// Runs one `mosquitto_ctrl dynsec` command as the admin.
    pub fn ctrl(&self, args: &[&str]) {
        run(Command::new("mosquitto_ctrl")
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(["-u", ADMIN, "-P", &self.admin_pass, "dynsec"])
            .args(args));
    }
}

fn run(command: &mut Command) {
    let out = command.output().expect("tests need mosquitto_ctrl");
    assert!(
        out.status.success(),
        "{command:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Drop for DynsecBroker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
