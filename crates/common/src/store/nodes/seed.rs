//! The `nodes` table as node-sim fills it: its simulated nodes seeded into
//! their zones, and their broker credentials read back.

use crate::placement::balance::MoveVia;

/// The simulated nodes to seed: uid, zone uid and type of each.
#[derive(Debug, Clone, Copy)]
pub struct SeedNodes<'a> {
    pub uids: &'a [String],
    pub zones: &'a [String],
    pub kinds: &'a [String],
    /// Every node's `fw_version` and `move_via`.
    pub fw_version: &'a str,
    pub move_via: MoveVia,
}

queries! {
    /// Upserts `nodes` into their zones (by zone uid); a node already there
    /// with the same zone, type, firmware and move means is left alone.
    /// Returns the rows written.
    pub fn seed(db, nodes: SeedNodes<'_>) -> u64 {
        rows_affected(query!(
            "INSERT INTO nodes (uid, zone_id, type, fw_version, move_via)
             SELECT t.uid, z.id, t.kind, $4, $5
             FROM UNNEST($1::text[], $2::text[], $3::text[]) AS t (uid, zone, kind)
             JOIN zones z ON z.uid = t.zone
             ON CONFLICT (uid) DO UPDATE
             SET zone_id = EXCLUDED.zone_id, type = EXCLUDED.type,
                 fw_version = EXCLUDED.fw_version, move_via = EXCLUDED.move_via, updated_at = now()
             WHERE (nodes.zone_id, nodes.type, nodes.fw_version, nodes.move_via)
                   IS DISTINCT FROM
                   (EXCLUDED.zone_id, EXCLUDED.type, EXCLUDED.fw_version, EXCLUDED.move_via)",
            nodes.uids, nodes.zones, nodes.kinds, nodes.fw_version, nodes.move_via as _
        ))
    }

    /// Gives each node of `uids` lacking one the secret and broker password at
    /// its index in `secrets` and `passwords`; what a node has is kept.
    pub fn fill_credentials(db, uids: &[String], secrets: &[String], passwords: &[String]) {
        execute(query!(
            "UPDATE nodes n SET secret = COALESCE(n.secret, t.secret),
                    mqtt_password = COALESCE(n.mqtt_password, t.password), updated_at = now()
               FROM UNNEST($1::text[], $2::text[], $3::text[]) AS t (uid, secret, password)
              WHERE n.uid = t.uid AND (n.secret IS NULL OR n.mqtt_password IS NULL)",
            uids, secrets, passwords
        ))
    }
}

/// A node's command secret and broker password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub uid: String,
    pub secret: String,
    pub mqtt_password: Option<String>,
}

queries! {
    /// The credentials of the nodes `uids` that have a secret.
    pub fn credentials(db, uids: &[String]) -> Vec<Credentials> {
        fetch_all(query_as!(
            Credentials,
            r#"SELECT uid, secret AS "secret!", mqtt_password FROM nodes
               WHERE uid = ANY($1) AND secret IS NOT NULL"#,
            uids
        ))
    }
}
