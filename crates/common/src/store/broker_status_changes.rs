//! The `broker_status_changes` table: one row per change of a broker's
//! status, written by `placement::broker_status::set_status` in the
//! transaction that changes it.

use sqlx::PgConnection;

use crate::placement::broker_status::BrokerStatus;

/// Records that `broker` went from `from` to `to` for `reason`.
pub async fn record(
    db: &mut PgConnection,
    broker: &str,
    from: BrokerStatus,
    to: BrokerStatus,
    reason: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "INSERT INTO broker_status_changes (broker_id, from_status, to_status, reason) \
         VALUES ($1, $2, $3, $4)",
        broker,
        from.as_str(),
        to.as_str(),
        reason
    )
    .execute(db)
    .await?;
    Ok(())
}
