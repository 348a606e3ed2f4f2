//! What operators read and repair on PostgreSQL: dead letters and their replay, a workflow's
//! dedup records, give-ups to retry.

use purereducer_core::{Version, WorkflowKey};
use sqlx::postgres::PgRow;
use sqlx::types::Json;
use sqlx::{PgPool, Row};

use super::{RECORD_COLUMNS, record_from_row, version_param};
use crate::model::channels;
use crate::{DeadLetter, HistoryRecord, ProcessedRecord, ProjectionRow, Replayed, StorageResult, StoredDeadLetter};

const LETTER_COLUMNS: &str = "id, source, namespace, workflow_key, version, event_type, payload, error, \
     (extract(epoch FROM created_at) * 1000)::bigint AS created_at_ms, \
     (extract(epoch FROM replayed_at) * 1000)::bigint AS replayed_at_ms";

fn letter_from_row(row: &PgRow) -> StorageResult<StoredDeadLetter> {
    crate::rows::dead_letter_from_row!(row)
}

/// See [`crate::Store::dead_letters`].
pub(super) async fn dead_letters(pool: &PgPool, limit: u32) -> StorageResult<Vec<StoredDeadLetter>> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {LETTER_COLUMNS} FROM dead_letters ORDER BY id DESC LIMIT $1"
    )))
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await?;
    rows.iter().map(letter_from_row).collect()
}

/// See [`crate::Store::dead_letter`].
pub(super) async fn dead_letter(pool: &PgPool, id: i64) -> StorageResult<Option<StoredDeadLetter>> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {LETTER_COLUMNS} FROM dead_letters WHERE id = $1"
    )))
    .bind(id)
    .fetch_optional(pool)
    .await?;
    row.as_ref().map(letter_from_row).transpose()
}

/// Marks the letter replayed (once) and writes its row if it is newer than the projection's,
/// announcing the write to projection waiters.
const REPLAY: &str = "\
WITH letter AS (
    UPDATE dead_letters SET replayed_at = now() WHERE id = $1 AND replayed_at IS NULL RETURNING id
),
written AS (
    INSERT INTO workflow_projection (workflow_key, version, tag, last_action, namespace, indices, extras, deleted)
    SELECT $2, $3, $4, $5, $6, $7::jsonb, $8::jsonb, $10 WHERE EXISTS (SELECT 1 FROM letter)
    ON CONFLICT (namespace, workflow_key) DO UPDATE SET version = EXCLUDED.version, tag = EXCLUDED.tag,
        last_action = EXCLUDED.last_action, updated_at = now(),
        indices = EXCLUDED.indices, extras = EXCLUDED.extras, deleted = EXCLUDED.deleted
     WHERE workflow_projection.version < EXCLUDED.version
    RETURNING namespace, workflow_key, version
),
notified AS (
    SELECT pg_notify($9, version::text || ':' || namespace || '/' || workflow_key) FROM written
)
SELECT (SELECT count(*) FROM letter) AS marked, (SELECT count(*) FROM written) AS written,
       (SELECT count(*) FROM notified) AS notified,
       EXISTS (SELECT 1 FROM dead_letters WHERE id = $1) AS known";

/// See [`crate::Store::replay_dead_letter`].
pub(super) async fn replay(pool: &PgPool, id: i64, row: &ProjectionRow) -> StorageResult<Replayed> {
    let answer = sqlx::query(REPLAY)
        .bind(id)
        .bind(&row.workflow_key)
        .bind(version_param(row.version)?)
        .bind(&row.tag)
        .bind(&row.last_action)
        .bind(&row.namespace)
        .bind(Json(&row.indices))
        .bind(Json(&row.extras))
        .bind(channels::PROJECTION)
        .bind(row.deleted)
        .fetch_one(pool)
        .await?;
    let (marked, written, known): (i64, i64, bool) = (
        answer.try_get("marked")?,
        answer.try_get("written")?,
        answer.try_get("known")?,
    );
    Ok(match (known, marked, written) {
        (false, _, _) => Replayed::NotFound,
        (true, 0, _) => Replayed::AlreadyReplayed,
        (true, _, 0) => Replayed::Superseded,
        _ => Replayed::Applied,
    })
}

/// See [`crate::Store::processed_of`].
pub(super) async fn processed_of(pool: &PgPool, key: &WorkflowKey, limit: u32) -> StorageResult<Vec<ProcessedRecord>> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {RECORD_COLUMNS} FROM action_dedup_log \
         WHERE namespace = $1 AND workflow_key = $2 AND expires_at > now() ORDER BY created_at DESC LIMIT $3"
    )))
    .bind(key.namespace().as_str())
    .bind(key.as_str())
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await?;
    rows.iter().map(record_from_row).collect()
}

/// See [`crate::Store::history_of_action`].
pub(super) async fn history_of_action(
    pool: &PgPool,
    key: &WorkflowKey,
    action_id: &str,
) -> StorageResult<Option<HistoryRecord>> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {} FROM workflow_history WHERE namespace = $1 AND workflow_key = $2 AND action_id = $3 \
         ORDER BY seq DESC LIMIT 1",
        super::history::COLUMNS
    )))
    .bind(key.namespace().as_str())
    .bind(key.as_str())
    .bind(action_id)
    .fetch_optional(pool)
    .await?;
    row.as_ref().map(super::history::record_from_row).transpose()
}

/// See [`crate::Store::recent_gave_up`].
pub(super) async fn recent_gave_up(pool: &PgPool, limit: u32) -> StorageResult<Vec<HistoryRecord>> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {} FROM workflow_history h WHERE h.status = 'GAVE_UP' \
         AND NOT EXISTS (SELECT 1 FROM workflow_history l WHERE l.namespace = h.namespace \
             AND l.workflow_key = h.workflow_key AND l.action_id = h.action_id AND l.seq > h.seq) \
         ORDER BY h.seq DESC LIMIT $1",
        super::history::COLUMNS_OF_H
    )))
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await?;
    rows.iter().map(super::history::record_from_row).collect()
}

/// See [`crate::Store::outbox_backlog`].
pub(super) async fn outbox_backlog(pool: &PgPool) -> StorageResult<(u64, Option<i64>)> {
    let (count, oldest): (i64, Option<i64>) = sqlx::query_as(
        "SELECT count(*), (extract(epoch FROM now() - min(created_at)) * 1000)::bigint \
         FROM event_outbox WHERE published_at IS NULL",
    )
    .fetch_one(pool)
    .await?;
    Ok((count.max(0) as u64, oldest))
}
