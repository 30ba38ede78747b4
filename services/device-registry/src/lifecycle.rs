//! The pure rules of a node's life: the uid an unknown node is registered
//! under, its canonical type, the state shown by the API, what a bind
//! request does given the node's current state, and whether a
//! `config_report` completes a pending bind. No I/O: unit-tested here.

use std::str::FromStr;

use common::store::node_binds::Bind;
use common::store::nodes::{Lifecycle, NodeView};
use proto::payloads::{CAPABILITY_CONFIG_UPDATE, NodeConfig};
use proto::text_enum::one_of;
use proto::topics::NodeTopic;
use rand::RngCore;

proto::text_enum! {
    /// What the API calls a node's state (`?state=`).
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum NodeState {
        /// Not in a zone, no bind pending.
        Unbound => "unbound",
        /// A bind waits for the node's config_report.
        Pending => "pending",
        /// In a zone.
        Bound => "bound",
        Decommissioned => "decommissioned",
    }
    impl Display;
}

impl NodeState {
    /// From the lifecycle, whether the node has a zone and whether a bind is pending.
    pub fn of(lifecycle: Lifecycle, has_zone: bool, pending: bool) -> Self {
        match (lifecycle, pending, has_zone) {
            (Lifecycle::Decommissioned, _, _) => NodeState::Decommissioned,
            (_, true, _) => NodeState::Pending,
            (_, false, true) => NodeState::Bound,
            (_, false, false) => NodeState::Unbound,
        }
    }

    /// The state of `node`.
    pub fn of_node(node: &NodeView) -> Self {
        Self::of(node.lifecycle, node.zone_id.is_some(), node.pending)
    }
}

// By hand: its error says "; use" where `text_enum!`'s says ": use".
impl FromStr for NodeState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        NodeState::from_text(s).ok_or_else(|| {
            let states = one_of(&NodeState::ALL.map(NodeState::as_str));
            format!("`{s}` is not a state; use {states}")
        })
    }
}

/// The canonical node types (NODE_LIFECYCLE_AND_PROVISIONING.md); anything
/// else is stored as `unknown`.
pub const NODE_TYPES: &[&str] = &[
    "ph",
    "ec",
    "climate",
    "irrig",
    "light",
    "relay",
    "water_sensor",
    "recirculation",
    "unknown",
];

/// The canonical type for what a node declared.
pub fn canonical_type(declared: Option<&str>) -> &'static str {
    let declared = declared.map(str::trim).unwrap_or("");
    NODE_TYPES
        .iter()
        .find(|t| t.eq_ignore_ascii_case(declared))
        .copied()
        .unwrap_or("unknown")
}

/// Whether `uid` is a valid node uid (`nodes.uid`'s CHECK).
pub fn valid_uid(uid: &str) -> bool {
    (1..=64).contains(&uid.len())
        && uid
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// Whether `hardware_id` can name a node: 1 to 128 visible characters that
/// fit in a topic level (it is the node level of the temp namespace).
pub fn valid_hardware_id(hardware_id: &str) -> bool {
    (1..=128).contains(&hardware_id.len())
        && hardware_id
            .chars()
            .all(|c| c.is_ascii_graphic() && !matches!(c, '/' | '+' | '#'))
}

/// The uid an unknown node is registered under: `nd-{type}-{last 6
/// alphanumerics of its hardware id}`, lower case; `attempt` > 0 adds
/// `-{attempt + 1}` when that uid is taken.
pub fn generated_uid(node_type: &str, hardware_id: &str, attempt: u32) -> String {
    let alnum: Vec<char> = hardware_id
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect();
    let tail: String = alnum[alnum.len().saturating_sub(6)..].iter().collect();
    let tail = if tail.is_empty() { "x".into() } else { tail };
    let node_type = canonical_type(Some(node_type)).replace('_', "-");
    match attempt {
        0 => format!("nd-{node_type}-{tail}"),
        n => format!("nd-{node_type}-{tail}-{}", n + 1),
    }
}

/// `nodes.move_via` from a hello's capabilities.
pub fn move_via(capabilities: &[String]) -> &'static str {
    if capabilities.iter().any(|c| c == CAPABILITY_CONFIG_UPDATE) {
        "config_update"
    } else {
        "node_config"
    }
}

