//! A node seen on a broker: registered when unknown, refreshed when known
//! (last seen, observed broker, what it declared), its latest readings
//! while unbound and the config it reports. The caller decides which of
//! these to do (device-registry's registration loop); each is one statement.
//!
//! The observed broker is the one a message arrived on when it is in
//! `brokers` (an unknown one changes nothing); each statement that sets it
//! writes that out, so that it stays a static, checked statement.

use serde_json::Value;
use sqlx::PgExecutor;

use super::{Lifecycle, NodeRef};

/// What a sighting writes on a node; each `None` keeps what is stored.
#[derive(Debug, Clone, Copy)]
pub struct Seen<'a> {
    /// The hardware id it sent (a node without one learns it).
    pub hardware_id: &'a str,
    /// Its declared (canonical) type: replaces `unknown` only.
    pub node_type: Option<&'a str>,
    pub fw_version: Option<&'a str>,
    /// A JSON array of capabilities.
    pub capabilities: Option<&'a Value>,
    pub move_via: Option<&'a str>,
    /// The broker it arrived on.
    pub broker_id: &'a str,
}

/// Which node a sighting refreshes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target<'a> {
    /// The node with this hardware id.
    HardwareId(&'a str),
    /// The node with this uid and no hardware id yet.
    UidWithoutHardwareId(&'a str),
}

/// The node that owns a hardware id, and where it is in its life.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HardwareOwner {
    pub id: i64,
    pub uid: String,
    pub lifecycle: Lifecycle,
}

queries! {
    /// The node whose hardware id is `hardware_id`.
    pub fn owner_of_hardware_id(db, hardware_id: &str) -> Option<HardwareOwner> {
        fetch_optional(query_as!(
            HardwareOwner,
            r#"SELECT id, uid, lifecycle AS "lifecycle: Lifecycle" FROM nodes
               WHERE hardware_id = $1"#,
            hardware_id
        ))
    }

    /// Whether a node has the hardware id `hardware_id`.
    pub fn hardware_id_taken(db, hardware_id: &str) -> bool {
        fetch_one(query_scalar!(
            r#"SELECT EXISTS (SELECT 1 FROM nodes WHERE hardware_id = $1) AS "taken!""#,
            hardware_id
        ))
    }
}

/// Refreshes the `target` node unless it is decommissioned: last seen,
/// observed broker, what it declared, and its hardware id if it had none.
/// `None`: no such node (or decommissioned).
pub async fn touch(
    db: impl PgExecutor<'_>,
    target: Target<'_>,
    seen: &Seen<'_>,
) -> Result<Option<NodeRef>, sqlx::Error> {
    let (by_hardware_id, by_uid) = match target {
        Target::HardwareId(h) => (Some(h), None),
        Target::UidWithoutHardwareId(u) => (None, Some(u)),
    };
    sqlx::query_as!(
        NodeRef,
        "UPDATE nodes SET last_seen_at = now(), updated_at = now(), \
            hardware_id = COALESCE(hardware_id, $3), fw_version = COALESCE($4, fw_version), \
            type = CASE WHEN type = 'unknown' AND $5::text IS NOT NULL THEN $5 ELSE type END, \
            capabilities = COALESCE($6, capabilities), move_via = COALESCE($7, move_via), \
            observed_broker_id = COALESCE((SELECT id FROM brokers WHERE id = $8), observed_broker_id), \
            observed_at = CASE WHEN EXISTS (SELECT 1 FROM brokers WHERE id = $8) THEN now() ELSE observed_at END \
          WHERE (hardware_id = $1 OR (uid = $2 AND hardware_id IS NULL)) AND lifecycle <> 'DECOMMISSIONED' \
          RETURNING id, uid",
        by_hardware_id,
        by_uid,
        seen.hardware_id,
        seen.fw_version,
        seen.node_type,
        seen.capabilities,
        seen.move_via,
        seen.broker_id
    )
    .fetch_optional(db)
    .await
}

queries! {
    /// Registers a new node (REGISTERED, unbound) under `uid` with type `kind`;
    /// `None` when the uid or the hardware id is taken. Returns its id.
    pub fn insert_registered(db, uid: &str, kind: &str, seen: &Seen<'_>) -> Option<i64> {
        fetch_optional(query_scalar!(
            "INSERT INTO nodes (uid, hardware_id, type, fw_version, capabilities, move_via, \
                lifecycle, last_seen_at, observed_broker_id, observed_at) \
             VALUES ($1, $2, $3, $4, COALESCE($5, '[]'::jsonb), COALESCE($6, 'node_config'), \
                'REGISTERED', now(), (SELECT id FROM brokers WHERE id = $7), \
                CASE WHEN EXISTS (SELECT 1 FROM brokers WHERE id = $7) THEN now() END) \
             ON CONFLICT DO NOTHING RETURNING id",
            uid, seen.hardware_id, kind, seen.fw_version, seen.capabilities, seen.move_via,
            seen.broker_id
        ))
    }

    /// Keeps the latest reading of an unbound node's channel.
    pub fn store_reading(db, node_id: i64, channel: &str, reading: &Value) {
        execute(query!(
            "UPDATE nodes \
             SET unbound_readings = unbound_readings || jsonb_build_object($2::text, $3::jsonb) \
             WHERE id = $1",
            node_id, channel, reading
        ))
    }

    /// Stores a reported config (without its secret), its fw_version and the
    /// broker it came from.
    pub fn store_config(
        db, node_id: i64, config: &Value, fw_version: Option<&str>, broker_id: &str
    ) {
        execute(query!(
            "UPDATE nodes SET config = $2, config_reported_at = now(), \
                fw_version = COALESCE($3, fw_version), last_seen_at = now(), updated_at = now(), \
                observed_broker_id = COALESCE((SELECT id FROM brokers WHERE id = $4), \
                                              observed_broker_id), \
                observed_at = CASE WHEN EXISTS (SELECT 1 FROM brokers WHERE id = $4) \
                                   THEN now() ELSE observed_at END \
              WHERE id = $1",
            node_id, config, fw_version, broker_id
        ))
    }
}
