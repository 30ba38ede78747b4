//! Node accounts on the brokers, through Mosquitto's dynamic-security plugin.
//!
//! Every bound node logs in with its own account: username = its uid,
//! password = `nodes.mqtt_password`, and one role `hydro-node-{uid}` whose
//! ACLs allow exactly that node's topics ([`node_acls`]). device-registry
//! keeps every broker in line with the database through [`sync_nodes`],
//! talking to the plugin's `$CONTROL/dynamic-security/v1` API over an
//! [`MqttConnection`] logged in as the dynsec admin (`MQTT_ADMIN_USER`).
//!
//! The plugin of Mosquitto 2.0 disconnects a client on every change to its
//! account (password, roles, text name) or to one of its roles' ACLs, even
//! when nothing really changed. So a sync must send nothing for an account
//! that is already right. The broker never shows a password, so each account
//! carries a fingerprint of what we set in its text name
//! (`hydro-node acl=… pw=…`, see [`fingerprint`]): an account whose
//! fingerprint, role and role list match is left alone.
//!
//! Commands go in batches, one publish each (kept under the brokers'
//! message size limit); the broker answers each batch with one message on
//! `$CONTROL/dynamic-security/v1/response`, sent to the asking client only,
//! with one result per command. The answers are matched to their batch by
//! the `correlationData` each command carries ([`Responses`]).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tracing::debug;

use crate::mqtt::{Inbound, MqttConnection, MqttError};
use proto::topics::{GLOBAL_NODE_HELLO, TopicKind, node_topic};

/// Where dynsec commands are published.
pub const CONTROL_TOPIC: &str = "$CONTROL/dynamic-security/v1";
/// Where the broker answers them (to the asking client only).
pub const RESPONSE_TOPIC: &str = "$CONTROL/dynamic-security/v1/response";
/// The role of node `uid` is `hydro-node-{uid}`.
pub const NODE_ROLE_PREFIX: &str = "hydro-node-";
/// The text name of every node account starts with this: it marks the
/// accounts a sync may delete (never a service's or the admin's).
pub const NODE_TEXTNAME_PREFIX: &str = "hydro-node ";
/// The time request and response topics (contract §2).
pub const TIME_REQUEST_TOPIC: &str = "hydro/time/request";
pub const TIME_RESPONSE_TOPIC: &str = "hydro/time/response";

/// How long a batch waits for the broker's answer.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest batch payload: well under the brokers' message size limit
/// (`message_size_limit`, [`proto::payloads::MAX_PAYLOAD_BYTES`]).
const MAX_BATCH_BYTES: usize = 12 * 1024;
/// Accounts listed per `listClients` page: about 150 bytes each, so a page
/// stays far below the client's incoming packet limit.
const LIST_PAGE: usize = 500;

/// Why an account operation failed.
#[derive(Debug, thiserror::Error)]
pub enum AccountsError {
    #[error("publish to the broker failed: {0}")]
    Mqtt(#[from] MqttError),
    #[error("the broker did not answer the dynsec commands in time")]
    Timeout,
    #[error("the broker's dynsec answer is malformed: {0}")]
    BadResponse(String),
    #[error("dynsec `{command}` failed: {error}")]
    Command { command: String, error: String },
}

impl AccountsError {
    /// A bounded label for metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            AccountsError::Mqtt(MqttError::NotConnected) => "not_connected",
            AccountsError::Mqtt(_) => "refused",
            AccountsError::Timeout => "timeout",
            AccountsError::BadResponse(_) => "bad_response",
            AccountsError::Command { .. } => "command",
        }
    }

    /// A create that found its account or role already there: another sync
    /// made it after this one listed the broker.
    fn already_exists(&self) -> bool {
        matches!(self, AccountsError::Command { command, error }
            if command.starts_with("create") && error.contains("already exists"))
    }
}

/// One ACL of a role: always `allow`, priority 0 (the plugin's defaults
/// deny everything else a node could publish or subscribe to).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Acl {
    /// `publishClientSend` or `subscribePattern`.
    pub acltype: &'static str,
    pub topic: String,
}

impl Acl {
    fn publish(topic: String) -> Acl {
        Acl {
            acltype: "publishClientSend",
            topic,
        }
    }

    fn subscribe(topic: String) -> Acl {
        Acl {
            acltype: "subscribePattern",
            topic,
        }
    }

    /// Delivery of what the node subscribed to (the brokers' default denies
    /// every delivery an ACL does not allow).
    fn receive(topic: String) -> Acl {
        Acl {
            acltype: "publishClientReceive",
            topic,
        }
    }

