//! The batch plan: what a batch of decoded messages writes, decided without
//! I/O from the messages and where their nodes are placed (the resolver's
//! cache). [`super::commit`] writes it in one transaction.
//!
//! A message is refused (dead-lettered with a reason) when it did not decode,
//! its zone or node is unknown (`zone_id_not_found`, `node_id_not_found`), or
//! it does not fit where its node is placed ([`placement_check`]). The rest,
//! in arrival order, become readings ([`Sample`]s), what each says about its
//! node ([`Happening`]s: status, last will, or just that it is alive there),
//! heartbeat figures (the latest per node) and zone events (node events and
//! errors). There are no hellos here: a hello is device-registry's and never
//! reaches the stream, nor does the uplink of an unbound node.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use common::store::nodes::HeartbeatRow;
use common::store::zone_events::ZoneEvent;
use proto::payloads::{Heartbeat, NodeError};
use serde_json::json;

use crate::node_state::{Happening, Target, What};
use crate::resolver::{Misfit, NodeInfo, Resolver};
use crate::telemetry::Sample;
use crate::uplink::{Body, Rejection, Uplink};

/// One message of a batch, decoded.
#[derive(Debug)]
pub struct Decoded<'a> {
    /// Its index in the flushed batch.
    pub index: usize,
    /// The broker it arrived on.
    pub broker: &'a str,
    /// When it arrived.
    pub at: DateTime<Utc>,
    pub uplink: Result<Uplink, Rejection>,
}

/// What a batch writes.
#[derive(Debug, Default)]
pub struct BatchPlan<'a> {
    /// Readings, in arrival order.
    pub samples: Vec<Sample>,
    /// The batch index of each sample (a reading refused later, as
    /// `same_second`, is dead-lettered by it).
    pub sample_items: Vec<usize>,
    /// What every message of a bound node says about its node (statuses,
    /// last wills, uplink), in arrival order.
    pub happenings: Vec<Happening<'a>>,
    /// The latest heartbeat of each node, sorted by node id.
    pub heartbeats: Vec<HeartbeatRow>,
    /// Node events and errors as zone events, in arrival order.
    pub events: Vec<ZoneEvent>,
    /// Refused messages: batch index and why.
    pub rejected: Vec<(usize, Rejection)>,
}

