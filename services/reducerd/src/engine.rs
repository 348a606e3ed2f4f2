//! The action engine behind `HandleAction`: dedup check, read, reduce, compare-and-set with
//! conflict-only retries, exactly-once recording, and the events of each outcome.
//!
//! Deciding an outcome ([`decide`]) is pure; turning decisions into one atomic
//! [`CommitRequest`] is separate, so several queued actions for one key can later be folded
//! into a single commit by deciding them in sequence and committing once.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use purereducer_api::v1::reduce_response;
use purereducer_api::v1::reducer_function_client::ReducerFunctionClient;
use purereducer_api::v1::{self as api};
use purereducer_core::outcome::{request_hash, result_hash};
use purereducer_core::{
    Action, ActionStatus, JsonObject, Outcome, ReducerSpec, Reduction, Rejection, RetryPolicy, Version, WorkflowTypes,
};
use purereducer_storage::{CommitRequest, CommitResult, NewRecord, ProcessedRecord, StateWrite, Store, StoredState};
use rand::Rng;
use tonic::transport::{Channel, Endpoint};
use tracing::Instrument as _;

use crate::convert::{intents_to_proto, json_to_struct, struct_to_json};
use crate::error::ApiError;
use crate::events::{CommitContext, commit_events, gave_up_event};
use crate::hub::Hub;
use crate::metrics::{elapsed_ms, metrics, workflow_labels};

/// Applies actions exactly once.
#[derive(Debug, Clone)]
pub struct Engine {
    store: Arc<dyn Store>,
    types: WorkflowTypes,
    retry: RetryPolicy,
    dedup_ttl: Duration,
    remotes: HashMap<String, ReducerFunctionClient<Channel>>,
    hub: Arc<Hub>,
}

/// What the reducer decided for one action at one version.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Commit the reduction as the next version.
    Commit(Reduction),
    /// Record the refusal; the state stays.
    Reject(Rejection),
}

impl Engine {
    /// An engine over `store` with the declared workflow types.
    pub fn new(
        store: Arc<dyn Store>,
        types: WorkflowTypes,
        retry: RetryPolicy,
        dedup_ttl: Duration,
        hub: Arc<Hub>,
    ) -> Result<Self, ApiError> {
        let mut remotes = HashMap::new();
        for name in types.names() {
            if let Some(ReducerSpec::Remote { endpoint, .. }) = types.get(name) {
                // Connect lazily: a remote reducer that is down must not stop start-up.
                let channel = Endpoint::from_shared(endpoint.clone())
                    .map_err(|err| ApiError::Internal(format!("remote endpoint {endpoint}: {err}")))?
                    .connect_lazy();
                remotes.insert(name.to_owned(), ReducerFunctionClient::new(channel));
            }
        }
        Ok(Self {
            store,
            types,
            retry,
            dedup_ttl,
            remotes,
            hub,
        })
    }

    /// Commits atomically and wakes the outbox pipeline when events were written.
    /// `labels` are the workflow's type and namespace, for the commit metrics.
    pub async fn commit(
        &self,
        request: CommitRequest,
        labels: &[opentelemetry::KeyValue],
    ) -> Result<CommitResult, ApiError> {
        let wrote_events = !request.events.is_empty();
        let writes_state = request.write.is_some();
        let records = request.records.len() as u64;
        let started = Instant::now();
        let result = self.store.commit(request).await;
        let metrics = metrics();
        metrics.commit_latency_ms.record(elapsed_ms(started), labels);
        match result? {
            CommitResult::Committed { version } => {
                if writes_state {
                    metrics.state_commits.add(1, labels);
                }
                if records > 0 {
                    metrics.dedup_records.add(records, labels);
                }
                if wrote_events {
                    self.hub.outbox_written();
                }
                Ok(CommitResult::Committed { version })
            }
            CommitResult::Conflict { current } => {
                metrics.state_conflicts.add(1, labels);
                Ok(CommitResult::Conflict { current })
            }
            other => Ok(other),
        }
    }

    /// Reads a workflow's canonical state, counting the read and storage failures.
    pub async fn get_state(&self, key: &purereducer_core::WorkflowKey) -> Result<Option<StoredState>, ApiError> {
        counted_read(self.store.get_state(key).await)
    }

    /// The store the engine commits to.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The declared workflow types.
    pub fn types(&self) -> &WorkflowTypes {
        &self.types
    }

