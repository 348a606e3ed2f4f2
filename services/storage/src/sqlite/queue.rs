//! The database action queue and completions on SQLite. One process owns the file and takes
//! one claim at a time, so a claim is a plain read; finishing it records the completions and
//! deletes the rows in one write transaction.

use std::sync::Arc;

use purereducer_core::{ActionId, ActionStatus, Namespace, Version};
use sqlx::{AssertSqlSafe, Row, SqliteConnection, SqlitePool};

use super::NOW_MS;
use crate::{ActionClaim, ClaimFinish, ClaimedAction, Completion, QueuedAction, StorageError, StorageResult};

pub(super) async fn enqueue(pool: &SqlitePool, actions: &[QueuedAction]) -> StorageResult<()> {
    if actions.is_empty() {
        return Ok(());
    }
    let mut tx = pool.begin().await?;
    for action in actions {
        sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO action_queue (workflow_key, action, headers, enqueued_at, namespace) \
             VALUES (?1, ?2, ?3, {NOW_MS}, ?4)"
        )))
        .bind(&action.workflow_key)
        .bind(&action.payload)
        .bind(&action.headers)
        .bind(&action.namespace)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

pub(super) async fn claim(
    pool: &SqlitePool,
    writer: Arc<tokio::sync::Mutex<()>>,
    limit: u32,
) -> StorageResult<ActionClaim> {
    let rows =
        sqlx::query("SELECT seq, namespace, workflow_key, action, headers FROM action_queue ORDER BY seq LIMIT ?1")
            .bind(i64::from(limit.max(1)))
            .fetch_all(pool)
            .await?;
    if rows.is_empty() {
        return Ok(ActionClaim::empty());
    }
    let mut actions = Vec::with_capacity(rows.len());
    for row in rows {
        actions.push(ClaimedAction {
            seq: row.try_get("seq")?,
            action: QueuedAction {
                namespace: row.try_get("namespace")?,
                workflow_key: row.try_get("workflow_key")?,
                payload: row.try_get("action")?,
                headers: row.try_get("headers")?,
            },
        });
    }
    Ok(ActionClaim::new(
        actions,
        Box::new(SqliteClaim {
            pool: pool.clone(),
            writer,
        }),
    ))
}

struct SqliteClaim {
    pool: SqlitePool,
    writer: Arc<tokio::sync::Mutex<()>>,
}

#[async_trait::async_trait]
impl ClaimFinish for SqliteClaim {
    async fn finish(self: Box<Self>, completions: &[Completion], done: &[i64]) -> StorageResult<()> {
        let _writing = self.writer.lock().await;
        let mut tx = self.pool.begin().await?;
        record(&mut tx, completions).await?;
        if !done.is_empty() {
            let ids = serde_json::to_string(done).unwrap_or_else(|_| "[]".to_owned());
            sqlx::query("DELETE FROM action_queue WHERE seq IN (SELECT value FROM json_each(?1))")
                .bind(ids)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn release(self: Box<Self>) -> StorageResult<()> {
        Ok(())
    }
}

/// Inserts completions; the first per correlation id and action wins. The caller holds the
/// writer.
pub(super) async fn record(conn: &mut SqliteConnection, completions: &[Completion]) -> StorageResult<()> {
    for completion in completions {
        sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO action_completions \
                (correlation_id, action_id, workflow_key, status, version, result_hash, rejection_reason, completed_at, \
                 namespace) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, {NOW_MS}, ?8) ON CONFLICT (namespace, correlation_id, action_id) DO NOTHING"
        )))
        .bind(&completion.correlation_id)
        .bind(completion.action_id.to_string())
        .bind(&completion.workflow_key)
        .bind(completion.status.as_str())
        .bind(i64::try_from(completion.version.get()).unwrap_or(i64::MAX))
        .bind(&completion.result_hash)
        .bind(&completion.rejection_reason)
        .bind(&completion.namespace)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

pub(super) async fn find_completion(
    pool: &SqlitePool,
    namespace: &Namespace,
    correlation_id: &str,
    action_id: Option<ActionId>,
) -> StorageResult<Option<Completion>> {
    let row = sqlx::query(
        "SELECT namespace, correlation_id, action_id, workflow_key, status, version, result_hash, rejection_reason \
         FROM action_completions \
         WHERE namespace = ?3 AND correlation_id = ?1 AND (?2 IS NULL OR action_id = ?2) \
         ORDER BY completed_at, rowid LIMIT 1",
    )
    .bind(correlation_id)
    .bind(action_id.map(|id| id.to_string()))
    .bind(namespace.as_str())
    .fetch_optional(pool)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let status: String = row.try_get("status")?;
    let action_id: String = row.try_get("action_id")?;
    Ok(Some(Completion {
        correlation_id: row.try_get("correlation_id")?,
        action_id: ActionId::parse(&action_id, "action_id").map_err(|e| StorageError::Corrupt(e.to_string()))?,
        namespace: row.try_get("namespace")?,
        workflow_key: row.try_get("workflow_key")?,
        status: ActionStatus::parse(&status).ok_or_else(|| StorageError::Corrupt(format!("status '{status}'")))?,
        version: Version::new(row.try_get::<i64, _>("version")?.max(0) as u64),
        result_hash: row.try_get("result_hash")?,
        rejection_reason: row.try_get("rejection_reason")?,
    }))
}

pub(super) async fn record_dead_letters(pool: &SqlitePool, letters: &[crate::DeadLetter]) -> StorageResult<()> {
    let mut tx = pool.begin().await?;
    for letter in letters {
        sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO dead_letters (source, workflow_key, version, event_type, payload, error, created_at, namespace) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, {NOW_MS}, ?7) ON CONFLICT (source) DO NOTHING"
        )))
        .bind(&letter.source)
        .bind(&letter.workflow_key)
        .bind(i64::try_from(letter.version.get()).unwrap_or(i64::MAX))
        .bind(&letter.event_type)
        .bind(&letter.payload)
        .bind(&letter.error)
        .bind(&letter.namespace)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(())
}
