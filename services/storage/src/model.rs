//! Records read and written through [`crate::Store`].

use std::time::Duration;

use purereducer_core::{ActionId, ActionStatus, Intent, JsonObject, TypeName, Version, WorkflowKey};

/// The stored state of a workflow.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredState {
    /// Current version (at least 1).
    pub version: Version,
    /// Current state.
    pub state: JsonObject,
    /// Workflow type, fixed at creation.
    pub workflow_type: String,
    /// Namespace, fixed at creation.
    pub namespace: String,
    /// Last commit time, unix milliseconds by the database clock.
    pub updated_at_ms: i64,
    /// The workflow was deleted at `version`: the row is a tombstone, `state` is empty, and
    /// the next commit starts a new workflow (of any type) at the version after it.
    pub deleted: bool,
}

/// A remembered action outcome.
#[derive(Debug, Clone, PartialEq)]
pub struct ProcessedRecord {
    /// The action.
    pub action_id: ActionId,
    /// Fingerprint of what the action asked for (empty when recorded externally).
    pub request_hash: String,
    /// Hash of the outcome.
    pub result_hash: String,
    /// Version the action produced, or saw when it changed nothing.
    pub version: Version,
    /// How the action ended.
    pub status: ActionStatus,
    /// Side effects the outcome requested.
    pub intents: Vec<Intent>,
    /// Why the action was refused, for rejections.
    pub rejection_reason: Option<String>,
    /// Expiry, unix milliseconds by the database clock.
    pub expires_at_ms: i64,
}

/// A dedup record to insert.
#[derive(Debug, Clone, PartialEq)]
pub struct NewRecord {
    /// The action.
    pub action_id: ActionId,
    /// Fingerprint of what the action asked for.
    pub request_hash: String,
    /// Hash of the outcome.
    pub result_hash: String,
    /// Version the action produced, or saw.
    pub version: Version,
    /// How the action ended.
    pub status: ActionStatus,
    /// Side effects the outcome requested.
    pub intents: Vec<Intent>,
    /// Why the action was refused.
    pub rejection_reason: Option<String>,
    /// How long the record lives, counted by the database clock.
    pub ttl: Duration,
}

/// An event to publish after its transaction commits.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxEvent {
    /// The workflow's namespace.
    pub namespace: String,
    /// Partition key: the workflow key's name.
    pub workflow_key: String,
    /// Version the event belongs to (publishing order within a key).
    pub version: Version,
    /// Event type name, for example `StateCommitted`.
    pub event_type: String,
    /// Encoded protobuf event.
    pub payload: Vec<u8>,
    /// Headers to publish with it (correlation id, trace context).
    pub headers: serde_json::Value,
}

/// An outbox event not yet published.
#[derive(Debug, Clone, PartialEq)]
pub struct PendingEvent {
    /// Outbox sequence id.
    pub id: i64,
    /// The event.
    pub event: OutboxEvent,
}

/// A new state to write.
#[derive(Debug, Clone, PartialEq)]
pub struct StateWrite {
    /// The state.
    pub state: JsonObject,
    /// The version it becomes.
    pub version: Version,
    /// Workflow type, stored on creation.
    pub workflow_type: TypeName,
    /// Who made the change.
    pub provenance: serde_json::Value,
    /// The write deletes the workflow (a tombstone at `version`); `state` is then empty.
    pub deleted: bool,
}

/// One atomic commit. Several actions may be folded into one request: each brings its own
/// dedup record and events, and the state written is the last one.
#[derive(Debug, Clone, PartialEq)]
pub struct CommitRequest {
    /// The workflow.
    pub key: WorkflowKey,
    /// The version the change was computed from (0: the workflow must not exist).
    pub expected: Version,
    /// The new state, or `None` to only check the version (an outcome that changes nothing).
    pub write: Option<StateWrite>,
    /// Dedup records, one per action.
    pub records: Vec<NewRecord>,
    /// Outbox events, in publishing order.
    pub events: Vec<OutboxEvent>,
    /// History entries of the workflow, in version order.
    pub history: Vec<HistoryEntry>,
}

/// The shape of a commit request, for tests and logs: what it expected and the outcome of
/// each action it records.
#[derive(Debug, Clone, PartialEq)]
pub struct CommitRequestSummary {
    /// The version the request was computed from.
    pub expected: Version,
    /// The version it writes, if it writes a state.
    pub writes: Option<Version>,
    /// Each dedup record's action, status and version, in order.
    pub records: Vec<(ActionId, ActionStatus, Version)>,
    /// How many outbox events it adds.
    pub events: usize,
}

