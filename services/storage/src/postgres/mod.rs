//! The PostgreSQL store: the production backend.

mod admin;
mod commit;
mod history;
mod listing;
mod pipeline;
mod projection;
mod queue;

use std::collections::HashMap;

use async_trait::async_trait;
use purereducer_core::{ActionId, ActionStatus, JsonObject, Namespace, Version, WorkflowKey};
use sqlx::AssertSqlSafe;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPoolOptions, PgRow};
use sqlx::types::Json;
use sqlx::{PgPool, Row};

use crate::error::{StorageError, classify, is_unique_violation};
use crate::model::{outcome_json, parse_outcome};
use crate::{
    ActionClaim, ApplyStats, CommitRequest, CommitResult, Completion, HistoryEntry, HistoryPage, HistoryRecord,
    HistoryRetention, NewRecord, OutboxEvent, PendingEvent, PoolOptions, ProcessedRecord, ProjectionUpdate,
    QueuedAction, RecordResult, Snapshot, StorageResult, Store, StoredProjection, StoredState, StoredWatermark,
    WorkflowFilter, WorkflowSummary,
};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/postgres");

/// A [`Store`] on PostgreSQL.
#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
}

const RECORD_COLUMNS: &str = "action_id, request_hash, result_hash, version, status, outcome, \
     (extract(epoch FROM expires_at) * 1000)::bigint AS expires_at_ms";

impl PgStore {
    /// The plan PostgreSQL chooses to list the workflows `filter` selects, as text: for
    /// checking that listings are served by indexes.
    pub async fn explain_list_workflows(&self, filter: &crate::WorkflowFilter) -> StorageResult<String> {
        listing::explain(&self.pool, filter).await
    }

    /// Connects a pool to `url`.
    pub async fn connect(url: &str, pool: PoolOptions) -> StorageResult<Self> {
        let options: PgConnectOptions = url
            .parse()
            .map_err(|err| StorageError::Config(format!("storage.database_url: {err}")))?;
        let pool = PgPoolOptions::new()
            .min_connections(pool.min_connections)
            .max_connections(pool.max_connections)
            .acquire_timeout(pool.acquire_timeout)
            // Every statement reducerd sends looks rows up by key or by index. Right after
            // start-up, or while tables grow fast, the planner's statistics lag behind and it
            // picks sequential scans that read a whole table per batch; profiles showed them
            // as the database's largest cost. With this it keeps to the indexes.
            .connect_with(
                options
                    .application_name("reducerd")
                    .options([("enable_seqscan", "off")]),
            )
            .await?;
        Ok(Self { pool })
    }

    /// Wraps an existing pool.
    pub fn from_pool(pool: PgPool) -> Self {
        Self { pool }
    }

    /// Applies the migrations in `migrations/postgres` that have not run yet.
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
        // The runbook's latency diagnosis reads pg_stat_statements; it can only be created
        // where the server preloads it.
        let preloaded: String = sqlx::query_scalar("SELECT current_setting('shared_preload_libraries')")
            .fetch_one(&self.pool)
            .await?;
        if preloaded.split(',').any(|lib| lib.trim() == "pg_stat_statements") {
            let existed: bool =
                sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_stat_statements')")
                    .fetch_one(&self.pool)
                    .await?;
            if existed {
                report.notes.push("pg_stat_statements is installed".to_owned());
            } else {
                sqlx::query("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
                    .execute(&self.pool)
                    .await?;
                report.notes.push("created the pg_stat_statements extension".to_owned());
            }
        } else {
            report.notes.push(
                "pg_stat_statements is not in shared_preload_libraries, so it was not created; \
                 add it there (and restart PostgreSQL) for the runbook's latency queries"
                    .to_owned(),
            );
        }
        Ok(report)
    }