/// Plans `batch` against the nodes and zones `places` knows.
pub fn plan<'a>(batch: &'a [Decoded<'a>], places: &Resolver) -> BatchPlan<'a> {
    let mut plan = BatchPlan::default();
    let mut beats: HashMap<i64, (&Heartbeat, DateTime<Utc>)> = HashMap::new();
    for d in batch {
        let uplink = match &d.uplink {
            Ok(u) => u,
            Err(r) => {
                plan.rejected.push((d.index, r.clone()));
                continue;
            }
        };
        // Ingest never stores these; one from an older version is skipped.
        if uplink.body == Body::Unbound {
            continue;
        }
        let topic = &uplink.topic;
        let Some(zone_id) = places.zone(&topic.zone) else {
            let why = Rejection::new("zone_id_not_found", format!("no zone `{}`", topic.zone));
            plan.rejected.push((d.index, why));
            continue;
        };
        let Some(node) = places.node(&topic.node) else {
            let why = Rejection::new("node_id_not_found", format!("no node `{}`", topic.node));
            plan.rejected.push((d.index, why));
            continue;
        };
        if let Err(misfit) = placement_check(node, uplink) {
            plan.rejected
                .push((d.index, misfit_rejection(misfit, node, uplink)));
            continue;
        }
        let target = Target {
            node_id: node.id,
            zone_id: Some(zone_id),
            node_uid: &topic.node,
        };
        let what = match &uplink.body {
            Body::Telemetry(t) => {
                plan.samples.push(Sample {
                    node_id: node.id,
                    zone_id: Some(zone_id),
                    channel: topic.channel.clone().unwrap_or_default(),
                    metric_type: t.metric_type.as_str(),
                    value: t.value,
                    raw: t.raw,
                    stable: t.stable,
                    ts: t.ts,
                });
                plan.sample_items.push(d.index);
                What::Uplink("telemetry")
            }
            Body::Status(s) => What::Status {
                state: s.status,
                ts: s.ts,
            },
            Body::Lwt => What::Lwt,
            Body::Heartbeat(h) => {
                beats
                    .entry(node.id)
                    .and_modify(|kept| {
                        if d.at >= kept.1 {
                            *kept = (h, d.at);
                        }
                    })
                    .or_insert((h, d.at));
                What::Uplink("heartbeat")
            }
            Body::Event(e) => {
                let mut payload = serde_json::Value::Object(e.fields.clone());
                payload["event_code"] = e.event_code.clone().into();
                payload["node_uid"] = topic.node.clone().into();
                if let Some(channel) = &topic.channel {
                    payload["channel"] = channel.clone().into();
                }
                plan.events.push(ZoneEvent {
                    zone_id: Some(zone_id),
                    kind: e.zone_event_type().into(),
                    payload,
                    at: Some(d.at),
                });
                What::Uplink("event")
            }
            Body::Error(e) => {
                plan.events.push(node_error(target, e, d.at));
                What::Uplink("error")
            }
            Body::Unbound => continue,
        };
        plan.happenings.push(Happening {
            target,
            broker: d.broker,
            at: d.at,
            what,
        });
    }
    plan.heartbeats = beats
        .into_iter()
        .map(|(node_id, (h, at))| heartbeat_row(node_id, h, at))
        .collect();
    plan.heartbeats.sort_by_key(|r| r.node_id);
    plan
}

/// A heartbeat's figures as `nodes` stores them (a figure beyond the
/// column's range is clamped, an rssi beyond it left out).
fn heartbeat_row(node_id: i64, h: &Heartbeat, at: DateTime<Utc>) -> HeartbeatRow {
    HeartbeatRow {
        node_id,
        at,
        uptime_seconds: i64::try_from(h.uptime).unwrap_or(i64::MAX),
        free_heap_bytes: i64::try_from(h.free_heap).unwrap_or(i64::MAX),
        rssi: h.rssi.and_then(|v| i16::try_from(v).ok()),
        fw_version: h.fw_version.clone(),
    }
}

/// A node's own error report, kept as a `NODE_ERROR` zone event with all it
/// said (its `ts` in milliseconds and its `details` included).
fn node_error(target: Target<'_>, e: &NodeError, at: DateTime<Utc>) -> ZoneEvent {
    let mut payload = serde_json::to_value(e).unwrap_or_default();
    payload["node_uid"] = json!(target.node_uid);
    ZoneEvent {
        zone_id: target.zone_id,
        kind: "NODE_ERROR".into(),
        payload,
        at: Some(at),
    }
}

/// Whether a message fits where its node is placed (greenhouse and zone),
/// and a reading its node's channel and metric. A last will is exempt: its
/// topic was fixed when the node connected, and may outlive a move.
pub fn placement_check(node: &NodeInfo, uplink: &Uplink) -> Result<(), Misfit> {
    let topic = &uplink.topic;
    let reading = match &uplink.body {
        Body::Lwt => return Ok(()),
        Body::Telemetry(t) => Some((
            topic.channel.as_deref().unwrap_or_default(),
            t.metric_type.as_str(),
        )),
        _ => None,
    };
    node.check(&topic.greenhouse, &topic.zone, reading)
}

/// The dead-letter reason and detail of a misfit.
fn misfit_rejection(misfit: Misfit, node: &NodeInfo, uplink: &Uplink) -> Rejection {
    let topic = &uplink.topic;
    let detail = match misfit {
        Misfit::Greenhouse | Misfit::Zone => format!(
            "node `{}` is in {}, not {}/{}",
            topic.node,
            node.placement(),
            topic.greenhouse,
            topic.zone
        ),
        Misfit::Channel => format!(
            "node `{}` has no channel `{}`",
            topic.node,
            topic.channel.as_deref().unwrap_or_default()
        ),
        Misfit::Metric => {
            let channel = topic.channel.as_deref().unwrap_or_default();
            let declared = node
                .channels
                .get(channel)
                .cloned()
                .flatten()
                .unwrap_or_else(|| "no metric".into());
            let sent = match &uplink.body {
                Body::Telemetry(t) => t.metric_type.as_str(),
                _ => "",
            };
            format!(
                "channel `{channel}` of node `{}` measures {declared}, not {sent}",
                topic.node
            )
        }
    };
    Rejection::new(misfit.reason(), detail)
}