impl CommitRequestSummary {
    /// The summary of `request`.
    pub fn of(request: &CommitRequest) -> Self {
        Self {
            expected: request.expected,
            writes: request.write.as_ref().map(|w| w.version),
            records: request
                .records
                .iter()
                .map(|r| (r.action_id, r.status, r.version))
                .collect(),
            events: request.events.len(),
        }
    }
}

/// What a commit did.
#[derive(Debug, Clone, PartialEq)]
pub enum CommitResult {
    /// Everything was written; `version` is the stored version now.
    Committed {
        /// The stored version after the commit.
        version: Version,
    },
    /// The stored version was not the expected one; nothing was written.
    Conflict {
        /// The stored version (0 when the workflow does not exist).
        current: Version,
    },
    /// One of the actions already has an unexpired record; nothing was written.
    AlreadyProcessed(ProcessedRecord),
    /// Nothing was written because another request of the same batch found an existing
    /// dedup record and the batch's transaction was rolled back; commit it again as it is.
    Deferred,
}

/// What `record_processed` did.
#[derive(Debug, Clone, PartialEq)]
pub enum RecordResult {
    /// The record was inserted.
    Recorded(ProcessedRecord),
    /// An unexpired record existed and was kept.
    Exists(ProcessedRecord),
}

/// The state of a workflow and the record of one action, read together.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Snapshot {
    /// The workflow's state, if it exists.
    pub state: Option<StoredState>,
    /// The action's unexpired record, if any.
    pub processed: Option<ProcessedRecord>,
}

/// The JSON stored in a dedup record's `outcome` column.
pub(crate) fn outcome_json(intents: &[Intent], rejection_reason: Option<&str>) -> serde_json::Value {
    serde_json::json!({ "intents": intents, "rejection_reason": rejection_reason })
}

/// Reads back a dedup record's `outcome` column.
pub(crate) fn parse_outcome(outcome: &serde_json::Value) -> (Vec<Intent>, Option<String>) {
    let intents = outcome
        .get("intents")
        .and_then(|v| serde_json::from_value(v.clone()).ok())
        .unwrap_or_default();
    let reason = outcome
        .get("rejection_reason")
        .and_then(|v| v.as_str())
        .map(str::to_owned);
    (intents, reason)
}

/// One event for the projection, at its position in the event log.
#[derive(Debug, Clone, PartialEq)]
pub struct ProjectionUpdate {
    /// Log topic (a Kafka topic, or `outbox` in process).
    pub topic: String,
    /// Log partition.
    pub partition: i32,
    /// The event's offset in that partition.
    pub offset: i64,
    /// The projection to write, or `None` for an event that only moves the watermark
    /// (one sent to the dead-letter topic).
    pub row: Option<ProjectionRow>,
}

/// A projection row as the materializer writes it.
#[derive(Debug, Clone, PartialEq)]
pub struct ProjectionRow {
    /// Workflow key.
    pub workflow_key: String,
    /// Version the row reflects.
    pub version: Version,
    /// Coarse status tag.
    pub tag: Option<String>,
    /// Action type of the commit.
    pub last_action: String,
    /// Namespace.
    pub namespace: String,
    /// Lookup values.
    pub indices: serde_json::Value,
    /// The rest of the state.
    pub extras: serde_json::Value,
    /// The workflow was deleted at `version` (a tombstone: no tag, empty indices and extras).
    pub deleted: bool,
}

/// What applying a batch of projection updates did.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ApplyStats {
    /// Rows written: (namespace, workflow key, version).
    pub applied: Vec<(String, String, Version)>,
    /// Events skipped because the projection already had them (redelivered or re-sent).
    pub duplicates: u64,
    /// Events older than the projection that arrived after it (out of order).
    pub regressions: u64,
}

/// A stored projection row.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredProjection {
    /// The row.
    pub row: ProjectionRow,
    /// Last write, unix milliseconds.
    pub updated_at_ms: i64,
}

/// How far a log partition has been applied.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredWatermark {
    /// Log topic.
    pub topic: String,
    /// Log partition.
    pub partition: i32,
    /// The next offset to apply.
    pub offset: i64,
    /// Last move, unix milliseconds.
    pub updated_at_ms: i64,
}

/// The outcome of an action queued through the event bus.
#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    /// Correlation id the publisher received.
    pub correlation_id: String,
    /// The action.
    pub action_id: ActionId,
    /// The workflow's namespace; a completion is found only within it.
    pub namespace: String,
    /// The workflow.
    pub workflow_key: String,
    /// How it ended.
    pub status: ActionStatus,
    /// Version after it (or seen).
    pub version: Version,
    /// Outcome hash.
    pub result_hash: String,
    /// Why it was refused.
    pub rejection_reason: Option<String>,
}

