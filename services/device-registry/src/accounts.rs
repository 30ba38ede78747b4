//! Node accounts on every broker, kept in line with `nodes.mqtt_password`.
//!
//! A node with a password has an account (username = uid) on every enabled
//! broker while it is in a zone or a bind is pending, allowed its zone's
//! topics and those of its pending bind's target (the node needs both until
//! it has moved); any other node account is deleted. The registry talks to
//! each broker's dynamic-security plugin over a connection of its own logged
//! in as `MQTT_ADMIN_USER` (see [`common::mqtt::accounts`]).
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

use std::collections::HashMap;
use std::time::Duration;

use common::metrics as m;
use common::mqtt::accounts::{
    self as dynsec, Admin, Responses, SyncReport, accounts_from, load_accounts,
};
use common::mqtt::pool::BrokerPool;
use common::store::nodes::account_row;
use rand::RngCore;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

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
        let Some(row) = account_row(&self.pool, node_id)
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
        let row = match account_row(&self.pool, node_id).await {
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
        let accounts = match load_accounts(&self.pool).await {
            Ok(accounts) => accounts,
            Err(e) => {
                count_error(&broker, "db_error");
                warn!(error = %e, "Could not read the node accounts; retrying.");
                return false;
            }
        };
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

    #[test]
    fn passwords_are_long_and_fresh() {
        let (a, b) = (new_password(), new_password());
        assert_eq!(a.len(), 48);
        assert_ne!(a, b);
    }
}