/// A fresh per-node secret: 64 lowercase hex characters (32 bytes) from
/// the thread's CSPRNG (ChaCha, seeded by the OS).
pub fn new_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// The node as a bind request sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindView {
    pub lifecycle: Lifecycle,
    pub zone_id: Option<i64>,
    pub uid: String,
    /// The pending bind: its id, target zone and target uid.
    pub pending: Option<(i64, i64, String)>,
}

/// What a bind request does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BindPlan {
    /// Already in that zone under that uid: nothing to do.
    AlreadyBound,
    /// The same bind is pending: publish its config again.
    Retry(i64),
    /// A new pending bind (replacing the pending one, if any).
    New { replaces: Option<i64> },
}

/// Why a bind is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BindRefusal {
    #[error("the node is decommissioned and cannot be bound")]
    Decommissioned,
}

/// What binding `node` to `zone_id` under `uid` does.
pub fn plan_bind(node: &BindView, zone_id: i64, uid: &str) -> Result<BindPlan, BindRefusal> {
    if node.lifecycle == Lifecycle::Decommissioned {
        return Err(BindRefusal::Decommissioned);
    }
    match &node.pending {
        Some((id, z, u)) if *z == zone_id && u == uid => Ok(BindPlan::Retry(*id)),
        Some((id, _, _)) => Ok(BindPlan::New {
            replaces: Some(*id),
        }),
        None if node.zone_id == Some(zone_id) && node.uid == uid => Ok(BindPlan::AlreadyBound),
        None => Ok(BindPlan::New { replaces: None }),
    }
}

/// The target of a pending bind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindTarget {
    pub gh_uid: String,
    pub zone_uid: String,
    pub node_uid: String,
}

impl BindTarget {
    /// The target of `bind`.
    pub fn of(bind: &Bind) -> Self {
        BindTarget {
            gh_uid: bind.gh_uid.clone(),
            zone_uid: bind.zone_uid.clone(),
            node_uid: bind.node_uid.clone(),
        }
    }
}