/// An event the pipeline could not apply, kept for the operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// Where it came from (`outbox/<id>`, or `<topic>/<partition>/<offset>`); one dead
    /// letter per source.
    pub source: String,
    /// The workflow's namespace.
    pub namespace: String,
    /// The workflow.
    pub workflow_key: String,
    /// The version the event belongs to.
    pub version: Version,
    /// Its type.
    pub event_type: String,
    /// The event as stored.
    pub payload: Vec<u8>,
    /// Why it could not be applied.
    pub error: String,
}

/// An action for the database queue (`PublishAction` without Kafka).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedAction {
    /// The namespace of the workflow it is for.
    pub namespace: String,
    /// The workflow it is for; its actions are claimed in the order they were queued.
    pub workflow_key: String,
    /// The action, encoded by the caller.
    pub payload: Vec<u8>,
    /// Trace context, as a JSON object.
    pub headers: String,
}

/// A queued action taken out by [`crate::Store::claim_actions`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedAction {
    /// Its place in the queue.
    pub seq: i64,
    /// The action as queued.
    pub action: QueuedAction,
}

/// Finishes a claim: the backend's half of [`ActionClaim`].
#[async_trait::async_trait]
pub trait ClaimFinish: Send {
    /// Records `completions` and removes the queued rows `done`, atomically.
    async fn finish(self: Box<Self>, completions: &[Completion], done: &[i64]) -> crate::StorageResult<()>;

    /// Gives every action back to the queue now.
    async fn release(self: Box<Self>) -> crate::StorageResult<()>;
}

/// Queued actions held by this process while it applies them. [`ActionClaim::finish`]
/// records their completions and removes them from the queue in one transaction; a claim
/// dropped unfinished (or whose process dies) gives its actions back to the queue.
pub struct ActionClaim {
    /// The actions, oldest first.
    pub actions: Vec<ClaimedAction>,
    finish: Option<Box<dyn ClaimFinish>>,
}

impl std::fmt::Debug for ActionClaim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ActionClaim")
            .field("actions", &self.actions.len())
            .finish()
    }
}

impl ActionClaim {
    /// A claim of `actions`, finished by `finish`.
    pub fn new(actions: Vec<ClaimedAction>, finish: Box<dyn ClaimFinish>) -> Self {
        Self {
            actions,
            finish: Some(finish),
        }
    }

    /// A claim of nothing.
    pub fn empty() -> Self {
        Self {
            actions: Vec::new(),
            finish: None,
        }
    }

    /// Gives every action of the claim back to the queue, waiting until they are claimable
    /// again (dropping the claim does the same, a moment later).
    pub async fn release(mut self) -> crate::StorageResult<()> {
        match self.finish.take() {
            Some(finish) => finish.release().await,
            None => Ok(()),
        }
    }

    /// Records `completions` and removes the rows `done` (sequence numbers of this claim's
    /// actions) from the queue, in one transaction. Rows not in `done` go back to the queue.
    pub async fn finish(mut self, completions: &[Completion], done: &[i64]) -> crate::StorageResult<()> {
        match self.finish.take() {
            Some(finish) => finish.finish(completions, done).await,
            None => Ok(()),
        }
    }
}

/// PostgreSQL notification channels, so waiters in any replica learn of progress.
pub mod channels {
    /// Payload `version:namespace/workflow_key`, sent when a projection row is written.
    pub const PROJECTION: &str = "purereducer_projection";
    /// Payload: the correlation id, sent when an action completion is recorded.
    pub const COMPLETION: &str = "purereducer_completion";
    /// Empty payload, sent when actions are queued in the database.
    pub const QUEUE: &str = "purereducer_queue";
    /// Payload `origin:ids`, sent by the process that materialized outbox rows (without
    /// Kafka), so every other process hands the same events to its subscribers: `origin`
    /// names the sending process, `ids` lists outbox ids in order (`a-b` for a run).
    pub const EVENTS: &str = "purereducer_events";
    /// Not a database channel: the listener reconnected and notifications may have been
    /// missed, so every waiter should look again.
    pub const RESYNC: &str = "";
}

