//! The `nodes` columns a node's broker account is made from: uid, broker
//! password, zone, pending bind target, decommissioned. Used by
//! `mqtt::accounts` (the sync of every broker) and device-registry (one
//! node's account around a bind).

use sqlx::PgExecutor;

/// What the database says about a node's broker account: its uid, password
/// and zone, and the target of its pending bind.
#[derive(Debug, Clone, Default, sqlx::FromRow)]
pub struct AccountRow {
    pub uid: String,
    pub password: Option<String>,
    pub decommissioned: bool,
    pub gh_uid: Option<String>,
    pub zone_uid: Option<String>,
    pub target_uid: Option<String>,
    pub target_gh: Option<String>,
    pub target_zone: Option<String>,
}

queries! {
    /// The account row of node `node_id` whatever its state, or (`None`) those
    /// of every node with a broker password that is not decommissioned, by uid:
    /// one statement serves both.
    fn select(db, node_id: Option<i64>) -> Vec<AccountRow> {
        fetch_all(query_as!(
            AccountRow,
            r#"SELECT n.uid, n.mqtt_password AS password,
                      n.lifecycle = 'DECOMMISSIONED' AS "decommissioned!",
                      g.uid AS "gh_uid?", z.uid AS "zone_uid?", b.node_uid AS "target_uid?",
                      bg.uid AS "target_gh?", bz.uid AS "target_zone?"
                 FROM nodes n LEFT JOIN zones z ON z.id = n.zone_id
                 LEFT JOIN greenhouses g ON g.id = z.greenhouse_id
                 LEFT JOIN node_binds b ON b.node_id = n.id AND b.state = 'PENDING'
                 LEFT JOIN zones bz ON bz.id = b.zone_id
                 LEFT JOIN greenhouses bg ON bg.id = bz.greenhouse_id
                WHERE n.id = $1
                   OR ($1::int8 IS NULL AND n.mqtt_password IS NOT NULL
                       AND n.lifecycle <> 'DECOMMISSIONED')
                ORDER BY n.uid"#,
            node_id
        ))
    }
}

/// The account rows of every node that has a broker password and is not
/// decommissioned.
pub async fn account_rows(db: impl PgExecutor<'_>) -> Result<Vec<AccountRow>, sqlx::Error> {
    select(db, None).await
}

/// The account row of node `node_id`, whatever its state.
pub async fn account_row(
    db: impl PgExecutor<'_>,
    node_id: i64,
) -> Result<Option<AccountRow>, sqlx::Error> {
    Ok(select(db, Some(node_id)).await?.into_iter().next())
}
