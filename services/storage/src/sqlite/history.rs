//! A workflow's history on SQLite (see the PostgreSQL module for the design).

use purereducer_core::{ActionStatus, Intent, JsonObject, Version, WorkflowKey};
use sqlx::sqlite::SqliteRow;
use sqlx::types::Json;
use sqlx::{AssertSqlSafe, QueryBuilder, Row, Sqlite, SqliteConnection, SqlitePool};

use super::{NOW_MS, version_param};
use crate::{HistoryEntry, HistoryPage, HistoryRecord, HistoryRetention, StorageError, StorageResult};

/// Rows per statement: well under SQLite's parameter limit at 14 per row.
const ROWS_PER_STATEMENT: usize = 500;

/// Writes entries in the given order, inside the caller's transaction.
pub(super) async fn insert(conn: &mut SqliteConnection, entries: &[&HistoryEntry]) -> StorageResult<()> {
    for chunk in entries.chunks(ROWS_PER_STATEMENT) {
        let mut rows = Vec::with_capacity(chunk.len());
        for entry in chunk {
            let state = entry.state.as_ref().map(serde_json::to_string).transpose();
            let payload = entry.payload.as_ref().map(serde_json::to_string).transpose();
            let intents = serde_json::to_string(&entry.intents);
            let (Ok(state), Ok(payload), Ok(intents)) = (state, payload, intents) else {
                return Err(StorageError::Database(
                    "cannot encode a history entry as JSON".to_owned(),
                ));
            };
            rows.push((entry, version_param(entry.version)?, (state, payload), intents));
        }
        let mut query: QueryBuilder<Sqlite> = QueryBuilder::new(
            "INSERT INTO workflow_history (namespace, workflow_key, version, workflow_type, action_id, action_type, \
             correlation_id, status, state, payload, intents, reason, result_hash, actor, recorded_at) ",
        );
        query.push_values(rows, |mut row, (entry, version, (state, payload), intents)| {
            row.push_bind(entry.namespace.clone())
                .push_bind(entry.workflow_key.clone())
                .push_bind(version)
                .push_bind(entry.workflow_type.clone())
                .push_bind(entry.action_id.clone())
                .push_bind(entry.action_type.clone())
                .push_bind(entry.correlation_id.clone())
                .push_bind(entry.status.as_str())
                .push_bind(state)
                .push_bind(payload)
                .push_bind(intents)
                .push_bind(entry.reason.clone())
                .push_bind(entry.result_hash.clone())
                .push_bind(entry.actor.clone())
                .push(NOW_MS);
        });
        query.build().execute(&mut *conn).await?;
    }
    Ok(())
}

/// The columns [`record_from_row`] reads.
pub(super) const COLUMNS: &str = "seq, namespace, workflow_key, version, workflow_type, action_id, action_type, \
     correlation_id, status, state, payload, intents, reason, result_hash, actor, recorded_at AS recorded_at_ms";

/// [`COLUMNS`] of a table aliased `h`.
pub(super) const COLUMNS_OF_H: &str = "h.seq, h.namespace, h.workflow_key, h.version, h.workflow_type, h.action_id, \
     h.action_type, h.correlation_id, h.status, h.state, h.payload, h.intents, h.reason, h.result_hash, h.actor, \
     h.recorded_at AS recorded_at_ms";

/// See [`crate::Store::history`].
pub(super) async fn page(pool: &SqlitePool, key: &WorkflowKey, page: HistoryPage) -> StorageResult<Vec<HistoryRecord>> {
    let (compare, order) = if page.reverse { ("<", "DESC") } else { (">", "ASC") };
    let sql = format!(
        "SELECT {COLUMNS} FROM workflow_history WHERE namespace = ?1 AND workflow_key = ?2 AND (version, seq) {compare} (?3, ?4) \
         ORDER BY version {order}, seq {order} LIMIT ?5"
    );
    let rows = sqlx::query(AssertSqlSafe(sql))
        .bind(key.namespace().as_str())
        .bind(key.as_str())
        .bind(page.after.0)
        .bind(page.after.1)
        .bind(i64::from(page.limit))
        .fetch_all(pool)
        .await?;
    rows.iter().map(record_from_row).collect()
}

pub(super) fn record_from_row(row: &SqliteRow) -> StorageResult<HistoryRecord> {
    crate::rows::history_record_from_row!(row)
}

/// See [`crate::Store::prune_history`]; the caller holds the writer lock.
pub(super) async fn prune(pool: &SqlitePool, retention: HistoryRetention, limit: u32) -> StorageResult<u64> {
    let mut deleted = 0;
    if let Some(age) = retention.max_age {
        let ms = i64::try_from(age.as_millis()).unwrap_or(i64::MAX);
        deleted += sqlx::query(AssertSqlSafe(format!(
            "DELETE FROM workflow_history WHERE seq IN (SELECT seq FROM workflow_history \
             WHERE recorded_at <= {NOW_MS} - ?1 ORDER BY recorded_at LIMIT ?2)"
        )))
        .bind(ms)
        .bind(i64::from(limit))
        .execute(pool)
        .await?
        .rows_affected();
    }
    if let Some(keep) = retention.keep_versions {
        let keep = i64::try_from(keep).unwrap_or(i64::MAX);
        deleted += sqlx::query(
            "DELETE FROM workflow_history WHERE seq IN (SELECT h.seq FROM workflow_state w \
             JOIN workflow_history h ON h.namespace = w.namespace AND h.workflow_key = w.workflow_key \
             WHERE w.version > ?1 AND h.version <= w.version - ?1 LIMIT ?2)",
        )
        .bind(keep)
        .bind(i64::from(limit))
        .execute(pool)
        .await?
        .rows_affected();
    }
    Ok(deleted)
}