    /// The underlying pool.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

#[async_trait]
impl Store for PgStore {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    async fn get_state(&self, key: &WorkflowKey) -> StorageResult<Option<StoredState>> {
        let row = sqlx::query(
            "SELECT version, state, workflow_type, namespace, deleted_at IS NOT NULL AS deleted, \
             (extract(epoch FROM updated_at) * 1000)::bigint AS updated_at_ms \
             FROM workflow_state WHERE namespace = $1 AND workflow_key = $2",
        )
        .bind(key.namespace().as_str())
        .bind(key.as_str())
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| state_from_row(&row, "")).transpose()
    }

    async fn snapshot(&self, key: &WorkflowKey, action_id: ActionId) -> StorageResult<Snapshot> {
        let row = sqlx::query(
            "SELECT s.version AS s_version, s.state AS s_state, s.workflow_type AS s_workflow_type, \
                    s.namespace AS s_namespace, s.deleted_at IS NOT NULL AS s_deleted, \
                    (extract(epoch FROM s.updated_at) * 1000)::bigint AS s_updated_at_ms, \
                    d.action_id, d.request_hash, d.result_hash, d.version, d.status, d.outcome, \
                    (extract(epoch FROM d.expires_at) * 1000)::bigint AS expires_at_ms \
             FROM (SELECT 1) AS one \
             LEFT JOIN workflow_state s ON s.namespace = $3 AND s.workflow_key = $1 \
             LEFT JOIN action_dedup_log d \
                    ON d.namespace = $3 AND d.workflow_key = $1 AND d.action_id = $2 AND d.expires_at > now()",
        )
        .bind(key.as_str())
        .bind(action_id.as_uuid())
        .bind(key.namespace().as_str())
        .fetch_one(&self.pool)
        .await?;
        let state = match row.try_get::<Option<i64>, _>("s_version")? {
            Some(_) => Some(state_from_row(&row, "s_")?),
            None => None,
        };
        let processed = match row.try_get::<Option<uuid::Uuid>, _>("action_id")? {
            Some(_) => Some(record_from_row(&row)?),
            None => None,
        };
        Ok(Snapshot { state, processed })
    }

    async fn commit_batch(&self, requests: &[CommitRequest]) -> StorageResult<Vec<CommitResult>> {
        commit::commit_batch(&self.pool, requests).await
    }

    async fn get_states(&self, keys: &[WorkflowKey]) -> StorageResult<HashMap<WorkflowKey, StoredState>> {
        commit::get_states(&self.pool, keys).await
    }

    async fn find_processed_many(
        &self,
        pairs: &[(WorkflowKey, ActionId)],
    ) -> StorageResult<Vec<(WorkflowKey, ProcessedRecord)>> {
        commit::find_processed_many(&self.pool, pairs).await
    }

