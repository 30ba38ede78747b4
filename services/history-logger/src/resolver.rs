//! Node and zone uids to ids, through a cache that forgets everything every
//! 60 s (so a moved or deleted node is seen within a minute). All uids of a
//! batch the cache does not know are resolved in one query; unknown uids are
//! not cached, so a node seeded or registered later is found at once.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use sqlx::PgPool;
use tokio::time::Instant;

/// How long resolved ids are trusted.
pub const REFRESH: Duration = Duration::from_secs(60);

/// Ids of a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeIds {
    pub id: i64,
    pub zone_id: Option<i64>,
}

/// The cache; owned by the writer (one task), so no lock.
#[derive(Debug)]
pub struct Resolver {
    nodes: HashMap<String, NodeIds>,
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
        let nodes: Vec<&str> = node_uids
            .into_iter()
            .filter(|u| !self.nodes.contains_key(*u))
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        let zones: Vec<&str> = zone_uids
            .into_iter()
            .filter(|u| !self.zones.contains_key(*u))
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        if nodes.is_empty() && zones.is_empty() {
            return Ok(());
        }
        let rows: Vec<(bool, String, i64, Option<i64>)> = sqlx::query_as(
            "SELECT true, uid, id, zone_id FROM nodes WHERE uid = ANY($1)
             UNION ALL
             SELECT false, uid, id, NULL FROM zones WHERE uid = ANY($2)",
        )
        .bind(&nodes)
        .bind(&zones)
        .fetch_all(pool)
        .await?;
        for (is_node, uid, id, zone_id) in rows {
            if is_node {
                self.nodes.insert(uid, NodeIds { id, zone_id });
            } else {
                self.zones.insert(uid, id);
            }
        }
        Ok(())
    }

    pub fn node(&self, uid: &str) -> Option<NodeIds> {
        self.nodes.get(uid).copied()
    }

    pub fn zone(&self, uid: &str) -> Option<i64> {
        self.zones.get(uid).copied()
    }
}
