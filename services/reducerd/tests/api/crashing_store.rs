//! A store for the materializer crash tests: it passes everything through, counts
//! projection work, and on a chosen `apply_projections` call stops for ever at a crash point,
//! so the test can kill the materializer exactly there.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// Where a materializer dies while applying a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Crash {
    /// Inside the batch, before its transaction commits.
    BeforeCommit,
    /// After the database commit, before the Kafka offsets are committed.
    AfterCommit,
}

/// A store that passes everything through, counts projection work, and on the chosen
/// `apply_projections` call stops forever at the crash point, so the test can kill the
/// materializer exactly there.
pub(crate) struct CrashingStore {
    pub(crate) inner: Arc<dyn purereducer_storage::Store>,
    pub(crate) crash_on_call: Option<(usize, Crash)>,
    pub(crate) calls: std::sync::atomic::AtomicUsize,
    pub(crate) applied: Arc<std::sync::atomic::AtomicU64>,
    pub(crate) duplicates: Arc<std::sync::atomic::AtomicU64>,
    pub(crate) crashed: Arc<tokio::sync::Notify>,
    pub(crate) crashed_batch: Arc<std::sync::atomic::AtomicU64>,
}

impl std::fmt::Debug for CrashingStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CrashingStore").finish_non_exhaustive()
    }
}