    /// Applies one action and returns its outcome.
    pub async fn handle(&self, action: &Action) -> Result<Outcome, ApiError> {
        let labels = workflow_labels(action.workflow_type.as_str(), action.namespace.as_str());
        let result = self.handle_inner(action, &labels).await;
        let metrics = metrics();
        match &result {
            Ok(outcome) => match outcome.status {
                ActionStatus::Committed | ActionStatus::Rejected => metrics.successful_actions.add(1, &labels),
                ActionStatus::GaveUp => metrics.failed_actions.add(1, &labels),
                _ => {}
            },
            Err(err) if err.is_server_fault() => metrics.failed_actions.add(1, &labels),
            Err(_) => {}
        }
        result
    }

    async fn handle_inner(&self, action: &Action, labels: &[opentelemetry::KeyValue]) -> Result<Outcome, ApiError> {
        let Some(spec) = self.types.get(action.workflow_type.as_str()) else {
            return Err(unknown_type(&self.types, action.workflow_type.as_str()));
        };
        let metrics = metrics();
        let fingerprint = request_hash(action);
        let mut last_seen = Version::NONE;
        for attempt in 1..=self.retry.max_attempts {
            metrics.dedup_checks.add(1, labels);
            let snapshot = counted_read(self.store.snapshot(&action.key, action.id).await)?;
            if let Some(record) = snapshot.processed {
                metrics.dedup_hits.add(1, labels);
                return duplicate(action, &fingerprint, record, snapshot.state.as_ref());
            }
            let (state, version) = match &snapshot.state {
                Some(stored) => {
                    check_identity(action, stored)?;
                    (stored.state.clone(), stored.version)
                }
                None => (JsonObject::new(), Version::NONE),
            };
            let reduce_span = tracing::info_span!("reduce", workflow_type = %action.workflow_type, %version, attempt);
            let decision = self
                .decide(spec, action, &state, version)
                .instrument(reduce_span)
                .await?;
            let commit_span = tracing::info_span!("commit", otel.kind = "client", db.operation = "commit", expected_version = %version);
            // The events take their trace context from the commit span.
            let (request, outcome) =
                commit_span.in_scope(|| self.plan(action, &fingerprint, version, &state, decision, attempt));
            match self.commit(request, labels).instrument(commit_span).await? {
                CommitResult::Committed { .. } => return Ok(outcome),
                CommitResult::AlreadyProcessed(record) => {
                    metrics.dedup_hits.add(1, labels);
                    let stored = self.store.get_state(&action.key).await?;
                    return duplicate(action, &fingerprint, record, stored.as_ref());
                }
                CommitResult::Conflict { current } => {
                    last_seen = current;
                    metrics.conflict_attempts.add(1, labels);
                    tracing::debug!(attempt, workflow_type = %action.workflow_type, %current, "commit conflict");
                    if attempt < self.retry.max_attempts {
                        let unit: f64 = rand::rng().random();
                        let backoff = self.retry.backoff(attempt, unit);
                        metrics.backoff_ms.record(backoff.as_secs_f64() * 1000.0, labels);
                        tokio::time::sleep(backoff).await;
                    }
                }
            }
        }
        metrics.gave_up.add(1, labels);
        self.give_up(action, last_seen).await
    }

    async fn give_up(&self, action: &Action, last_seen: Version) -> Result<Outcome, ApiError> {
        let attempts = self.retry.max_attempts;
        tracing::warn!(
            workflow_type = %action.workflow_type,
            namespace = %action.namespace,
            action_id = %action.id,
            attempts,
            "Reducer gave up after repeated version conflicts"
        );
        self.store
            .append_events(vec![gave_up_event(action, attempts, last_seen)])
            .await?;
        self.hub.outbox_written();
        let hash = result_hash(ActionStatus::GaveUp, last_seen, None, &[], None);
        Ok(Outcome {
            status: ActionStatus::GaveUp,
            version: last_seen,
            state: None,
            intents: Vec::new(),
            rejection_reason: None,
            attempts,
            result_hash: hash,
        })
    }

