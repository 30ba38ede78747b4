//! Node accounts on every broker, kept in line with `nodes.mqtt_password`.
//!
//! A node with a password has an account (username = uid) on every enabled
//! broker while it is in a zone or a bind is pending, allowed its zone's
//! topics and those of its pending bind's target (the node needs both until
//! it has moved); any other node account is deleted. The registry talks to
//! each broker's dynamic-security plugin over a connection of its own logged
//! in as `MQTT_ADMIN_USER` (see [`common::broker_accounts`]).
//!
//! When it happens:
//! - a bind creates the accounts its node lacks before the NodeConfig goes
//!   out (never touching an existing one: a change disconnects its client,
//!   and a node disconnected then would miss its config), then, once the
//!   node has had a moment to apply the config, brings its accounts in line
//!   ([`Accounts::settle_later`]): a changed namespace disconnects the node,
//!   which reconnects and reports its config from the new namespace;
//! - an unbind and a decommission remove the node's account the same way;
//! - [`Accounts::reconcile_loop`] syncs every broker every
//!   `DEVICE_ACCOUNT_SYNC_SEC` and whenever an admin connection comes up, so
//!   a broker that was down, or is new, gets every account.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use common::broker_accounts::{
    self as dynsec, Admin, Namespace, NodeAccount, Responses, SyncReport,
};
use common::brokers::BrokerPool;
use common::metrics as m;
use rand::RngCore;
use secrecy::SecretString;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::store::{self, AccountRow};

/// How long a bind waits after its NodeConfig went out before it changes
/// an existing account (which disconnects the node): time for the node to
/// read and apply the config.
pub const SETTLE_DELAY: Duration = Duration::from_secs(1);
/// How often admin connections that came up are looked for.
const CONNECT_CHECK: Duration = Duration::from_millis(500);

