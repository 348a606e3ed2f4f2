//! Storage for Pure Reducer: one async trait, [`Store`], with a PostgreSQL implementation for
//! production and a SQLite one for the embedded default. Both pass the same conformance suite
//! (`tests/conformance.rs`).
//!
//! Layout:
//! - [`model`]: the records the trait reads and writes.
//! - [`error`]: storage errors and the one place SQLSTATE codes become them.
//! - [`postgres`]: the PostgreSQL implementation (sqlx, migrations in `migrations/postgres`).
//! - [`sqlite`]: the SQLite implementation (migrations in `migrations/sqlite`).
//! - `testing` (feature `testing`): a fresh, migrated database per test, and a store wrapper
//!   that records group commits.

pub mod error;
pub mod model;
pub mod postgres;
mod rows;
pub mod sqlite;
#[cfg(feature = "testing")]
pub mod testing;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use purereducer_core::{ActionId, Namespace, WorkflowKey};

pub use crate::error::StorageError;
pub use crate::model::{
    ActionClaim, ApplyStats, ClaimFinish, ClaimedAction, CommitRequest, CommitRequestSummary, CommitResult, Completion,
    DeadLetter, HistoryEntry, HistoryPage, HistoryRecord, HistoryRetention, MigrationReport, NewRecord, OutboxEvent,
    PendingEvent, ProcessedRecord, ProjectionRow, ProjectionUpdate, QueuedAction, RecordResult, Replayed, Snapshot,
    StateWrite, StoredDeadLetter, StoredProjection, StoredState, StoredWatermark, WorkflowFilter, WorkflowSummary,
    channels,
};

/// Result of a storage call.
pub type StorageResult<T> = Result<T, StorageError>;

/// Everything the services need from the database.
#[async_trait]
pub trait Store: Send + Sync + std::fmt::Debug {
    /// Short backend name for logs (`postgres` or `sqlite`).
    fn backend(&self) -> &'static str;

    /// Reads the current state of a workflow.
    async fn get_state(&self, key: &WorkflowKey) -> StorageResult<Option<StoredState>>;

    /// Reads, in one round trip, the workflow's state and the unexpired record of an action.
    async fn snapshot(&self, key: &WorkflowKey, action_id: ActionId) -> StorageResult<Snapshot>;

    /// Atomically: checks the stored version against `expected`, writes the new state,
    /// inserts the dedup records and the outbox events. Nothing is written unless all is.
    async fn commit(&self, request: CommitRequest) -> StorageResult<CommitResult> {
        let mut results = self.commit_batch(std::slice::from_ref(&request)).await?;
        results
            .pop()
            .ok_or_else(|| StorageError::Database("a batch of one commit returned no result".to_owned()))
    }

    /// Commits the requests of several workflows in ONE transaction (group commit). Each
    /// request is checked on its own: one whose version check fails writes nothing and
    /// reports [`CommitResult::Conflict`] while the others commit. If an action's dedup
    /// record already exists the whole transaction is rolled back: that request reports
    /// [`CommitResult::AlreadyProcessed`], every other [`CommitResult::Deferred`]. Rows are
    /// locked in key order, so concurrent batches cannot deadlock. Keys must be distinct;
    /// results come in request order.
    async fn commit_batch(&self, requests: &[CommitRequest]) -> StorageResult<Vec<CommitResult>>;

    /// Reads the states of several workflows in one round trip, by workflow key; keys that
    /// do not exist are absent from the map.
    async fn get_states(&self, keys: &[WorkflowKey]) -> StorageResult<HashMap<WorkflowKey, StoredState>>;

    /// The unexpired dedup records of several (workflow, action) pairs in one round trip,
    /// as (workflow key, record).
    async fn find_processed_many(
        &self,
        pairs: &[(WorkflowKey, ActionId)],
    ) -> StorageResult<Vec<(WorkflowKey, ProcessedRecord)>>;

    /// The unexpired record of an action, if any.
    async fn find_processed(&self, key: &WorkflowKey, action_id: ActionId) -> StorageResult<Option<ProcessedRecord>>;

    /// Inserts a dedup record unless an unexpired one exists (that one is returned instead).
    async fn record_processed(&self, key: &WorkflowKey, record: NewRecord) -> StorageResult<RecordResult>;

    /// Deletes dedup records whose expiry has passed by the database clock.
    async fn cleanup_expired(&self) -> StorageResult<u64>;

    /// Deletes, oldest first and at most `limit` of each, outbox rows published longer ago
    /// than `outbox` and completions recorded longer ago than `completions`, by the database
    /// clock. Returns how many of each were deleted. Unpublished rows are never deleted.
    async fn prune(&self, outbox: Duration, completions: Duration, limit: u32) -> StorageResult<(u64, u64)>;