    async fn find_processed(&self, key: &WorkflowKey, action_id: ActionId) -> StorageResult<Option<ProcessedRecord>> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {RECORD_COLUMNS} FROM action_dedup_log \
             WHERE namespace = $3 AND workflow_key = $1 AND action_id = $2 AND expires_at > now()"
        )))
        .bind(key.as_str())
        .bind(action_id.as_uuid())
        .bind(key.namespace().as_str())
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| record_from_row(&row)).transpose()
    }

    async fn record_processed(&self, key: &WorkflowKey, record: NewRecord) -> StorageResult<RecordResult> {
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
        let outbox = sqlx::query(
            "DELETE FROM event_outbox WHERE id IN (SELECT id FROM event_outbox \
             WHERE published_at IS NOT NULL AND published_at <= now() - make_interval(secs => $1) \
             ORDER BY published_at LIMIT $2)",
        )
        .bind(outbox.as_secs_f64())
        .bind(i64::from(limit))
        .execute(&self.pool)
        .await?
        .rows_affected();
        let completions = sqlx::query(
            "DELETE FROM action_completions WHERE (namespace, correlation_id, action_id) IN \
             (SELECT namespace, correlation_id, action_id \
             FROM action_completions WHERE completed_at <= now() - make_interval(secs => $1) \
             ORDER BY completed_at LIMIT $2)",
        )
        .bind(completions.as_secs_f64())
        .bind(i64::from(limit))
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok((outbox, completions))
    }

    async fn cleanup_expired(&self) -> StorageResult<u64> {
        let done = sqlx::query("DELETE FROM action_dedup_log WHERE expires_at <= now()")
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    async fn append_events(&self, events: Vec<OutboxEvent>, entries: Vec<HistoryEntry>) -> StorageResult<()> {
        let mut tx = self.pool.begin().await?;
        insert_events(&mut tx, &events).await?;
        history::insert(&mut tx, &entries).await?;
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
        history::prune(&self.pool, retention, limit).await
    }

    async fn pending_events(&self, limit: u32) -> StorageResult<Vec<PendingEvent>> {
        let rows = sqlx::query(
            "SELECT id, namespace, workflow_key, version, event_type, payload, headers FROM event_outbox \
             WHERE published_at IS NULL ORDER BY id LIMIT $1",
        )
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(pipeline::pending_from_row).collect()
    }

    async fn mark_published(&self, ids: &[i64]) -> StorageResult<()> {
        pipeline::mark_published(&self.pool, ids).await
    }

    async fn events_by_id(&self, ids: &[i64]) -> StorageResult<Vec<PendingEvent>> {
        pipeline::events_by_id(&self.pool, ids).await
    }

    async fn announce(&self, channel: &str, payloads: &[String]) -> StorageResult<()> {
        pipeline::announce(&self.pool, channel, payloads).await
    }

    async fn apply_projections(&self, updates: &[ProjectionUpdate]) -> StorageResult<ApplyStats> {
        projection::apply_projections(&self.pool, updates, &[]).await
    }

    async fn apply_and_mark_published(
        &self,
        updates: &[ProjectionUpdate],
        published: &[i64],
    ) -> StorageResult<ApplyStats> {
        projection::apply_projections(&self.pool, updates, published).await
    }

    async fn get_projection(&self, key: &WorkflowKey) -> StorageResult<Option<StoredProjection>> {
        pipeline::get_projection(&self.pool, key).await
    }

    async fn list_watermarks(&self) -> StorageResult<Vec<StoredWatermark>> {
        pipeline::list_watermarks(&self.pool).await
    }

    async fn record_completion(&self, completion: &Completion) -> StorageResult<()> {
        queue::record(&self.pool, std::slice::from_ref(completion)).await
    }

    async fn record_completions(&self, completions: &[Completion]) -> StorageResult<()> {
        queue::record(&self.pool, completions).await
    }

    async fn find_completion(
        &self,
        namespace: &Namespace,
        correlation_id: &str,
        action_id: Option<ActionId>,
    ) -> StorageResult<Option<Completion>> {
        queue::find_completion(&self.pool, namespace, correlation_id, action_id).await
    }

    async fn record_dead_letters(&self, letters: &[crate::DeadLetter]) -> StorageResult<()> {
        queue::record_dead_letters(&self.pool, letters).await
    }

    async fn dead_letters(&self, limit: u32) -> StorageResult<Vec<crate::StoredDeadLetter>> {
        admin::dead_letters(&self.pool, limit).await
    }

    async fn dead_letter(&self, id: i64) -> StorageResult<Option<crate::StoredDeadLetter>> {
        admin::dead_letter(&self.pool, id).await
    }

    async fn replay_dead_letter(&self, id: i64, row: &crate::ProjectionRow) -> StorageResult<crate::Replayed> {
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

    async fn enqueue_actions(&self, actions: &[QueuedAction]) -> StorageResult<()> {
        queue::enqueue(&self.pool, actions).await
    }

    async fn claim_actions(&self, limit: u32) -> StorageResult<ActionClaim> {
        queue::claim(&self.pool, limit).await
    }

    async fn try_singleton(&self, name: &str) -> StorageResult<Option<crate::Singleton>> {
        pipeline::try_singleton(&self.pool, name).await
    }

    async fn notifications(&self) -> StorageResult<Option<tokio::sync::mpsc::Receiver<(String, String)>>> {
        pipeline::notifications(&self.pool).await.map(Some)
    }
}

/// Inserts a dedup record, replacing an expired one; `None` when an unexpired one exists.
async fn insert_record(
    conn: &mut PgConnection,
    key: &WorkflowKey,
    record: &NewRecord,
) -> StorageResult<Option<ProcessedRecord>> {
    let outcome = outcome_json(&record.intents, record.rejection_reason.as_deref());
    let result = sqlx::query(AssertSqlSafe(format!(
        "INSERT INTO action_dedup_log \
            (namespace, workflow_key, action_id, request_hash, result_hash, version, status, outcome, expires_at) \
         VALUES ($9, $1, $2, $3, $4, $5, $6, $7, now() + make_interval(secs => $8)) \
         ON CONFLICT (namespace, workflow_key, action_id) DO UPDATE SET \
            request_hash = EXCLUDED.request_hash, result_hash = EXCLUDED.result_hash, \
            version = EXCLUDED.version, status = EXCLUDED.status, outcome = EXCLUDED.outcome, \
            created_at = now(), expires_at = EXCLUDED.expires_at \
         WHERE action_dedup_log.expires_at <= now() \
         RETURNING {RECORD_COLUMNS}"
    )))
    .bind(key.as_str())
    .bind(record.action_id.as_uuid())
    .bind(&record.request_hash)
    .bind(&record.result_hash)
    .bind(version_param(record.version)?)
    .bind(record.status.as_str())
    .bind(Json(outcome))
    .bind(record.ttl.as_secs_f64())
    .bind(key.namespace().as_str())
    .fetch_optional(&mut *conn)
    .await;
    match result {
        Ok(row) => row.map(|row| record_from_row(&row)).transpose(),
        // Two first inserts racing: the loser sees the winner's row as a duplicate.
        Err(err) if is_unique_violation(&err) => Ok(None),
        Err(err) => Err(classify(&err)),
    }
}

async fn insert_events(conn: &mut PgConnection, events: &[OutboxEvent]) -> StorageResult<()> {
    for event in events {
        sqlx::query(
            "INSERT INTO event_outbox (namespace, workflow_key, version, event_type, payload, headers) \
             VALUES ($6, $1, $2, $3, $4, $5)",
        )
        .bind(&event.workflow_key)
        .bind(version_param(event.version)?)
        .bind(&event.event_type)
        .bind(&event.payload)
        .bind(Json(&event.headers))
        .bind(&event.namespace)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

fn version_param(version: Version) -> StorageResult<i64> {
    i64::try_from(version.get()).map_err(|_| StorageError::Corrupt(format!("version {version} out of range")))
}

fn state_from_row(row: &PgRow, prefix: &str) -> StorageResult<StoredState> {
    let column = |name: &str| format!("{prefix}{name}");
    let state: Json<JsonObject> = row.try_get(column("state").as_str())?;
    Ok(StoredState {
        version: Version::new(row.try_get::<i64, _>(column("version").as_str())?.max(0) as u64),
        state: state.0,
        workflow_type: row.try_get(column("workflow_type").as_str())?,
        namespace: row.try_get(column("namespace").as_str())?,
        updated_at_ms: row.try_get(column("updated_at_ms").as_str())?,
        deleted: row.try_get(column("deleted").as_str())?,
    })
}

fn record_from_row(row: &PgRow) -> StorageResult<ProcessedRecord> {
    let status: String = row.try_get("status")?;
    let outcome: Json<serde_json::Value> = row.try_get("outcome")?;
    let (intents, rejection_reason) = parse_outcome(&outcome.0);
    Ok(ProcessedRecord {
        action_id: ActionId::from_uuid(row.try_get("action_id")?),
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
async fn applied_versions(pool: &PgPool) -> StorageResult<Vec<i64>> {
    let exists: bool = sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations') IS NOT NULL")
        .fetch_one(pool)
        .await?;
    if !exists {
        return Ok(Vec::new());
    }
    Ok(sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success")
        .fetch_all(pool)
        .await?)
}
