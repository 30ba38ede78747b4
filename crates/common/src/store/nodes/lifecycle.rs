//! The writes of a node's life after its registration: placed in its zone
//! when a bind completes (ASSIGNED), taken out of it by a bind that starts or
//! an unbind (REGISTERED), retired (DECOMMISSIONED), and its broker password.
//! The lifecycle also follows `zone_id` by a trigger (see the migrations);
//! these statements write both, so they read the same without it.

use sqlx::PgExecutor;

/// Takes the node out of its zone (REGISTERED), unless it is decommissioned.
pub async fn clear_zone(db: impl PgExecutor<'_>, node_id: i64) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "UPDATE nodes SET zone_id = NULL, lifecycle = 'REGISTERED', updated_at = now() \
          WHERE id = $1 AND lifecycle <> 'DECOMMISSIONED'",
        node_id
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Places the node in its zone under its new uid, secret and name (ASSIGNED).
pub async fn assign(
    db: impl PgExecutor<'_>,
    node_id: i64,
    zone_id: i64,
    uid: &str,
    secret: &str,
    name: Option<&str>,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "UPDATE nodes SET zone_id = $2, uid = $3, secret = $4, name = COALESCE($5, name), \
            lifecycle = 'ASSIGNED', updated_at = now() WHERE id = $1",
        node_id,
        zone_id,
        uid,
        secret,
        name
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Retires the node: out of its zone, DECOMMISSIONED, without a broker password.
pub async fn decommission(db: impl PgExecutor<'_>, node_id: i64) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "UPDATE nodes SET zone_id = NULL, lifecycle = 'DECOMMISSIONED', mqtt_password = NULL, \
            updated_at = now() WHERE id = $1",
        node_id
    )
    .execute(db)
    .await?;
    Ok(())
}

/// The node's broker password: the one it has, else `fresh`, stored now.
pub async fn issue_mqtt_password(
    db: impl PgExecutor<'_>,
    node_id: i64,
    fresh: &str,
) -> Result<String, sqlx::Error> {
    sqlx::query_scalar!(
        r#"UPDATE nodes SET mqtt_password = COALESCE(mqtt_password, $2) WHERE id = $1
           RETURNING mqtt_password AS "mqtt_password!""#,
        node_id,
        fresh
    )
    .fetch_one(db)
    .await
}
