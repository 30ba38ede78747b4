//! The dynsec API of one broker: batches of commands published as its admin,
//! answers matched to their batch, the accounts and roles it holds.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::*;
use crate::mqtt::{Inbound, MqttConnection};

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
    pub(super) async fn execute_all(
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
pub(super) struct Existing {
    pub(super) textname: String,
    pub(super) roles: Vec<String>,
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
    pub(super) async fn list_clients(&self) -> Result<BTreeMap<String, Existing>, AccountsError> {
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
    pub(super) async fn list_roles(&self) -> Result<BTreeSet<String>, AccountsError> {
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
    pub(super) async fn role_acls(&self, roles: &[String]) -> Result<Vec<Vec<Acl>>, AccountsError> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mqtt::accounts::acl::tests::account;

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
