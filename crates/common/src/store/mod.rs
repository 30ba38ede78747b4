//! PostgreSQL (pool, migrations) and Redis, and one module per table: the
//! only code that names its table in SQL (migrations and tests apart).

/// Writes store functions whose whole body is one checked statement run on
/// any executor: the executor argument, the `sqlx::Result` and the `.await`
/// are written here once, so a store file shows each statement and its
/// signature only.
///
/// ```text
/// queries! {
///     /// The URL of broker `id`, if it is registered.
///     pub fn url(db, id: &str) -> Option<String> {
///         fetch_optional(query_scalar!("SELECT url FROM brokers WHERE id = $1", id))
///     }
/// }
/// ```
///
/// The run is `fetch_all`, `fetch_one` or `fetch_optional` (answering the
/// declared type), or one for a statement without rows: `execute` (no
/// return type: answers `()`), `rows_affected` (answers the `u64` count) or
/// `one_row` (answers whether it touched exactly one row). The statement is
/// sqlx's `query!`, `query_as!` or `query_scalar!`, or an expression that
/// builds one (`with_route_broker_sql!(…)`).
macro_rules! queries {
    () => {};
    (
        $(#[$meta:meta])*
        $vis:vis fn $name:ident($db:ident $(, $arg:ident: $ty:ty)* $(,)?) -> $ret:ty {
            $run:ident($($query:tt)*)
        }
        $($rest:tt)*
    ) => {
        $(#[$meta])*
        $vis async fn $name($db: impl sqlx::PgExecutor<'_> $(, $arg: $ty)*) -> sqlx::Result<$ret> {
            queries!(@run $run, $db, queries!(@query $($query)*))
        }
        queries!($($rest)*);
    };
    // Without a return type: the entry answers `()`.
    (
        $(#[$meta:meta])*
        $vis:vis fn $name:ident($($params:tt)*) { $($body:tt)* }
        $($rest:tt)*
    ) => {
        queries!($(#[$meta])* $vis fn $name($($params)*) -> () { $($body)* } $($rest)*);
    };
    // `query!(…)` is sqlx's; any other expression (a macro that splices
    // the route rule into a checked statement) is taken as it is.
    (@query $macro:ident!($($query:tt)*)) => {
        sqlx::$macro!($($query)*)
    };
    (@query $($query:tt)*) => {
        $($query)*
    };
    (@run execute, $db:ident, $query:expr) => {
        $query.execute($db).await.map(drop)
    };
    (@run one_row, $db:ident, $query:expr) => {
        $query.execute($db).await.map(|done| done.rows_affected() == 1)
    };
    (@run rows_affected, $db:ident, $query:expr) => {
        $query.execute($db).await.map(|done| done.rows_affected())
    };
    (@run $run:ident, $db:ident, $query:expr) => {
        $query.$run($db).await
    };
}

pub mod advisor_suggestions;
pub mod alerts;
pub mod broker_health_samples;
pub mod broker_status_changes;
pub mod brokers;
pub mod commands;
pub mod db;
pub mod failover_events;
pub mod greenhouses;
pub mod leases;
pub mod node_binds;
pub mod node_broker_assignments;
pub mod node_channels;
pub mod nodes;
pub mod operator_actions;
pub mod recipe_phases;
pub mod recipes;
pub mod redis;
pub mod registry_settings;
pub mod schedule_fires;
pub mod telemetry_last;
pub mod telemetry_samples;
pub mod zone_events;
pub mod zones;
