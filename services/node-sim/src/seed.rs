//! Writes the simulated greenhouse into PostgreSQL (`SIM_SEED_DB=true`), so
//! the backend knows the nodes before they speak: the greenhouse, its zones,
//! the nodes and their channels. Idempotent: a second run changes no row.
//!
//! Zone and node uids are unique across the whole database, so one database
//! holds one simulated layout; seeding another greenhouse with the same
//! layout moves the zones to it.

use std::collections::HashMap;

use rand::RngCore;
use secrecy::SecretString;
use sqlx::PgPool;
use tracing::{info, instrument};

use crate::layout::Layout;

/// `nodes.fw_version` of every simulated node.
pub const FW_VERSION: &str = "sim-1.0";
/// `nodes.move_via` of every seeded (classic) node: it follows
/// `nodes/{node}/config/update` with fallbacks (contract section 7).
pub const MOVE_VIA: &str = "config_update";
/// `greenhouses.name` of a seeded greenhouse (when it is created).
pub const GREENHOUSE_NAME: &str = "Simulated greenhouse";

/// Rows inserted or changed by one [`seed`] run (0 everywhere on a re-run).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeedSummary {
    pub greenhouse_id: i64,
    pub greenhouses_written: u64,
    pub zones_written: u64,
    pub nodes_written: u64,
    pub channels_written: u64,
}

