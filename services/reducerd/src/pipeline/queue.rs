//! The database action queue for `PublishAction` when no Kafka is configured. A publish is
//! answered once its action is committed to the queue table (publishes that arrive together
//! share one insert), so an acknowledged action survives a crash. The worker claims the
//! oldest queued actions, hands them to the engine in queue order (so in order per key) and
//! finishes the claim by recording their completions and deleting them in one transaction.
//! A claim not finished — the process died, or the database went away — gives its actions
//! back; applying one again answers from its dedup record.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use prost::Message as _;
use purereducer_api::v1;
use purereducer_core::{Action, ActionStatus, Version};
use purereducer_storage::{Completion, QueuedAction, Store};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use crate::convert::parse_action;
use crate::engine::{Engine, EngineError};
use crate::error::ApiError;
use crate::hub::Hub;

/// Publishes that may wait for the insert task at once; more make `PublishAction` wait.
const INSERT_DEPTH: usize = 4096;

/// Most actions in one insert.
const MAX_INSERT: usize = 512;

type Publish = (QueuedAction, oneshot::Sender<Result<(), ApiError>>);

/// The publishing side of the database queue.
#[derive(Debug, Clone)]
pub struct DbQueue {
    inserts: mpsc::Sender<Publish>,
}

impl DbQueue {
    /// Starts the insert task; it stops once every `DbQueue` clone is dropped and what was
    /// sent is answered.
    pub fn start(store: Arc<dyn Store>, hub: Arc<Hub>) -> (Self, JoinHandle<()>) {
        let (inserts, rx) = mpsc::channel(INSERT_DEPTH);
        (Self { inserts }, tokio::spawn(insert_loop(rx, store, hub)))
    }

    /// Queues an action behind the earlier actions of its key; returns once it is durable.
    pub async fn enqueue(&self, action: &Action) -> Result<(), ApiError> {
        let headers = purereducer_bus::trace::inject_current();
        let queued = QueuedAction {
            namespace: action.namespace().to_string(),
            workflow_key: action.key.to_string(),
            payload: encode_action(action),
            headers: serde_json::to_string(&headers).unwrap_or_else(|_| "{}".to_owned()),
        };
        let (reply, answer) = oneshot::channel();
        self.inserts.send((queued, reply)).await.map_err(|_| shutting_down())?;
        answer.await.map_err(|_| shutting_down())?
    }
}

fn shutting_down() -> ApiError {
    ApiError::Unavailable("the server is shutting down; publish again elsewhere".to_owned())
}

/// The wire form of an action, as the queues carry it.
pub(crate) fn encode_action(action: &Action) -> Vec<u8> {
    v1::Action {
        action_id: action.id.to_string(),
        workflow_key: action.key.to_string(),
        workflow_type: action.workflow_type.to_string(),
        action_type: action.action_type.to_string(),
        payload: Some(crate::convert::json_to_struct(&action.payload)),
        correlation_id: action.correlation_id.clone(),
        namespace: action.namespace().to_string(),
    }
    .encode_to_vec()
}

async fn insert_loop(mut rx: mpsc::Receiver<Publish>, store: Arc<dyn Store>, hub: Arc<Hub>) {
    while let Some(first) = rx.recv().await {
        // Whatever else is waiting joins this insert.
        let mut batch = vec![first];
        while batch.len() < MAX_INSERT {
            match rx.try_recv() {
                Ok(publish) => batch.push(publish),
                Err(_) => break,
            }
        }
        let (rows, replies): (Vec<QueuedAction>, Vec<_>) = batch.into_iter().unzip();
        let queued = match store.enqueue_actions(&rows).await {
            Ok(()) => {
                hub.actions_queued();
                true
            }
            Err(err) => {
                tracing::warn!(error = %err, actions = rows.len(), "queueing actions failed");
                false
            }
        };
        for reply in replies {
            let _ = reply.send(if queued {
                Ok(())
            } else {
                Err(ApiError::Unavailable(
                    "the database is unavailable; publish again with the same action id".to_owned(),
                ))
            });
        }
    }
}

/// What the queue worker needs.
#[derive(Debug)]
pub struct Worker {
    /// The database the queue is in.
    pub store: Arc<dyn Store>,
    /// Applies the actions.
    pub engine: Arc<Engine>,
    /// Announces completions; wakes the worker when actions are queued.
    pub hub: Arc<Hub>,
    /// Largest payload an action may carry.
    pub max_payload: usize,
    /// Most actions per claim.
    pub max_claim: u32,
    /// Longest the worker sleeps when the queue looks empty (actions queued by another
    /// replica wake it sooner where the database sends notifications).
    pub poll: Duration,
}

