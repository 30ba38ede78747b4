//! The `nodes` table as broker-registry's advisor reads it: each node's zone,
//! signal and how busy it is (uplink and command counts over a window).

use serde::Serialize;

/// One node's figures for the advisor.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct NodeFigures {
    pub node_id: i64,
    pub uid: String,
    pub zone_uid: Option<String>,
    /// In a zone with priority `critical`.
    pub critical: bool,
    /// dBm, last reported.
    pub rssi: Option<i16>,
    /// Telemetry samples it sent within the window.
    pub uplinks: i64,
    /// Commands sent to it within the window.
    pub commands: i64,
}

queries! {
    /// Every node's figures over the last `window_secs`, by id.
    pub fn advisor_figures(db, window_secs: f64) -> Vec<NodeFigures> {
        fetch_all(query_as!(
            NodeFigures,
            r#"SELECT n.id AS node_id, n.uid, z.uid AS "zone_uid?",
                      COALESCE(z.priority = 'critical', false) AS "critical!", n.rssi,
                      COALESCE(t.n, 0) AS "uplinks!", COALESCE(c.n, 0) AS "commands!"
               FROM nodes n
               LEFT JOIN zones z ON z.id = n.zone_id
               LEFT JOIN (SELECT node_id, count(*) AS n FROM telemetry_samples
                          WHERE ts > now() - make_interval(secs => $1) GROUP BY node_id) t
                      ON t.node_id = n.id
               LEFT JOIN (SELECT node_id, count(*) AS n FROM commands
                          WHERE created_at > now() - make_interval(secs => $1) GROUP BY node_id) c
                      ON c.node_id = n.id
               ORDER BY n.id"#,
            window_secs
        ))
    }
}