/// Upserts `greenhouse` and everything in `layout`, in one transaction.
///
/// Names an operator may have changed (greenhouse, zones) are left alone;
/// what the simulator depends on (a node's zone, type, channels) is put back.
/// Each node gets its own command secret (`nodes.secret`) and broker
/// password (`nodes.mqtt_password`, for the account device-registry creates)
/// when it has none; existing ones are kept (see [`credentials`]).
/// `nodes.move_via` is [`MOVE_VIA`]. Firmware-mode nodes are never seeded:
/// device-registry registers them from their hello.
#[instrument(skip_all, fields(greenhouse = %greenhouse, nodes = layout.nodes.len()), err)]
pub async fn seed(
    pool: &PgPool,
    layout: &Layout,
    greenhouse: &str,
) -> Result<SeedSummary, sqlx::Error> {
    let mut tx = pool.begin().await?;

    let inserted = sqlx::query(
        "INSERT INTO greenhouses (uid, name, timezone) VALUES ($1, $2, 'UTC')
         ON CONFLICT (uid) DO NOTHING",
    )
    .bind(greenhouse)
    .bind(GREENHOUSE_NAME)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    let (greenhouse_id,): (i64,) = sqlx::query_as("SELECT id FROM greenhouses WHERE uid = $1")
        .bind(greenhouse)
        .fetch_one(&mut *tx)
        .await?;

    let zone_names: Vec<String> = layout
        .zones
        .iter()
        .map(|z| format!("Zone {}", z.trim_start_matches("zn-")))
        .collect();
    let zones = sqlx::query(
        "INSERT INTO zones (uid, greenhouse_id, name)
         SELECT uid, $1, name FROM UNNEST($2::text[], $3::text[]) AS t (uid, name)
         ON CONFLICT (uid) DO UPDATE SET greenhouse_id = EXCLUDED.greenhouse_id, updated_at = now()
         WHERE zones.greenhouse_id IS DISTINCT FROM EXCLUDED.greenhouse_id",
    )
    .bind(greenhouse_id)
    .bind(&layout.zones)
    .bind(&zone_names)
    .execute(&mut *tx)
    .await?
    .rows_affected();

    let uids: Vec<&str> = layout.nodes.iter().map(|n| n.uid.as_str()).collect();
    let node_zones: Vec<&str> = layout.nodes.iter().map(|n| n.zone.as_str()).collect();
    let kinds: Vec<&str> = layout.nodes.iter().map(|n| n.kind.as_str()).collect();
    let nodes = sqlx::query(
        "INSERT INTO nodes (uid, zone_id, type, fw_version, move_via)
         SELECT t.uid, z.id, t.kind, $4, $5
         FROM UNNEST($1::text[], $2::text[], $3::text[]) AS t (uid, zone, kind)
         JOIN zones z ON z.uid = t.zone
         ON CONFLICT (uid) DO UPDATE
         SET zone_id = EXCLUDED.zone_id, type = EXCLUDED.type,
             fw_version = EXCLUDED.fw_version, move_via = EXCLUDED.move_via, updated_at = now()
         WHERE (nodes.zone_id, nodes.type, nodes.fw_version, nodes.move_via)
               IS DISTINCT FROM (EXCLUDED.zone_id, EXCLUDED.type, EXCLUDED.fw_version, EXCLUDED.move_via)",
    )
    .bind(&uids)
    .bind(&node_zones)
    .bind(&kinds)
    .bind(FW_VERSION)
    .bind(MOVE_VIA)
    .execute(&mut *tx)
    .await?
    .rows_affected();

    // A secret and a broker password of its own for every node lacking one
    // (issue 11: no simulated node runs on the public default secret).
    let secrets: Vec<String> = uids.iter().map(|_| random_hex(32)).collect();
    let passwords: Vec<String> = uids.iter().map(|_| random_hex(24)).collect();
    sqlx::query(
        "UPDATE nodes n SET secret = COALESCE(n.secret, t.secret),
                mqtt_password = COALESCE(n.mqtt_password, t.password), updated_at = now()
           FROM UNNEST($1::text[], $2::text[], $3::text[]) AS t (uid, secret, password)
          WHERE n.uid = t.uid AND (n.secret IS NULL OR n.mqtt_password IS NULL)",
    )
    .bind(&uids)
    .bind(&secrets)
    .bind(&passwords)
    .execute(&mut *tx)
    .await?;

    let mut channel_nodes = Vec::new();
    let mut channels = Vec::new();
    let mut types = Vec::new();
    let mut metrics = Vec::new();
    let mut units = Vec::new();
    for node in &layout.nodes {
        for c in node.channels() {
            channel_nodes.push(node.uid.as_str());
            channels.push(c.channel);
            types.push(c.channel_type.as_str());
            metrics.push(c.metric_type.map(|m| m.as_str()));
            units.push(c.unit);
        }
    }
    let channels = sqlx::query(
        "INSERT INTO node_channels (node_id, channel, type, metric_type, unit)
         SELECT n.id, t.channel, t.type, t.metric_type, t.unit
         FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[])
              AS t (node, channel, type, metric_type, unit)
         JOIN nodes n ON n.uid = t.node
         ON CONFLICT (node_id, channel) DO UPDATE
         SET type = EXCLUDED.type, metric_type = EXCLUDED.metric_type, unit = EXCLUDED.unit
         WHERE (node_channels.type, node_channels.metric_type, node_channels.unit)
               IS DISTINCT FROM (EXCLUDED.type, EXCLUDED.metric_type, EXCLUDED.unit)",
    )
    .bind(&channel_nodes)
    .bind(&channels)
    .bind(&types)
    .bind(&metrics)
    .bind(&units)
    .execute(&mut *tx)
    .await?
    .rows_affected();

    // Simulated nodes boot on their first broker of SIM_BROKER_URLS, not
    // where an earlier run left them (a real node keeps its broker in NVS;
    // these keep nothing). An assignment from an earlier run would route
    // commands to a broker the node is not on, so it is forgotten, and the
    // registry assigns the nodes again as they appear.
    sqlx::query(
        "DELETE FROM node_broker_assignments a USING nodes n
          WHERE a.node_id = n.id AND n.uid = ANY($1)",
    )
    .bind(&uids)
    .execute(&mut *tx)
    .await?;

    tx.commit().await?;
    let summary = SeedSummary {
        greenhouse_id,
        greenhouses_written: inserted,
        zones_written: zones,
        nodes_written: nodes,
        channels_written: channels,
    };
    info!(
        greenhouse,
        zones = summary.zones_written,
        nodes = summary.nodes_written,
        channels = summary.channels_written,
        "Database seeded."
    );
    Ok(summary)
}

/// `bytes` random bytes from the thread's CSPRNG, as lowercase hex.
fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buf);
    hex::encode(buf)
}

/// What one simulated node signs and logs in with.
#[derive(Debug, Clone)]
pub struct NodeCredentials {
    /// `nodes.secret`: the key its commands are signed with.
    pub secret: SecretString,
    /// `nodes.mqtt_password`: its broker account's password (username = uid).
    pub mqtt_password: Option<SecretString>,
}

/// The credentials the database holds for `uids` (those with a secret).
pub async fn credentials(
    pool: &PgPool,
    uids: &[&str],
) -> Result<HashMap<String, NodeCredentials>, sqlx::Error> {
    let rows: Vec<(String, String, Option<String>)> = sqlx::query_as(
        "SELECT uid, secret, mqtt_password FROM nodes WHERE uid = ANY($1) AND secret IS NOT NULL",
    )
    .bind(uids)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(uid, secret, password)| {
            let credentials = NodeCredentials {
                secret: SecretString::from(secret),
                mqtt_password: password.map(SecretString::from),
            };
            (uid, credentials)
        })
        .collect())
}
