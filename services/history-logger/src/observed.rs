//! Which nodes of a batch may need their row changed: the writer remembers
//! each node's status and observation as it last planned them, so the
//! telemetry of a node that stays ONLINE on the same broker costs no lock and
//! no update (the ingest benchmark's tens of thousands of messages per second
//! come from a few hundred nodes).
//!
//! Another instance may have changed a row since, so an entry vouches for at
//! most [`OBSERVED_RESOLUTION`] of a node's uplink: after that the node is
//! read (and `observed_at` written) again. A node another instance marked
//! OFFLINE is thus brought back by this one's uplink within that time.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::node_state::{Happening, Known, NodeStatus, OBSERVED_RESOLUTION, What};

/// Each node's state after the last batch this writer planned for it.
#[derive(Debug, Default)]
pub struct ObservedCache {
    nodes: Mutex<HashMap<i64, Known>>,
}

impl ObservedCache {
    /// The nodes of `happenings` to lock and plan, sorted: every node with a
    /// status, a last will or a heartbeat (its row changes anyway), and every
    /// node whose uplink the cache cannot vouch for (unknown, OFFLINE, on
    /// another broker, or observed too long ago).
    pub fn due(&self, happenings: &[Happening<'_>]) -> Vec<i64> {
        let nodes = self.nodes.lock().unwrap_or_else(|p| p.into_inner());
        let mut ids: Vec<i64> = happenings
            .iter()
            .filter(|h| match h.what {
                What::Uplink("heartbeat") | What::Status { .. } | What::Lwt => true,
                What::Uplink(_) => nodes.get(&h.target.node_id).is_none_or(|k| {
                    k.status == NodeStatus::Offline
                        || k.observed_broker.as_deref() != Some(h.broker)
                        || k.observed_at
                            .is_none_or(|o| h.at - o >= OBSERVED_RESOLUTION)
                }),
            })
            .map(|h| h.target.node_id)
            .collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    /// Remembers the nodes of a committed plan.
    pub fn remember(&self, after: HashMap<i64, Known>) {
        self.nodes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend(after);
    }
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Utc};

    use super::*;
    use crate::node_state::Target;

    fn at(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + s, 0).unwrap()
    }

    fn h(node_id: i64, broker: &'static str, s: i64, what: What) -> Happening<'static> {
        Happening {
            target: Target {
                node_id,
                zone_id: None,
                node_uid: "nd",
            },
            broker,
            at: at(s),
            what,
        }
    }

    #[test]
    fn only_what_may_change_is_due() {
        let cache = ObservedCache::default();
        let reading = |node, broker, s| h(node, broker, s, What::Uplink("telemetry"));
        assert_eq!(
            cache.due(&[reading(2, "b1", 0), reading(1, "b1", 0)]),
            vec![1, 2]
        );
        cache.remember(HashMap::from([
            (
                1,
                Known {
                    status: NodeStatus::Online,
                    observed_broker: Some("b1".into()),
                    observed_at: Some(at(0)),
                },
            ),
            (
                2,
                Known {
                    status: NodeStatus::Offline,
                    observed_broker: Some("b1".into()),
                    observed_at: Some(at(0)),
                },
            ),
        ]));
        assert_eq!(cache.due(&[reading(1, "b1", 4)]), Vec::<i64>::new());
        assert_eq!(
            cache.due(&[reading(1, "b1", 5)]),
            vec![1],
            "observed too long ago"
        );
        assert_eq!(cache.due(&[reading(1, "b2", 1)]), vec![1], "another broker");
        assert_eq!(cache.due(&[reading(2, "b1", 1)]), vec![2], "OFFLINE");
        assert_eq!(cache.due(&[h(1, "b1", 1, What::Lwt)]), vec![1]);
        assert_eq!(
            cache.due(&[h(1, "b1", 1, What::Uplink("heartbeat"))]),
            vec![1]
        );
    }
}
