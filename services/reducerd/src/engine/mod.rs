//! The action engine: every write to a workflow — `HandleAction`, queued actions and
//! `TryCommit` — enters here and is applied by the key's owner.
//!
//! Layout:
//! - [`owner`]: one owner task per slice of the key space; mailboxes, held state, rounds
//!   that group-commit many keys in one transaction.
//! - `job`: the work an owner takes (actions and direct compare-and-sets).
//! - `fold`: one key's part of a round, its jobs folded into one commit request.
//! - [`plan`]: the pure part — deciding an action and folding decisions into one commit.
//! - [`remote`]: remote reducers over gRPC, answering in domain terms.
//! - [`error`]: the engine's error type, classified once.
//!
//! The engine depends on the domain core and the storage trait; gRPC status codes are
//! chosen from [`EngineError`] at the edge (`crate::error`).

pub mod error;
mod fold;
mod job;
mod owner;
pub mod plan;
pub mod remote;
#[cfg(test)]
mod tests;

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;

use purereducer_api::v1 as api;
use purereducer_core::outcome::request_hash;
use purereducer_core::{Action, ActionStatus, Outcome, RetryPolicy, Version, WorkflowKey, WorkflowTypes};
use purereducer_storage::{Store, StoredState};
use tokio::sync::{mpsc, oneshot};

pub use self::error::EngineError;
use self::job::{ActionJob, DirectJob, Job};
use self::owner::Owner;
pub use self::owner::outage_backoff;
pub use self::plan::{DirectCommit, DirectOutcome, Provenance};
use self::remote::RemoteReducers;
use crate::config::OwnerLimits;
use crate::convert::{intents_to_proto, json_to_struct};
use crate::hub::Hub;
use crate::metrics::{metrics, workflow_labels};

/// Depth of each owner's mailbox; a full mailbox makes callers wait (backpressure).
const MAILBOX_DEPTH: usize = 4096;

/// What every owner shares.
#[derive(Debug)]
struct Shared {
    store: Arc<dyn Store>,
    types: WorkflowTypes,
    retry: RetryPolicy,
    dedup_ttl: Duration,
    remotes: RemoteReducers,
    hub: Arc<Hub>,
    limits: OwnerLimits,
    /// Turns true when the process stops: queued actions stop retrying outages.
    stopping: tokio::sync::watch::Sender<bool>,
}

/// Applies actions exactly once, through one owner per key.
#[derive(Debug, Clone)]
pub struct Engine {
    shared: Arc<Shared>,
    owners: Vec<mpsc::Sender<Job>>,
}

impl Engine {
    /// An engine over `store` with the declared workflow types; starts its owner tasks,
    /// which stop once every clone of the engine is dropped and their work is answered.
    pub fn new(
        store: Arc<dyn Store>,
        types: WorkflowTypes,
        retry: RetryPolicy,
        dedup_ttl: Duration,
        hub: Arc<Hub>,
        limits: OwnerLimits,
    ) -> Result<Self, EngineError> {
        let remotes = RemoteReducers::new(&types)?;
        let shared = Arc::new(Shared {
            store,
            types,
            retry,
            dedup_ttl,
            remotes,
            hub,
            limits,
            stopping: tokio::sync::watch::Sender::new(false),
        });
        let count = limits.owners.max(1);
        let per_owner = limits.max_cached_workflows.div_ceil(count);
        let owners = (0..count)
            .map(|_| {
                let (tx, rx) = mpsc::channel(MAILBOX_DEPTH);
                tokio::spawn(Owner::new(shared.clone(), rx, per_owner).run());
                tx
            })
            .collect();
        Ok(Self { shared, owners })
    }

    /// Reads a workflow's canonical state, counting the read and storage failures.
    pub async fn get_state(&self, key: &WorkflowKey) -> Result<Option<StoredState>, EngineError> {
        let metrics = metrics();
        metrics.get_state.add(1, &[]);
        self.shared.store.get_state(key).await.map_err(|err| {
            metrics.get_state_errors.add(1, &[]);
            EngineError::from(err)
        })
    }

