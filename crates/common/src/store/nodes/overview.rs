//! The `nodes` table, as the dashboard reads it: every node with its zone,
//! its assigned and observed broker, its reading rate and its commands of
//! the last hour. Used by broker-registry's `GET /api/nodes`.

use chrono::{DateTime, Utc};
use serde::Serialize;

/// One node as the operator's node table shows it.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct NodeOverview {
    pub uid: String,
    pub name: Option<String>,
    /// `None`: not bound to a zone yet.
    pub zone_uid: Option<String>,
    /// `nodes.status`: ONLINE, OFFLINE, RESTARTING or UNKNOWN.
    pub status: String,
    /// Not in a zone: it waits for an operator's bind.
    pub unbound: bool,
    /// A bind was sent and waits for the node's config_report.
    pub bind_pending: bool,
    /// The broker it is assigned to (`None`: the default broker).
    pub broker_id: Option<String>,
    /// The assignment waits for the node to confirm it.
    pub moving: bool,
    /// Where its uplink last arrived.
    pub observed_broker_id: Option<String>,
    pub last_seen_at: Option<DateTime<Utc>>,
    pub rssi: Option<i16>,
    /// Telemetry readings per minute, over the last five minutes.
    pub readings_per_min: f64,
    /// Commands created for it in the last hour.
    pub commands_last_hour: i64,
}

queries! {
    /// Every node that is not decommissioned, by uid. Readings are counted per
    /// zone over `telemetry_samples_zone_ts_idx` (unbound nodes keep no
    /// samples), commands over `commands_created_brin`: one statement, a few
    /// index range scans, whatever the number of nodes.
    pub fn overview(db) -> Vec<NodeOverview> {
        fetch_all(query_as!(
            NodeOverview,
            r#"WITH readings AS (
                   SELECT s.node_id, count(*) AS n
                   FROM zones z CROSS JOIN LATERAL (
                       SELECT t.node_id FROM telemetry_samples t
                       WHERE t.zone_id = z.id AND t.ts >= now() - interval '5 minutes') s
                   GROUP BY s.node_id),
               sent AS (
                   SELECT c.node_id, count(*) AS n FROM commands c
                   WHERE c.created_at >= now() - interval '1 hour' AND c.node_id IS NOT NULL
                   GROUP BY c.node_id)
               SELECT n.uid, n.name, z.uid AS "zone_uid?", n.status,
                      (n.zone_id IS NULL) AS "unbound!",
                      EXISTS (SELECT 1 FROM node_binds b
                              WHERE b.node_id = n.id AND b.state = 'PENDING') AS "bind_pending!",
                      a.broker_id AS "broker_id?",
                      (a.node_id IS NOT NULL AND a.confirmed_at IS NULL) AS "moving!",
                      n.observed_broker_id, n.last_seen_at, n.rssi,
                      COALESCE(r.n, 0)::float8 / 5 AS "readings_per_min!",
                      COALESCE(c.n, 0) AS "commands_last_hour!"
               FROM nodes n
               LEFT JOIN zones z ON z.id = n.zone_id
               LEFT JOIN node_broker_assignments a ON a.node_id = n.id
               LEFT JOIN readings r ON r.node_id = n.id
               LEFT JOIN sent c ON c.node_id = n.id
               WHERE n.lifecycle <> 'DECOMMISSIONED'
               ORDER BY n.uid"#
        ))
    }
}
