//! A command's target — one channel of one node, with what addresses it
//! and the broker its node is routed to — and its lookups, all through
//! [`crate::store::node_channels`]: by node (mqtt-bridge's API and
//! redelivery), by zone request (mqtt-bridge's API, see [`find_in_zone`]),
//! and [`ZoneChannels`], every (zone, channel) pair the senders that address
//! zones rather than nodes may need (automation-engine, scheduler), loaded
//! in one query per cycle and picked from.
//!
//! mqtt-bridge keeps a short-lived cache of its lookups (its
//! `target_cache`): only its API sees bursts of requests to the same nodes.

use std::collections::HashMap;

use sqlx::PgPool;

use crate::store::node_channels;
use proto::topics::{TopicKind, channel_topic};

/// Everything needed to address one channel of one node.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    pub node_id: i64,
    pub node_uid: String,
    pub zone_id: i64,
    pub zone_uid: String,
    pub greenhouse_uid: String,
    pub channel: String,
    /// The node's own HMAC key, if it has one.
    pub secret: Option<String>,
    /// The node's route broker as read with the target (see
    /// [`crate::commands::route`]: where it is observed, else its
    /// assignment); `None`: the default broker.
    pub broker_id: Option<String>,
}

impl Target {
    pub fn command_topic(&self) -> String {
        channel_topic(
            &self.greenhouse_uid,
            &self.zone_uid,
            &self.node_uid,
            &self.channel,
            TopicKind::Command,
        )
    }
}

/// The target for `channel` of the node `node_uid`, if both exist.
pub async fn find_target(
    pool: &PgPool,
    node_uid: &str,
    channel: &str,
) -> Result<Option<Target>, sqlx::Error> {
    node_channels::find(pool, node_uid, channel).await
}

/// The targets for `channel` in the zone named by uid or id, only node
/// `node_uid`'s if given: one is the target, several are an ambiguity to
/// explain (at most 10, by node uid).
pub async fn find_in_zone(
    pool: &PgPool,
    zone: &str,
    channel: &str,
    node_uid: Option<&str>,
) -> Result<Vec<Target>, sqlx::Error> {
    let zone_id = zone.parse::<i64>().ok();
    node_channels::in_zone(pool, zone, zone_id, channel, node_uid).await
}

/// Why no single node could be chosen; the message says what to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PickError {
    #[error("no node of the zone has channel `{channel}`")]
    Missing { channel: String },
    #[error("nodes {} all have channel `{channel}` and none is preferred; give the zone one", nodes.join(", "))]
    Ambiguous { channel: String, nodes: Vec<String> },
}

/// The command targets of some zones' channels.
#[derive(Debug, Default)]
pub struct ZoneChannels {
    targets: HashMap<(i64, String), Vec<Target>>,
}

impl ZoneChannels {
    /// Every node of `zone_ids` that has one of `channels`.
    pub async fn load(
        pool: &PgPool,
        zone_ids: &[i64],
        channels: &[&str],
    ) -> Result<Self, sqlx::Error> {
        let rows = node_channels::in_zones(pool, zone_ids, channels).await?;
        let mut targets: HashMap<(i64, String), Vec<Target>> = HashMap::new();
        for t in rows {
            targets
                .entry((t.zone_id, t.channel.clone()))
                .or_default()
                .push(t);
        }
        Ok(ZoneChannels { targets })
    }

    /// The zone's node with `channel`: the only one, or among several the
    /// node `preferred` (e.g. the one whose sensor gave the reading).
    pub fn pick(
        &self,
        zone_id: i64,
        channel: &str,
        preferred: Option<i64>,
    ) -> Result<&Target, PickError> {
        let found = self
            .targets
            .get(&(zone_id, channel.to_owned()))
            .map(Vec::as_slice)
            .unwrap_or_default();
        match found {
            [] => Err(PickError::Missing {
                channel: channel.to_owned(),
            }),
            [only] => Ok(only),
            several => several
                .iter()
                .find(|t| Some(t.node_id) == preferred)
                .ok_or_else(|| PickError::Ambiguous {
                    channel: channel.to_owned(),
                    nodes: several.iter().map(|t| t.node_uid.clone()).collect(),
                }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(zone_id: i64, node_id: i64, channel: &str) -> Target {
        Target {
            node_id,
            node_uid: format!("nd-{node_id}"),
            zone_id,
            zone_uid: format!("zn-{zone_id}"),
            greenhouse_uid: "gh".into(),
            channel: channel.into(),
            secret: None,
            broker_id: None,
        }
    }

    fn channels(rows: Vec<Target>) -> ZoneChannels {
        let mut c = ZoneChannels::default();
        for t in rows {
            c.targets
                .entry((t.zone_id, t.channel.clone()))
                .or_default()
                .push(t);
        }
        c
    }

    #[test]
    fn one_node_is_picked_whatever_the_preference() {
        let c = channels(vec![target(1, 10, "pump_acid")]);
        assert_eq!(c.pick(1, "pump_acid", None).unwrap().node_id, 10);
        assert_eq!(c.pick(1, "pump_acid", Some(99)).unwrap().node_id, 10);
    }

    #[test]
    fn several_nodes_need_a_preference() {
        let c = channels(vec![target(1, 10, "pump_acid"), target(1, 11, "pump_acid")]);
        assert_eq!(c.pick(1, "pump_acid", Some(11)).unwrap().node_id, 11);
        let e = c.pick(1, "pump_acid", None).unwrap_err();
        assert_eq!(
            e.to_string(),
            "nodes nd-10, nd-11 all have channel `pump_acid` and none is preferred; give the zone one"
        );
    }

    #[test]
    fn a_missing_channel_is_named() {
        let c = channels(vec![target(1, 10, "pump_acid")]);
        let e = c.pick(2, "pump_acid", None).unwrap_err();
        assert_eq!(e.to_string(), "no node of the zone has channel `pump_acid`");
        assert!(c.pick(1, "pump_base", None).is_err());
    }
}
