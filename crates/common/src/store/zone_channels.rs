//! Which node of a zone a command for a channel goes to, for the senders
//! that address zones rather than nodes (automation-engine, scheduler):
//! every (zone, channel) pair they may need, loaded in one query per cycle.

use std::collections::HashMap;

use sqlx::PgPool;

use crate::commands::{TARGET_QUERY, Target};

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
        let rows: Vec<Target> = sqlx::query_as(&format!(
            "{TARGET_QUERY} WHERE z.id = ANY($1) AND c.channel = ANY($2) ORDER BY n.id"
        ))
        .bind(zone_ids)
        .bind(channels)
        .fetch_all(pool)
        .await?;
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