#[async_trait::async_trait]
impl purereducer_storage::Store for CrashingStore {
    fn backend(&self) -> &'static str {
        self.inner.backend()
    }
    async fn get_state(
        &self,
        key: &purereducer_core::WorkflowKey,
    ) -> purereducer_storage::StorageResult<Option<purereducer_storage::StoredState>> {
        self.inner.get_state(key).await
    }
    async fn snapshot(
        &self,
        key: &purereducer_core::WorkflowKey,
        id: purereducer_core::ActionId,
    ) -> purereducer_storage::StorageResult<purereducer_storage::Snapshot> {
        self.inner.snapshot(key, id).await
    }
    async fn commit_batch(
        &self,
        requests: &[purereducer_storage::CommitRequest],
    ) -> purereducer_storage::StorageResult<Vec<purereducer_storage::CommitResult>> {
        self.inner.commit_batch(requests).await
    }
    async fn get_states(
        &self,
        keys: &[purereducer_core::WorkflowKey],
    ) -> purereducer_storage::StorageResult<
        std::collections::HashMap<purereducer_core::WorkflowKey, purereducer_storage::StoredState>,
    > {
        self.inner.get_states(keys).await
    }
    async fn find_processed_many(
        &self,
        pairs: &[(purereducer_core::WorkflowKey, purereducer_core::ActionId)],
    ) -> purereducer_storage::StorageResult<Vec<(purereducer_core::WorkflowKey, purereducer_storage::ProcessedRecord)>>
    {
        self.inner.find_processed_many(pairs).await
    }
    async fn find_processed(
        &self,
        key: &purereducer_core::WorkflowKey,
        id: purereducer_core::ActionId,
    ) -> purereducer_storage::StorageResult<Option<purereducer_storage::ProcessedRecord>> {
        self.inner.find_processed(key, id).await
    }
    async fn record_processed(
        &self,
        key: &purereducer_core::WorkflowKey,
        record: purereducer_storage::NewRecord,
    ) -> purereducer_storage::StorageResult<purereducer_storage::RecordResult> {
        self.inner.record_processed(key, record).await
    }
    async fn cleanup_expired(&self) -> purereducer_storage::StorageResult<u64> {
        self.inner.cleanup_expired().await
    }
    async fn append_events(
        &self,
        events: Vec<purereducer_storage::OutboxEvent>,
        history: Vec<purereducer_storage::HistoryEntry>,
    ) -> purereducer_storage::StorageResult<()> {
        self.inner.append_events(events, history).await
    }
    async fn history(
        &self,
        key: &purereducer_core::WorkflowKey,
        page: purereducer_storage::HistoryPage,
    ) -> purereducer_storage::StorageResult<Vec<purereducer_storage::HistoryRecord>> {
        self.inner.history(key, page).await
    }
    async fn prune_history(
        &self,
        retention: purereducer_storage::HistoryRetention,
        limit: u32,
    ) -> purereducer_storage::StorageResult<u64> {
        self.inner.prune_history(retention, limit).await
    }
    async fn pending_events(
        &self,
        limit: u32,
    ) -> purereducer_storage::StorageResult<Vec<purereducer_storage::PendingEvent>> {
        self.inner.pending_events(limit).await
    }
    async fn mark_published(&self, ids: &[i64]) -> purereducer_storage::StorageResult<()> {
        self.inner.mark_published(ids).await
    }
    async fn events_by_id(
        &self,
        ids: &[i64],
    ) -> purereducer_storage::StorageResult<Vec<purereducer_storage::PendingEvent>> {
        self.inner.events_by_id(ids).await
    }
    async fn announce(&self, channel: &str, payloads: &[String]) -> purereducer_storage::StorageResult<()> {
        self.inner.announce(channel, payloads).await
    }
    async fn apply_projections(
        &self,
        updates: &[purereducer_storage::ProjectionUpdate],
    ) -> purereducer_storage::StorageResult<purereducer_storage::ApplyStats> {
        let call = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        let crash = self.crash_on_call.and_then(|(at, crash)| (at == call).then_some(crash));
        if crash == Some(Crash::BeforeCommit) {
            self.crashed_batch.store(updates.len() as u64, Ordering::SeqCst);
            self.crashed.notify_one();
            return std::future::pending().await;
        }
        let stats = self.inner.apply_projections(updates).await?;
        self.applied.fetch_add(stats.applied.len() as u64, Ordering::SeqCst);
        self.duplicates.fetch_add(stats.duplicates, Ordering::SeqCst);
        if crash == Some(Crash::AfterCommit) {
            self.crashed_batch.store(updates.len() as u64, Ordering::SeqCst);
            self.crashed.notify_one();
            return std::future::pending().await;
        }
        Ok(stats)
    }
    async fn get_projection(
        &self,
        key: &purereducer_core::WorkflowKey,
    ) -> purereducer_storage::StorageResult<Option<purereducer_storage::StoredProjection>> {
        self.inner.get_projection(key).await
    }
    async fn list_watermarks(&self) -> purereducer_storage::StorageResult<Vec<purereducer_storage::StoredWatermark>> {
        self.inner.list_watermarks().await
    }
    async fn record_completion(
        &self,
        completion: &purereducer_storage::Completion,
    ) -> purereducer_storage::StorageResult<()> {
        self.inner.record_completion(completion).await
    }
    async fn find_completion(
        &self,
        namespace: &purereducer_core::Namespace,
        correlation_id: &str,
        action_id: Option<purereducer_core::ActionId>,
    ) -> purereducer_storage::StorageResult<Option<purereducer_storage::Completion>> {
        self.inner.find_completion(namespace, correlation_id, action_id).await
    }
    async fn prune(
        &self,
        outbox: Duration,
        completions: Duration,
        limit: u32,
    ) -> purereducer_storage::StorageResult<(u64, u64)> {
        self.inner.prune(outbox, completions, limit).await
    }
    async fn record_dead_letters(
        &self,
        letters: &[purereducer_storage::DeadLetter],
    ) -> purereducer_storage::StorageResult<()> {
        self.inner.record_dead_letters(letters).await
    }
    async fn dead_letters(
        &self,
        limit: u32,
    ) -> purereducer_storage::StorageResult<Vec<purereducer_storage::StoredDeadLetter>> {
        self.inner.dead_letters(limit).await
    }
    async fn dead_letter(
        &self,
        id: i64,
    ) -> purereducer_storage::StorageResult<Option<purereducer_storage::StoredDeadLetter>> {
        self.inner.dead_letter(id).await
    }
    async fn replay_dead_letter(
        &self,
        id: i64,
        row: &purereducer_storage::ProjectionRow,
    ) -> purereducer_storage::StorageResult<purereducer_storage::Replayed> {
        self.inner.replay_dead_letter(id, row).await
    }
    async fn outbox_backlog(&self) -> purereducer_storage::StorageResult<(u64, Option<i64>)> {
        self.inner.outbox_backlog().await
    }
    async fn processed_of(
        &self,
        key: &purereducer_core::WorkflowKey,
        limit: u32,
    ) -> purereducer_storage::StorageResult<Vec<purereducer_storage::ProcessedRecord>> {
        self.inner.processed_of(key, limit).await
    }
    async fn history_of_action(
        &self,
        key: &purereducer_core::WorkflowKey,
        action_id: &str,
    ) -> purereducer_storage::StorageResult<Option<purereducer_storage::HistoryRecord>> {
        self.inner.history_of_action(key, action_id).await
    }
    async fn recent_gave_up(
        &self,
        limit: u32,
    ) -> purereducer_storage::StorageResult<Vec<purereducer_storage::HistoryRecord>> {
        self.inner.recent_gave_up(limit).await
    }
    async fn list_workflows(
        &self,
        filter: &purereducer_storage::WorkflowFilter,
    ) -> purereducer_storage::StorageResult<Vec<purereducer_storage::WorkflowSummary>> {
        self.inner.list_workflows(filter).await
    }
    async fn enqueue_actions(
        &self,
        actions: &[purereducer_storage::QueuedAction],
    ) -> purereducer_storage::StorageResult<()> {
        self.inner.enqueue_actions(actions).await
    }
    async fn claim_actions(&self, limit: u32) -> purereducer_storage::StorageResult<purereducer_storage::ActionClaim> {
        self.inner.claim_actions(limit).await
    }
    async fn try_singleton(
        &self,
        name: &str,
    ) -> purereducer_storage::StorageResult<Option<purereducer_storage::Singleton>> {
        self.inner.try_singleton(name).await
    }
    async fn notifications(
        &self,
    ) -> purereducer_storage::StorageResult<Option<tokio::sync::mpsc::Receiver<(String, String)>>> {
        self.inner.notifications().await
    }
}
