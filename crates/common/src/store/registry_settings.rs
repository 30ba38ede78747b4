//! The `registry_settings` table: settings changed at run time through
//! broker-registry's API that every instance follows, a restart too (the
//! assignment strategy). Used by broker-registry only.

/// The key of the assignment strategy (overrides `ASSIGNMENT_STRATEGY`).
pub const ASSIGNMENT_STRATEGY: &str = "assignment_strategy";

queries! {
    /// Setting `key`, if it was ever set.
    pub fn get(db, key: &str) -> Option<String> {
        fetch_optional(query_scalar!("SELECT value FROM registry_settings WHERE key = $1", key))
    }

    /// Sets `key` to `value`, by `actor`.
    pub fn set(db, key: &str, value: &str, actor: &str) {
        execute(query!(
            "INSERT INTO registry_settings (key, value, updated_by) VALUES ($1, $2, $3) \
             ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, \
                 updated_by = EXCLUDED.updated_by, updated_at = now()",
            key, value, actor
        ))
    }
}