    fn to_json(&self) -> Value {
        json!({ "acltype": self.acltype, "topic": self.topic, "priority": 0, "allow": true })
    }
}

/// The exact topics node `uid` of zone `zone` in greenhouse `gh` may use:
/// publish its uplink under `hydro/{gh}/{zone}/{uid}/…` (its channels'
/// telemetry, command responses and events; its status, last will,
/// heartbeat, error, hello and config report), `hydro/node_hello` and
/// `hydro/time/request`; subscribe to its commands, its config,
/// `nodes/{uid}/config/update` and `hydro/time/response`.
///
/// A subscribe ACL is a pattern matched against the filter the node asks
/// for: `…/{uid}/+/command` lets it subscribe to that filter or to one
/// channel's command topic, never to `…/{uid}/#` or another node's topics.
pub fn node_acls(gh: &str, zone: &str, uid: &str) -> Vec<Acl> {
    let base = format!("hydro/{gh}/{zone}/{uid}");
    let mut acls: Vec<Acl> = [
        "+/telemetry",
        "+/command_response",
        "+/event",
        "status",
        "lwt",
        "heartbeat",
        "error",
        "node_hello",
        "config_report",
    ]
    .iter()
    .map(|tail| Acl::publish(format!("{base}/{tail}")))
    .collect();
    acls.push(Acl::publish(GLOBAL_NODE_HELLO.to_owned()));
    acls.push(Acl::publish(TIME_REQUEST_TOPIC.to_owned()));
    for topic in [
        format!("{base}/+/command"),
        node_topic(gh, zone, uid, TopicKind::Config),
        format!("nodes/{uid}/config/update"),
        TIME_RESPONSE_TOPIC.to_owned(),
    ] {
        acls.push(Acl::subscribe(topic.clone()));
        acls.push(Acl::receive(topic));
    }
    acls.sort();
    acls.dedup();
    acls
}

/// A greenhouse and zone whose topics a node account may use.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Namespace {
    pub gh_uid: String,
    pub zone_uid: String,
}

/// What a node's account on every broker should be.
#[derive(Debug, Clone)]
pub struct NodeAccount {
    /// The username: the node's uid.
    pub uid: String,
    /// Where it may publish and subscribe: its zone, plus the target of a
    /// pending rebind (the node needs both until it has moved).
    pub namespaces: Vec<Namespace>,
    pub password: SecretString,
}

impl NodeAccount {
    /// The role's name: `hydro-node-{uid}`.
    pub fn role(&self) -> String {
        format!("{NODE_ROLE_PREFIX}{}", self.uid)
    }

    /// The role's ACLs: [`node_acls`] of every namespace, once each.
    pub fn acls(&self) -> Vec<Acl> {
        let set: BTreeSet<Acl> = self
            .namespaces
            .iter()
            .flat_map(|ns| node_acls(&ns.gh_uid, &ns.zone_uid, &self.uid))
            .collect();
        set.into_iter().collect()
    }

    /// The account's text name: the marker and its fingerprint.
    pub fn textname(&self) -> String {
        let (acl, pw) = fingerprint(&self.acls(), self.password.expose_secret());
        format!("{NODE_TEXTNAME_PREFIX}acl={acl} pw={pw}")
    }
}

/// Short fingerprints (16 hex characters of SHA-256) of an ACL list and of a
/// password. A password is 32+ random characters, so 64 bits of its hash
/// tell nothing useful about it, while a change shows.
pub fn fingerprint(acls: &[Acl], password: &str) -> (String, String) {
    let mut h = Sha256::new();
    for acl in acls {
        h.update(acl.acltype.as_bytes());
        h.update([0]);
        h.update(acl.topic.as_bytes());
        h.update([0]);
    }
    let acl = hex::encode(&h.finalize()[..8]);
    let pw = hex::encode(&Sha256::digest(password.as_bytes())[..8]);
    (acl, pw)
}

/// What the database says about a node's broker account: its uid, password
/// and zone, and the target of its pending bind.
#[derive(Debug, Clone, Default, sqlx::FromRow)]
pub struct AccountRow {
    pub uid: String,
    pub password: Option<String>,
    pub decommissioned: bool,
    pub gh_uid: Option<String>,
    pub zone_uid: Option<String>,
    pub target_uid: Option<String>,
    pub target_gh: Option<String>,
    pub target_zone: Option<String>,
}

