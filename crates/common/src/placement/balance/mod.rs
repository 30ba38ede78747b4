//! Where nodes go: the three strategies of the contract (section 7) as pure
//! functions over a snapshot of the brokers and nodes, so broker-registry
//! (new nodes, rebalancing) and failover (moving a dead broker's nodes) place
//! nodes by the same rules, and every rule is unit-tested.
//!
//! - **static**: `node_id % n` over the usable general brokers, sorted by id;
//! - **dynamic**: the usable general broker with the least projected load
//!   (its load index plus an estimate for each node this plan already gave it);
//! - **priority**: nodes of `critical` zones on `dedicated` brokers (least
//!   projected load among them), every other node dynamic.
//!
//! Only a node that can be moved is ever planned a move ([`NodeView::movable`]:
//! a `config_update` node always, a `node_config` node while it is observed
//! on a live broker, through which its NodeConfig goes; a `none` node never),
//! and an empty broker is seen from where nodes really are (observed), not
//! only from the assignments.
//!
//! Usable: enabled, not draining, not OFFLINE. General brokers have the role
//! `primary` or `optional`; a `standby` broker joins them only while a general
//! broker is OFFLINE (hot standby). When no general broker is usable, any
//! usable broker takes the node rather than none.

mod plan;
#[cfg(test)]
mod tests;

pub use plan::*;

use proto::text_enum::not_one_of;
use serde::{Deserialize, Serialize};

use crate::placement::broker_status::BrokerStatus;

proto::text_enum! {
    /// How nodes are placed.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(rename_all = "lowercase")]
    pub enum Strategy {
        Static => "static",
        Dynamic => "dynamic",
        Priority => "priority",
    }
}

/// Case and blanks around the text do not matter.
impl std::str::FromStr for Strategy {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim().to_ascii_lowercase();
        Strategy::from_text(&s)
            .ok_or_else(|| not_one_of(&s, "strategy", &Strategy::ALL.map(Strategy::as_str)))
    }
}

proto::text_enum! {
    /// `brokers.role` (the same text in JSON and in SQL).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, sqlx::Type)]
    #[serde(rename_all = "lowercase")]
    #[sqlx(type_name = "text", rename_all = "lowercase")]
    pub enum Role {
        Primary => "primary",
        Standby => "standby",
        Optional => "optional",
        Dedicated => "dedicated",
    }
    impl FromStr(noun = "role");
}

/// A broker as the planner sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct BrokerView {
    pub id: String,
    pub role: Role,
    pub status: BrokerStatus,
    pub enabled: bool,
    pub draining: bool,
    pub load_index: f64,
}

impl BrokerView {
    fn usable(&self) -> bool {
        self.enabled && !self.draining && self.status.takes_nodes()
    }
}

proto::text_enum! {
    /// How a node can be moved (`nodes.move_via`, the same text in JSON and
    /// in SQL).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, sqlx::Type)]
    #[serde(rename_all = "snake_case")]
    #[sqlx(type_name = "text", rename_all = "snake_case")]
    pub enum MoveVia {
        /// A retained `config/update` with fallbacks (node-sim's classic nodes).
        ConfigUpdate => "config_update",
        /// A NodeConfig push naming the new broker (the firmware).
        NodeConfig => "node_config",
        /// Not at all.
        None => "none",
    }
    impl FromStr(noun = "move means");
}

/// A node as the planner sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeView {
    pub node_id: i64,
    /// In a zone with priority `critical`.
    pub critical: bool,
    /// Its broker now, if it has an assignment.
    pub current: Option<String>,
    /// Moved recently: a rebalance leaves it where it is (no flapping).
    pub cooling: bool,
    /// How it can be moved.
    pub via: MoveVia,
    /// The broker it is observed on, if any.
    pub observed: Option<String>,
    /// Observed on a broker that is up (a NodeConfig can reach it there).
    pub reachable: bool,
}

impl NodeView {
    /// Whether a move can reach this node (see the module doc).
    pub fn movable(&self) -> bool {
        match self.via {
            MoveVia::ConfigUpdate => true,
            MoveVia::NodeConfig => self.reachable,
            MoveVia::None => false,
        }
    }

    /// Where it really is: observed, else assigned.
    fn placed(&self) -> Option<&str> {
        self.observed.as_deref().or(self.current.as_deref())
    }
}

/// One node to a broker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Move {
    pub node_id: i64,
    pub from: Option<String>,
    pub to: String,
}

/// The load index one node adds to a broker: one connection and about 1.6
/// messages a second under broker-registry's load index formula (its
/// `load_index` module checks the two agree). Only spreads the nodes of one
/// plan; the measured figures replace it at the next health sample.
pub const NODE_LOAD_ESTIMATE: f64 = 0.0006;
