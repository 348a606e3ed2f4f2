//! A fresh, migrated database per test: real PostgreSQL and real SQLite, never a mock.
//!
//! PostgreSQL tests create their own database on the server `PURE_REDUCER_TEST_DATABASE_URL`
//! names (default `postgres://postgres@127.0.0.1:5432/postgres`) and drop nothing, so a
//! failed test can be inspected afterwards; names start with `prt_`.

use std::sync::Arc;
use std::time::Duration;

use sqlx::{AssertSqlSafe, Connection, PgConnection};

use crate::postgres::PgStore;
use crate::sqlite::SqliteStore;
use std::collections::HashMap;

use purereducer_core::{ActionId, Namespace, WorkflowKey};

use crate::{
    ApplyStats, CommitRequest, CommitResult, Completion, NewRecord, OutboxEvent, PendingEvent, PoolOptions,
    ProcessedRecord, ProjectionUpdate, RecordResult, Snapshot, StorageResult, Store, StoredProjection, StoredState,
    StoredWatermark,
};

/// The server test databases are created on.
pub fn admin_url() -> String {
    std::env::var("PURE_REDUCER_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// Pool sizing for tests: small, so parallel tests stay under the server's connection limit.
pub fn test_pool(max_connections: u32) -> PoolOptions {
    PoolOptions {
        min_connections: 0,
        max_connections,
        acquire_timeout: Duration::from_secs(30),
    }
}

/// Creates an empty database and returns its URL.
pub async fn fresh_postgres_url() -> StorageResult<String> {
    let admin = admin_url();
    let name = format!("prt_{}", uuid::Uuid::new_v4().simple());
    let mut conn = PgConnection::connect(&admin).await?;
    sqlx::query(AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await?;
    conn.close().await?;
    let (base, _) = admin.rsplit_once('/').unwrap_or((admin.as_str(), ""));
    Ok(format!("{base}/{name}"))
}

/// A migrated PostgreSQL store on a new database.
pub async fn fresh_postgres(max_connections: u32) -> StorageResult<(Arc<PgStore>, String)> {
    let url = fresh_postgres_url().await?;
    let store = PgStore::connect(&url, test_pool(max_connections)).await?;
    store.migrate().await?;
    Ok((Arc::new(store), url))
}

/// A migrated SQLite store on a new file under the system temp directory.
pub async fn fresh_sqlite() -> StorageResult<(Arc<SqliteStore>, String)> {
    let path = std::env::temp_dir().join(format!("prt_{}.db", uuid::Uuid::new_v4().simple()));
    let url = format!("sqlite://{}", path.display());
    let store = SqliteStore::connect(&url, test_pool(4)).await?;
    store.migrate().await?;
    Ok((Arc::new(store), url))
}

/// Either backend, as the trait object the services use.
pub async fn fresh_store(backend: &str) -> StorageResult<Arc<dyn Store>> {
    if backend == "postgres" {
        let (store, _) = fresh_postgres(10).await?;
        return Ok(store);
    }
    let (store, _) = fresh_sqlite().await?;
    Ok(store)
}

/// What one `commit_batch` call asked for and got, as [`Instrumented`] records it.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchRecord {
    /// Per request: the workflow key, the version it expected, and the statuses of its
    /// dedup records in order.
    pub requests: Vec<(String, crate::model::CommitRequestSummary)>,
    /// The results, in request order (empty when the call failed).
    pub results: Vec<crate::CommitResult>,
}

/// Runs before a batch commits, with the batch's keys: a test plays "another replica that
/// wrote first" here.
pub type Interference =
    Arc<dyn Fn(Vec<String>) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> + Send + Sync>;

/// A real store that records every group commit and can pause one or interfere before it,
/// so tests can see how actions were folded and batched.
pub struct Instrumented {
    inner: Arc<dyn Store>,
    batches: std::sync::Mutex<Vec<BatchRecord>>,
    pause: std::sync::Mutex<Option<(Arc<tokio::sync::Notify>, tokio::sync::oneshot::Receiver<()>)>>,
    interference: std::sync::Mutex<Option<Interference>>,
    outages: std::sync::atomic::AtomicU32,
    apply_outages: std::sync::atomic::AtomicU32,
}

impl std::fmt::Debug for Instrumented {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Instrumented").field("inner", &self.inner).finish()
    }
}

/// Releases a paused commit when dropped or when [`Paused::release`] is called.
#[derive(Debug)]
pub struct Paused {
    /// Notified once the paused commit has started and is waiting.
    pub entered: Arc<tokio::sync::Notify>,
    release: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Paused {
    /// Lets the paused commit go on.
    pub fn release(mut self) {
        if let Some(release) = self.release.take() {
            let _ = release.send(());
        }
    }
}

impl Instrumented {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn Store>) -> Arc<Self> {
        Arc::new(Self {
            inner,
            batches: std::sync::Mutex::new(Vec::new()),
            pause: std::sync::Mutex::new(None),
            interference: std::sync::Mutex::new(None),
            outages: std::sync::atomic::AtomicU32::new(0),
            apply_outages: std::sync::atomic::AtomicU32::new(0),
        })
    }

    /// The wrapped store (a second server on the same database uses it directly).
    pub fn inner(&self) -> Arc<dyn Store> {
        self.inner.clone()
    }

    /// Every group commit so far.
    pub fn batches(&self) -> Vec<BatchRecord> {
        self.batches.lock().expect("batches").clone()
    }

    /// Makes the next `commit_batch` wait until the returned handle is released.
    pub fn pause_next_commit(&self) -> Paused {
        let entered = Arc::new(tokio::sync::Notify::new());
        let (release, wait) = tokio::sync::oneshot::channel();
        *self.pause.lock().expect("pause") = Some((entered.clone(), wait));
        Paused {
            entered,
            release: Some(release),
        }
    }

    /// Makes the next `count` calls of `commit_batch` fail as a database outage would,
    /// writing nothing.
    pub fn fail_next_commits(&self, count: u32) {
        self.outages.store(count, std::sync::atomic::Ordering::SeqCst);
    }

    /// Makes the next `count` projection applies fail as a database outage would.
    pub fn fail_next_applies(&self, count: u32) {
        self.apply_outages.store(count, std::sync::atomic::Ordering::SeqCst);
    }

    /// How many injected apply failures are still to come.
    pub fn applies_left_to_fail(&self) -> u32 {
        self.apply_outages.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Runs `interference` before every later `commit_batch`.
    pub fn interfere(&self, interference: Interference) {
        *self.interference.lock().expect("interference") = Some(interference);
    }

    /// A commit as the wrapper plays it: paused, failed as an outage, interfered with, or
    /// passed on.
    async fn commit_batch_inner(&self, requests: &[CommitRequest]) -> StorageResult<Vec<CommitResult>> {
        let pause = self.pause.lock().expect("pause").take();
        if let Some((entered, wait)) = pause {
            entered.notify_one();
            let _ = wait.await;
        }
        injected_outage(&self.outages)?;
        let interference = self.interference.lock().expect("interference").clone();
        if let Some(interference) = interference {
            interference(requests.iter().map(|r| r.key.as_str().to_owned()).collect()).await;
        }
        self.inner.commit_batch(requests).await
    }
}

/// Fails as a database outage would while `left` counts down from what a test injected.
fn injected_outage(left: &std::sync::atomic::AtomicU32) -> StorageResult<()> {
    use std::sync::atomic::Ordering::SeqCst;
    if left.fetch_update(SeqCst, SeqCst, |n| n.checked_sub(1)).is_ok() {
        return Err(crate::StorageError::Unavailable(
            "connection refused (injected)".to_owned(),
        ));
    }
    Ok(())
}

#[async_trait::async_trait]
impl Store for Instrumented {
    fn backend(&self) -> &'static str {
        self.inner.backend()
    }
    async fn get_state(&self, key: &WorkflowKey) -> StorageResult<Option<StoredState>> {
        self.inner.get_state(key).await
    }
    async fn snapshot(&self, key: &WorkflowKey, action_id: ActionId) -> StorageResult<Snapshot> {
        self.inner.snapshot(key, action_id).await
    }
    async fn commit_batch(&self, requests: &[CommitRequest]) -> StorageResult<Vec<CommitResult>> {
        let result = self.commit_batch_inner(requests).await;
        let record = BatchRecord {
            requests: requests
                .iter()
                .map(|r| (r.key.as_str().to_owned(), crate::model::CommitRequestSummary::of(r)))
                .collect(),
            results: result.as_ref().map(Clone::clone).unwrap_or_default(),
        };
        self.batches.lock().expect("batches").push(record);
        result
    }
    async fn get_states(&self, keys: &[WorkflowKey]) -> StorageResult<HashMap<WorkflowKey, StoredState>> {
        self.inner.get_states(keys).await
    }
    async fn find_processed_many(
        &self,
        pairs: &[(WorkflowKey, ActionId)],
    ) -> StorageResult<Vec<(WorkflowKey, ProcessedRecord)>> {
        self.inner.find_processed_many(pairs).await
    }
    async fn find_processed(&self, key: &WorkflowKey, action_id: ActionId) -> StorageResult<Option<ProcessedRecord>> {
        self.inner.find_processed(key, action_id).await
    }
    async fn record_processed(&self, key: &WorkflowKey, record: NewRecord) -> StorageResult<RecordResult> {
        self.inner.record_processed(key, record).await
    }
    async fn cleanup_expired(&self) -> StorageResult<u64> {
        self.inner.cleanup_expired().await
    }
    async fn append_events(&self, events: Vec<OutboxEvent>, history: Vec<crate::HistoryEntry>) -> StorageResult<()> {
        self.inner.append_events(events, history).await
    }
    async fn history(&self, key: &WorkflowKey, page: crate::HistoryPage) -> StorageResult<Vec<crate::HistoryRecord>> {
        self.inner.history(key, page).await
    }
    async fn prune_history(&self, retention: crate::HistoryRetention, limit: u32) -> StorageResult<u64> {
        self.inner.prune_history(retention, limit).await
    }
    async fn pending_events(&self, limit: u32) -> StorageResult<Vec<PendingEvent>> {
        self.inner.pending_events(limit).await
    }
    async fn mark_published(&self, ids: &[i64]) -> StorageResult<()> {
        self.inner.mark_published(ids).await
    }
    async fn events_by_id(&self, ids: &[i64]) -> StorageResult<Vec<PendingEvent>> {
        self.inner.events_by_id(ids).await
    }
    async fn announce(&self, channel: &str, payloads: &[String]) -> StorageResult<()> {
        self.inner.announce(channel, payloads).await
    }
    async fn apply_projections(&self, updates: &[ProjectionUpdate]) -> StorageResult<ApplyStats> {
        injected_outage(&self.apply_outages)?;
        self.inner.apply_projections(updates).await
    }
    async fn apply_and_mark_published(
        &self,
        updates: &[ProjectionUpdate],
        published: &[i64],
    ) -> StorageResult<ApplyStats> {
        injected_outage(&self.apply_outages)?;
        self.inner.apply_and_mark_published(updates, published).await
    }
    async fn get_projection(&self, key: &WorkflowKey) -> StorageResult<Option<StoredProjection>> {
        self.inner.get_projection(key).await
    }
    async fn list_watermarks(&self) -> StorageResult<Vec<StoredWatermark>> {
        self.inner.list_watermarks().await
    }
    async fn record_completion(&self, completion: &Completion) -> StorageResult<()> {
        self.inner.record_completion(completion).await
    }
    async fn record_completions(&self, completions: &[Completion]) -> StorageResult<()> {
        self.inner.record_completions(completions).await
    }
    async fn find_completion(
        &self,
        namespace: &Namespace,
        correlation_id: &str,
        action_id: Option<ActionId>,
    ) -> StorageResult<Option<Completion>> {
        self.inner.find_completion(namespace, correlation_id, action_id).await
    }
    async fn prune(&self, outbox: Duration, completions: Duration, limit: u32) -> StorageResult<(u64, u64)> {
        self.inner.prune(outbox, completions, limit).await
    }
    async fn record_dead_letters(&self, letters: &[crate::DeadLetter]) -> StorageResult<()> {
        self.inner.record_dead_letters(letters).await
    }
    async fn dead_letters(&self, limit: u32) -> StorageResult<Vec<crate::StoredDeadLetter>> {
        self.inner.dead_letters(limit).await
    }
    async fn dead_letter(&self, id: i64) -> StorageResult<Option<crate::StoredDeadLetter>> {
        self.inner.dead_letter(id).await
    }
    async fn replay_dead_letter(&self, id: i64, row: &crate::ProjectionRow) -> StorageResult<crate::Replayed> {
        self.inner.replay_dead_letter(id, row).await
    }
    async fn outbox_backlog(&self) -> StorageResult<(u64, Option<i64>)> {
        self.inner.outbox_backlog().await
    }
    async fn processed_of(&self, key: &WorkflowKey, limit: u32) -> StorageResult<Vec<crate::ProcessedRecord>> {
        self.inner.processed_of(key, limit).await
    }
    async fn history_of_action(
        &self,
        key: &WorkflowKey,
        action_id: &str,
    ) -> StorageResult<Option<crate::HistoryRecord>> {
        self.inner.history_of_action(key, action_id).await
    }
    async fn recent_gave_up(&self, limit: u32) -> StorageResult<Vec<crate::HistoryRecord>> {
        self.inner.recent_gave_up(limit).await
    }
    async fn list_workflows(&self, filter: &crate::WorkflowFilter) -> StorageResult<Vec<crate::WorkflowSummary>> {
        self.inner.list_workflows(filter).await
    }
    async fn enqueue_actions(&self, actions: &[crate::QueuedAction]) -> StorageResult<()> {
        self.inner.enqueue_actions(actions).await
    }
    async fn claim_actions(&self, limit: u32) -> StorageResult<crate::ActionClaim> {
        self.inner.claim_actions(limit).await
    }
    async fn try_singleton(&self, name: &str) -> StorageResult<Option<crate::Singleton>> {
        self.inner.try_singleton(name).await
    }
    async fn notifications(&self) -> StorageResult<Option<tokio::sync::mpsc::Receiver<(String, String)>>> {
        self.inner.notifications().await
    }
}
