//! The `nodes` table, as the command path reads it: a node's route (the
//! broker its commands go to, see [`crate::commands::route`]) and the
//! lookups that explain a request naming a node that cannot take a command.
//! Used by `common::commands` and mqtt-bridge's command routes.
//!
//! The route rule is SQL text written once, in [`with_route_broker_sql!`]:
//! the broker the node is observed on, unless its assignment was confirmed
//! more recently; else its assignment; NULL (the default broker) without
//! either.

/// Hands the route expression — over `nodes n` and `node_broker_assignments
/// a` (LEFT JOINed), NULL meaning the default broker — as a string literal to
/// `$then!`, ahead of `$then`'s own arguments. A macro because the
/// compile-time checked `sqlx::query!` family takes only literals: this is
/// the one place the rule is written, whether a query is checked or built
/// with `concat!` (see [`crate::route_broker_sql!`]).
#[macro_export]
macro_rules! with_route_broker_sql {
    (@[$($then:tt)*] $($args:tt)*) => {
        $($then)*!(
            "(CASE WHEN n.observed_broker_id IS NOT NULL \
                   AND (a.confirmed_at IS NULL OR n.observed_at >= a.confirmed_at) \
              THEN n.observed_broker_id ELSE a.broker_id END)"
            $($args)*
        )
    };
    ($then:ident ! ( $($args:tt)* )) => {
        $crate::with_route_broker_sql!(@[$then] $($args)*)
    };
    ($krate:tt :: $then:ident ! ( $($args:tt)* )) => {
        $crate::with_route_broker_sql!(@[$krate::$then] $($args)*)
    };
}

/// The route expression as a literal, for `concat!` into runtime queries.
#[macro_export]
macro_rules! route_broker_sql {
    () => {
        $crate::with_route_broker_sql!($crate::__first_literal!())
    };
}

/// The first of its literals (a helper of [`crate::route_broker_sql!`]).
#[doc(hidden)]
#[macro_export]
macro_rules! __first_literal {
    ($l:literal $($rest:tt)*) => {
        $l
    };
}

/// A node's route now, and the state of its assignment.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct RouteNow {
    /// The broker commands go to (None: the default broker).
    pub broker_id: Option<String>,
    /// Its assigned broker, if it has an assignment.
    pub assigned: Option<String>,
    /// Whether that assignment's last move is confirmed.
    pub confirmed: bool,
}

macro_rules! route_now_query {
    ($route:tt, $node_id:expr) => {
        sqlx::query_as!(
            RouteNow,
            "SELECT " + $route + " AS broker_id, a.broker_id AS \"assigned?\", \
                 COALESCE(a.confirmed_at IS NOT NULL, false) AS \"confirmed!\" \
             FROM nodes n LEFT JOIN node_broker_assignments a ON a.node_id = n.id WHERE n.id = $1",
            $node_id
        )
    };
}

queries! {
    /// Reads node `node_id`'s route (one indexed lookup).
    pub fn route_now(db, node_id: i64) -> Option<RouteNow> {
        fetch_optional(crate::with_route_broker_sql!(route_now_query!(, node_id)))
    }

    /// Whether node `node_uid` exists, and if so its zone (`Some(None)`: not
    /// placed in a zone yet).
    pub fn zone_of(db, node_uid: &str) -> Option<Option<i64>> {
        fetch_optional(query_scalar!("SELECT zone_id FROM nodes WHERE uid = $1", node_uid))
    }

    /// Whether node `node_uid` is in zone `zone_id`.
    pub fn is_in_zone(db, node_uid: &str, zone_id: i64) -> bool {
        fetch_one(query_scalar!(
            "SELECT EXISTS (SELECT 1 FROM nodes WHERE uid = $1 AND zone_id = $2) AS \"in_zone!\"",
            node_uid, zone_id
        ))
    }
}