/// One entry of a workflow's history: a committed version, a refusal or a give-up, written
/// in the transaction that decided it.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryEntry {
    /// The workflow's namespace.
    pub namespace: String,
    /// The workflow.
    pub workflow_key: String,
    /// The version committed, or the version seen by a refusal or give-up.
    pub version: Version,
    /// The workflow's type.
    pub workflow_type: String,
    /// The action (empty for a direct commit without one).
    pub action_id: String,
    /// The action type (`TryCommit` for direct commits).
    pub action_type: String,
    /// The correlation id the action carried.
    pub correlation_id: String,
    /// How it ended: committed, rejected or gave up.
    pub status: ActionStatus,
    /// The state it committed (`None` for refusals and give-ups).
    pub state: Option<JsonObject>,
    /// The action's payload (`None` for direct commits).
    pub payload: Option<JsonObject>,
    /// Side effects it requested.
    pub intents: Vec<Intent>,
    /// Why it was refused or gave up.
    pub reason: Option<String>,
    /// Hash of the outcome, as the caller received it.
    pub result_hash: String,
    /// Who made the change (`reducer-service`, or TryCommit's actor).
    pub actor: String,
}

impl HistoryEntry {
    /// Whether the entry records a deletion: a commit that left no state.
    pub fn is_deletion(&self) -> bool {
        self.status == ActionStatus::Committed && self.state.is_none()
    }
}

/// A stored history entry.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryRecord {
    /// Position in the history table: orders the entries of one version (a commit and the
    /// refusals seen at it).
    pub seq: i64,
    /// The entry.
    pub entry: HistoryEntry,
    /// When it was written, unix milliseconds by the database clock.
    pub recorded_at_ms: i64,
}

/// Which page of a workflow's history to read: entries strictly after (or, reversed, before)
/// `after` in (version, seq) order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryPage {
    /// The exclusive bound, as (version, seq).
    pub after: (i64, i64),
    /// Newest first instead of oldest first.
    pub reverse: bool,
    /// At most this many entries.
    pub limit: u32,
}

impl HistoryPage {
    /// The first page starting at `from_version` (0: the start, or when reversed the latest).
    pub fn starting_at(from_version: Version, reverse: bool, limit: u32) -> Self {
        let from = i64::try_from(from_version.get()).unwrap_or(i64::MAX);
        let after = match (reverse, from) {
            (false, from) => (from, 0),
            (true, 0) => (i64::MAX, i64::MAX),
            (true, from) => (from, i64::MAX),
        };
        Self { after, reverse, limit }
    }
}

/// How long history is kept; entries beyond either bound are pruned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HistoryRetention {
    /// Keep entries of at most this many versions below each workflow's current one.
    pub keep_versions: Option<u64>,
    /// Keep entries at most this old.
    pub max_age: Option<Duration>,
}

/// Which workflows [`crate::Store::list_workflows`] lists: those of `namespace` matching
/// every filter given, in workflow key order (bytewise) after `after_key`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct WorkflowFilter {
    /// The namespace.
    pub namespace: String,
    /// Only this workflow type.
    pub workflow_type: Option<String>,
    /// Only keys starting with this.
    pub key_prefix: Option<String>,
    /// Only workflows last committed at or after this (unix milliseconds).
    pub updated_after_ms: Option<i64>,
    /// Only workflows last committed before this (unix milliseconds).
    pub updated_before_ms: Option<i64>,
    /// Only workflows whose state's `status` is this.
    pub tag: Option<String>,
    /// Keys strictly after this one (the last key of the previous page).
    pub after_key: Option<String>,
    /// At most this many.
    pub limit: u32,
}

/// One listed workflow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkflowSummary {
    /// The namespace.
    pub namespace: String,
    /// The workflow key.
    pub workflow_key: String,
    /// The workflow type.
    pub workflow_type: String,
    /// Current version.
    pub version: Version,
    /// Last commit, unix milliseconds.
    pub updated_at_ms: i64,
    /// The state's `status`, when it is a string.
    pub tag: Option<String>,
}

/// A kept dead letter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredDeadLetter {
    /// Its id, for replaying it.
    pub id: i64,
    /// The letter.
    pub letter: DeadLetter,
    /// When it was kept, unix milliseconds.
    pub created_at_ms: i64,
    /// When an operator replayed it, if they did.
    pub replayed_at_ms: Option<i64>,
}

/// What replaying a dead letter did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replayed {
    /// Its row was written to the projection.
    Applied,
    /// The projection already had this version or a newer one; the letter is marked replayed.
    Superseded,
    /// It had been replayed before; nothing was written.
    AlreadyReplayed,
    /// No dead letter has that id.
    NotFound,
}

/// What a migration run did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MigrationReport {
    /// The migrations applied by this run, as (version, description), oldest first.
    pub applied: Vec<(i64, String)>,
    /// Anything else done or noticed, for the operator.
    pub notes: Vec<String>,
}
