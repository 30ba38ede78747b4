//! The dynamic-security file a test broker starts with: the admin, backend
//! and provision accounts, their passwords hashed as the plugin hashes them
//! (PBKDF2-SHA512), and the project's roles.

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
    pub(crate) fn random(user: &str) -> Credentials {
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

/// The roles and the client-id patterns every broker of the project runs
/// with (scripts/broker.sh and the compose files use the same files).
pub(crate) const ROLES_FILE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../deploy/mosquitto/roles.json"
);

/// 32 random letters and digits.
pub(crate) fn random_password() -> String {
    use rand::distr::{Alphanumeric, SampleString};
    Alphanumeric.sample_string(&mut rand::rng(), 32)
}

/// The dynamic-security plugin's JSON file, written before the broker starts
/// (quicker than `mosquitto_ctrl` against a running broker): the `admin` role
/// `mosquitto_ctrl dynsec init` creates, the project's roles and default
/// access from `deploy/mosquitto/roles.json` (a `$CONTROL` command list),
/// and the three accounts.
pub(crate) fn dynsec_file(
    admin: &Credentials,
    backend: &Credentials,
    provision: &Credentials,
) -> String {
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
