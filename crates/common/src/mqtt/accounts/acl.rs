//! What a node's account should be: its ACLs (its own topics only), its
//! namespaces, the fingerprint of what was set, from the `nodes` rows.

use std::collections::{BTreeMap, BTreeSet};

use proto::topics::{GLOBAL_NODE_HELLO, TopicKind, node_topic};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use sqlx::PgPool;

use super::*;
use crate::store::nodes::{AccountRow, account_rows};

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

    pub(super) fn to_json(&self) -> Value {
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
pub(super) fn parse_textname(textname: &str) -> Option<(&str, &str)> {
    let rest = textname.strip_prefix(NODE_TEXTNAME_PREFIX)?;
    let (acl, pw) = rest.split_once(' ')?;
    Some((acl.strip_prefix("acl=")?, pw.strip_prefix("pw=")?))
}

#[cfg(test)]
pub(super) mod tests {
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

    pub(crate) fn account(uid: &str, zones: &[&str], pw: &str) -> NodeAccount {
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
}
