//! The writes of a node's life after its registration: placed in its zone
//! when a bind completes (ASSIGNED), taken out of it by a bind that starts or
//! an unbind (REGISTERED), retired (DECOMMISSIONED), and its broker password.
//! The lifecycle also follows `zone_id` by a trigger (see the migrations);
//! these statements write both, so they read the same without it.

queries! {
    /// Takes the node out of its zone (REGISTERED), unless it is decommissioned.
    pub fn clear_zone(db, node_id: i64) {
        execute(query!(
            "UPDATE nodes SET zone_id = NULL, lifecycle = 'REGISTERED', updated_at = now() \
              WHERE id = $1 AND lifecycle <> 'DECOMMISSIONED'",
            node_id
        ))
    }

    /// Places the node in its zone under its new uid, secret and name (ASSIGNED).
    pub fn assign(db, node_id: i64, zone_id: i64, uid: &str, secret: &str, name: Option<&str>) {
        execute(query!(
            "UPDATE nodes SET zone_id = $2, uid = $3, secret = $4, name = COALESCE($5, name), \
                lifecycle = 'ASSIGNED', updated_at = now() WHERE id = $1",
            node_id, zone_id, uid, secret, name
        ))
    }

    /// Retires the node: out of its zone, DECOMMISSIONED, without a broker password.
    pub fn decommission(db, node_id: i64) {
        execute(query!(
            "UPDATE nodes SET zone_id = NULL, lifecycle = 'DECOMMISSIONED', mqtt_password = NULL, \
                updated_at = now() WHERE id = $1",
            node_id
        ))
    }

    /// The node's broker password: the one it has, else `fresh`, stored now.
    pub fn issue_mqtt_password(db, node_id: i64, fresh: &str) -> String {
        fetch_one(query_scalar!(
            r#"UPDATE nodes SET mqtt_password = COALESCE(mqtt_password, $2) WHERE id = $1
               RETURNING mqtt_password AS "mqtt_password!""#,
            node_id, fresh
        ))
    }
}