const ACCOUNT_SELECT: &str = "SELECT n.uid, n.mqtt_password AS password, \
        n.lifecycle = 'DECOMMISSIONED' AS decommissioned, g.uid AS gh_uid, z.uid AS zone_uid, \
        b.node_uid AS target_uid, bg.uid AS target_gh, bz.uid AS target_zone \
   FROM nodes n LEFT JOIN zones z ON z.id = n.zone_id LEFT JOIN greenhouses g ON g.id = z.greenhouse_id \
   LEFT JOIN node_binds b ON b.node_id = n.id AND b.state = 'PENDING' \
   LEFT JOIN zones bz ON bz.id = b.zone_id LEFT JOIN greenhouses bg ON bg.id = bz.greenhouse_id";

/// The account rows of every node that has a broker password and is not
/// decommissioned.
pub async fn account_rows(pool: &PgPool) -> Result<Vec<AccountRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "{ACCOUNT_SELECT} WHERE n.mqtt_password IS NOT NULL AND n.lifecycle <> 'DECOMMISSIONED' ORDER BY n.uid"
    ))
    .fetch_all(pool)
    .await
}

/// The account row of node `node_id`, whatever its state.
pub async fn account_row(pool: &PgPool, node_id: i64) -> Result<Option<AccountRow>, sqlx::Error> {
    sqlx::query_as(&format!("{ACCOUNT_SELECT} WHERE n.id = $1"))
        .bind(node_id)
        .fetch_optional(pool)
        .await
}

/// Every node account the database asks for (the `nodes` table, with the
/// pending binds): what [`sync_nodes`] makes every broker hold.
pub async fn load_accounts(pool: &PgPool) -> Result<Vec<NodeAccount>, sqlx::Error> {
    Ok(accounts_from(&account_rows(pool).await?).0)
}

/// The accounts `rows` ask for (merged per uid), and the uids named in them
/// that should have none.
pub fn accounts_from(rows: &[AccountRow]) -> (Vec<NodeAccount>, Vec<String>) {
    let mut wanted: BTreeMap<String, (String, Vec<Namespace>)> = BTreeMap::new();
    let mut named = Vec::new();
    for row in rows {
        named.push(row.uid.clone());
        named.extend(row.target_uid.clone());
        let Some(password) = row.password.as_ref().filter(|_| !row.decommissioned) else {
            continue;
        };
        let places = [
            (Some(&row.uid), &row.gh_uid, &row.zone_uid),
            (row.target_uid.as_ref(), &row.target_gh, &row.target_zone),
        ];
        for (uid, gh, zone) in places {
            if let (Some(uid), Some(gh), Some(zone)) = (uid, gh, zone) {
                let entry = wanted
                    .entry(uid.clone())
                    .or_insert_with(|| (password.clone(), Vec::new()));
                let ns = Namespace {
                    gh_uid: gh.clone(),
                    zone_uid: zone.clone(),
                };
                if !entry.1.contains(&ns) {
                    entry.1.push(ns);
                }
            }
        }
    }
    let unwanted = named
        .into_iter()
        .filter(|uid| !wanted.contains_key(uid))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let accounts = wanted
        .into_iter()
        .map(|(uid, (password, mut namespaces))| {
            namespaces.sort();
            NodeAccount {
                uid,
                namespaces,
                password: SecretString::from(password),
            }
        })
        .collect();
    (accounts, unwanted)
}

/// The text-name fingerprints: `(acl, pw)`.
fn parse_textname(textname: &str) -> Option<(&str, &str)> {
    let rest = textname.strip_prefix(NODE_TEXTNAME_PREFIX)?;
    let (acl, pw) = rest.split_once(' ')?;
    Some((acl.strip_prefix("acl=")?, pw.strip_prefix("pw=")?))
}

/// One command's result.
#[derive(Debug, Clone)]
pub struct CommandResult {
    pub command: String,
    /// The plugin's error text, if the command failed.
    pub error: Option<String>,
    pub data: Option<Value>,
}

type Waiters = HashMap<String, oneshot::Sender<Vec<CommandResult>>>;

/// Matches the broker's dynsec answers to the batches waiting for them; one
/// for all the admin connections of a process. Cheap to clone.
#[derive(Clone, Default)]
pub struct Responses {
    waiters: Arc<Mutex<Waiters>>,
}

