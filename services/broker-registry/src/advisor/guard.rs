//! The one guard every suggestion passes, from the rules or from the model,
//! when it is made and again when it is applied. It refuses, with a reason,
//! any suggestion that would:
//! - disable or weaken failover (in its words, or by filling the hot
//!   standby, the failover reserve);
//! - lower security (auth, ACL, TLS, secrets);
//! - name a node or broker that does not exist, or move a node to a broker
//!   that is disabled, draining or not GOOD;
//! - move more nodes at once than the rate limit allows;
//!
//! and anything that is not one of the advisor's kinds, holds text that
//! tries to instruct its reader (prompt injection), or does not fit its
//! kind (moves where none belong, a strategy that does not exist, moves of
//! nodes no longer where it says).

use std::collections::BTreeSet;

use common::placement::balance::{Role, Strategy};
use common::placement::broker_status::BrokerStatus;
use serde_json::Value;

use super::{Inputs, Kind, Proposal};

/// Words that name failover.
const FAILOVER_WORDS: &[&str] = &["failover", "failovers", "standby", "fallback", "fallbacks"];
/// Words that name a security control.
const SECURITY_WORDS: &[&str] = &[
    "auth",
    "authentication",
    "authorization",
    "acl",
    "acls",
    "tls",
    "ssl",
    "mqtts",
    "password",
    "passwords",
    "secret",
    "secrets",
    "token",
    "tokens",
    "credential",
    "credentials",
    "certificate",
    "certificates",
    "cert",
    "certs",
    "encryption",
    "signature",
    "signing",
    "hmac",
];
/// Words that turn a control off or down.
const WEAKENING_WORDS: &[&str] = &[
    "disable",
    "disabled",
    "disabling",
    "off",
    "weaken",
    "weaker",
    "lower",
    "reduce",
    "relax",
    "bypass",
    "skip",
    "pause",
    "stop",
    "suspend",
    "remove",
    "delete",
    "drop",
    "kill",
    "without",
    "ignore",
    "plaintext",
    "unencrypted",
    "anonymous",
    "expose",
    "reveal",
    "print",
    "leak",
    "shorter",
    "unsigned",
    "insecure",
];
/// Words asking for anonymous access, whatever else is said.
const ALWAYS_INSECURE: &[&str] = &["allow_anonymous", "anonymous"];
/// Phrases that address the reader instead of describing the system.
const INJECTION_PHRASES: &[&str] = &[
    "ignore previous",
    "ignore all previous",
    "ignore the above",
    "ignore your",
    "disregard",
    "system prompt",
    "you are now",
    "new instructions",
    "instructions:",
    "jailbreak",
    "developer mode",
    "act as",
    "pretend",
    "override the guard",
    "the guard",
    "<|",
    "```",
    "assistant:",
    "system:",
];

/// Checks `p` against the figures of `inputs`; `Err` holds the reason.
pub fn check(p: &Proposal, inputs: &Inputs) -> Result<(), String> {
    let kind = Kind::from_text(&p.kind).ok_or_else(|| {
        format!(
            "`{}` is not a suggestion the advisor knows (use one of {})",
            clip(&p.kind),
            Kind::ALL.map(Kind::as_str).join(", ")
        )
    })?;
    check_text(p)?;
    check_strategy(kind, p, inputs)?;
    check_moves(kind, p, inputs)
}

/// Every text of the suggestion, lower-cased: summary, strategy, the moves'
/// names and the evidence's keys and strings.
fn texts(p: &Proposal) -> Vec<String> {
    fn walk(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::String(s) => out.push(s.to_lowercase()),
            Value::Array(a) => a.iter().for_each(|v| walk(v, out)),
            Value::Object(o) => o.iter().for_each(|(k, v)| {
                out.push(k.to_lowercase());
                walk(v, out);
            }),
            _ => {}
        }
    }
    let mut out = vec![p.summary.to_lowercase()];
    out.extend(p.strategy.iter().map(|s| s.to_lowercase()));
    for m in &p.moves {
        out.extend([&m.node_uid, &m.to].map(|s| s.to_lowercase()));
        out.extend(m.from.iter().map(|s| s.to_lowercase()));
    }
    walk(&p.evidence, &mut out);
    out
}

fn words(text: &str) -> BTreeSet<&str> {
    text.split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .filter(|w| !w.is_empty())
        .collect()
}