    /// The store the engine commits to.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.shared.store
    }

    /// The declared workflow types.
    pub fn types(&self) -> &WorkflowTypes {
        &self.shared.types
    }

    /// Applies one action and returns its outcome.
    pub async fn handle(&self, action: &Action) -> Result<Outcome, EngineError> {
        let waiting = self.submit(action.clone(), tracing::Span::current(), false).await;
        finish(action, waiting).await
    }

    /// Hands several queued actions to their owners, in order, and returns once they are all
    /// in the owners' mailboxes (so their order per key is fixed); the returned future yields
    /// their outcomes. A caller can hand over the next batch before this one's outcomes are in.
    ///
    /// A queued action has no caller waiting to resend it, so an outage (database or remote
    /// reducer unavailable) does not end it: its owner retries it, with backoff and in order
    /// behind nothing else of its key, until it is decided. Only once [`Engine::stop_retrying`]
    /// was called does a retryable error come back, and then nothing was decided: the action
    /// is still queued.
    pub async fn submit_queued(
        &self,
        actions: Vec<(Action, tracing::Span)>,
    ) -> impl std::future::Future<Output = Vec<(Action, Result<Outcome, EngineError>)>> + Send + 'static {
        let mut waiting = Vec::with_capacity(actions.len());
        for (action, span) in actions {
            let answer = self.submit(action.clone(), span, true).await;
            waiting.push((action, answer));
        }
        async move {
            let mut outcomes = Vec::with_capacity(waiting.len());
            for (action, answer) in waiting {
                let outcome = finish(&action, answer).await;
                outcomes.push((action, outcome));
            }
            outcomes
        }
    }

    /// Commits `commit.state` if the workflow is still at `commit.expected`.
    pub async fn try_commit(&self, commit: DirectCommit) -> Result<DirectOutcome, EngineError> {
        let (reply, answer) = oneshot::channel();
        let owner = self.owner_of(&commit.key);
        let job = Job::Direct(DirectJob {
            commit,
            span: tracing::Span::current(),
            reply,
        });
        owner.send(job).await.map_err(|_| shutting_down())?;
        answer.await.map_err(|_| shutting_down())?
    }

    /// Makes queued actions stop retrying outages (the process is stopping): what is still
    /// undecided comes back as a retryable error and stays queued.
    pub fn stop_retrying(&self) {
        self.shared.stopping.send_replace(true);
    }

    /// Whether [`Engine::stop_retrying`] was called.
    pub fn is_stopping(&self) -> bool {
        *self.shared.stopping.borrow()
    }

    async fn submit(
        &self,
        action: Action,
        span: tracing::Span,
        queued: bool,
    ) -> Result<oneshot::Receiver<Result<Outcome, EngineError>>, EngineError> {
        if self.shared.types.get(action.workflow_type.as_str()).is_none() {
            return Err(unknown_type(&self.shared.types, action.workflow_type.as_str()));
        }
        let (reply, answer) = oneshot::channel();
        let owner = self.owner_of(&action.key);
        let job = Job::Action(ActionJob {
            fingerprint: request_hash(&action),
            action,
            conflicts: 0,
            last_seen: Version::NONE,
            queued,
            outages: 0,
            dedup_counted: false,
            span,
            reply,
        });
        owner.send(job).await.map_err(|_| shutting_down())?;
        Ok(answer)
    }

    fn owner_of(&self, key: &WorkflowKey) -> &mpsc::Sender<Job> {
        let mut hasher = DefaultHasher::new();
        key.hash(&mut hasher);
        let index = (hasher.finish() % self.owners.len() as u64) as usize;
        &self.owners[index]
    }
}

/// Waits for a submitted action's outcome and counts it.
async fn finish(
    action: &Action,
    waiting: Result<oneshot::Receiver<Result<Outcome, EngineError>>, EngineError>,
) -> Result<Outcome, EngineError> {
    let result = match waiting {
        Ok(answer) => answer.await.unwrap_or_else(|_| Err(shutting_down())),
        Err(error) => Err(error),
    };
    let labels = workflow_labels(action.workflow_type.as_str(), action.namespace().as_str());
    let metrics = metrics();
    match &result {
        Ok(outcome) => match outcome.status {
            ActionStatus::Committed | ActionStatus::Rejected => metrics.successful_actions.add(1, &labels),
            ActionStatus::GaveUp => metrics.failed_actions.add(1, &labels),
            ActionStatus::Duplicate => {}
        },
        // A reducer that failed on the action is counted once here, where it is answered.
        Err(err) if err.is_server_fault() || matches!(err, EngineError::BadReducer(_)) => {
            metrics.failed_actions.add(1, &labels)
        }
        Err(_) => {}
    }
    result
}

fn shutting_down() -> EngineError {
    EngineError::Unavailable("the server is shutting down; send the request to another replica".to_owned())
}

/// The error for a workflow type nobody declared.
pub fn unknown_type(types: &WorkflowTypes, name: &str) -> EngineError {
    EngineError::InvalidArgument(vec![purereducer_core::FieldError::new(
        "action.workflow_type",
        format!(
            "'{name}' is not a declared workflow type; declared: {} (add [workflow_types.{name}] to the config)",
            types.names().join(", ")
        ),
    )])
}

/// The API form of an outcome.
pub fn outcome_to_proto(action: &Action, outcome: Outcome) -> api::HandleActionResponse {
    let status = crate::convert::status_to_proto(outcome.status);
    api::HandleActionResponse {
        status: status.into(),
        version: outcome.version.get(),
        state: outcome.state.as_ref().map(json_to_struct),
        intents: intents_to_proto(&outcome.intents),
        attempts: outcome.attempts,
        result_hash: outcome.result_hash,
        rejection_reason: outcome.rejection_reason.unwrap_or_default(),
        correlation_id: action.correlation_id.clone(),
        action_id: action.id.to_string(),
        workflow_key: action.key.to_string(),
    }
}
