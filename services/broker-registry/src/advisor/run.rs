//! A round of the advisor ([`run`]: the rules, the model when it is due,
//! the guard, the store) and applying one suggestion ([`apply`]).

use std::time::Duration;

use common::placement::balance::Move;
use common::store::advisor_suggestions::{
    self as store, NewSuggestion, Suggestion, SuggestionSource, SuggestionStatus,
};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tracing::warn;

use super::model::{self, ModelError};
use super::{INVALID_KIND, Inputs, Kind, Proposal, ProposedMove, guard, rules};
use crate::audit::Operator;
use crate::error::ApiError;
use crate::state::ApiState;

/// How long a refusal stays listed after it was last made.
const REFUSED_SHOWN: Duration = Duration::from_secs(15 * 60);
/// The most suggestions listed.
const MAX_LISTED: i64 = 200;

/// What a round found: the open proposals and the recent refusals, and
/// what became of the model.
pub struct Report {
    pub suggestions: Vec<Suggestion>,
    pub refused: Vec<Suggestion>,
    pub model: Value,
}

async fn inputs(s: &ApiState) -> Result<Inputs, ApiError> {
    let strategy = s.strategy.current(&s.pool).await?;
    Ok(super::gather(&s.pool, strategy, s.limits, s.cooldown).await?)
}