/// Whether a `config_report` that arrived on `topic` completes a bind to
/// `target`: it must come from the target namespace and name the same
/// greenhouse, zone and uid.
pub fn completes(target: &BindTarget, topic: &NodeTopic, report: &NodeConfig) -> bool {
    topic.greenhouse == target.gh_uid
        && topic.zone == target.zone_uid
        && topic.node == target.node_uid
        && report.gh_uid == target.gh_uid
        && report.zone_uid == target.zone_uid
        && report.node_id == target.node_uid
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto::topics::TopicKind;

    #[test]
    fn uids_are_generated_from_type_and_hardware_id() {
        assert_eq!(generated_uid("ph", "esp32-ABCD1234", 0), "nd-ph-cd1234");
        assert_eq!(generated_uid("ph", "esp32-ABCD1234", 1), "nd-ph-cd1234-2");
        assert_eq!(generated_uid("PH-Node?", "ab", 0), "nd-unknown-ab");
        assert_eq!(generated_uid("water_sensor", "--", 0), "nd-water-sensor-x");
        for uid in [
            generated_uid("ph", "esp32-ABCD1234", 7),
            generated_uid("x", &"é".repeat(100), 0),
            generated_uid("recirculation", &"A".repeat(200), 99),
        ] {
            assert!(valid_uid(&uid), "{uid}");
        }
        assert!(!valid_uid("a b"));
        assert!(valid_hardware_id("esp32-AABBCC:11:22"));
        for bad in ["", "a/b", "a+", "#", "a b", &"x".repeat(129)] {
            assert!(!valid_hardware_id(bad), "{bad}");
        }
        assert!(!valid_uid(""));
    }

    #[test]
    fn types_are_canonical() {
        assert_eq!(canonical_type(Some("ph")), "ph");
        assert_eq!(canonical_type(Some("EC")), "ec");
        assert_eq!(canonical_type(Some("ph_node")), "unknown");
        assert_eq!(canonical_type(None), "unknown");
    }

    #[test]
    fn move_means_follow_capabilities() {
        assert_eq!(
            move_via(&["ph".into(), "config_update".into()]),
            "config_update"
        );
        assert_eq!(move_via(&["ph".into()]), "node_config");
    }

    #[test]
    fn secrets_are_long_and_fresh() {
        let (a, b) = (new_secret(), new_secret());
        assert_eq!(a.len(), 64);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }

    #[test]
    fn states() {
        use Lifecycle::*;
        assert_eq!(NodeState::of(Registered, false, false), NodeState::Unbound);
        assert_eq!(NodeState::of(Registered, false, true), NodeState::Pending);
        assert_eq!(NodeState::of(Assigned, true, false), NodeState::Bound);
        assert_eq!(
            NodeState::of(Decommissioned, false, true),
            NodeState::Decommissioned
        );
        assert_eq!("pending".parse::<NodeState>().unwrap(), NodeState::Pending);
        assert!("sleeping".parse::<NodeState>().is_err());
        assert_eq!(
            "sleeping".parse::<NodeState>(),
            Err(
                "`sleeping` is not a state; use unbound, pending, bound or decommissioned"
                    .to_owned()
            )
        );
        assert_eq!(NodeState::Decommissioned.to_string(), "decommissioned");
    }

    fn view(zone: Option<i64>, pending: Option<(i64, i64, &str)>) -> BindView {
        BindView {
            lifecycle: if zone.is_some() {
                Lifecycle::Assigned
            } else {
                Lifecycle::Registered
            },
            zone_id: zone,
            uid: "nd-ph-1".into(),
            pending: pending.map(|(a, b, c)| (a, b, c.to_owned())),
        }
    }

    #[test]
    fn bind_plans() {
        use BindPlan::{AlreadyBound, New, Retry};
        let pending_in_5 = Some((9, 5, "nd-ph-1"));
        // (bound zone, pending bind, zone asked, uid asked, plan)
        let cases = [
            (None, None, 5, "nd-ph-1", New { replaces: None }),
            (Some(5), None, 5, "nd-ph-1", AlreadyBound),
            // Same zone, another uid: a rebind.
            (Some(5), None, 5, "nd-ph-2", New { replaces: None }),
            (Some(5), None, 6, "nd-ph-1", New { replaces: None }),
            (None, pending_in_5, 5, "nd-ph-1", Retry(9)),
            (None, pending_in_5, 6, "nd-ph-1", New { replaces: Some(9) }),
        ];
        for (zone, pending, asked, uid, plan) in cases {
            let got = plan_bind(&view(zone, pending), asked, uid);
            assert_eq!(
                got,
                Ok(plan),
                "bound {zone:?}, pending {pending:?}: {asked} {uid}"
            );
        }
        let mut gone = view(None, None);
        gone.lifecycle = Lifecycle::Decommissioned;
        assert_eq!(
            plan_bind(&gone, 5, "nd-ph-1"),
            Err(BindRefusal::Decommissioned)
        );
    }

    #[test]
    fn only_the_target_namespace_completes_a_bind() {
        let target = BindTarget {
            gh_uid: "gh-1".into(),
            zone_uid: "zn-1".into(),
            node_uid: "nd-ph-1".into(),
        };
        let report = |gh: &str, zone: &str, node: &str| {
            NodeConfig::decode(
                format!(r#"{{"node_id":"{node}","version":3,"type":"ph","gh_uid":"{gh}","zone_uid":"{zone}","channels":[],"mqtt":{{}}}}"#)
                    .as_bytes(),
            )
            .unwrap()
        };
        // (topic namespace, report namespace, completes)
        let cases = [
            ("gh-1/zn-1/nd-ph-1", "gh-1/zn-1/nd-ph-1", true),
            ("gh-1/zn-2/nd-ph-1", "gh-1/zn-2/nd-ph-1", false),
            ("gh-1/zn-1/nd-ph-1", "gh-1/zn-2/nd-ph-1", false),
            ("gh-temp/zn-temp/esp", "gh-1/zn-1/nd-ph-1", false),
            ("gh-1/zn-1/nd-ph-1", "gh-1/zn-1/nd-ph-9", false),
        ];
        let parts = |path: &'static str| -> [&'static str; 3] {
            let parts: Vec<&str> = path.split('/').collect();
            parts.try_into().unwrap()
        };
        for (on, reported, want) in cases {
            let ([gh, zone, node], [r_gh, r_zone, r_node]) = (parts(on), parts(reported));
            let topic = NodeTopic::new(gh, zone, node, None, TopicKind::ConfigReport);
            let got = completes(&target, &topic, &report(r_gh, r_zone, r_node));
            assert_eq!(got, want, "topic {on}, report {reported}");
        }
    }
}
