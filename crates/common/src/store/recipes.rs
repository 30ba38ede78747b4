//! The `recipes` table: named recipes, whose phases are in
//! `recipe_phases` (see [`super::recipe_phases`]). node-sim creates its
//! demo recipe here.

queries! {
    /// Creates recipe `name` with `description` unless it exists.
    pub fn create_if_missing(db, name: &str, description: &str) {
        execute(query!(
            "INSERT INTO recipes (name, description) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
            name, description
        ))
    }
}
