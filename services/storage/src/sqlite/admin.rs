//! What operators read and repair on SQLite: dead letters and their replay, a workflow's
//! dedup records, give-ups to retry.

use purereducer_core::{Version, WorkflowKey};
use sqlx::sqlite::SqliteRow;
use sqlx::types::Json;
use sqlx::{Row, SqlitePool};

use super::{NOW_MS, RECORD_COLUMNS, record_from_row, version_param};
use crate::{DeadLetter, HistoryRecord, ProcessedRecord, ProjectionRow, Replayed, StorageResult, StoredDeadLetter};

const LETTER_COLUMNS: &str = "id, source, namespace, workflow_key, version, event_type, payload, error, \
     created_at AS created_at_ms, replayed_at AS replayed_at_ms";

fn letter_from_row(row: &SqliteRow) -> StorageResult<StoredDeadLetter> {
    crate::rows::dead_letter_from_row!(row)
}

/// See [`crate::Store::dead_letters`].
pub(super) async fn dead_letters(pool: &SqlitePool, limit: u32) -> StorageResult<Vec<StoredDeadLetter>> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {LETTER_COLUMNS} FROM dead_letters ORDER BY id DESC LIMIT ?1"
    )))
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await?;
    rows.iter().map(letter_from_row).collect()
}

/// See [`crate::Store::dead_letter`].
pub(super) async fn dead_letter(pool: &SqlitePool, id: i64) -> StorageResult<Option<StoredDeadLetter>> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {LETTER_COLUMNS} FROM dead_letters WHERE id = ?1"
    )))
    .bind(id)
    .fetch_optional(pool)
    .await?;
    row.as_ref().map(letter_from_row).transpose()
}

/// See [`crate::Store::replay_dead_letter`]; the caller holds the writer lock.
pub(super) async fn replay(pool: &SqlitePool, id: i64, row: &ProjectionRow) -> StorageResult<Replayed> {
    let mut tx = pool.begin().await?;
    let replayed: Option<Option<i64>> = sqlx::query_scalar("SELECT replayed_at FROM dead_letters WHERE id = ?1")
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
    match replayed {
        None => return Ok(Replayed::NotFound),
        Some(Some(_)) => return Ok(Replayed::AlreadyReplayed),
        Some(None) => {}
    }
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE dead_letters SET replayed_at = {NOW_MS} WHERE id = ?1"
    )))
    .bind(id)
    .execute(&mut *tx)
    .await?;
    let written = sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO workflow_projection \
            (workflow_key, version, tag, last_action, namespace, updated_at, indices, extras, deleted) \
         VALUES (?1, ?2, ?3, ?4, ?5, {NOW_MS}, ?6, ?7, ?8) \
         ON CONFLICT (namespace, workflow_key) DO UPDATE SET version = excluded.version, tag = excluded.tag, \
            last_action = excluded.last_action, updated_at = excluded.updated_at, \
            indices = excluded.indices, extras = excluded.extras, deleted = excluded.deleted \
         WHERE workflow_projection.version < excluded.version"
    )))
    .bind(&row.workflow_key)
    .bind(version_param(row.version)?)
    .bind(&row.tag)
    .bind(&row.last_action)
    .bind(&row.namespace)
    .bind(Json(&row.indices))
    .bind(Json(&row.extras))
    .bind(row.deleted)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    tx.commit().await?;
    Ok(if written == 0 {
        Replayed::Superseded
    } else {
        Replayed::Applied
    })
}

/// See [`crate::Store::processed_of`].
pub(super) async fn processed_of(
    pool: &SqlitePool,
    key: &WorkflowKey,
    limit: u32,
) -> StorageResult<Vec<ProcessedRecord>> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {RECORD_COLUMNS} FROM action_dedup_log \
         WHERE namespace = ?1 AND workflow_key = ?2 AND expires_at > {NOW_MS} ORDER BY created_at DESC LIMIT ?3"
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
    pool: &SqlitePool,
    key: &WorkflowKey,
    action_id: &str,
) -> StorageResult<Option<HistoryRecord>> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {} FROM workflow_history WHERE namespace = ?1 AND workflow_key = ?2 AND action_id = ?3 \
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
pub(super) async fn recent_gave_up(pool: &SqlitePool, limit: u32) -> StorageResult<Vec<HistoryRecord>> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {} FROM workflow_history h WHERE h.status = 'GAVE_UP' \
         AND NOT EXISTS (SELECT 1 FROM workflow_history l WHERE l.namespace = h.namespace \
             AND l.workflow_key = h.workflow_key AND l.action_id = h.action_id AND l.seq > h.seq) \
         ORDER BY h.seq DESC LIMIT ?1",
        super::history::COLUMNS_OF_H
    )))
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await?;
    rows.iter().map(super::history::record_from_row).collect()
}

/// See [`crate::Store::outbox_backlog`].
pub(super) async fn outbox_backlog(pool: &SqlitePool) -> StorageResult<(u64, Option<i64>)> {
    let (count, oldest): (i64, Option<i64>) = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT count(*), {NOW_MS} - min(created_at) FROM event_outbox WHERE published_at IS NULL"
    )))
    .fetch_one(pool)
    .await?;
    Ok((count.max(0) as u64, oldest))
}
