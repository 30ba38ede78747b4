//! The `nodes` columns a node's broker account is made from: uid, broker
//! password, zone, pending bind target, decommissioned.

use sqlx::PgPool;

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

const ACCOUNT_SELECT: &str = "SELECT n.uid, n.mqtt_password AS password, \
        n.lifecycle = 'DECOMMISSIONED' AS decommissioned, g.uid AS gh_uid, z.uid AS zone_uid, \
        b.node_uid AS target_uid, bg.uid AS target_gh, bz.uid AS target_zone \
   FROM nodes n LEFT JOIN zones z ON z.id = n.zone_id LEFT JOIN greenhouses g ON g.id = z.greenhouse_id \
   LEFT JOIN node_binds b ON b.node_id = n.id AND b.state = 'PENDING' \
   LEFT JOIN zones bz ON bz.id = b.zone_id LEFT JOIN greenhouses bg ON bg.id = bz.greenhouse_id";

/// The account rows of every node that has a broker password and is not
/// decommissioned.
pub async fn account_rows(pool: &PgPool) -> Result<Vec<AccountRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "{ACCOUNT_SELECT} WHERE n.mqtt_password IS NOT NULL AND n.lifecycle <> 'DECOMMISSIONED' ORDER BY n.uid"
    ))
    .fetch_all(pool)
    .await
}

/// The account row of node `node_id`, whatever its state.
pub async fn account_row(pool: &PgPool, node_id: i64) -> Result<Option<AccountRow>, sqlx::Error> {
    sqlx::query_as(&format!("{ACCOUNT_SELECT} WHERE n.id = $1"))
        .bind(node_id)
        .fetch_optional(pool)
        .await
}
