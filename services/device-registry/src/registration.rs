//! Registering nodes from what they send: an unknown node is registered
//! (REGISTERED, unbound, under a generated uid), a known one refreshed (last
//! seen, observed broker, what it declared), a decommissioned one left
//! alone. The decisions are here; each write is one statement of
//! [`common::store::nodes`]. Other instances may register the same node at
//! the same time: a lost race is retried, never an error.

use common::store::nodes::{self, Lifecycle, Seen, Target};
use sqlx::PgPool;

use crate::lifecycle;

/// What a node told about itself (a hello, or any temp-namespace message).
#[derive(Debug, Clone, Default)]
pub struct Sighting {
    pub hardware_id: String,
    /// Declared type (canonicalised here); `None`: not told.
    pub node_type: Option<String>,
    pub fw_version: Option<String>,
    /// From a hello only: the capabilities (and so the move means).
    pub capabilities: Option<Vec<String>>,
    /// A uid the node says it has (hello `node_uid`, or its topic's node
    /// level outside the temp namespace): a known node without a hardware id
    /// learns it.
    pub uid_hint: Option<String>,
    /// The broker it arrived on.
    pub broker_id: String,
}

/// What registering a sighting did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Registered {
    /// A new node, under this uid.
    New { id: i64, uid: String },
    /// A known node, seen again.
    Known { id: i64, uid: String },
    /// A decommissioned node: nothing changed.
    Decommissioned { uid: String },
}

/// Registers an unknown node or refreshes a known one: see the module header.
pub async fn register(pool: &PgPool, s: &Sighting) -> Result<Registered, sqlx::Error> {
    let node_type = s
        .node_type
        .as_deref()
        .map(|t| lifecycle::canonical_type(Some(t)));
    let capabilities = s.capabilities.as_ref().map(|c| serde_json::json!(c));
    let seen = Seen {
        hardware_id: &s.hardware_id,
        node_type,
        fw_version: s.fw_version.as_deref(),
        capabilities: capabilities.as_ref(),
        move_via: s.capabilities.as_deref().map(lifecycle::move_via),
        broker_id: &s.broker_id,
    };
    for _ in 0..3 {
        let known = nodes::owner_of_hardware_id(pool, &s.hardware_id).await?;
        if let Some(owner) = &known
            && owner.lifecycle == Lifecycle::Decommissioned
        {
            return Ok(Registered::Decommissioned {
                uid: owner.uid.clone(),
            });
        }
        let target = match (&known, &s.uid_hint) {
            (Some(_), _) => Some(Target::HardwareId(&s.hardware_id)),
            (None, Some(uid)) => Some(Target::UidWithoutHardwareId(uid)),
            (None, None) => None,
        };
        let touched = match target {
            Some(target) => nodes::touch(pool, target, &seen).await?,
            None => None,
        };
        if let Some(node) = touched {
            return Ok(Registered::Known {
                id: node.id,
                uid: node.uid,
            });
        }
        if known.is_some() {
            continue; // decommissioned meanwhile: the next round says so
        }
        let kind = node_type.unwrap_or("unknown");
        for attempt in 0..50 {
            let uid = lifecycle::generated_uid(kind, &s.hardware_id, attempt);
            if let Some(id) = nodes::insert_registered(pool, &uid, kind, &seen).await? {
                return Ok(Registered::New { id, uid });
            }
            if nodes::hardware_id_taken(pool, &s.hardware_id).await? {
                break; // registered meanwhile by another instance: touch it
            }
        }
    }
    Err(sqlx::Error::Protocol(format!(
        "could not register hardware id {}",
        s.hardware_id
    )))
}
