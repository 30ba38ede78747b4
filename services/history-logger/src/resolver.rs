//! Node and zone uids to what the writer checks a message against: the
//! node's id, the zone and greenhouse it is placed in, and its channels with
//! their metric (`node_channels`).
//!
//! A cache that forgets everything every [`REFRESH`], so a node moved to
//! another zone, or a channel added or dropped, is seen within seconds. A
//! message that disagrees with what the cache says (another zone, an unknown
//! channel) has its node looked up again at once, at most every
//! [`RECHECK_AFTER`] per node, before it is refused: a node that has just
//! moved is not refused on a stale entry, and a flood of misrouted messages
//! costs at most one query per node per second. All uids of a batch the
//! cache does not know are resolved in one query; unknown uids are not
//! cached, so a node seeded or registered later is found at once.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use common::store::nodes::{self, Placement};
use common::store::zones;
use sqlx::PgPool;
use tokio::time::Instant;

/// How long resolved nodes and zones are trusted.
pub const REFRESH: Duration = Duration::from_secs(5);

/// A node entry younger than this is not looked up again on a mismatch.
pub const RECHECK_AFTER: Duration = Duration::from_secs(1);

/// A node as the database places it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeInfo {
    pub id: i64,
    pub zone_id: Option<i64>,
    /// The uid of the node's zone; `None` while the node is not placed.
    pub zone_uid: Option<String>,
    /// The uid of the greenhouse of that zone.
    pub greenhouse_uid: Option<String>,
    /// `node_channels`: channel → its `metric_type` (`None` for actuators).
    pub channels: HashMap<String, Option<String>>,
    fetched_at: Instant,
}

/// Why a reading does not fit its node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Misfit {
    /// The topic's greenhouse is not the node's (`greenhouse_mismatch`).
    Greenhouse,
    /// The topic's zone is not the node's (`zone_mismatch`).
    Zone,
    /// The node has no such channel (`unknown_channel`).
    Channel,
    /// The channel measures another metric, or none (`metric_mismatch`).
    Metric,
}

impl Misfit {
    /// The bounded label of `telemetry_dropped_total{reason}`.
    pub fn reason(self) -> &'static str {
        match self {
            Misfit::Greenhouse => "greenhouse_mismatch",
            Misfit::Zone => "zone_mismatch",
            Misfit::Channel => "unknown_channel",
            Misfit::Metric => "metric_mismatch",
        }
    }
}

impl NodeInfo {
    /// Whether a message on `greenhouse`/`zone` (and, for a reading, on
    /// `channel` with `metric`) fits this node.
    pub fn check(
        &self,
        greenhouse: &str,
        zone: &str,
        reading: Option<(&str, &str)>,
    ) -> Result<(), Misfit> {
        if self.greenhouse_uid.as_deref() != Some(greenhouse) {
            return Err(Misfit::Greenhouse);
        }
        if self.zone_uid.as_deref() != Some(zone) {
            return Err(Misfit::Zone);
        }
        if let Some((channel, metric)) = reading {
            match self.channels.get(channel) {
                None => return Err(Misfit::Channel),
                Some(m) if m.as_deref() != Some(metric) => return Err(Misfit::Metric),
                Some(_) => {}
            }
        }
        Ok(())
    }

    /// Says in words where the node is, for a dead letter's detail.
    pub fn placement(&self) -> String {
        match (&self.greenhouse_uid, &self.zone_uid) {
            (Some(g), Some(z)) => format!("{g}/{z}"),
            _ => "no zone".into(),
        }
    }
}

/// The cache; shared by the writer's batches behind one lock.
#[derive(Debug)]
pub struct Resolver {
    nodes: HashMap<String, NodeInfo>,
    zones: HashMap<String, i64>,
    filled_at: Instant,
}

impl Default for Resolver {
    fn default() -> Self {
        Resolver {
            nodes: HashMap::new(),
            zones: HashMap::new(),
            filled_at: Instant::now(),
        }
    }
}