    /// Appends events to the outbox and entries to the history, in one transaction (for
    /// outcomes that commit no state).
    async fn append_events(&self, events: Vec<OutboxEvent>, history: Vec<HistoryEntry>) -> StorageResult<()>;

    /// A page of a workflow's history, in (version, seq) order or its reverse.
    async fn history(&self, key: &WorkflowKey, page: HistoryPage) -> StorageResult<Vec<HistoryRecord>>;

    /// Workflows matching `filter`, in key order.
    async fn list_workflows(&self, filter: &WorkflowFilter) -> StorageResult<Vec<WorkflowSummary>>;

    /// Deletes, at most `limit` at a time, history entries beyond `retention`: older than its
    /// age by the database clock, or more than its count of versions below their workflow's
    /// current version. Returns how many were deleted.
    async fn prune_history(&self, retention: HistoryRetention, limit: u32) -> StorageResult<u64>;

    /// Unpublished outbox events, oldest first.
    async fn pending_events(&self, limit: u32) -> StorageResult<Vec<PendingEvent>>;

    /// Marks outbox events as published.
    async fn mark_published(&self, ids: &[i64]) -> StorageResult<()>;

    /// Outbox rows by id, in the order asked; ids no longer stored are left out.
    async fn events_by_id(&self, ids: &[i64]) -> StorageResult<Vec<PendingEvent>>;

    /// Sends each of `payloads`, in order, on notification `channel` to every process on this
    /// database (see [`channels`]); nothing for a backend whose processes cannot share a
    /// database (SQLite).
    async fn announce(&self, channel: &str, payloads: &[String]) -> StorageResult<()>;

    /// Applies projection updates in order, in one transaction with their watermarks.
    /// Watermarks only move forward; events at or below the projection's version are
    /// skipped and counted.
    async fn apply_projections(&self, updates: &[ProjectionUpdate]) -> StorageResult<ApplyStats>;

    /// Like [`Store::apply_projections`], and marks the outbox rows `published` as published
    /// in the same transaction: the in-process pipeline, whose log is the outbox itself.
    async fn apply_and_mark_published(
        &self,
        updates: &[ProjectionUpdate],
        published: &[i64],
    ) -> StorageResult<ApplyStats> {
        let stats = self.apply_projections(updates).await?;
        self.mark_published(published).await?;
        Ok(stats)
    }

    /// Reads a projection row.
    async fn get_projection(&self, key: &WorkflowKey) -> StorageResult<Option<StoredProjection>>;

    /// Every watermark, most recently moved first.
    async fn list_watermarks(&self) -> StorageResult<Vec<StoredWatermark>>;

    /// Records the outcome of a queued action (the first record per correlation id and
    /// action wins).
    async fn record_completion(&self, completion: &Completion) -> StorageResult<()>;

    /// Records several outcomes of queued actions at once (the first record per correlation
    /// id and action wins), announcing each.
    async fn record_completions(&self, completions: &[Completion]) -> StorageResult<()> {
        for completion in completions {
            self.record_completion(completion).await?;
        }
        Ok(())
    }

    /// The outcome of a queued action, if it has completed: of `action_id` when given,
    /// otherwise the first recorded under the correlation id, within `namespace`.
    async fn find_completion(
        &self,
        namespace: &Namespace,
        correlation_id: &str,
        action_id: Option<ActionId>,
    ) -> StorageResult<Option<Completion>>;

    /// Keeps events the pipeline could not apply (the first record per source wins).
    async fn record_dead_letters(&self, letters: &[DeadLetter]) -> StorageResult<()>;

    /// The most recent dead letters, newest first.
    async fn dead_letters(&self, limit: u32) -> StorageResult<Vec<StoredDeadLetter>>;

    /// One dead letter by id.
    async fn dead_letter(&self, id: i64) -> StorageResult<Option<StoredDeadLetter>>;

    /// Writes `row` (the projection row of dead letter `id`'s event) unless the projection is
    /// already at its version or newer, and marks the letter replayed, in one transaction.
    async fn replay_dead_letter(&self, id: i64, row: &ProjectionRow) -> StorageResult<Replayed>;

    /// How many outbox rows are unpublished, and how long ago the oldest was written
    /// (milliseconds by the database clock; `None` when there are none).
    async fn outbox_backlog(&self) -> StorageResult<(u64, Option<i64>)>;

    /// The unexpired dedup records of a workflow, most recent first.
    async fn processed_of(&self, key: &WorkflowKey, limit: u32) -> StorageResult<Vec<ProcessedRecord>>;

    /// The newest history entry of `action_id` on a workflow.
    async fn history_of_action(&self, key: &WorkflowKey, action_id: &str) -> StorageResult<Option<HistoryRecord>>;

