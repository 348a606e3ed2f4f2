//! The SQLite store: the embedded default, one local file and no server.

mod admin;
mod batch;
mod history;
mod listing;
mod pipeline;
mod queue;
mod writes;

use std::collections::HashMap;

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use purereducer_core::{ActionId, ActionStatus, JsonObject, Namespace, Version, WorkflowKey};
use sqlx::AssertSqlSafe;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous};
use sqlx::types::Json;
use sqlx::{Row, SqlitePool};

use self::writes::{check_version, insert_record, version_in, write_state};
use crate::error::StorageError;
use crate::model::parse_outcome;
use crate::{
    ActionClaim, ApplyStats, CommitRequest, CommitResult, Completion, HistoryEntry, HistoryPage, HistoryRecord,
    HistoryRetention, NewRecord, OutboxEvent, PendingEvent, PoolOptions, ProcessedRecord, ProjectionUpdate,
    QueuedAction, RecordResult, Snapshot, StorageResult, Store, StoredProjection, StoredState, StoredWatermark,
    WorkflowFilter, WorkflowSummary,
};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/sqlite");

/// The database clock in unix milliseconds.
pub(crate) const NOW_MS: &str = "CAST(unixepoch('subsec') * 1000 AS INTEGER)";

const RECORD_COLUMNS: &str =
    "action_id, request_hash, result_hash, version, status, outcome, expires_at AS expires_at_ms";

/// A [`Store`] on a SQLite file.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    /// SQLite admits one writer at a time; writers of this process queue here, in order,
    /// instead of meeting `SQLITE_BUSY` and sleeping in its busy handler (which showed as
    /// stalls of tens of milliseconds under load).
    writer: std::sync::Arc<tokio::sync::Mutex<()>>,
}

impl SqliteStore {
    /// The plan SQLite chooses to list the workflows `filter` selects, as text: for
    /// checking that listings are served by indexes.
    pub async fn explain_list_workflows(&self, filter: &crate::WorkflowFilter) -> StorageResult<String> {
        listing::explain(&self.pool, filter).await
    }

    /// Opens (creating if needed) the database file `url` names.
    pub async fn connect(url: &str, pool: PoolOptions) -> StorageResult<Self> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|err| StorageError::Config(format!("storage.database_url: {err}")))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10));
        // SQLite has one writer at a time; a few connections cover concurrent reads.
        let max = pool.max_connections.clamp(1, 8);
        let pool = SqlitePoolOptions::new()
            .min_connections(pool.min_connections.min(max))
            .max_connections(max)
            .acquire_timeout(pool.acquire_timeout)
            .connect_with(options)
            .await?;
        Ok(Self {
            pool,
            writer: std::sync::Arc::new(tokio::sync::Mutex::new(())),
        })
    }

    /// Applies the migrations in `migrations/sqlite` that have not run yet.
    pub async fn migrate(&self) -> StorageResult<()> {
        MIGRATOR
            .run(&self.pool)
            .await
            .map_err(|err| StorageError::Database(format!("migration failed: {err}")))
    }

    /// Runs the migrations and says which it applied (and, on PostgreSQL, whether
    /// `pg_stat_statements` could be created).
    pub async fn migrate_and_report(&self) -> StorageResult<crate::MigrationReport> {
        let before = applied_versions(&self.pool).await?;
        self.migrate().await?;
        let mut report = crate::MigrationReport::default();
        for migration in MIGRATOR.iter() {
            if !before.contains(&migration.version) {
                report
                    .applied
                    .push((migration.version, migration.description.to_string()));
            }
        }
        Ok(report)
    }

    /// The underlying pool.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }
}