    /// Runs the workflow type's reducer.
    async fn decide(
        &self,
        spec: &ReducerSpec,
        action: &Action,
        state: &JsonObject,
        version: Version,
    ) -> Result<Decision, ApiError> {
        match spec {
            ReducerSpec::Local(reducer) => Ok(decide(reducer.as_ref(), state, version, action)),
            ReducerSpec::Remote { endpoint, timeout } => {
                let Some(client) = self.remotes.get(action.workflow_type.as_str()) else {
                    return Err(ApiError::Internal(format!(
                        "no client for remote type {}",
                        action.workflow_type
                    )));
                };
                call_remote(client.clone(), endpoint, *timeout, action, state, version).await
            }
        }
    }

    /// Turns a decision into one atomic commit and the outcome it yields when it lands.
    fn plan(
        &self,
        action: &Action,
        fingerprint: &str,
        version: Version,
        state: &JsonObject,
        decision: Decision,
        attempt: u32,
    ) -> (CommitRequest, Outcome) {
        let context = CommitContext {
            workflow_key: action.key.as_str(),
            namespace: action.namespace.as_str(),
            workflow_type: action.workflow_type.as_str(),
            action_id: action.id.to_string(),
            action_type: action.action_type.as_str(),
            correlation_id: &action.correlation_id,
        };
        let (status, new_version, new_state, intents, reason) = match decision {
            Decision::Commit(reduction) => (
                ActionStatus::Committed,
                version.next(),
                reduction.state,
                reduction.intents,
                None,
            ),
            Decision::Reject(rejection) => (
                ActionStatus::Rejected,
                version,
                state.clone(),
                Vec::new(),
                Some(rejection.reason),
            ),
        };
        let committed = status == ActionStatus::Committed;
        let hash = result_hash(
            status,
            new_version,
            committed.then_some(&new_state),
            &intents,
            reason.as_deref(),
        );
        let record = NewRecord {
            action_id: action.id,
            request_hash: fingerprint.to_owned(),
            result_hash: hash.clone(),
            version: new_version,
            status,
            intents: intents.clone(),
            rejection_reason: reason.clone(),
            ttl: self.dedup_ttl,
        };
        let (write, events) = if committed {
            let events = commit_events(&context, new_version, &new_state, &intents, &hash);
            let write = StateWrite {
                state: new_state.clone(),
                version: new_version,
                workflow_type: action.workflow_type.clone(),
                namespace: action.namespace.clone(),
                provenance: serde_json::json!({
                    "action_id": action.id.to_string(),
                    "action_type": action.action_type.as_str(),
                    "correlation_id": action.correlation_id,
                    "actor": "reducer-service",
                }),
            };
            (Some(write), events)
        } else {
            (None, Vec::new())
        };
        let request = CommitRequest {
            key: action.key.clone(),
            expected: version,
            write,
            records: vec![record],
            events,
        };
        let outcome = Outcome {
            status,
            version: new_version,
            state: Some(new_state),
            intents,
            rejection_reason: reason,
            attempts: attempt,
            result_hash: hash,
        };
        (request, outcome)
    }
}

/// Counts a canonical-state read, and its failure, for the canonical-store metrics.
fn counted_read<T>(result: purereducer_storage::StorageResult<T>) -> Result<T, ApiError> {
    let metrics = metrics();
    metrics.get_state.add(1, &[]);
    result.map_err(|err| {
        metrics.get_state_errors.add(1, &[]);
        ApiError::from(err)
    })
}

/// Runs a local reducer: the pure heart of the engine.
pub fn decide(
    reducer: &dyn purereducer_core::Reducer,
    state: &JsonObject,
    version: Version,
    action: &Action,
) -> Decision {
    match reducer.reduce(state, version, action) {
        Ok(reduction) => Decision::Commit(reduction),
        Err(rejection) => Decision::Reject(rejection),
    }
}