    /// The most recent give-ups across every workflow, newest first, leaving out actions
    /// that were applied since.
    async fn recent_gave_up(&self, limit: u32) -> StorageResult<Vec<HistoryRecord>>;

    /// Durably queues actions, in the given order behind the earlier actions of their keys;
    /// returns once they are committed.
    async fn enqueue_actions(&self, actions: &[QueuedAction]) -> StorageResult<()>;

    /// Claims up to `limit` queued actions, oldest first, for this process to apply. No
    /// action is claimed while an earlier one of its key is held by another claim, so each
    /// key's actions are applied in queue order across processes. Claims made while an
    /// earlier one of the same process is unfinished may skip keys that claim holds.
    async fn claim_actions(&self, limit: u32) -> StorageResult<ActionClaim>;

    /// Tries to become the one holder of `name` among every process on this database
    /// (for the outbox relay). The returned guard holds it until dropped; `None` means
    /// another process holds it.
    async fn try_singleton(&self, name: &str) -> StorageResult<Option<Singleton>>;

    /// Notifications other processes send on [`channels`], as (channel, payload); `None`
    /// for a backend whose processes cannot share a database (SQLite).
    async fn notifications(&self) -> StorageResult<Option<tokio::sync::mpsc::Receiver<(String, String)>>>;
}

/// The key of a stored row, from its `namespace` and `workflow_key` columns.
pub(crate) fn stored_key(namespace: &str, name: &str) -> StorageResult<WorkflowKey> {
    let namespace = Namespace::parse_or_default(namespace)
        .map_err(|err| StorageError::Corrupt(format!("stored namespace: {err}")))?;
    WorkflowKey::parse(&namespace, name).map_err(|err| StorageError::Corrupt(format!("stored workflow key: {err}")))
}

/// Proof of holding a singleton; dropping it lets another process take over.
pub struct Singleton(pub Box<dyn SingletonHold>);

impl Singleton {
    /// Whether the singleton is still held. A holder must ask before each unit of work:
    /// the hold can be lost without the holder's doing (its database session killed, the
    /// server restarted or failed over), and then another process may already hold it.
    pub async fn still_held(&mut self) -> bool {
        self.0.still_held().await
    }
}

/// What keeps a singleton held, per backend.
#[async_trait]
pub trait SingletonHold: Send + Sync {
    /// Whether the hold is still in force.
    async fn still_held(&mut self) -> bool;
}

/// A singleton nobody else can take (one process owns a SQLite file).
#[async_trait]
impl SingletonHold for () {
    async fn still_held(&mut self) -> bool {
        true
    }
}

impl std::fmt::Debug for Singleton {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Singleton")
    }
}

/// Opens the store a database URL names: `postgres://` or `postgresql://` for PostgreSQL,
/// `sqlite:` for SQLite. Runs the migrations when `migrate` is set.
pub async fn connect(url: &str, pool: PoolOptions, migrate: bool) -> StorageResult<Arc<dyn Store>> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let store = postgres::PgStore::connect(url, pool).await?;
        if migrate {
            store.migrate().await?;
        }
        return Ok(Arc::new(store));
    }
    if url.starts_with("sqlite:") {
        let store = sqlite::SqliteStore::connect(url, pool).await?;
        if migrate {
            store.migrate().await?;
        }
        return Ok(Arc::new(store));
    }
    Err(StorageError::Config(format!(
        "storage.database_url must start with postgres://, postgresql:// or sqlite: (got '{}')",
        redact(url)
    )))
}

/// Opens the store a database URL names and runs its migrations, saying what they did.
pub async fn migrate(url: &str, pool: PoolOptions) -> StorageResult<MigrationReport> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return postgres::PgStore::connect(url, pool).await?.migrate_and_report().await;
    }
    if url.starts_with("sqlite:") {
        return sqlite::SqliteStore::connect(url, pool)
            .await?
            .migrate_and_report()
            .await;
    }
    connect(url, pool, false).await.map(|_| MigrationReport::default())
}

/// Connection pool sizing.
#[derive(Debug, Clone, Copy)]
pub struct PoolOptions {
    /// Connections kept open.
    pub min_connections: u32,
    /// Upper bound on open connections.
    pub max_connections: u32,
    /// How long a caller waits for a free connection.
    pub acquire_timeout: Duration,
}

impl Default for PoolOptions {
    fn default() -> Self {
        Self {
            min_connections: 10,
            max_connections: 50,
            acquire_timeout: Duration::from_secs(5),
        }
    }
}

/// A database URL with any password replaced, safe to log.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let Some((credentials, host)) = rest.split_once('@') else {
        return url.to_owned();
    };
    let user = credentials.split(':').next().unwrap_or_default();
    format!("{scheme}://{user}:***@{host}")
}