impl Worker {
    /// Claims and applies queued actions until `stop` turns true; the claim in progress is
    /// finished first.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        let mut failures = 0u32;
        while !*stop.borrow() {
            let claim = match self.store.claim_actions(self.max_claim).await {
                Ok(claim) => {
                    failures = 0;
                    claim
                }
                Err(err) => {
                    failures += 1;
                    tracing::warn!(error = %err, "cannot claim queued actions; retrying");
                    let backoff = crate::engine::outage_backoff(failures);
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = stop.changed() => {}
                    }
                    continue;
                }
            };
            if claim.actions.is_empty() {
                if let Err(err) = claim.release().await {
                    tracing::debug!(error = %err, "releasing an empty claim failed");
                }
                tokio::select! {
                    // A publish since the last wait left a permit: nothing is missed.
                    _ = self.hub.queue_wait() => {}
                    _ = tokio::time::sleep(self.poll) => {}
                    _ = stop.changed() => {}
                }
                continue;
            }
            let mut done = Vec::with_capacity(claim.actions.len());
            let mut actions = Vec::with_capacity(claim.actions.len());
            let mut seqs = Vec::with_capacity(claim.actions.len());
            for claimed in &claim.actions {
                match decode(&claimed.action.payload, self.max_payload) {
                    Ok(action) => {
                        let span = tracing::info_span!("queued action", otel.kind = "consumer", workflow_type = %action.workflow_type);
                        let headers: HashMap<String, String> =
                            serde_json::from_str(&claimed.action.headers).unwrap_or_default();
                        purereducer_bus::trace::set_parent(&span, &headers);
                        seqs.push(claimed.seq);
                        actions.push((action, span));
                    }
                    Err(reason) => {
                        // Only a config change (a smaller payload limit) makes a queued row
                        // unreadable; it can never apply, so it leaves the queue.
                        tracing::error!(seq = claimed.seq, %reason, "queued action cannot be applied; removed");
                        done.push(claimed.seq);
                    }
                }
            }
            let outcomes = self.engine.submit_queued(actions).await.await;
            let mut completions = Vec::with_capacity(outcomes.len());
            for (seq, (action, outcome)) in seqs.into_iter().zip(outcomes) {
                // An undecided action (the process is stopping) stays queued.
                if let Some(completion) = completion_of(&action, outcome) {
                    completions.push(completion);
                    done.push(seq);
                }
            }
            match claim.finish(&completions, &done).await {
                Ok(()) => {
                    for completion in &completions {
                        self.hub.completed_here(completion);
                    }
                }
                Err(err) => {
                    // The actions stay queued and are claimed again; their dedup records
                    // answer them the second time.
                    tracing::warn!(error = %err, actions = done.len(), "finishing a claim failed; its actions will be claimed again");
                }
            }
        }
    }
}

/// What a queued action did. A queued action can be delivered more than once (a claim or
/// batch that could not be finished is delivered again), and the second delivery finds the
/// first one's dedup record: its completion still reports what the action did, once.
fn queued_status(outcome: &purereducer_core::Outcome) -> ActionStatus {
    match outcome.status {
        ActionStatus::Duplicate if outcome.rejection_reason.is_some() => ActionStatus::Rejected,
        ActionStatus::Duplicate => ActionStatus::Committed,
        status => status,
    }
}

fn decode(payload: &[u8], max_payload: usize) -> Result<Action, String> {
    let raw = v1::Action::decode(payload).map_err(|_| "not an encoded action".to_owned())?;
    parse_action(Some(&raw), "action", max_payload).map_err(|errors| ApiError::from(errors).to_string())
}

/// Records the completions of decided queued actions and announces them (the Kafka action
/// consumer's path). Returns whether every action was decided and recorded: one that was
/// not (the process is stopping during an outage) is still queued and must be delivered
/// again.
pub(crate) async fn announce(
    engine: &Engine,
    hub: &Hub,
    outcomes: Vec<(Action, Result<purereducer_core::Outcome, EngineError>)>,
) -> bool {
    let mut decided = true;
    let completions: Vec<Completion> = outcomes
        .into_iter()
        .filter_map(|(action, outcome)| {
            let completion = completion_of(&action, outcome);
            decided &= completion.is_some();
            completion
        })
        .collect();
    let mut failures = 0;
    while let Err(err) = engine.store().record_completions(&completions).await {
        if engine.is_stopping() {
            tracing::warn!(error = %err, completions = completions.len(), "recording completions failed while stopping; the actions will be delivered again");
            return false;
        }
        failures += 1;
        tracing::warn!(error = %err, completions = completions.len(), "recording completions failed; retrying");
        tokio::time::sleep(crate::engine::outage_backoff(failures)).await;
    }
    for completion in &completions {
        hub.completed_here(completion);
    }
    decided
}

/// The completion of a decided action; `None` for an outage, which decides nothing.
fn completion_of(action: &Action, outcome: Result<purereducer_core::Outcome, EngineError>) -> Option<Completion> {
    Some(match outcome {
        Ok(outcome) => Completion {
            correlation_id: action.correlation_id.clone(),
            action_id: action.id,
            namespace: action.namespace().to_string(),
            workflow_key: action.key.to_string(),
            status: queued_status(&outcome),
            version: outcome.version,
            result_hash: outcome.result_hash,
            rejection_reason: outcome.rejection_reason,
        },
        Err(err) if err.is_retryable() => return None,
        // A queued action that can never be applied (its id reused with other content, a
        // reducer answering nonsense) is reported as refused, with the reason.
        Err(err) => Completion {
            correlation_id: action.correlation_id.clone(),
            action_id: action.id,
            namespace: action.namespace().to_string(),
            workflow_key: action.key.to_string(),
            status: ActionStatus::Rejected,
            version: Version::NONE,
            result_hash: String::new(),
            rejection_reason: Some(err.to_string()),
        },
    })
}