fn check_text(p: &Proposal) -> Result<(), String> {
    for text in texts(p) {
        if let Some(phrase) = INJECTION_PHRASES.iter().find(|ph| text.contains(*ph)) {
            return Err(format!(
                "holds text addressed to its reader (`{phrase}`): a suggestion states figures and moves, never instructions"
            ));
        }
        let w = words(&text);
        let any = |list: &[&str]| list.iter().any(|x| w.contains(x));
        if any(FAILOVER_WORDS) && any(WEAKENING_WORDS) {
            return Err("would disable or weaken failover".into());
        }
        if any(ALWAYS_INSECURE) || (any(SECURITY_WORDS) && any(WEAKENING_WORDS)) {
            return Err("would lower security (auth, ACL, TLS, secrets)".into());
        }
    }
    Ok(())
}

fn check_strategy(kind: Kind, p: &Proposal, inputs: &Inputs) -> Result<(), String> {
    match (kind, p.strategy.as_deref()) {
        (Kind::SwitchStrategy, None) => Err("a strategy switch must name the strategy".into()),
        (Kind::SwitchStrategy, Some(text)) => {
            let strategy: Strategy = text.parse()?;
            if strategy == inputs.strategy {
                return Err(format!("`{}` is the strategy already", strategy.as_str()));
            }
            Ok(())
        }
        (_, Some(_)) => Err(format!("a {} names no strategy", kind.as_str())),
        (_, None) => Ok(()),
    }
}

fn check_moves(kind: Kind, p: &Proposal, inputs: &Inputs) -> Result<(), String> {
    let needs_moves = matches!(
        kind,
        Kind::OffloadBroker | Kind::MergeQuietZones | Kind::RestoreSpread
    );
    let takes_moves = needs_moves || kind == Kind::DedicateBroker;
    if needs_moves && p.moves.is_empty() {
        return Err(format!("a {} must name its moves", kind.as_str()));
    }
    if !takes_moves && !p.moves.is_empty() {
        return Err(format!("a {} moves no node", kind.as_str()));
    }
    if p.moves.len() > inputs.max_moves {
        return Err(format!(
            "would move {} nodes at once; the rate limit is {} per step",
            p.moves.len(),
            inputs.max_moves
        ));
    }
    let mut seen = BTreeSet::new();
    for m in &p.moves {
        if !seen.insert(m.node_uid.as_str()) {
            return Err(format!("moves node `{}` twice", clip(&m.node_uid)));
        }
        let node = inputs
            .node(&m.node_uid)
            .ok_or_else(|| format!("names node `{}`, which does not exist", clip(&m.node_uid)))?;
        let to = inputs
            .broker(&m.to)
            .ok_or_else(|| format!("names broker `{}`, which does not exist", clip(&m.to)))?;
        if let Some(from) = &m.from
            && inputs.broker(from).is_none()
        {
            return Err(format!(
                "names broker `{}`, which does not exist",
                clip(from)
            ));
        }
        if !to.enabled {
            return Err(format!(
                "would move nodes to `{}`, which is disabled",
                to.id
            ));
        }
        if to.draining {
            return Err(format!(
                "would move nodes to `{}`, which is draining",
                to.id
            ));
        }
        if to.status != BrokerStatus::Good {
            return Err(format!(
                "would move nodes to `{}`, which is {}, not GOOD",
                to.id,
                to.status.as_str()
            ));
        }
        if to.role == Role::Standby {
            return Err(format!(
                "would fill `{}`, the hot standby the failover keeps in reserve (weakens failover)",
                to.id
            ));
        }
        if node.broker != m.from {
            return Err(format!(
                "node `{}` is on {}, not {} (the figures changed)",
                node.uid,
                node.broker.as_deref().unwrap_or("no broker"),
                m.from.as_deref().unwrap_or("no broker")
            ));
        }
        if m.from.as_deref() == Some(m.to.as_str()) {
            return Err(format!("moves node `{}` to the broker it is on", node.uid));
        }
        if !node.movable {
            return Err(format!(
                "node `{}` cannot be moved (no means reaches it)",
                node.uid
            ));
        }
    }
    Ok(())
}

/// At most 64 characters of a name from a suggestion, for a reason.
fn clip(text: &str) -> String {
    text.chars().take(64).collect()
}
