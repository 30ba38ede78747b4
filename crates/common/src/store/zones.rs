//! The `zones` table: the zones of each greenhouse, where nodes are bound.
//! device-registry looks a bind's zone up; mqtt-bridge's command routes find
//! the zone a request names; history-logger finds the ids of the zones its
//! uplink names; node-sim seeds the zones of its simulated greenhouse;
//! broker-registry's dashboard reads the zone map (for each zone, the
//! brokers its nodes route to, with how many are moving, stranded or
//! offline: `GET /api/zones/map`). Other joins that read zones with their
//! nodes, recipes or greenhouse live with the rows they return.

use serde::Serialize;
use sqlx::PgExecutor;

queries! {
    /// The id of the zone whose uid is `uid`, in greenhouse `greenhouse_id`.
    pub fn id_in(db, greenhouse_id: i64, uid: &str) -> Option<i64> {
        fetch_optional(query_scalar!(
            "SELECT id FROM zones WHERE uid = $1 AND greenhouse_id = $2",
            uid, greenhouse_id
        ))
    }

    /// The id of the zone with uid `zone`, or with id `zone_id`.
    pub fn find_id(db, zone: &str, zone_id: Option<i64>) -> Option<i64> {
        fetch_optional(query_scalar!(
            "SELECT id FROM zones WHERE uid = $1 OR id = $2",
            zone, zone_id
        ))
    }

    /// Puts the zones `uids` (named `names`, at the same index) in greenhouse
    /// `greenhouse_id`, creating the missing ones and moving the others there;
    /// a zone's name is left as it is. Returns the rows written.
    pub fn seed(db, greenhouse_id: i64, uids: &[String], names: &[String]) -> u64 {
        rows_affected(query!(
            "INSERT INTO zones (uid, greenhouse_id, name)
             SELECT uid, $1, name FROM UNNEST($2::text[], $3::text[]) AS t (uid, name)
             ON CONFLICT (uid) DO UPDATE
                 SET greenhouse_id = EXCLUDED.greenhouse_id, updated_at = now()
             WHERE zones.greenhouse_id IS DISTINCT FROM EXCLUDED.greenhouse_id",
            greenhouse_id, uids, names
        ))
    }
}

/// The nodes of one zone that route to one broker.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct ZoneBrokerCell {
    pub zone_uid: String,
    pub zone_name: String,
    /// The broker they route to (`None`: unassigned, the default broker).
    pub broker_id: Option<String>,
    pub nodes: i64,
    /// Assigned but not yet confirmed there.
    pub moving: i64,
    /// On an OFFLINE broker and unable to follow a move.
    pub stranded: i64,
    /// Not ONLINE.
    pub offline: i64,
}

/// The zone map: one cell per (zone, broker) with nodes, by zone uid then
/// broker. A runtime query: the route is the one SQL fragment
/// [`crate::route_broker_sql!`] that the checked macros cannot splice in.
pub async fn broker_map(db: impl PgExecutor<'_>) -> Result<Vec<ZoneBrokerCell>, sqlx::Error> {
    sqlx::query_as(concat!(
        "SELECT z.uid AS zone_uid, z.name AS zone_name, r.broker_id, count(*) AS nodes, \
                count(*) FILTER (WHERE a.node_id IS NOT NULL AND a.confirmed_at IS NULL) AS moving, \
                count(*) FILTER (WHERE n.move_via <> 'config_update' AND b.status = 'OFFLINE') AS stranded, \
                count(*) FILTER (WHERE n.status <> 'ONLINE') AS offline \
         FROM nodes n JOIN zones z ON z.id = n.zone_id \
         LEFT JOIN node_broker_assignments a ON a.node_id = n.id \
         CROSS JOIN LATERAL (SELECT ",
        crate::route_broker_sql!(),
        " AS broker_id) r \
         LEFT JOIN brokers b ON b.id = r.broker_id \
         WHERE n.lifecycle <> 'DECOMMISSIONED' \
         GROUP BY z.uid, z.name, r.broker_id ORDER BY z.uid, r.broker_id"
    ))
    .fetch_all(db)
    .await
}

/// A zone's uid and id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZoneId {
    pub uid: String,
    pub id: i64,
}

queries! {
    /// The zones of `uids` (unknown uids are left out), in one statement.
    pub fn ids_by_uid(db, uids: &[String]) -> Vec<ZoneId> {
        fetch_all(query_as!(ZoneId, "SELECT uid, id FROM zones WHERE uid = ANY($1)", uids))
    }
}
