//! `config_report`, from every broker: the NodeConfig a node runs. It may
//! complete the node's pending bind (when it comes from the target
//! namespace and names the same greenhouse, zone and uid); it is stored
//! (without any secret) with the node's fw_version and the broker it came
//! from; `node_channels` follow its channels; a pending move of the node to
//! that broker is confirmed (a firmware node's move is confirmed this way).

use common::metrics as m;
use common::store::{node_binds, node_broker_assignments, node_channels, nodes};
use proto::payloads::{NodeConfig, NodeConfigChannel, PayloadError};
use proto::topics::NodeTopic;
use serde_json::Value;
use sqlx::PgPool;
use tracing::{debug, info};

use crate::binds;
use crate::channels::plan_sync;
use crate::lifecycle::{BindTarget, completes};
use crate::registration::{self, Registered, Sighting};

/// Why a report was not used; `reason()` is the metric label.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error(transparent)]
    Payload(#[from] PayloadError),
    #[error("no node `{0}`")]
    UnknownNode(String),
    #[error("node `{0}` is decommissioned")]
    Decommissioned(String),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

impl ReportError {
    pub fn reason(&self) -> &'static str {
        match self {
            ReportError::Payload(e) => e.reason(),
            ReportError::UnknownNode(_) => "unknown_node",
            ReportError::Decommissioned(_) => "decommissioned",
            ReportError::Db(_) => "db_error",
        }
    }
}

/// What a report did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportOutcome {
    pub node_uid: String,
    pub bind_completed: bool,
    pub move_confirmed: bool,
}

/// Handles one `config_report` that arrived on `broker_id`.
pub async fn handle(
    pool: &PgPool,
    topic: &NodeTopic,
    broker_id: &str,
    payload: &[u8],
) -> Result<ReportOutcome, ReportError> {
    let mut report = NodeConfig::decode(payload)?;
    // Only a report from a real namespace can complete a bind: the target
    // uid is the topic's node level.
    let pending = match topic.is_temp() {
        true => None,
        false => node_binds::pending_for_uid(pool, &topic.node).await?,
    };
    // A report that completes a bind is stored before the bind completes,
    // so whoever sees the node bound also finds its config.
    let completing = pending.filter(|bind| {
        let ok = completes(&BindTarget::of(bind), topic, &report);
        if !ok {
            info!(node = %topic.node, topic_zone = %topic.zone, report_zone = %report.zone_uid, target_zone = %bind.zone_uid,
                "A config_report does not match the node's pending bind; the bind stays pending.");
        }
        ok
    });
    let resolved = match &completing {
        // Its uid is the node's only once the bind completes.
        Some(bind) => Some((bind.node_id, bind.node_uid.clone())),
        None => nodes::resolve(pool, &topic.node)
            .await?
            .map(|n| (n.id, n.uid)),
    };
    let (node_id, node_uid) = match resolved {
        Some(found) => found,
        None if topic.is_temp() => {
            let sighting = Sighting {
                hardware_id: topic.node.clone(),
                node_type: Some(report.node_type.clone()),
                fw_version: report.fw_version.clone(),
                broker_id: broker_id.to_owned(),
                ..Sighting::default()
            };
            match registration::register(pool, &sighting).await? {
                Registered::New { id, uid } => {
                    info!(hardware_id = %topic.node, uid = %uid, "Registered an unbound node from its config_report.");
                    (id, uid)
                }
                Registered::Known { id, uid } => (id, uid),
                Registered::Decommissioned { uid } => return Err(ReportError::Decommissioned(uid)),
            }
        }
        None => return Err(ReportError::UnknownNode(topic.node.clone())),
    };
    report.node_secret = None;
    // A node that echoes its broker login back never gets it stored.
    if let Some(mqtt) = report.mqtt.as_object_mut() {
        for key in ["password", "pass"] {
            mqtt.remove(key);
        }
    }
    let stored = serde_json::to_value(&report).expect("a NodeConfig always serialises");
    let skipped = store_report(
        pool,
        node_id,
        &stored,
        report.fw_version.as_deref(),
        &report.channels,
        broker_id,
    )
    .await?;
    if !skipped.is_empty() {
        info!(node = %node_uid, channels = ?skipped, "Reported channels with a bad name or type were not stored.");
    }
    let mut bind_completed = false;
    if let Some(bind) = completing {
        bind_completed = binds::complete(pool, &bind).await?;
        if bind_completed {
            metrics::counter!(m::DEVICE_BINDS, "outcome" => "completed").increment(1);
            info!(node = %bind.node_uid, greenhouse = %bind.gh_uid, zone = %bind.zone_uid, broker = broker_id,
                "Bind completed: the node reported its config from the target namespace.");
        }
    }
    let move_confirmed =
        node_broker_assignments::confirm_by_report(pool, node_id, broker_id).await?;
    if move_confirmed {
        metrics::counter!(m::NODE_MOVES_CONFIRMED).increment(1);
        info!(node = %node_uid, broker = broker_id, "Move confirmed by the node's config_report from its new broker.");
    }
    let outcome = if bind_completed {
        "bind_completed"
    } else {
        "stored"
    };
    metrics::counter!(m::DEVICE_CONFIG_REPORTS, "outcome" => outcome).increment(1);
    debug!(node = %node_uid, broker = broker_id, "config_report stored.");
    Ok(ReportOutcome {
        node_uid,
        bind_completed,
        move_confirmed,
    })
}

/// Stores a reported config (without its secret), its fw_version and the
/// broker it came from, and brings `node_channels` in line with its channels,
/// in one transaction. Returns the channels that could not be stored.
async fn store_report(
    pool: &PgPool,
    node_id: i64,
    config: &Value,
    fw_version: Option<&str>,
    channels: &[NodeConfigChannel],
    broker_id: &str,
) -> Result<Vec<String>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    nodes::store_config(&mut *tx, node_id, config, fw_version, broker_id).await?;
    let existing = node_channels::lock(&mut *tx, node_id).await?;
    let plan = plan_sync(&existing, channels);
    if !plan.remove.is_empty() {
        node_channels::remove(&mut *tx, node_id, &plan.remove).await?;
    }
    for row in &plan.upsert {
        node_channels::upsert(&mut *tx, node_id, row).await?;
    }
    tx.commit().await?;
    Ok(plan.skipped)
}
