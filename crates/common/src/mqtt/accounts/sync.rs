//! Bringing a broker's node accounts in line with the database: a plan per
//! account (nothing for one already right), then its commands.

use std::collections::BTreeSet;

use secrecy::ExposeSecret;
use serde_json::{Value, json};
use tracing::debug;

use super::*;

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
    use crate::mqtt::accounts::acl::tests::account;

    #[test]
    fn plans_touch_only_what_changed() {
        let a = account("nd-1", &["zn-1"], "password-1");
        assert_eq!(plan(&a, None, false), Plan::Create { role_exists: false });
        let right = Existing {
            textname: a.textname(),
            roles: vec![a.role(), FLOOR_ROLE.to_owned()],
        };
        assert_eq!(plan(&a, Some(&right), true), Plan::Unchanged);
        // A new password, then a move to another zone.
        for (zone, password, update) in [
            ("zn-1", "password-2", (true, false)),
            ("zn-2", "password-1", (false, true)),
        ] {
            let changed = account("nd-1", &[zone], password);
            let (password, acls) = update;
            assert_eq!(
                plan(&changed, Some(&right), true),
                Plan::Update { password, acls }
            );
        }
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
}