impl Resolver {
    /// Makes sure every uid given is looked up: forgets the cache when it is
    /// older than [`REFRESH`], then resolves the missing ones in one query.
    pub async fn resolve<'a>(
        &mut self,
        pool: &PgPool,
        node_uids: impl IntoIterator<Item = &'a str>,
        zone_uids: impl IntoIterator<Item = &'a str>,
    ) -> Result<(), sqlx::Error> {
        if self.filled_at.elapsed() >= REFRESH {
            self.nodes.clear();
            self.zones.clear();
            self.filled_at = Instant::now();
        }
        let nodes = missing(&self.nodes, node_uids);
        let zones = missing(&self.zones, zone_uids);
        if !zones.is_empty() {
            for z in zones::ids_by_uid(pool, &zones).await? {
                self.remember_zone(&z.uid, z.id);
            }
        }
        if !nodes.is_empty() {
            for p in nodes::placements(pool, &nodes).await? {
                self.remember(p);
            }
        }
        Ok(())
    }

    /// Caches a node as the database places it.
    pub fn remember(&mut self, p: Placement) {
        let info = NodeInfo {
            id: p.id,
            zone_id: p.zone_id,
            zone_uid: p.zone_uid,
            greenhouse_uid: p.greenhouse_uid,
            channels: p.channels.into_iter().zip(p.metrics).collect(),
            fetched_at: Instant::now(),
        };
        self.nodes.insert(p.uid, info);
    }

    /// Caches a zone's id.
    pub fn remember_zone(&mut self, uid: &str, id: i64) {
        self.zones.insert(uid.to_owned(), id);
    }

    /// Forgets the nodes of `uids` looked up more than [`RECHECK_AFTER`]
    /// ago; true when it forgot any (they are then to be resolved again).
    pub fn forget_stale<'a>(&mut self, uids: impl IntoIterator<Item = &'a str>) -> bool {
        let mut forgot = false;
        for uid in uids {
            if self
                .nodes
                .get(uid)
                .is_some_and(|n| n.fetched_at.elapsed() >= RECHECK_AFTER)
            {
                self.nodes.remove(uid);
                forgot = true;
            }
        }
        forgot
    }

    pub fn node(&self, uid: &str) -> Option<&NodeInfo> {
        self.nodes.get(uid)
    }

    pub fn zone(&self, uid: &str) -> Option<i64> {
        self.zones.get(uid).copied()
    }
}

/// The uids of `uids` that `known` lacks, each once.
fn missing<'a, V>(
    known: &HashMap<String, V>,
    uids: impl IntoIterator<Item = &'a str>,
) -> Vec<String> {
    let missing: HashSet<&str> = uids
        .into_iter()
        .filter(|u| !known.contains_key(*u))
        .collect();
    missing.into_iter().map(str::to_owned).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node() -> NodeInfo {
        NodeInfo {
            id: 1,
            zone_id: Some(10),
            zone_uid: Some("zn-1".into()),
            greenhouse_uid: Some("gh-1".into()),
            channels: [
                ("ph_sensor".to_owned(), Some("PH".to_owned())),
                ("pump_acid".to_owned(), None),
            ]
            .into_iter()
            .collect(),
            fetched_at: Instant::now(),
        }
    }

    #[test]
    fn a_message_fits_only_its_nodes_place_and_channels() {
        let n = node();
        assert_eq!(n.check("gh-1", "zn-1", Some(("ph_sensor", "PH"))), Ok(()));
        assert_eq!(n.check("gh-1", "zn-1", None), Ok(()));
        assert_eq!(
            n.check("gh-2", "zn-1", Some(("ph_sensor", "PH"))),
            Err(Misfit::Greenhouse)
        );
        assert_eq!(n.check("gh-1", "zn-2", None), Err(Misfit::Zone));
        assert_eq!(
            n.check("gh-1", "zn-1", Some(("ec_sensor", "EC"))),
            Err(Misfit::Channel)
        );
        assert_eq!(
            n.check("gh-1", "zn-1", Some(("ph_sensor", "EC"))),
            Err(Misfit::Metric)
        );
        // An actuator channel measures nothing.
        assert_eq!(
            n.check("gh-1", "zn-1", Some(("pump_acid", "PH"))),
            Err(Misfit::Metric)
        );
        let unplaced = NodeInfo {
            zone_uid: None,
            greenhouse_uid: None,
            zone_id: None,
            ..node()
        };
        assert_eq!(
            unplaced.check("gh-1", "zn-1", None),
            Err(Misfit::Greenhouse)
        );
        assert_eq!(unplaced.placement(), "no zone");
        assert_eq!(node().placement(), "gh-1/zn-1");
    }
}
