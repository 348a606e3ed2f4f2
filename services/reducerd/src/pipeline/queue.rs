//! In-process queue for `PublishAction` when no Kafka is configured: actions are sharded by
//! workflow key over a few workers, so each key's actions run one at a time in order while
//! different keys run in parallel. The queue lives in memory: an action not yet started is
//! lost if the process dies, and resending it with the same action id is safe.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use purereducer_core::{Action, ActionStatus, Version};
use purereducer_storage::{Completion, Store};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::engine::Engine;
use crate::error::ApiError;
use crate::hub::Hub;

/// Depth of each shard's queue; a full queue makes `PublishAction` wait.
const SHARD_DEPTH: usize = 1024;

/// The sending side of the in-process action queue.
#[derive(Debug, Clone)]
pub struct LocalQueue {
    shards: Vec<mpsc::Sender<Action>>,
}

impl LocalQueue {
    /// Starts `shards` workers; they stop once every `LocalQueue` clone is dropped and
    /// their queues are drained.
    pub fn start(engine: Arc<Engine>, hub: Arc<Hub>, shards: usize) -> (Self, Vec<JoinHandle<()>>) {
        let mut senders = Vec::new();
        let mut workers = Vec::new();
        for _ in 0..shards.max(1) {
            let (tx, rx) = mpsc::channel(SHARD_DEPTH);
            senders.push(tx);
            workers.push(tokio::spawn(work(rx, engine.clone(), hub.clone())));
        }
        (Self { shards: senders }, workers)
    }

    /// Queues an action behind earlier actions of its key.
    pub async fn enqueue(&self, action: Action) -> Result<(), ApiError> {
        let mut hasher = DefaultHasher::new();
        action.key.hash(&mut hasher);
        let shard = (hasher.finish() % self.shards.len() as u64) as usize;
        self.shards[shard]
            .send(action)
            .await
            .map_err(|_| ApiError::Unavailable("the server is shutting down; publish again elsewhere".to_owned()))
    }
}

/// Most queued actions handed to the engine at once.
const MAX_HANDOFF: usize = 512;

/// Hand-offs whose outcomes a worker may wait for at once.
const IN_FLIGHT: usize = 64;

async fn work(mut queue: mpsc::Receiver<Action>, engine: Arc<Engine>, hub: Arc<Hub>) {
    let in_flight = Arc::new(tokio::sync::Semaphore::new(IN_FLIGHT));
    while let Some(first) = queue.recv().await {
        // Everything already queued goes to the owners together, so it folds and group-commits.
        let mut actions = vec![(first, tracing::Span::current())];
        while actions.len() < MAX_HANDOFF {
            match queue.try_recv() {
                Ok(action) => actions.push((action, tracing::Span::current())),
                Err(_) => break,
            }
        }
        let Ok(permit) = in_flight.clone().acquire_owned().await else {
            return;
        };
        // Once handed over, the order per key is fixed: the next hand-off need not wait for
        // these outcomes.
        let outcomes = engine.submit_all(actions).await;
        let (engine, hub) = (engine.clone(), hub.clone());
        tokio::spawn(async move {
            let outcomes = outcomes.await;
            announce(&engine, &hub, outcomes).await;
            drop(permit);
        });
    }
    // Wait for the hand-offs still in flight before reporting the queue drained.
    let _ = in_flight.acquire_many(IN_FLIGHT as u32).await;
}

/// Records the completions of applied queued actions and announces them.
pub(crate) async fn announce(
    engine: &Engine,
    hub: &Hub,
    outcomes: Vec<(Action, Result<purereducer_core::Outcome, crate::engine::EngineError>)>,
) {
    let completions: Vec<Completion> = outcomes
        .into_iter()
        .map(|(action, outcome)| completion_of(&action, outcome))
        .collect();
    record(engine.store(), &completions).await;
    for completion in completions {
        hub.completed(completion.correlation_id);
    }
}

fn completion_of(
    action: &Action,
    outcome: Result<purereducer_core::Outcome, crate::engine::EngineError>,
) -> Completion {
    match outcome {
        Ok(outcome) => Completion {
            correlation_id: action.correlation_id.clone(),
            action_id: action.id,
            workflow_key: action.key.to_string(),
            status: outcome.status,
            version: outcome.version,
            result_hash: outcome.result_hash,
            rejection_reason: outcome.rejection_reason,
        },
        // A queued action that cannot be applied at all is reported as refused.
        Err(err) => Completion {
            correlation_id: action.correlation_id.clone(),
            action_id: action.id,
            workflow_key: action.key.to_string(),
            status: ActionStatus::Rejected,
            version: Version::NONE,
            result_hash: String::new(),
            rejection_reason: Some(err.to_string()),
        },
    }
}

async fn record(store: &Arc<dyn Store>, completions: &[Completion]) {
    for attempt in 1..=5u32 {
        match store.record_completions(completions).await {
            Ok(()) => return,
            Err(err) => {
                tracing::warn!(attempt, error = %err, completions = completions.len(), "recording completions failed");
                tokio::time::sleep(std::time::Duration::from_millis(50 * u64::from(attempt))).await;
            }
        }
    }
}