impl Responses {
    /// A router and the inbox its admin connections deliver to; it reads the
    /// inbox until `stop` or until every sender is gone.
    pub fn start(stop: CancellationToken) -> (Responses, mpsc::Sender<Inbound>) {
        let responses = Responses::default();
        let (tx, mut rx) = mpsc::channel::<Inbound>(64);
        let router = responses.clone();
        tokio::spawn(async move {
            loop {
                let message = tokio::select! {
                    _ = stop.cancelled() => return,
                    m = rx.recv() => match m { Some(m) => m, None => return },
                };
                router.deliver(&message);
            }
        });
        (responses, tx)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Waiters> {
        self.waiters.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Hands an answer to the batch waiting for it; false when it is not one.
    pub fn deliver(&self, message: &Inbound) -> bool {
        if message.topic != RESPONSE_TOPIC {
            return false;
        }
        let Ok(body) = serde_json::from_slice::<Value>(&message.payload) else {
            return false;
        };
        let Some(items) = body.get("responses").and_then(Value::as_array) else {
            return false;
        };
        let batch = items
            .iter()
            .filter_map(|r| r.get("correlationData").and_then(Value::as_str))
            .find_map(|c| c.split_once(':').map(|(b, _)| b.to_owned()));
        let Some(batch) = batch else {
            return false;
        };
        let results = items
            .iter()
            .map(|r| CommandResult {
                command: r
                    .get("command")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
                error: r.get("error").and_then(Value::as_str).map(str::to_owned),
                data: r.get("data").cloned(),
            })
            .collect();
        match self.lock().remove(&batch) {
            Some(waiter) => waiter.send(results).is_ok(),
            None => false,
        }
    }

    /// Publishes `commands` as one batch on `admin` and waits for their
    /// results, in order.
    pub async fn execute(
        &self,
        admin: &MqttConnection,
        commands: Vec<Value>,
    ) -> Result<Vec<CommandResult>, AccountsError> {
        if commands.is_empty() {
            return Ok(Vec::new());
        }
        let batch = uuid::Uuid::new_v4().simple().to_string();
        let n = commands.len();
        let commands: Vec<Value> = commands
            .into_iter()
            .enumerate()
            .map(|(i, mut c)| {
                c["correlationData"] = Value::String(format!("{batch}:{i}"));
                c
            })
            .collect();
        let (tx, rx) = oneshot::channel();
        self.lock().insert(batch.clone(), tx);
        let payload = serde_json::to_vec(&json!({ "commands": commands })).expect("JSON");
        let sent = admin.publish(CONTROL_TOPIC, payload, false).await;
        let result = match sent {
            Err(e) => Err(AccountsError::Mqtt(e)),
            Ok(()) => match tokio::time::timeout(RESPONSE_TIMEOUT, rx).await {
                Ok(Ok(results)) if results.len() == n => Ok(results),
                Ok(Ok(results)) => Err(AccountsError::BadResponse(format!(
                    "{} results for {n} commands",
                    results.len()
                ))),
                Ok(Err(_)) | Err(_) => Err(AccountsError::Timeout),
            },
        };
        self.lock().remove(&batch);
        result
    }

    /// Runs `commands` in batches under the size limit; every failed command
    /// is returned (the others took effect).
    async fn execute_all(
        &self,
        admin: &MqttConnection,
        commands: Vec<Value>,
    ) -> Result<Vec<AccountsError>, AccountsError> {
        let mut failures = Vec::new();
        for batch in batches(commands) {
            for r in self.execute(admin, batch).await? {
                if let Some(error) = r.error {
                    failures.push(AccountsError::Command {
                        command: r.command,
                        error,
                    });
                }
            }
        }
        Ok(failures)
    }
}

/// Splits `commands` into batches whose JSON stays under [`MAX_BATCH_BYTES`].
fn batches(commands: Vec<Value>) -> Vec<Vec<Value>> {
    let mut out: Vec<Vec<Value>> = Vec::new();
    let mut size = 0;
    for c in commands {
        // Room for the correlation data and the separators.
        let len = c.to_string().len() + 64;
        if out.is_empty() || size + len > MAX_BATCH_BYTES {
            out.push(Vec::new());
            size = 0;
        }
        size += len;
        out.last_mut().expect("pushed").push(c);
    }
    out
}

/// A node account as the broker has it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Existing {
    textname: String,
    roles: Vec<String>,
}

/// What a sync did on one broker.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncReport {
    pub created: usize,
    pub updated: usize,
    pub deleted: usize,
    pub unchanged: usize,
    /// Commands the broker refused (the rest of the sync went on).
    pub failed: Vec<String>,
}

/// An account administrator for one broker: its admin connection and the
/// router of the answers it gets.
#[derive(Clone)]
pub struct Admin {
    pub connection: MqttConnection,
    pub responses: Responses,
}

impl Admin {
    pub fn broker_id(&self) -> &str {
        self.connection.broker_id()
    }