async fn call_remote(
    mut client: ReducerFunctionClient<Channel>,
    endpoint: &str,
    timeout: Duration,
    action: &Action,
    state: &JsonObject,
    version: Version,
) -> Result<Decision, ApiError> {
    let mut request = tonic::Request::new(api::ReduceRequest {
        state: Some(json_to_struct(state)),
        version: version.get(),
        action: Some(api::Action {
            action_id: action.id.to_string(),
            workflow_key: action.key.to_string(),
            workflow_type: action.workflow_type.to_string(),
            action_type: action.action_type.to_string(),
            payload: Some(json_to_struct(&action.payload)),
            correlation_id: action.correlation_id.clone(),
            namespace: action.namespace.to_string(),
        }),
    });
    request.set_timeout(timeout);
    // The remote reducer's spans join the action's trace.
    for (name, value) in purereducer_bus::trace::inject_current() {
        if let (Ok(key), Ok(value)) = (
            tonic::metadata::MetadataKey::from_bytes(name.as_bytes()),
            tonic::metadata::MetadataValue::try_from(value.as_str()),
        ) {
            request.metadata_mut().insert(key, value);
        }
    }
    let answer = match tokio::time::timeout(timeout, client.reduce(request)).await {
        Err(_) => return Err(remote_deadline(action, endpoint, timeout)),
        Ok(Err(status))
            if status.code() == tonic::Code::DeadlineExceeded || status.code() == tonic::Code::Cancelled =>
        {
            return Err(remote_deadline(action, endpoint, timeout));
        }
        Ok(Err(status)) => {
            return Err(ApiError::Unavailable(format!(
                "remote reducer for workflow type {} at {endpoint} failed ({:?}: {}); the state is unchanged, retry the action",
                action.workflow_type,
                status.code(),
                status.message()
            )));
        }
        Ok(Ok(response)) => response.into_inner(),
    };
    match answer.outcome {
        Some(reduce_response::Outcome::Reduced(reduced)) => {
            let state = struct_to_json(&reduced.state.unwrap_or_default(), "reduced.state").map_err(|err| {
                ApiError::FailedPrecondition(format!(
                    "remote reducer at {endpoint} returned an unusable state: {err}"
                ))
            })?;
            let intents = reduced
                .intents
                .into_iter()
                .map(|intent| {
                    Ok(purereducer_core::Intent {
                        intent_type: intent.intent_type,
                        payload: struct_to_json(&intent.payload.unwrap_or_default(), "reduced.intents.payload")?,
                    })
                })
                .collect::<Result<Vec<_>, purereducer_core::FieldError>>()
                .map_err(|err| {
                    ApiError::FailedPrecondition(format!(
                        "remote reducer at {endpoint} returned an unusable intent: {err}"
                    ))
                })?;
            Ok(Decision::Commit(Reduction { state, intents }))
        }
        Some(reduce_response::Outcome::Rejected(rejected)) => Ok(Decision::Reject(Rejection::new(rejected.reason))),
        None => Err(ApiError::FailedPrecondition(format!(
            "remote reducer at {endpoint} returned neither a reduced state nor a rejection"
        ))),
    }
}

fn remote_deadline(action: &Action, endpoint: &str, timeout: Duration) -> ApiError {
    ApiError::DeadlineExceeded(format!(
        "remote reducer for workflow type {} at {endpoint} did not answer within {} ms; the state is unchanged, retry the action",
        action.workflow_type,
        timeout.as_millis()
    ))
}

fn duplicate(
    action: &Action,
    fingerprint: &str,
    record: ProcessedRecord,
    stored: Option<&StoredState>,
) -> Result<Outcome, ApiError> {
    if !record.request_hash.is_empty() && record.request_hash != fingerprint {
        return Err(ApiError::AlreadyExists(format!(
            "action_id {} was already used on workflow {} with a different workflow type, action type, namespace or payload; \
             send a new action_id for a new action",
            action.id, action.key
        )));
    }
    // The state is returned only while the workflow is still at the recorded version.
    let state = stored.filter(|s| s.version == record.version).map(|s| s.state.clone());
    Ok(Outcome {
        status: ActionStatus::Duplicate,
        version: record.version,
        state,
        intents: record.intents,
        rejection_reason: record.rejection_reason,
        attempts: 0,
        result_hash: record.result_hash,
    })
}

fn check_identity(action: &Action, stored: &StoredState) -> Result<(), ApiError> {
    if stored.workflow_type != action.workflow_type.as_str() {
        return Err(ApiError::FailedPrecondition(format!(
            "workflow {} has type {}, not {}; send actions of its own type or use another workflow key",
            action.key, stored.workflow_type, action.workflow_type
        )));
    }
    if stored.namespace != action.namespace.as_str() {
        return Err(ApiError::FailedPrecondition(format!(
            "workflow {} belongs to namespace {}, not {}",
            action.key, stored.namespace, action.namespace
        )));
    }
    Ok(())
}

/// The error for a workflow type nobody declared.
pub fn unknown_type(types: &WorkflowTypes, name: &str) -> ApiError {
    ApiError::InvalidArgument(vec![purereducer_core::FieldError::new(
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
