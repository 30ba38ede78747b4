//! A short-lived cache of resolved command targets (node, channel, zone,
//! greenhouse, secret, and the route broker of `common::commands::route`:
//! where the node is observed, else its assignment), so a burst of commands to the same
//! nodes does not repeat the same lookup for each.
//!
//! Entries live one second: a node moved to another zone, or seen on
//! another broker, is followed within that second (and a command sent in
//! that second still follows it: the send path reads the route again when
//! the cached broker does not deliver). Only successful lookups are cached, so an
//! unknown node or channel is always looked up again (and explained).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::commands::Target;

/// How long a lookup is trusted.
pub const TTL: Duration = Duration::from_secs(1);
/// Beyond this many entries the cache starts over, bounding memory.
const MAX_ENTRIES: usize = 50_000;

/// What a request addressed.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Scope {
    /// `/bridge/zones/{zone}` with an optional `node_uid` in the body.
    Zone {
        zone: String,
        node_uid: Option<String>,
    },
    /// `/bridge/nodes/{node_uid}`.
    Node(String),
}

type Key = (Scope, String);
/// When a lookup was made, and what it found.
type Entry = (Instant, Arc<[Target]>);

#[derive(Default)]
pub struct TargetCache {
    entries: Mutex<HashMap<Key, Entry>>,
}

impl TargetCache {
    /// The cached targets of `scope` and `channel`, if fresh.
    pub fn get(&self, scope: &Scope, channel: &str) -> Option<Arc<[Target]>> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let (at, targets) = entries.get(&(scope.clone(), channel.to_owned()))?;
        (at.elapsed() < TTL).then(|| targets.clone())
    }

    /// Remembers a successful lookup.
    pub fn put(&self, scope: Scope, channel: &str, targets: Arc<[Target]>) {
        if targets.is_empty() {
            return;
        }
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= MAX_ENTRIES {
            entries.clear();
        }
        entries.insert((scope, channel.to_owned()), (Instant::now(), targets));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target() -> Target {
        Target {
            node_id: 1,
            node_uid: "n".into(),
            zone_id: 1,
            zone_uid: "z".into(),
            greenhouse_uid: "g".into(),
            channel: "c".into(),
            secret: None,
            broker_id: None,
        }
    }

    #[test]
    fn hit_miss_and_empty_results() {
        let cache = TargetCache::default();
        let scope = Scope::Node("n".into());
        assert!(cache.get(&scope, "c").is_none());
        cache.put(scope.clone(), "c", Arc::from(vec![target()]));
        assert_eq!(cache.get(&scope, "c").unwrap().len(), 1);
        assert!(cache.get(&scope, "other").is_none());
        cache.put(Scope::Node("m".into()), "c", Arc::from(Vec::new()));
        assert!(
            cache.get(&Scope::Node("m".into()), "c").is_none(),
            "failures are not cached"
        );
    }
}