    /// Every item under `key` of a paged `list…` command (`listClients`,
    /// `listRoles`), `page` at a time.
    async fn list_all(
        &self,
        command: &str,
        key: &str,
        page: usize,
        verbose: bool,
    ) -> Result<Vec<Value>, AccountsError> {
        let mut all = Vec::new();
        loop {
            let results = self
                .responses
                .execute(
                    &self.connection,
                    vec![json!({"command": command, "verbose": verbose, "count": page, "offset": all.len()})],
                )
                .await?;
            let r = results.into_iter().next().expect("one result");
            if let Some(error) = r.error {
                return Err(AccountsError::Command {
                    command: r.command,
                    error,
                });
            }
            let mut data = r.data.unwrap_or_default();
            let total = data.get("totalCount").and_then(Value::as_u64).unwrap_or(0) as usize;
            let Some(Value::Array(items)) = data.get_mut(key).map(Value::take) else {
                return Err(AccountsError::BadResponse(format!(
                    "{command} without {key}"
                )));
            };
            let done = items.is_empty();
            all.extend(items);
            if done || all.len() >= total {
                return Ok(all);
            }
        }
    }

    /// Every account of the broker: username → (text name, roles).
    async fn list_clients(&self) -> Result<BTreeMap<String, Existing>, AccountsError> {
        let mut all = BTreeMap::new();
        for c in self
            .list_all("listClients", "clients", LIST_PAGE, true)
            .await?
        {
            let Some(username) = c.get("username").and_then(Value::as_str) else {
                continue;
            };
            let roles = c
                .get("roles")
                .and_then(Value::as_array)
                .map(|rs| {
                    rs.iter()
                        .filter_map(|r| r.get("rolename").and_then(Value::as_str))
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default();
            let textname = c
                .get("textname")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            all.insert(username.to_owned(), Existing { textname, roles });
        }
        Ok(all)
    }

    /// Every role name of the broker.
    async fn list_roles(&self) -> Result<BTreeSet<String>, AccountsError> {
        let roles = self
            .list_all("listRoles", "roles", LIST_PAGE * 4, false)
            .await?;
        // Non-verbose lists are names; verbose ones objects.
        Ok(roles
            .iter()
            .filter_map(|role| {
                role.as_str()
                    .or_else(|| role.get("rolename").and_then(Value::as_str))
            })
            .map(str::to_owned)
            .collect())
    }

    /// The ACLs role `role` has now.
    async fn role_acls(&self, roles: &[String]) -> Result<Vec<Vec<Acl>>, AccountsError> {
        let commands = roles
            .iter()
            .map(|r| json!({"command": "getRole", "rolename": r}))
            .collect::<Vec<_>>();
        let mut out = Vec::new();
        for batch in batches(commands) {
            for r in self.responses.execute(&self.connection, batch).await? {
                let acls = r
                    .data
                    .as_ref()
                    .and_then(|d| d.pointer("/role/acls"))
                    .and_then(Value::as_array)
                    .map(|acls| {
                        acls.iter()
                            .filter_map(|a| {
                                let kind = a.get("acltype")?.as_str()?;
                                let topic = a.get("topic")?.as_str()?.to_owned();
                                let acltype = ACL_TYPES.iter().find(|t| **t == kind)?;
                                Some(Acl { acltype, topic })
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                out.push(acls);
            }
        }
        Ok(out)
    }
}

/// The ACL types the plugin knows.
const ACL_TYPES: &[&str] = &[
    "publishClientSend",
    "publishClientReceive",
    "subscribeLiteral",
    "subscribePattern",
    "unsubscribeLiteral",
    "unsubscribePattern",
];

/// What to do with one desired account, given what the broker has.
/// The role every account of the brokers ends with: it denies any subscribe
/// the account's own role does not allow (deploy/mosquitto/roles.json).
pub const FLOOR_ROLE: &str = "hydro-floor";

/// The floor's priority on an account: below its own role (0), so checked last.
pub const FLOOR_PRIORITY: i32 = -100;

/// A node account's roles: its own, then the floor (checked last).
fn client_roles(role: &str) -> Value {
    json!([{"rolename": role, "priority": 0}, {"rolename": FLOOR_ROLE, "priority": FLOOR_PRIORITY}])
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Plan {
    Unchanged,
    Create { role_exists: bool },
    Update { password: bool, acls: bool },
}

fn plan(account: &NodeAccount, existing: Option<&Existing>, role_exists: bool) -> Plan {
    let Some(existing) = existing else {
        return Plan::Create { role_exists };
    };
    let (acl_fp, pw_fp) = fingerprint(&account.acls(), account.password.expose_secret());
    let (have_acl, have_pw) = parse_textname(&existing.textname).unwrap_or(("", ""));
    let mut have_roles = existing.roles.clone();
    have_roles.sort();
    let mut want_roles = vec![account.role(), FLOOR_ROLE.to_owned()];
    want_roles.sort();
    let role_ok = role_exists && have_roles == want_roles;
    if role_ok && have_acl == acl_fp && have_pw == pw_fp {
        return Plan::Unchanged;
    }
    Plan::Update {
        password: have_pw != pw_fp,
        acls: !role_exists || have_acl != acl_fp,
    }
}

/// Makes `admin`'s broker hold exactly `accounts` as node accounts: creates
/// the missing ones, fixes a changed password or namespace, and deletes the
/// node accounts (text name [`NODE_TEXTNAME_PREFIX`]) and `hydro-node-*`
/// roles of nodes no longer listed. An account already right gets no
/// command at all, so its node stays connected.
pub async fn sync_nodes(
    admin: &Admin,
    accounts: &[NodeAccount],
) -> Result<SyncReport, AccountsError> {
    sync(admin, accounts, Mode::Full).await
}

/// Like [`sync_nodes`] for `accounts` only: nothing is deleted. A bind
/// uses it to make sure a node's account exists before its NodeConfig goes out.
pub async fn ensure_nodes(
    admin: &Admin,
    accounts: &[NodeAccount],
) -> Result<SyncReport, AccountsError> {
    sync(admin, accounts, Mode::Ensure).await
}

/// Creates those of `accounts` the broker lacks and touches no existing
/// account, so no connected client is disconnected: what a bind does
/// before its NodeConfig goes out (an existing account is brought in line
/// afterwards, when its node has the config).
pub async fn create_missing_nodes(
    admin: &Admin,
    accounts: &[NodeAccount],
) -> Result<SyncReport, AccountsError> {
    sync(admin, accounts, Mode::CreateOnly).await
}

/// How far a sync goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Create, fix and delete.
    Full,
    /// Create and fix.
    Ensure,
    /// Create only.
    CreateOnly,
}

/// Deletes the accounts and roles of nodes `uids` (those that exist).
pub async fn remove_nodes(admin: &Admin, uids: &[String]) -> Result<SyncReport, AccountsError> {
    let clients = admin.list_clients().await?;
    let roles = admin.list_roles().await?;
    let mut commands = Vec::new();
    let mut report = SyncReport::default();
    for uid in uids {
        let role = format!("{NODE_ROLE_PREFIX}{uid}");
        if let Some(c) = clients.get(uid)
            && c.textname.starts_with(NODE_TEXTNAME_PREFIX)
        {
            commands.push(json!({"command": "deleteClient", "username": uid}));
            report.deleted += 1;
        }
        if roles.contains(&role) {
            commands.push(json!({"command": "deleteRole", "rolename": role}));
        }
    }
    report.failed = failures(
        admin
            .responses
            .execute_all(&admin.connection, commands)
            .await?,
    );
    Ok(report)
}

fn failures(errors: Vec<AccountsError>) -> Vec<String> {
    errors.into_iter().map(|e| e.to_string()).collect()
}

/// One sync, and a second one when another sync (the periodic one while a
/// bind runs, or another instance's) created an account or role between
/// this one's listing and its commands: the second plans against what the
/// broker holds now, so the race costs a round trip, never a failed bind.
async fn sync(
    admin: &Admin,
    accounts: &[NodeAccount],
    mode: Mode,
) -> Result<SyncReport, AccountsError> {
    let (report, raced) = sync_once(admin, accounts, mode).await?;
    if !raced {
        return Ok(report);
    }
    debug!(
        broker = admin.broker_id(),
        "Node accounts were created under this sync; planning again."
    );
    Ok(sync_once(admin, accounts, mode).await?.0)
}

/// One listing, one plan, its commands: the report, and whether a create
/// found its account or role already there.
async fn sync_once(
    admin: &Admin,
    accounts: &[NodeAccount],
    mode: Mode,
) -> Result<(SyncReport, bool), AccountsError> {
    let clients = admin.list_clients().await?;
    let roles = admin.list_roles().await?;
    let mut report = SyncReport::default();
    let mut first = Vec::new(); // roles: created, or their ACLs fixed
    let mut second = Vec::new(); // clients: created or updated
    let mut fix_roles = Vec::new();
    for account in accounts {
        let role = account.role();
        let acls: Vec<Value> = account.acls().iter().map(Acl::to_json).collect();
        match plan(account, clients.get(&account.uid), roles.contains(&role)) {
            Plan::Unchanged => report.unchanged += 1,
            Plan::Create { role_exists } => {
                if role_exists {
                    fix_roles.push(account);
                } else {
                    first.push(json!({"command": "createRole", "rolename": role, "acls": acls}));
                }
                second.push(json!({
                    "command": "createClient",
                    "username": account.uid,
                    "password": account.password.expose_secret(),
                    "textname": account.textname(),
                    "roles": client_roles(&role),
                }));
                report.created += 1;
            }
            Plan::Update { .. } if mode == Mode::CreateOnly => report.unchanged += 1,
            Plan::Update {
                password,
                acls: acls_changed,
            } => {
                if !roles.contains(&role) {
                    first.push(json!({"command": "createRole", "rolename": role, "acls": acls}));
                } else if acls_changed {
                    fix_roles.push(account);
                }
                let mut modify = json!({
                    "command": "modifyClient",
                    "username": account.uid,
                    "textname": account.textname(),
                    "roles": client_roles(&role),
                });
                if password {
                    modify["password"] = Value::String(account.password.expose_secret().to_owned());
                }
                second.push(modify);
                report.updated += 1;
            }
        }
    }
    if !fix_roles.is_empty() {
        let names: Vec<String> = fix_roles.iter().map(|a| a.role()).collect();
        let current = admin.role_acls(&names).await?;
        for (account, have) in fix_roles.iter().zip(current) {
            let want = account.acls();
            let role = account.role();
            for acl in have.iter().filter(|a| !want.contains(a)) {
                first.push(json!({"command": "removeRoleACL", "rolename": role, "acltype": acl.acltype, "topic": acl.topic}));
            }
            for acl in want.iter().filter(|a| !have.contains(a)) {
                let mut add = acl.to_json();
                add["command"] = json!("addRoleACL");
                add["rolename"] = json!(role);
                first.push(add);
            }
        }
    }
    if mode == Mode::Full {
        let wanted: BTreeSet<&str> = accounts.iter().map(|a| a.uid.as_str()).collect();
        for (username, c) in &clients {
            if c.textname.starts_with(NODE_TEXTNAME_PREFIX) && !wanted.contains(username.as_str()) {
                second.push(json!({"command": "deleteClient", "username": username}));
                report.deleted += 1;
            }
        }
        for role in &roles {
            if let Some(uid) = role.strip_prefix(NODE_ROLE_PREFIX)
                && !wanted.contains(uid)
            {
                second.push(json!({"command": "deleteRole", "rolename": role}));
            }
        }
    }
    debug!(
        broker = admin.broker_id(),
        ?report,
        "Node accounts planned."
    );
    let mut failed = admin
        .responses
        .execute_all(&admin.connection, first)
        .await?;
    failed.extend(
        admin
            .responses
            .execute_all(&admin.connection, second)
            .await?,
    );
    let raced = failed.iter().any(AccountsError::already_exists);
    report.failed = failures(failed);
    Ok((report, raced))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(
        uid: &str,
        pw: Option<&str>,
        zone: Option<&str>,
        target: Option<(&str, &str)>,
    ) -> AccountRow {
        AccountRow {
            uid: uid.into(),
            password: pw.map(str::to_owned),
            decommissioned: false,
            gh_uid: zone.map(|_| "gh-1".into()),
            zone_uid: zone.map(str::to_owned),
            target_uid: target.map(|t| t.0.into()),
            target_gh: target.map(|_| "gh-1".into()),
            target_zone: target.map(|t| t.1.into()),
        }
    }

    fn zones(a: &NodeAccount) -> Vec<&str> {
        a.namespaces.iter().map(|n| n.zone_uid.as_str()).collect()
    }

    #[test]
    fn a_bound_node_has_its_zone() {
        let (accounts, unwanted) = accounts_from(&[row("nd-1", Some("p"), Some("zn-1"), None)]);
        assert_eq!(accounts.len(), 1);
        assert_eq!(accounts[0].uid, "nd-1");
        assert_eq!(zones(&accounts[0]), ["zn-1"]);
        assert!(unwanted.is_empty());
    }

    #[test]
    fn a_rebind_keeps_both_zones_until_it_completes() {
        let (accounts, _) =
            accounts_from(&[row("nd-1", Some("p"), Some("zn-1"), Some(("nd-1", "zn-2")))]);
        assert_eq!(zones(&accounts[0]), ["zn-1", "zn-2"]);
        // Under a new uid: two accounts, same password.
        let (accounts, _) =
            accounts_from(&[row("nd-1", Some("p"), Some("zn-1"), Some(("nd-9", "zn-2")))]);
        assert_eq!(accounts.len(), 2);
        // A first bind: the target only.
        let (accounts, unwanted) =
            accounts_from(&[row("nd-x", Some("p"), None, Some(("nd-1", "zn-2")))]);
        assert_eq!(accounts[0].uid, "nd-1");
        assert_eq!(unwanted, ["nd-x"]);
    }

    #[test]
    fn unbound_decommissioned_and_passwordless_nodes_have_none() {
        let mut gone = row("nd-2", Some("p"), Some("zn-1"), None);
        gone.decommissioned = true;
        let (accounts, unwanted) = accounts_from(&[
            row("nd-1", Some("p"), None, None),
            gone,
            row("nd-3", None, Some("zn-1"), None),
        ]);
        assert!(accounts.is_empty());
        assert_eq!(unwanted, ["nd-1", "nd-2", "nd-3"]);
    }

    fn account(uid: &str, zones: &[&str], pw: &str) -> NodeAccount {
        NodeAccount {
            uid: uid.into(),
            namespaces: zones
                .iter()
                .map(|z| Namespace {
                    gh_uid: "gh-1".into(),
                    zone_uid: (*z).into(),
                })
                .collect(),
            password: SecretString::from(pw),
        }
    }

    #[test]
    fn acls_name_the_node_only() {
        let acls = node_acls("gh-1", "zn-1", "nd-ph-1");
        let topics: Vec<(&str, &str)> =
            acls.iter().map(|a| (a.acltype, a.topic.as_str())).collect();
        for t in [
            ("publishClientSend", "hydro/gh-1/zn-1/nd-ph-1/+/telemetry"),
            ("publishClientSend", "hydro/gh-1/zn-1/nd-ph-1/lwt"),
            ("publishClientSend", "hydro/node_hello"),
            ("publishClientSend", "hydro/time/request"),
            ("subscribePattern", "hydro/gh-1/zn-1/nd-ph-1/+/command"),
            ("subscribePattern", "hydro/gh-1/zn-1/nd-ph-1/config"),
            ("subscribePattern", "nodes/nd-ph-1/config/update"),
            ("subscribePattern", "hydro/time/response"),
        ] {
            assert!(topics.contains(&t), "{t:?}");
        }
        assert!(acls.iter().all(|a| !a.topic.contains('#')));
        assert!(
            acls.iter()
                .filter(|a| a.topic.starts_with("hydro/gh"))
                .all(|a| a.topic.starts_with("hydro/gh-1/zn-1/nd-ph-1/"))
        );
    }

    #[test]
    fn a_rebind_allows_both_zones_once() {
        let one = account("nd-1", &["zn-1"], "p").acls();
        let both = account("nd-1", &["zn-1", "zn-2"], "p").acls();
        // Once: the hello and time request sends, and both ways of the time
        // response and of the node's `nodes/{uid}/config/update`.
        assert_eq!(both.len(), 2 * one.len() - 6, "global topics once");
    }

    #[test]
    fn plans_touch_only_what_changed() {
        let a = account("nd-1", &["zn-1"], "password-1");
        assert_eq!(plan(&a, None, false), Plan::Create { role_exists: false });
        let right = Existing {
            textname: a.textname(),
            roles: vec![a.role(), FLOOR_ROLE.to_owned()],
        };
        assert_eq!(plan(&a, Some(&right), true), Plan::Unchanged);
        let new_pw = account("nd-1", &["zn-1"], "password-2");
        assert_eq!(
            plan(&new_pw, Some(&right), true),
            Plan::Update {
                password: true,
                acls: false
            }
        );
        let moved = account("nd-1", &["zn-2"], "password-1");
        assert_eq!(
            plan(&moved, Some(&right), true),
            Plan::Update {
                password: false,
                acls: true
            }
        );
        let lost_role = Existing {
            roles: vec![],
            ..right.clone()
        };
        assert!(matches!(
            plan(&a, Some(&lost_role), true),
            Plan::Update { .. }
        ));
        assert!(!a.textname().contains("password-1"));
    }

    #[test]
    fn batches_stay_small() {
        let big: Vec<Value> = (0..200)
            .map(|i| json!({"command": "createRole", "rolename": format!("r{i}"), "acls": account("nd", &["zn"], "p").acls().iter().map(Acl::to_json).collect::<Vec<_>>()}))
            .collect();
        let out = batches(big);
        assert!(out.len() > 1);
        assert_eq!(out.iter().map(Vec::len).sum::<usize>(), 200);
        for b in &out {
            assert!(json!({ "commands": b }).to_string().len() < MAX_BATCH_BYTES + 64 * b.len());
        }
    }
}
