//! The `automation_zone_errors` alert: raised when more than 10 % of a
//! cycle's zones failed, resolved by the first cycle at or below it.

use common::store::alerts::{self, Subject};
use serde_json::json;
use sqlx::PgPool;

/// `alerts.type` of the alert.
pub const ZONE_ERRORS_ALERT: &str = "automation_zone_errors";

/// Whether `failed` of `total` zones is more than 10 %.
pub fn too_many(failed: usize, total: usize) -> bool {
    failed * 10 > total
}

/// Raises (a no-op while one is active) or resolves the alert.
pub async fn update(pool: &PgPool, failed: &[String], total: usize) -> Result<(), sqlx::Error> {
    if too_many(failed.len(), total) {
        // Names enough zones to start with; the zone events have the rest.
        let first: Vec<&String> = failed.iter().take(20).collect();
        let details = json!({"failed": failed.len(), "total": total, "zones": first});
        alerts::raise(pool, ZONE_ERRORS_ALERT, Subject::Service, &details).await?;
    } else {
        alerts::resolve(pool, ZONE_ERRORS_ALERT, Subject::Service).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn more_than_ten_percent() {
        assert!(!too_many(0, 0));
        assert!(!too_many(1, 10));
        assert!(too_many(2, 10));
        assert!(too_many(1, 9));
        assert!(!too_many(100, 1000));
        assert!(too_many(101, 1000));
    }
}
