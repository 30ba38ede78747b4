//! The `nodes` table as broker-registry reads it outside the advisor: how
//! many bound nodes are OFFLINE (its health monitor's gauge), and the uids
//! of the nodes a rebalance plan moves.

use super::NodeRef;

queries! {
    /// How many nodes bound to a zone are OFFLINE: a node waiting in the temp
    /// namespace or decommissioned going quiet is nobody's alarm.
    pub fn offline_bound(db) -> i64 {
        fetch_one(query_scalar!(
            r#"SELECT count(*) AS "n!" FROM nodes
               WHERE status = 'OFFLINE' AND lifecycle = 'ASSIGNED'"#
        ))
    }

    /// The ids and uids of the nodes `ids` that exist, in no particular order.
    pub fn refs(db, ids: &[i64]) -> Vec<NodeRef> {
        fetch_all(query_as!(NodeRef, "SELECT id, uid FROM nodes WHERE id = ANY($1)", ids))
    }
}
