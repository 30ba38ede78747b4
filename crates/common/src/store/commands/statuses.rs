//! The status columns of `commands` (part of [`crate::store::commands`]):
//! [`CommandStatus`] stored as its text, [`rank_sql`] (the SQL twin of
//! [`CommandStatus::rank`]), the group-committed status writes of
//! [`crate::commands::status_writer`] and the timeout sweep.

use std::collections::HashMap;
use std::sync::LazyLock;
use std::time::Duration;

use sqlx::postgres::{PgArgumentBuffer, PgTypeInfo, PgValueRef};
use sqlx::{PgExecutor, Postgres};

use crate::commands::status::{CommandStatus, Folded};

impl sqlx::Type<Postgres> for CommandStatus {
    fn type_info() -> PgTypeInfo {
        <&str as sqlx::Type<Postgres>>::type_info()
    }

    fn compatible(ty: &PgTypeInfo) -> bool {
        <&str as sqlx::Type<Postgres>>::compatible(ty)
    }
}

impl sqlx::Encode<'_, Postgres> for CommandStatus {
    fn encode_by_ref(
        &self,
        buf: &mut PgArgumentBuffer,
    ) -> Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
        <&str as sqlx::Encode<Postgres>>::encode(self.as_str(), buf)
    }
}

impl sqlx::Decode<'_, Postgres> for CommandStatus {
    fn decode(value: PgValueRef<'_>) -> Result<Self, sqlx::error::BoxDynError> {
        Ok(<&str as sqlx::Decode<Postgres>>::decode(value)?.parse()?)
    }
}

/// The SQL twin of [`CommandStatus::rank`] for a text expression, e.g.
/// `rank_sql("c.status")`; used by every statement that moves a status.
pub fn rank_sql(expr: &str) -> String {
    format!("(CASE {expr} WHEN 'QUEUED' THEN 0 WHEN 'SENT' THEN 1 WHEN 'ACK' THEN 2 ELSE 3 END)")
}

static APPLY_SQL: LazyLock<String> = LazyLock::new(|| {
    let new = rank_sql("v.status");
    let old = rank_sql("c.status");
    let moves = format!("{new} > {old}");
    let finishes = format!("{new} = 3 AND {old} < 3");
    // The row's times after this update, before ordering them.
    let finished = format!("CASE WHEN {finishes} THEN v.finished_at ELSE c.finished_at END");
    let acked = "COALESCE(c.ack_at, v.ack_at)";
    let sent = "COALESCE(c.sent_at, v.sent_at)";
    // Rows are locked in cmd_id order, as every multi-row writer of `commands`
    // does, so it cannot deadlock with the sweeper.
    format!(
        "WITH v AS (SELECT * FROM UNNEST($1::text[], $2::text[], $3::timestamptz[], $4::timestamptz[], \
                                       $5::timestamptz[], $6::text[], $7::text[], $8::jsonb[]) \
                    AS v(cmd_id, status, sent_at, ack_at, finished_at, error_code, error_message, result)), \
              locked AS (SELECT c.cmd_id FROM commands c JOIN v ON v.cmd_id = c.cmd_id ORDER BY c.cmd_id FOR UPDATE OF c) \
         UPDATE commands c SET \
             status = CASE WHEN {moves} THEN v.status ELSE c.status END, \
             sent_at = CASE WHEN {sent} IS NOT NULL THEN LEAST({sent}, {acked}, {finished}) END, \
             ack_at = CASE WHEN {acked} IS NOT NULL THEN LEAST({acked}, {finished}) END, \
             finished_at = {finished}, \
             error_code = CASE WHEN {finishes} THEN v.error_code ELSE c.error_code END, \
             error_message = CASE WHEN {finishes} THEN v.error_message ELSE c.error_message END, \
             result = CASE WHEN {finishes} THEN v.result ELSE c.result END \
         FROM v, locked \
         WHERE c.cmd_id = locked.cmd_id AND c.cmd_id = v.cmd_id \
           AND ({moves} OR (c.sent_at IS NULL AND v.sent_at IS NOT NULL)) \
         RETURNING CASE WHEN {finishes} THEN v.status END"
    )
});

/// Applies folded status changes (see [`crate::commands::status_writer`]) in
/// one statement; returns the final statuses it set. A runtime query: its
/// arrays are as long as the batch, and its rank expressions come from
/// [`rank_sql`].
pub async fn apply_statuses(
    db: impl PgExecutor<'_>,
    folded: &HashMap<&str, Folded>,
) -> Result<Vec<CommandStatus>, sqlx::Error> {
    let rows: Vec<(&str, &Folded)> = folded.iter().map(|(id, f)| (*id, f)).collect();
    // Not a cached prepared statement: a generic plan made while `commands`
    // was small keeps seq-scanning it as it grows; this is planned with the
    // real sizes on each (batched, so rare) execution.
    let finished: Vec<Option<CommandStatus>> = sqlx::query_scalar(&APPLY_SQL)
        .persistent(false)
        .bind(rows.iter().map(|(id, _)| *id).collect::<Vec<_>>())
        .bind(
            rows.iter()
                .map(|(_, f)| f.status.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(rows.iter().map(|(_, f)| f.sent_at).collect::<Vec<_>>())
        .bind(rows.iter().map(|(_, f)| f.ack_at).collect::<Vec<_>>())
        .bind(rows.iter().map(|(_, f)| f.finished_at).collect::<Vec<_>>())
        .bind(
            rows.iter()
                .map(|(_, f)| f.error_code.as_deref())
                .collect::<Vec<_>>(),
        )
        .bind(
            rows.iter()
                .map(|(_, f)| f.error_message.as_deref())
                .collect::<Vec<_>>(),
        )
        .bind(
            rows.iter()
                .map(|(_, f)| f.result.as_ref())
                .collect::<Vec<_>>(),
        )
        .fetch_all(db)
        .await?;
    Ok(finished.into_iter().flatten().collect())
}

/// Marks commands with no final status `timeout` after their creation
/// TIMEOUT; returns their `cmd_id`s.
pub async fn time_out_overdue(
    db: impl PgExecutor<'_>,
    timeout: Duration,
) -> Result<Vec<String>, sqlx::Error> {
    // Rows a response is updating right now are left for the next sweep.
    // Planned on each run (not a cached generic plan) so the partial index
    // is used however much `commands` has grown since the service started.
    sqlx::query_scalar!(
        "WITH overdue AS (SELECT cmd_id FROM commands \
                          WHERE finished_at IS NULL AND created_at < now() - make_interval(secs => $1) \
                          ORDER BY cmd_id FOR UPDATE SKIP LOCKED) \
         UPDATE commands c SET status = 'TIMEOUT', finished_at = now(), error_code = 'timeout', \
             error_message = 'no final status from the node within ' || $1::text || ' s' \
         FROM overdue WHERE c.cmd_id = overdue.cmd_id \
         RETURNING c.cmd_id",
        timeout.as_secs_f64()
    )
    .persistent(false)
    .fetch_all(db)
    .await
}
