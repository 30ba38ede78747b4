//! The `nodes` table as device-registry keeps it: a node's life from its
//! first sighting (hello, temp-namespace uplink) through bind, unbind and
//! decommission, and what it reports while unbound. The table's status
//! enum, [`Lifecycle`], is mapped to its SQL text here and only here.
//! Used by device-registry, and by `mqtt::accounts` (node broker accounts).
//!
//! - [`view`]: the node as the API shows it, and the lookups by uid or
//!   hardware id;
//! - [`sightings`]: registering and refreshing a node from what it sends,
//!   its unbound readings and its reported config;
//! - [`ingest`]: what history-logger writes of each node from its uplink
//!   (placement checks, states, heartbeats; the [`NodeStatus`] enum);
//! - [`lifecycle`]: the writes of a bind, an unbind and a decommission;
//! - [`accounts`]: what a node's broker account is made from;
//! - [`advisor`]: what broker-registry's advisor reads of each node;
//! - [`placement`]: the planner's view, stranded nodes, signing secrets and
//!   what a NodeConfig is built from;
//! - [`seed`]: node-sim's simulated nodes and their credentials;
//! - [`route`]: the broker a node's commands go to (the route rule, written
//!   once) and the lookups that explain why a node cannot take a command.
//! - [`overview`]: every node as broker-registry's dashboard lists it
//!   (`GET /api/nodes`);
//! - [`registry`]: the rest broker-registry reads (OFFLINE bound nodes, the
//!   uids of nodes a plan moves).
//!
//! A directory module: together they are over 400 lines.

mod accounts;
mod advisor;
mod ingest;
mod lifecycle;
mod overview;
mod placement;
mod registry;
mod route;
mod seed;
mod sightings;
mod view;

pub use accounts::{AccountRow, account_row, account_rows};
pub use advisor::{NodeFigures, advisor_figures};
pub use ingest::*;
pub use lifecycle::{assign, clear_zone, decommission, issue_mqtt_password};
pub use overview::{NodeOverview, overview};
pub use placement::*;
pub use registry::{offline_bound, refs};
pub use route::*;
pub use seed::*;
pub use sightings::{
    HardwareOwner, Seen, Target, hardware_id_taken, insert_registered, owner_of_hardware_id,
    store_config, store_reading, touch,
};
pub use view::{NodeRef, NodeView, find, list, resolve, uid_taken};

/// `nodes.lifecycle`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::Type, serde::Serialize)]
#[sqlx(type_name = "text", rename_all = "SCREAMING_SNAKE_CASE")]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Lifecycle {
    /// Known, not in a zone (or a bind is pending).
    Registered,
    /// Bound to a zone, confirmed by the node.
    Assigned,
    /// Retired.
    Decommissioned,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifecycles_show_as_their_sql_text() {
        for (lifecycle, text) in [
            (Lifecycle::Registered, "REGISTERED"),
            (Lifecycle::Assigned, "ASSIGNED"),
            (Lifecycle::Decommissioned, "DECOMMISSIONED"),
        ] {
            assert_eq!(serde_json::to_value(lifecycle).unwrap(), text);
        }
    }
}