/// What makes two suggestions the same: source, kind, strategy, moves and key.
fn fingerprint(p: &Proposal, kind: &str) -> String {
    let mut h = Sha256::new();
    h.update(json!([p.source, kind, p.strategy, p.moves, p.key]).to_string());
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Guards `proposals` and stores them; returns the ids of those proposed.
async fn store_checked(
    s: &ApiState,
    inputs: &Inputs,
    proposals: &[Proposal],
) -> Result<Vec<i64>, ApiError> {
    let mut proposed = Vec::new();
    for p in proposals {
        let row = store_one(s, p, guard::check(p, inputs)).await?;
        if row.status == SuggestionStatus::Proposed {
            proposed.push(row.id);
        }
    }
    Ok(proposed)
}

/// Stores `p` as proposed, or refused with the verdict's reason.
async fn store_one(
    s: &ApiState,
    p: &Proposal,
    verdict: Result<(), String>,
) -> Result<Suggestion, ApiError> {
    let (kind, evidence) = match Kind::from_text(&p.kind) {
        Some(k) => (k.as_str(), p.evidence.clone()),
        None if p.kind == INVALID_KIND => (INVALID_KIND, p.evidence.clone()),
        None => (
            INVALID_KIND,
            json!({ "kind_given": p.kind.chars().take(64).collect::<String>(), "evidence": p.evidence }),
        ),
    };
    let moves = serde_json::to_value(&p.moves).unwrap_or_default();
    let row = store::upsert(
        &s.pool,
        &NewSuggestion {
            kind,
            source: p.source,
            summary: &p.summary,
            evidence: &evidence,
            moves: &moves,
            strategy: p.strategy.as_deref(),
            status: if verdict.is_ok() {
                SuggestionStatus::Proposed
            } else {
                SuggestionStatus::Refused
            },
            refused_reason: verdict.as_ref().err().map(String::as_str),
            fingerprint: &fingerprint(p, kind),
        },
    )
    .await?;
    Ok(row)
}

/// Runs the rules (and the model when it is due) over the current figures,
/// stores what they propose and refuse, and lists what is open.
pub async fn run(s: &ApiState) -> Result<Report, ApiError> {
    let inputs = inputs(s).await?;
    let ids = store_checked(s, &inputs, &rules::all(&inputs)).await?;
    store::supersede_except(&s.pool, SuggestionSource::Rules, &ids).await?;
    let model = match s.advisor.model_due() {
        None => json!({ "enabled": s.advisor.model.is_some(), "asked": false }),
        Some(config) => match model::ask(&s.advisor.http, config, &inputs).await {
            Ok(proposals) => {
                let ids = store_checked(s, &inputs, &proposals).await?;
                store::supersede_except(&s.pool, SuggestionSource::Model, &ids).await?;
                json!({ "enabled": true, "asked": true, "suggestions": proposals.len() })
            }
            Err(ModelError::Malformed { reason, raw }) => {
                let refused = Proposal {
                    kind: INVALID_KIND.into(),
                    source: SuggestionSource::Model,
                    summary: "The model's answer was not in the advisor's schema; nothing of it is applied.".into(),
                    evidence: json!({ "answer": raw, "error": reason }),
                    moves: Vec::new(),
                    strategy: None,
                    key: raw,
                };
                store_one(
                    s,
                    &refused,
                    Err(format!("the model's answer is malformed: {reason}")),
                )
                .await?;
                store::supersede_except(&s.pool, SuggestionSource::Model, &[]).await?;
                json!({ "enabled": true, "asked": true, "error": format!("malformed answer: {reason}") })
            }
            Err(e @ ModelError::Unavailable(_)) => {
                warn!(error = %e, "The advisor's model did not answer.");
                json!({ "enabled": true, "asked": true, "error": e.to_string() })
            }
        },
    };
    let (suggestions, refused) = store::open(&s.pool, REFUSED_SHOWN.as_secs_f64(), MAX_LISTED)
        .await?
        .into_iter()
        .partition(|r| r.status == SuggestionStatus::Proposed);
    Ok(Report {
        suggestions,
        refused,
        model,
    })
}

/// Applies proposal `id` for `who`: re-checked by the guard against the
/// current figures, claimed (no other apply gets it), then carried out —
/// moves through the engine's path of a manual rebalance, at most the rate
/// limit at once; a strategy switch stored for every instance — and
/// audited. Returns what was done.
pub async fn apply(s: &ApiState, id: i64, who: &Operator) -> Result<Value, ApiError> {
    let row = store::get(&s.pool, id).await?.ok_or_else(|| {
        ApiError::not_found(
            "suggestion_not_found",
            format!("suggestion {id} does not exist"),
        )
    })?;
    if row.status != SuggestionStatus::Proposed {
        let why = row
            .refused_reason
            .as_deref()
            .map(|r| format!(": {r}"))
            .unwrap_or_default();
        return Err(ApiError::conflict(
            "not_applicable",
            format!(
                "suggestion {id} is {}{why}; only a proposed suggestion can be applied",
                json!(row.status).as_str().unwrap_or("")
            ),
        ));
    }
    let inputs = inputs(s).await?;
    let proposal = Proposal {
        kind: row.kind.clone(),
        source: row.source,
        summary: row.summary.clone(),
        evidence: row.evidence.clone(),
        moves: serde_json::from_value(row.moves.clone()).map_err(ApiError::internal)?,
        strategy: row.strategy.clone(),
        key: String::new(),
    };
    guard::check(&proposal, &inputs).map_err(|reason| {
        ApiError::conflict(
            "refused_by_guard",
            format!("suggestion {id} no longer passes the guard: {reason}"),
        )
    })?;
    let kind = Kind::from_text(&row.kind)
        .ok_or_else(|| ApiError::internal("a proposed suggestion of no known kind"))?;
    if proposal.moves.is_empty() && kind != Kind::SwitchStrategy {
        return Err(ApiError::conflict(
            "nothing_to_apply",
            format!(
                "suggestion {id} ({}) moves nothing: it is for an operator to act on",
                row.kind
            ),
        ));
    }
    if !store::claim(&s.pool, id, &who.0).await? {
        return Err(ApiError::conflict(
            "not_applicable",
            format!("suggestion {id} was applied or superseded meanwhile"),
        ));
    }
    match carry_out(s, &inputs, &proposal, who).await {
        Ok(detail) => {
            let detail = json!({ "id": id, "kind": row.kind, "source": row.source, "summary": row.summary, "result": detail });
            who.record(
                &s.pool,
                "suggestion.apply",
                Some(&format!("suggestion:{id}")),
                detail.clone(),
            )
            .await?;
            Ok(detail)
        }
        Err(e) => {
            if let Err(e) = store::unclaim(&s.pool, id).await {
                warn!(error = %e, suggestion = id, "Could not give a failed suggestion back.");
            }
            Err(e)
        }
    }
}

async fn carry_out(
    s: &ApiState,
    inputs: &Inputs,
    p: &Proposal,
    who: &Operator,
) -> Result<Value, ApiError> {
    if let Some(text) = &p.strategy {
        let strategy = text
            .parse()
            .map_err(|e: String| ApiError::bad_request("invalid_strategy", e))?;
        s.strategy.set(&s.pool, strategy, &who.0).await?;
        return Ok(json!({ "strategy": strategy.as_str(), "previous": inputs.strategy.as_str() }));
    }
    let limit = s.limits.max_moves;
    let moves: Vec<Move> = p
        .moves
        .iter()
        .take(limit)
        .filter_map(|m| {
            let node = inputs.node(&m.node_uid)?;
            Some(Move {
                node_id: node.id,
                from: m.from.clone(),
                to: m.to.clone(),
            })
        })
        .collect();
    let written = crate::engine::apply(
        &s.pool,
        &s.brokers,
        &moves,
        inputs.strategy,
        secrecy::ExposeSecret::expose_secret(&s.default_secret),
    )
    .await?;
    let applied: Vec<&ProposedMove> = p
        .moves
        .iter()
        .filter(|m| {
            inputs
                .node(&m.node_uid)
                .is_some_and(|n| written.iter().any(|w| w.node_id == n.id))
        })
        .collect();
    Ok(
        json!({ "moves": applied, "planned": p.moves.len(), "applied": applied.len(), "rate_limit": limit }),
    )
}
