//! The `zones` table: the zones of each greenhouse, where nodes are bound.
//! Used by device-registry (a bind's target).
//!
//! The `zones` table, as the command path reads it: which zone a request
//! names. Used by mqtt-bridge's command routes.
//!
//! The `zones` table, as the dashboard reads it: for each zone, the brokers
//! its nodes route to, with how many are moving, stranded or offline. Used
//! by broker-registry's `GET /api/zones/map`.

use serde::Serialize;
use sqlx::PgExecutor;

/// The id of the zone whose uid is `uid`, in greenhouse `greenhouse_id`.
pub async fn id_in(
    db: impl PgExecutor<'_>,
    greenhouse_id: i64,
    uid: &str,
) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query_scalar!(
        "SELECT id FROM zones WHERE uid = $1 AND greenhouse_id = $2",
        uid,
        greenhouse_id
    )
    .fetch_optional(db)
    .await
}

/// The id of the zone with uid `zone`, or with id `zone_id`.
pub async fn find_id(
    db: impl PgExecutor<'_>,
    zone: &str,
    zone_id: Option<i64>,
) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query_scalar!(
        "SELECT id FROM zones WHERE uid = $1 OR id = $2",
        zone,
        zone_id
    )
    .fetch_optional(db)
    .await
}

// ---------------------------------------------------------------- dashboard

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
