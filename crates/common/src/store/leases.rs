//! The `leases` table: one row per lease, naming its holder until
//! `expires_at`. Taking and renewing are one statement, so two instances
//! never both hold a lease (see `runtime::lease` for how they compete).

use std::time::Duration;

use sqlx::PgExecutor;

/// Takes lease `name` for `holder`, or renews it, for `ttl`: true when
/// `holder` holds it now (it was free, expired, or already `holder`'s).
pub async fn take(
    db: impl PgExecutor<'_>,
    name: &str,
    holder: &str,
    ttl: Duration,
) -> Result<bool, sqlx::Error> {
    let taken = sqlx::query_scalar!(
        "INSERT INTO leases (name, holder, acquired_at, expires_at) \
         VALUES ($1, $2, now(), now() + make_interval(secs => $3)) \
         ON CONFLICT (name) DO UPDATE SET \
             holder = EXCLUDED.holder, \
             expires_at = EXCLUDED.expires_at, \
             acquired_at = CASE WHEN leases.holder = EXCLUDED.holder THEN leases.acquired_at ELSE now() END \
         WHERE leases.holder = EXCLUDED.holder OR leases.expires_at < now() \
         RETURNING holder",
        name,
        holder,
        ttl.as_secs_f64()
    )
    .fetch_optional(db)
    .await?;
    Ok(taken.is_some())
}

queries! {
    /// Gives lease `name` up if `holder` holds it.
    pub fn release(db, name: &str, holder: &str) {
        execute(query!("DELETE FROM leases WHERE name = $1 AND holder = $2", name, holder))
    }

    /// Whether `holder` holds lease `name` right now, by the database's clock
    /// (a decision about to be written checks it once more).
    pub fn is_held_by(db, name: &str, holder: &str) -> bool {
        fetch_one(query_scalar!(
            "SELECT EXISTS (SELECT 1 FROM leases \
                            WHERE name = $1 AND holder = $2 AND expires_at > now()) AS \"held!\"",
            name, holder
        ))
    }
}
