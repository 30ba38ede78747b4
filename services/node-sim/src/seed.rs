//! Writes the simulated greenhouse into PostgreSQL (`SIM_SEED_DB=true`), so
//! the backend knows the nodes before they speak: the greenhouse, its zones,
//! the nodes and their channels. Idempotent: a second run changes no row.
//!
//! Zone and node uids are unique across the whole database, so one database
//! holds one simulated layout; seeding another greenhouse with the same
//! layout moves the zones to it.

use std::collections::HashMap;

use common::placement::balance::MoveVia;
use common::store::node_channels::{self, ChannelRow};
use common::store::nodes::{self, SeedNodes};
use common::store::{greenhouses, node_broker_assignments, zones};
use rand::RngCore;
use secrecy::SecretString;
use sqlx::PgPool;
use tracing::{info, instrument};

use crate::layout::Layout;

/// `nodes.fw_version` of every simulated node.
pub const FW_VERSION: &str = "sim-1.0";
/// `nodes.move_via` of every seeded (classic) node: it follows
/// `nodes/{node}/config/update` with fallbacks (contract section 7).
pub const MOVE_VIA: MoveVia = MoveVia::ConfigUpdate;
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

    let created = greenhouses::create_if_missing(&mut *tx, greenhouse, GREENHOUSE_NAME).await?;
    let greenhouse_id = greenhouses::id_of(&mut *tx, greenhouse)
        .await?
        .ok_or(sqlx::Error::RowNotFound)?;

    let zone_names: Vec<String> = layout
        .zones
        .iter()
        .map(|z| format!("Zone {}", z.trim_start_matches("zn-")))
        .collect();
    let zones = zones::seed(&mut *tx, greenhouse_id, &layout.zones, &zone_names).await?;

    let uids: Vec<String> = layout.nodes.iter().map(|n| n.uid.clone()).collect();
    let node_zones: Vec<String> = layout.nodes.iter().map(|n| n.zone.clone()).collect();
    let kinds: Vec<String> = layout
        .nodes
        .iter()
        .map(|n| n.kind.as_str().to_owned())
        .collect();
    let seeded = SeedNodes {
        uids: &uids,
        zones: &node_zones,
        kinds: &kinds,
        fw_version: FW_VERSION,
        move_via: MOVE_VIA,
    };
    let nodes = nodes::seed(&mut *tx, seeded).await?;

    // A secret and a broker password of its own for every node lacking one
    // (issue 11: no simulated node runs on the public default secret).
    let secrets: Vec<String> = uids.iter().map(|_| random_hex(32)).collect();
    let passwords: Vec<String> = uids.iter().map(|_| random_hex(24)).collect();
    nodes::fill_credentials(&mut *tx, &uids, &secrets, &passwords).await?;

    let mut channel_nodes = Vec::new();
    let mut channels = Vec::new();
    for node in &layout.nodes {
        for c in node.channels() {
            channel_nodes.push(node.uid.clone());
            channels.push(ChannelRow {
                channel: c.channel.to_owned(),
                kind: c.channel_type.as_str().to_owned(),
                metric_type: c.metric_type.map(|m| m.as_str().to_owned()),
                unit: c.unit.map(str::to_owned),
            });
        }
    }
    let channels = node_channels::seed(&mut *tx, &channel_nodes, &channels).await?;

    // Simulated nodes boot on their first broker of SIM_BROKER_URLS, not
    // where an earlier run left them (a real node keeps its broker in NVS;
    // these keep nothing). An assignment from an earlier run would route
    // commands to a broker the node is not on, so it is forgotten, and the
    // registry assigns the nodes again as they appear.
    node_broker_assignments::forget(&mut *tx, &uids).await?;

    tx.commit().await?;
    let summary = SeedSummary {
        greenhouse_id,
        greenhouses_written: u64::from(created),
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
    let uids: Vec<String> = uids.iter().map(|u| (*u).to_owned()).collect();
    let rows = nodes::credentials(pool, &uids).await?;
    Ok(rows
        .into_iter()
        .map(|row| {
            let credentials = NodeCredentials {
                secret: SecretString::from(row.secret),
                mqtt_password: row.mqtt_password.map(SecretString::from),
            };
            (row.uid, credentials)
        })
        .collect())
}
