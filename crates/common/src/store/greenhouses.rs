//! The `greenhouses` table: the top of the greenhouse, zone, node tree.
//! node-sim creates its simulated greenhouse here; device-registry looks a
//! bind's greenhouse up; the joins that read a greenhouse with its zones
//! live with the rows they return.

queries! {
    /// Creates greenhouse `uid` named `name` (time zone UTC) unless it exists;
    /// true when it was created.
    pub fn create_if_missing(db, uid: &str, name: &str) -> bool {
        one_row(query!(
            "INSERT INTO greenhouses (uid, name, timezone) VALUES ($1, $2, 'UTC') \
             ON CONFLICT (uid) DO NOTHING",
            uid, name
        ))
    }

    /// The id of greenhouse `uid`, if it exists.
    pub fn id_of(db, uid: &str) -> Option<i64> {
        fetch_optional(query_scalar!("SELECT id FROM greenhouses WHERE uid = $1", uid))
    }

    /// The wall-clock time in greenhouse `uid`'s time zone now, if it exists.
    pub fn local_now(db, uid: &str) -> Option<chrono::NaiveDateTime> {
        fetch_optional(query_scalar!(
            r#"SELECT now() AT TIME ZONE timezone AS "now!" FROM greenhouses WHERE uid = $1"#,
            uid
        ))
    }
}
