//! The optional language model: any OpenAI-compatible endpoint
//! (`ADVISOR_MODEL_URL`, off by default). It gets the same figures as the
//! rules and must answer in one fixed JSON schema ([`Answer`]), parsed
//! strictly (unknown fields refused, sizes bounded). A malformed answer is
//! refused as a whole; a well-formed one is a list of proposals that pass
//! the same guard as the rules'. Nothing it says is ever applied unchecked.

use std::time::Duration;

use common::store::advisor_suggestions::SuggestionSource;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Inputs, Kind, Proposal, ProposedMove};

/// The largest HTTP answer read from the endpoint.
const MAX_RESPONSE_BYTES: usize = 256 * 1024;
/// The largest answer (the assistant message) parsed.
pub const MAX_ANSWER_CHARS: usize = 32 * 1024;
/// The most suggestions one answer holds.
pub const MAX_SUGGESTIONS: usize = 8;
/// The longest summary.
pub const MAX_SUMMARY_CHARS: usize = 500;
/// The largest evidence object (serialised).
pub const MAX_EVIDENCE_CHARS: usize = 4096;
/// The most moves one suggestion may list (the guard holds them to the
/// rate limit; beyond this the answer is malformed).
pub const MAX_MOVES: usize = 200;
/// The longest name (kind, node uid, broker id, strategy).
pub const MAX_NAME_CHARS: usize = 64;
/// The most nodes described to the model.
const MAX_NODES_SENT: usize = 500;

/// Where the model is and how long it may take.
#[derive(Debug, Clone)]
pub struct ModelConfig {
    /// The base URL, e.g. `http://host:8000/v1`.
    pub url: String,
    pub name: String,
    pub api_key: Option<SecretString>,
    pub timeout: Duration,
}

/// The fixed schema of an answer.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Answer {
    pub suggestions: Vec<AnswerSuggestion>,
}

/// One suggestion of an answer.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnswerSuggestion {
    pub kind: String,
    pub summary: String,
    #[serde(default)]
    pub evidence: serde_json::Map<String, Value>,
    #[serde(default)]
    pub moves: Vec<ProposedMove>,
    #[serde(default)]
    pub strategy: Option<String>,
}

/// Why the model gave nothing usable.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// Not reached, or answered with an error: nothing to store.
    #[error("the model endpoint failed: {0}")]
    Unavailable(String),
    /// It answered, but not in the schema: refused and stored.
    #[error("the model's answer is malformed: {reason}")]
    Malformed { reason: String, raw: String },
}

/// What the model is told once: the schema and the rules it cannot bend.
const SYSTEM_PROMPT: &str = "You advise on the placement of IoT nodes over MQTT brokers. \
You get the current figures as JSON. Answer with one JSON object only: \
{\"suggestions\":[{\"kind\":K,\"summary\":S,\"evidence\":{...},\"moves\":[{\"node_uid\":U,\"from\":B,\"to\":B}],\"strategy\":null}]} \
where K is one of offload_broker, dedicate_broker, merge_quiet_zones, switch_strategy, restore_spread, inspect_nodes; \
S is one sentence with the numbers that justify it; moves name existing nodes and GOOD, enabled, non-draining brokers, \
at most max_moves of them; strategy (static, dynamic or priority) only for switch_strategy. \
Never suggest disabling or weakening failover or lowering security. At most 8 suggestions; none is fine.";

/// Parses the assistant's message as an [`Answer`], strictly, into
/// proposals (the guard judges them next).
pub fn parse_answer(content: &str) -> Result<Vec<Proposal>, String> {
    if content.chars().count() > MAX_ANSWER_CHARS {
        return Err(format!("longer than {MAX_ANSWER_CHARS} characters"));
    }
    let answer: Answer =
        serde_json::from_str(content.trim()).map_err(|e| format!("not the schema: {e}"))?;
    if answer.suggestions.len() > MAX_SUGGESTIONS {
        return Err(format!(
            "{} suggestions, at most {MAX_SUGGESTIONS}",
            answer.suggestions.len()
        ));
    }
    answer.suggestions.into_iter().map(proposal).collect()
}