#[async_trait]
impl Store for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    async fn get_state(&self, key: &WorkflowKey) -> StorageResult<Option<StoredState>> {
        let row = sqlx::query(
            "SELECT version, state, workflow_type, namespace, deleted_at IS NOT NULL AS deleted, \
             updated_at AS updated_at_ms FROM workflow_state WHERE namespace = ?2 AND workflow_key = ?1",
        )
        .bind(key.as_str())
        .bind(key.namespace().as_str())
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| state_from_row(&row)).transpose()
    }

    async fn snapshot(&self, key: &WorkflowKey, action_id: ActionId) -> StorageResult<Snapshot> {
        // One connection for both reads; SQLite round trips are in-process and cheap.
        let state = self.get_state(key).await?;
        let processed = self.find_processed(key, action_id).await?;
        Ok(Snapshot { state, processed })
    }

    async fn commit_batch(&self, requests: &[CommitRequest]) -> StorageResult<Vec<CommitResult>> {
        let _writing = self.writer.lock().await;
        if requests.is_empty() {
            return Ok(Vec::new());
        }
        // SQLite has one writer: the whole batch is one write transaction.
        let mut tx = self.pool.begin().await?;
        let mut results = Vec::with_capacity(requests.len());
        for request in requests {
            let written = match &request.write {
                Some(write) => write_state(&mut tx, &request.key, request.expected, write).await?,
                None => check_version(&mut tx, &request.key, request.expected).await?,
            };
            if !written {
                let current = version_in(&mut tx, &request.key).await?;
                results.push(CommitResult::Conflict { current });
                continue;
            }
            let version = request.write.as_ref().map_or(request.expected, |w| w.version);
            results.push(CommitResult::Committed { version });
        }
        let passed: Vec<&CommitRequest> = requests
            .iter()
            .zip(&results)
            .filter(|(_, result)| matches!(result, CommitResult::Committed { .. }))
            .map(|(request, _)| request)
            .collect();
        let records: Vec<(&WorkflowKey, &NewRecord)> = passed
            .iter()
            .flat_map(|r| r.records.iter().map(move |record| (&r.key, record)))
            .collect();
        let written = batch::insert_records(&mut tx, &records).await?;
        if written.len() < records.len() {
            // Another writer recorded one of the actions first: nothing of the batch stays.
            tx.rollback().await?;
            let written: std::collections::HashSet<(String, String, String)> = written.into_iter().collect();
            let mut results = vec![CommitResult::Deferred; requests.len()];
            for (index, request) in requests.iter().enumerate() {
                for record in &request.records {
                    if written.contains(&(
                        request.key.namespace().as_str().to_owned(),
                        request.key.as_str().to_owned(),
                        record.action_id.to_string(),
                    )) {
                        continue;
                    }
                    if let Some(existing) = self.find_processed(&request.key, record.action_id).await? {
                        results[index] = CommitResult::AlreadyProcessed(existing);
                    }
                }
            }
            return Ok(results);
        }
        let events: Vec<&OutboxEvent> = passed.iter().flat_map(|r| r.events.iter()).collect();
        batch::insert_events(&mut tx, &events).await?;
        let entries: Vec<&HistoryEntry> = passed.iter().flat_map(|r| r.history.iter()).collect();
        history::insert(&mut tx, &entries).await?;
        tx.commit().await?;
        Ok(results)
    }

    async fn get_states(&self, keys: &[WorkflowKey]) -> StorageResult<HashMap<WorkflowKey, StoredState>> {
        let mut conn = self.pool.acquire().await?;
        batch::get_states(&mut conn, keys).await
    }

    async fn find_processed_many(
        &self,
        pairs: &[(WorkflowKey, ActionId)],
    ) -> StorageResult<Vec<(WorkflowKey, ProcessedRecord)>> {
        let mut conn = self.pool.acquire().await?;
        let mut found = Vec::new();
        for (key, action_id) in pairs {
            let row = sqlx::query(AssertSqlSafe(format!(
                "SELECT {RECORD_COLUMNS} FROM action_dedup_log \
                 WHERE namespace = ?3 AND workflow_key = ?1 AND action_id = ?2 AND expires_at > {NOW_MS}"
            )))
            .bind(key.as_str())
            .bind(action_id.to_string())
            .bind(key.namespace().as_str())
            .fetch_optional(&mut *conn)
            .await?;
            if let Some(row) = row {
                found.push((key.clone(), record_from_row(&row)?));
            }
        }
        Ok(found)
    }

    async fn find_processed(&self, key: &WorkflowKey, action_id: ActionId) -> StorageResult<Option<ProcessedRecord>> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {RECORD_COLUMNS} FROM action_dedup_log \
             WHERE namespace = ?3 AND workflow_key = ?1 AND action_id = ?2 AND expires_at > {NOW_MS}"
        )))
        .bind(key.as_str())
        .bind(action_id.to_string())
        .bind(key.namespace().as_str())
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| record_from_row(&row)).transpose()
    }

    async fn record_processed(&self, key: &WorkflowKey, record: NewRecord) -> StorageResult<RecordResult> {
        let _writing = self.writer.lock().await;
        let mut conn = self.pool.acquire().await?;
        if let Some(stored) = insert_record(&mut conn, key, &record).await? {
            return Ok(RecordResult::Recorded(stored));
        }
        drop(conn);
        match self.find_processed(key, record.action_id).await? {
            Some(existing) => Ok(RecordResult::Exists(existing)),
            None => Err(StorageError::Unavailable(
                "a concurrent record for this action expired mid-call; retry".to_owned(),
            )),
        }
    }

    async fn prune(
        &self,
        outbox: std::time::Duration,
        completions: std::time::Duration,
        limit: u32,
    ) -> StorageResult<(u64, u64)> {
        let _writing = self.writer.lock().await;
        let ms = |age: std::time::Duration| i64::try_from(age.as_millis()).unwrap_or(i64::MAX);
        let outbox = sqlx::query(AssertSqlSafe(format!(
            "DELETE FROM event_outbox WHERE id IN (SELECT id FROM event_outbox \
             WHERE published_at IS NOT NULL AND published_at <= {NOW_MS} - ?1 ORDER BY published_at LIMIT ?2)"
        )))
        .bind(ms(outbox))
        .bind(i64::from(limit))
        .execute(&self.pool)
        .await?
        .rows_affected();
        let completions = sqlx::query(AssertSqlSafe(format!(
            "DELETE FROM action_completions WHERE rowid IN (SELECT rowid FROM action_completions \
             WHERE completed_at <= {NOW_MS} - ?1 ORDER BY completed_at LIMIT ?2)"
        )))
        .bind(ms(completions))
        .bind(i64::from(limit))
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok((outbox, completions))
    }

    async fn cleanup_expired(&self) -> StorageResult<u64> {
        let _writing = self.writer.lock().await;
        let done = sqlx::query(AssertSqlSafe(format!(
            "DELETE FROM action_dedup_log WHERE expires_at <= {NOW_MS}"
        )))
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    async fn append_events(&self, events: Vec<OutboxEvent>, entries: Vec<HistoryEntry>) -> StorageResult<()> {
        let _writing = self.writer.lock().await;
        let mut tx = self.pool.begin().await?;
        batch::insert_events(&mut tx, &events.iter().collect::<Vec<_>>()).await?;
        history::insert(&mut tx, &entries.iter().collect::<Vec<_>>()).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn history(&self, key: &WorkflowKey, page: HistoryPage) -> StorageResult<Vec<HistoryRecord>> {
        history::page(&self.pool, key, page).await
    }

    async fn list_workflows(&self, filter: &WorkflowFilter) -> StorageResult<Vec<WorkflowSummary>> {
        listing::list(&self.pool, filter).await
    }

    async fn prune_history(&self, retention: HistoryRetention, limit: u32) -> StorageResult<u64> {
        let _writing = self.writer.lock().await;
        history::prune(&self.pool, retention, limit).await
    }

    async fn pending_events(&self, limit: u32) -> StorageResult<Vec<PendingEvent>> {
        let rows = sqlx::query(
            "SELECT id, namespace, workflow_key, version, event_type, payload, headers FROM event_outbox \
             WHERE published_at IS NULL ORDER BY id LIMIT ?1",
        )
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(pipeline::pending_from_row).collect()
    }

    async fn mark_published(&self, ids: &[i64]) -> StorageResult<()> {
        let _writing = self.writer.lock().await;
        pipeline::mark_published(&self.pool, ids).await
    }

    async fn events_by_id(&self, ids: &[i64]) -> StorageResult<Vec<PendingEvent>> {
        pipeline::events_by_id(&self.pool, ids).await
    }

    async fn announce(&self, _channel: &str, _payloads: &[String]) -> StorageResult<()> {
        // One process owns a SQLite file: there is nobody to tell.
        Ok(())
    }

    async fn apply_projections(&self, updates: &[ProjectionUpdate]) -> StorageResult<ApplyStats> {
        let _writing = self.writer.lock().await;
        pipeline::apply_projections(&self.pool, updates).await
    }

    async fn get_projection(&self, key: &WorkflowKey) -> StorageResult<Option<StoredProjection>> {
        pipeline::get_projection(&self.pool, key).await
    }

    async fn list_watermarks(&self) -> StorageResult<Vec<StoredWatermark>> {
        pipeline::list_watermarks(&self.pool).await
    }

    async fn record_completion(&self, completion: &Completion) -> StorageResult<()> {
        self.record_completions(std::slice::from_ref(completion)).await
    }

    async fn record_completions(&self, completions: &[Completion]) -> StorageResult<()> {
        let _writing = self.writer.lock().await;
        let mut tx = self.pool.begin().await?;
        queue::record(&mut tx, completions).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn record_dead_letters(&self, letters: &[crate::DeadLetter]) -> StorageResult<()> {
        let _writing = self.writer.lock().await;
        queue::record_dead_letters(&self.pool, letters).await
    }

    async fn dead_letter(&self, id: i64) -> StorageResult<Option<crate::StoredDeadLetter>> {
        admin::dead_letter(&self.pool, id).await
    }

    async fn replay_dead_letter(&self, id: i64, row: &crate::ProjectionRow) -> StorageResult<crate::Replayed> {
        let _writing = self.writer.lock().await;
        admin::replay(&self.pool, id, row).await
    }

    async fn outbox_backlog(&self) -> StorageResult<(u64, Option<i64>)> {
        admin::outbox_backlog(&self.pool).await
    }

    async fn processed_of(&self, key: &WorkflowKey, limit: u32) -> StorageResult<Vec<ProcessedRecord>> {
        admin::processed_of(&self.pool, key, limit).await
    }

    async fn history_of_action(&self, key: &WorkflowKey, action_id: &str) -> StorageResult<Option<HistoryRecord>> {
        admin::history_of_action(&self.pool, key, action_id).await
    }

    async fn recent_gave_up(&self, limit: u32) -> StorageResult<Vec<HistoryRecord>> {
        admin::recent_gave_up(&self.pool, limit).await
    }

    async fn dead_letters(&self, limit: u32) -> StorageResult<Vec<crate::StoredDeadLetter>> {
        admin::dead_letters(&self.pool, limit).await
    }

    async fn enqueue_actions(&self, actions: &[QueuedAction]) -> StorageResult<()> {
        let _writing = self.writer.lock().await;
        queue::enqueue(&self.pool, actions).await
    }

    async fn claim_actions(&self, limit: u32) -> StorageResult<ActionClaim> {
        queue::claim(&self.pool, self.writer.clone(), limit).await
    }

    async fn apply_and_mark_published(
        &self,
        updates: &[ProjectionUpdate],
        published: &[i64],
    ) -> StorageResult<ApplyStats> {
        let _writing = self.writer.lock().await;
        let stats = pipeline::apply_projections(&self.pool, updates).await?;
        pipeline::mark_published(&self.pool, published).await?;
        Ok(stats)
    }

    async fn find_completion(
        &self,
        namespace: &Namespace,
        correlation_id: &str,
        action_id: Option<ActionId>,
    ) -> StorageResult<Option<Completion>> {
        queue::find_completion(&self.pool, namespace, correlation_id, action_id).await
    }

    async fn try_singleton(&self, _name: &str) -> StorageResult<Option<crate::Singleton>> {
        // One process owns a SQLite file.
        Ok(Some(crate::Singleton(Box::new(()))))
    }

    async fn notifications(&self) -> StorageResult<Option<tokio::sync::mpsc::Receiver<(String, String)>>> {
        Ok(None)
    }
}

fn version_param(version: Version) -> StorageResult<i64> {
    i64::try_from(version.get()).map_err(|_| StorageError::Corrupt(format!("version {version} out of range")))
}

fn state_from_row(row: &SqliteRow) -> StorageResult<StoredState> {
    let state: Json<JsonObject> = row.try_get("state")?;
    Ok(StoredState {
        version: Version::new(row.try_get::<i64, _>("version")?.max(0) as u64),
        state: state.0,
        workflow_type: row.try_get("workflow_type")?,
        namespace: row.try_get("namespace")?,
        updated_at_ms: row.try_get("updated_at_ms")?,
        deleted: row.try_get("deleted")?,
    })
}

fn record_from_row(row: &SqliteRow) -> StorageResult<ProcessedRecord> {
    let status: String = row.try_get("status")?;
    let raw_id: String = row.try_get("action_id")?;
    let action_id = ActionId::parse(&raw_id, "action_id")
        .map_err(|err| StorageError::Corrupt(format!("stored action id: {err}")))?;
    let outcome: Json<serde_json::Value> = row.try_get("outcome")?;
    let (intents, rejection_reason) = parse_outcome(&outcome.0);
    Ok(ProcessedRecord {
        action_id,
        request_hash: row.try_get("request_hash")?,
        result_hash: row.try_get("result_hash")?,
        version: Version::new(row.try_get::<i64, _>("version")?.max(0) as u64),
        status: ActionStatus::parse(&status)
            .ok_or_else(|| StorageError::Corrupt(format!("unknown action status '{status}'")))?,
        intents,
        rejection_reason,
        expires_at_ms: row.try_get("expires_at_ms")?,
    })
}

/// The versions of the migrations already applied (none on a new database).
async fn applied_versions(pool: &SqlitePool) -> StorageResult<Vec<i64>> {
    let exists: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations')",
    )
    .fetch_one(pool)
    .await?;
    if !exists {
        return Ok(Vec::new());
    }
    Ok(sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success")
        .fetch_all(pool)
        .await?)
}
