//! The `advisor_suggestions` table: what broker-registry's advisor proposed,
//! refused (with the guard's reason) or applied. Used by broker-registry's
//! advisor (`GET /api/advisor`, the apply route). A suggestion made again
//! updates its open row (same fingerprint and status); an open proposal no
//! longer made is superseded.

use serde::Serialize;
use serde_json::Value;

/// `advisor_suggestions.status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, sqlx::Type)]
#[sqlx(type_name = "text", rename_all = "lowercase")]
#[serde(rename_all = "lowercase")]
pub enum SuggestionStatus {
    /// Passed the guard; may be applied.
    Proposed,
    /// Refused by the guard, with its reason.
    Refused,
    Applied,
    /// No longer made by the rules or the model: not applicable any more.
    Superseded,
}

/// `advisor_suggestions.source`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, sqlx::Type)]
#[sqlx(type_name = "text", rename_all = "lowercase")]
#[serde(rename_all = "lowercase")]
pub enum SuggestionSource {
    /// The built-in rules.
    Rules,
    /// The optional language model.
    Model,
}

/// One stored suggestion, as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct Suggestion {
    pub id: i64,
    pub kind: String,
    pub source: SuggestionSource,
    pub summary: String,
    pub evidence: Value,
    /// `[{"node_uid","from","to"}]`.
    pub moves: Value,
    pub strategy: Option<String>,
    pub status: SuggestionStatus,
    pub refused_reason: Option<String>,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

/// A suggestion to store (proposed or refused).
#[derive(Debug, Clone, PartialEq)]
pub struct NewSuggestion<'a> {
    pub kind: &'a str,
    pub source: SuggestionSource,
    pub summary: &'a str,
    pub evidence: &'a Value,
    pub moves: &'a Value,
    pub strategy: Option<&'a str>,
    pub status: SuggestionStatus,
    pub refused_reason: Option<&'a str>,
    /// What makes two suggestions the same (kind, moves, strategy, nodes).
    pub fingerprint: &'a str,
}

queries! {
    /// Stores `s`, or refreshes the open row with its fingerprint and status
    /// (figures, summary, `seen_at`); returns the row.
    pub fn upsert(db, s: &NewSuggestion<'_>) -> Suggestion {
        fetch_one(query_as!(
            Suggestion,
            r#"INSERT INTO advisor_suggestions (kind, source, summary, evidence, moves, strategy,
                                                status, refused_reason, fingerprint)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
               ON CONFLICT (fingerprint, status) WHERE status IN ('proposed', 'refused')
               DO UPDATE SET summary = EXCLUDED.summary, evidence = EXCLUDED.evidence,
                             refused_reason = EXCLUDED.refused_reason, seen_at = now()
               RETURNING id, kind, source AS "source: SuggestionSource", summary, evidence,
                         moves, strategy, status AS "status: SuggestionStatus", refused_reason,
                         created_at"#,
            s.kind, s.source as SuggestionSource, s.summary, s.evidence, s.moves, s.strategy,
            s.status as SuggestionStatus, s.refused_reason, s.fingerprint
        ))
    }

    /// Marks every open proposal of `source` not in `keep` superseded; returns
    /// how many.
    pub fn supersede_except(db, source: SuggestionSource, keep: &[i64]) -> u64 {
        rows_affected(query!(
            "UPDATE advisor_suggestions SET status = 'superseded' \
             WHERE source = $1 AND status = 'proposed' AND id <> ALL($2)",
            source as SuggestionSource, keep
        ))
    }

    /// Suggestion `id`.
    pub fn get(db, id: i64) -> Option<Suggestion> {
        fetch_optional(query_as!(
            Suggestion,
            r#"SELECT id, kind, source AS "source: SuggestionSource", summary, evidence, moves,
                      strategy, status AS "status: SuggestionStatus", refused_reason, created_at
               FROM advisor_suggestions WHERE id = $1"#,
            id
        ))
    }

    /// The open proposals and the refusals seen within `refused_secs`, newest
    /// first, at most `limit`.
    pub fn open(db, refused_secs: f64, limit: i64) -> Vec<Suggestion> {
        fetch_all(query_as!(
            Suggestion,
            r#"SELECT id, kind, source AS "source: SuggestionSource", summary, evidence, moves,
                      strategy, status AS "status: SuggestionStatus", refused_reason, created_at
               FROM advisor_suggestions
               WHERE status = 'proposed'
                  OR (status = 'refused' AND seen_at > now() - make_interval(secs => $1))
               ORDER BY id DESC LIMIT $2"#,
            refused_secs, limit
        ))
    }

    /// Claims proposal `id` for applying: marks it applied by `actor`; false
    /// when it is not (or no longer) a proposal.
    pub fn claim(db, id: i64, actor: &str) -> bool {
        one_row(query!(
            "UPDATE advisor_suggestions SET status = 'applied', applied_at = now(), \
                    applied_by = $2 WHERE id = $1 AND status = 'proposed'",
            id, actor
        ))
    }

    /// Gives a claimed suggestion back (applying it failed).
    pub fn unclaim(db, id: i64) {
        execute(query!(
            "UPDATE advisor_suggestions SET status = 'proposed', applied_at = NULL, \
                    applied_by = NULL WHERE id = $1 AND status = 'applied'",
            id
        ))
    }
}