fn proposal(s: AnswerSuggestion) -> Result<Proposal, String> {
    let long = |what: &str, text: &str, max: usize| {
        (text.chars().count() > max).then(|| format!("{what} longer than {max} characters"))
    };
    let names = std::iter::once(("kind", s.kind.as_str()))
        .chain(s.strategy.as_deref().map(|t| ("strategy", t)))
        .chain(s.moves.iter().flat_map(|m| {
            [("node_uid", m.node_uid.as_str()), ("to", m.to.as_str())]
                .into_iter()
                .chain(m.from.as_deref().map(|f| ("from", f)))
        }));
    for (what, text) in names {
        if let Some(e) = long(what, text, MAX_NAME_CHARS) {
            return Err(e);
        }
    }
    if let Some(e) = long("summary", &s.summary, MAX_SUMMARY_CHARS) {
        return Err(e);
    }
    if s.summary.trim().is_empty() {
        return Err("an empty summary".into());
    }
    if s.moves.len() > MAX_MOVES {
        return Err(format!(
            "{} moves in one suggestion, at most {MAX_MOVES}",
            s.moves.len()
        ));
    }
    let evidence = Value::Object(s.evidence);
    if evidence.to_string().len() > MAX_EVIDENCE_CHARS {
        return Err(format!("evidence larger than {MAX_EVIDENCE_CHARS} bytes"));
    }
    let mut moves = s.moves;
    moves.sort();
    Ok(Proposal {
        key: s.summary.clone(),
        kind: s.kind,
        source: SuggestionSource::Model,
        summary: s.summary.trim().to_owned(),
        evidence,
        moves,
        strategy: s.strategy,
    })
}

/// The figures as the model gets them.
fn figures(inputs: &Inputs) -> Value {
    json!({
        "strategy": inputs.strategy.as_str(),
        "max_moves": inputs.max_moves,
        "rebalance_threshold": inputs.threshold,
        "kinds": Kind::ALL.map(Kind::as_str),
        "brokers": inputs.brokers,
        "nodes": inputs.nodes.iter().take(MAX_NODES_SENT).collect::<Vec<_>>(),
    })
}

/// Asks the model at `config` about `inputs`.
pub async fn ask(
    http: &reqwest::Client,
    config: &ModelConfig,
    inputs: &Inputs,
) -> Result<Vec<Proposal>, ModelError> {
    let url = format!("{}/chat/completions", config.url.trim_end_matches('/'));
    let body = json!({
        "model": config.name,
        "temperature": 0,
        "response_format": { "type": "json_object" },
        "messages": [
            { "role": "system", "content": SYSTEM_PROMPT },
            { "role": "user", "content": figures(inputs).to_string() },
        ],
    });
    let mut request = http.post(&url).timeout(config.timeout).json(&body);
    if let Some(key) = &config.api_key {
        request = request.bearer_auth(key.expose_secret());
    }
    let unavailable = |e: reqwest::Error| ModelError::Unavailable(e.without_url().to_string());
    let mut response = request.send().await.map_err(unavailable)?;
    if !response.status().is_success() {
        return Err(ModelError::Unavailable(format!(
            "HTTP {}",
            response.status()
        )));
    }
    let mut bytes = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(unavailable)? {
        bytes.extend_from_slice(&chunk);
        if bytes.len() > MAX_RESPONSE_BYTES {
            return Err(malformed(
                format!("an answer over {MAX_RESPONSE_BYTES} bytes"),
                "",
            ));
        }
    }
    let text = String::from_utf8_lossy(&bytes);
    let envelope: Value = serde_json::from_str(&text)
        .map_err(|e| malformed(format!("not a chat completion: {e}"), &text))?;
    let content = envelope
        .pointer("/choices/0/message/content")
        .and_then(Value::as_str)
        .ok_or_else(|| malformed("no choices[0].message.content".into(), &text))?;
    parse_answer(content).map_err(|reason| malformed(reason, content))
}

fn malformed(reason: String, raw: &str) -> ModelError {
    ModelError::Malformed {
        reason,
        raw: raw.chars().take(500).collect(),
    }
}