/// A fresh broker password for a node: 48 lowercase hex characters (24
/// bytes from the thread's CSPRNG).
pub fn new_password() -> String {
    let mut bytes = [0u8; 24];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
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
        .collect::<std::collections::BTreeSet<_>>()
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

/// The registry's account administrator on every broker; cheap to clone.
#[derive(Clone)]
pub struct Accounts {
    pool: PgPool,
    admins: BrokerPool,
    responses: Responses,
}

fn count(broker: &str, report: &SyncReport) {
    for (outcome, n) in [
        ("created", report.created),
        ("updated", report.updated),
        ("deleted", report.deleted),
        ("unchanged", report.unchanged),
    ] {
        if n > 0 {
            metrics::counter!(m::DEVICE_ACCOUNTS_SYNCED, "broker" => broker.to_owned(), "outcome" => outcome)
                .increment(n as u64);
        }
    }
    if !report.failed.is_empty() {
        metrics::counter!(m::DEVICE_ACCOUNT_SYNC_ERRORS, "broker" => broker.to_owned(), "reason" => "command")
            .increment(report.failed.len() as u64);
        warn!(broker, failed = ?report.failed, "The broker refused some node account commands.");
    }
}

fn count_error(broker: &str, reason: &'static str) {
    metrics::counter!(m::DEVICE_ACCOUNT_SYNC_ERRORS, "broker" => broker.to_owned(), "reason" => reason)
        .increment(1);
}

impl Accounts {
    /// Uses `admins` (connections logged in as the dynsec admin, subscribed
    /// to the response topic and delivering to `responses`).
    pub fn new(pool: PgPool, admins: BrokerPool, responses: Responses) -> Self {
        Accounts {
            pool,
            admins,
            responses,
        }
    }

    /// The admin of every broker whose admin connection is up.
    fn connected(&self) -> Vec<Admin> {
        self.admins
            .all()
            .into_iter()
            .filter(|c| c.is_connected())
            .map(|connection| Admin {
                connection,
                responses: self.responses.clone(),
            })
            .collect()
    }

    /// Creates the accounts node `node_id` lacks on every connected broker,
    /// changing no existing one. Err names the brokers where that failed.
    pub async fn create_missing(&self, node_id: i64) -> Result<(), String> {
        let Some(row) = store::account_row(&self.pool, node_id)
            .await
            .map_err(|e| e.to_string())?
        else {
            return Ok(());
        };
        let (accounts, _) = accounts_from(&[row]);
        let admins = self.connected();
        if admins.is_empty() {
            return Err("no broker's admin connection is up".into());
        }
        let mut errors = Vec::new();
        for admin in admins {
            match dynsec::create_missing_nodes(&admin, &accounts).await {
                Ok(report) => {
                    count(admin.broker_id(), &report);
                    if !report.failed.is_empty() {
                        errors.push(format!(
                            "{}: {}",
                            admin.broker_id(),
                            report.failed.join("; ")
                        ));
                    }
                }
                Err(e) => {
                    count_error(admin.broker_id(), e.reason());
                    errors.push(format!("{}: {e}", admin.broker_id()));
                }
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors.join("; "))
        }
    }

    /// Brings node `node_id`'s accounts in line on every connected broker:
    /// creates or fixes those it should have, deletes those it should not.
    pub async fn settle(&self, node_id: i64) {
        let row = match store::account_row(&self.pool, node_id).await {
            Ok(Some(row)) => row,
            Ok(None) => return,
            Err(e) => {
                warn!(node_id, error = %e, "Could not read the node's account; the periodic sync will do it.");
                return;
            }
        };
        let (accounts, unwanted) = accounts_from(&[row]);
        for admin in self.connected() {
            let broker = admin.broker_id().to_owned();
            let ensured = dynsec::ensure_nodes(&admin, &accounts).await;
            let removed = if unwanted.is_empty() {
                Ok(SyncReport::default())
            } else {
                dynsec::remove_nodes(&admin, &unwanted).await
            };
            for result in [ensured, removed] {
                match result {
                    Ok(report) => count(&broker, &report),
                    Err(e) => {
                        count_error(&broker, e.reason());
                        warn!(broker, node_id, error = %e, "Could not settle the node's account; the periodic sync will.");
                    }
                }
            }
        }
    }

    /// [`Accounts::settle`] after [`SETTLE_DELAY`], in the background.
    pub fn settle_later(&self, node_id: i64) {
        let accounts = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(SETTLE_DELAY).await;
            accounts.settle(node_id).await;
        });
    }

    /// Syncs one broker with the database: every account there, and only those.
    async fn sync_broker(&self, admin: &Admin) -> bool {
        let broker = admin.broker_id().to_owned();
        let rows = match store::account_rows(&self.pool).await {
            Ok(rows) => rows,
            Err(e) => {
                count_error(&broker, "db_error");
                warn!(error = %e, "Could not read the node accounts; retrying.");
                return false;
            }
        };
        let (accounts, _) = accounts_from(&rows);
        match dynsec::sync_nodes(admin, &accounts).await {
            Ok(report) => {
                count(&broker, &report);
                if report.created + report.updated + report.deleted > 0 {
                    info!(
                        broker,
                        created = report.created,
                        updated = report.updated,
                        deleted = report.deleted,
                        unchanged = report.unchanged,
                        "Node accounts synced."
                    );
                }
                report.failed.is_empty()
            }
            Err(e) => {
                count_error(&broker, e.reason());
                warn!(broker, error = %e, "Node account sync failed; retrying.");
                false
            }
        }
    }

    /// Syncs every broker every `every`, and each admin connection as soon
    /// as it comes up (a broker started, restarted or added), until `stop`.
    pub async fn reconcile_loop(self, every: Duration, stop: CancellationToken) {
        // Brokers synced since their admin connection last came up.
        let mut synced: HashMap<String, bool> = HashMap::new();
        let mut full = tokio::time::interval(every);
        full.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut check = tokio::time::interval(CONNECT_CHECK);
        check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let all = tokio::select! {
                _ = stop.cancelled() => return,
                _ = full.tick() => true,
                _ = check.tick() => false,
            };
            for connection in self.admins.all() {
                let id = connection.broker_id().to_owned();
                if !connection.is_connected() {
                    synced.insert(id, false);
                    continue;
                }
                if !all && synced.get(&id).copied().unwrap_or(false) {
                    continue;
                }
                let admin = Admin {
                    connection,
                    responses: self.responses.clone(),
                };
                let ok = self.sync_broker(&admin).await;
                synced.insert(id, ok);
            }
        }
    }
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

    #[test]
    fn passwords_are_long_and_fresh() {
        let (a, b) = (new_password(), new_password());
        assert_eq!(a.len(), 48);
        assert_ne!(a, b);
    }
}
