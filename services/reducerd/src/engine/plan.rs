//! Folding a key's waiting work into one commit, as pure functions of the state the owner
//! holds: each action is decided from the state the previous one left, takes the next
//! version (or none, when refused), and brings its own dedup record, events and outcome. The
//! result is ONE [`CommitRequest`] with a single compare-and-set on the version the fold
//! started from.

use std::time::Duration;

use purereducer_core::outcome::result_hash;
use purereducer_core::{
    Action, ActionStatus, JsonObject, Namespace, Outcome, Reduction, Rejection, TypeName, Version, WorkflowKey,
};
use purereducer_storage::{
    CommitRequest, HistoryEntry, NewRecord, OutboxEvent, ProcessedRecord, StateWrite, StoredState,
};

use super::EngineError;
use crate::events::{CommitContext, commit_events};

/// What the reducer decided for one action at one version.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Commit the reduction as the next version.
    Commit(Reduction),
    /// Record the refusal; the state stays.
    Reject(Rejection),
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

/// What a committed state may be, so that every part of the pipeline can carry it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateLimits {
    /// Largest encoded event a commit may write (`server.max_state_bytes`): the
    /// `StateCommitted` event carries the whole state, and the broker refuses messages above
    /// its limit.
    pub max_event_bytes: usize,
}

impl StateLimits {
    /// Refuses a state nested deeper than [`MAX_STATE_DEPTH`] or whose events are larger
    /// than the limit; the reason names the limit.
    pub fn check(&self, state: &JsonObject, events: &[OutboxEvent]) -> Result<(), String> {
        if let Some(reason) = self.depth_error(state) {
            return Err(reason);
        }
        match events.iter().map(|e| e.payload.len()).max() {
            Some(largest) if largest > self.max_event_bytes => Err(format!(
                "the new state would make a {largest}-byte event; the limit is {} bytes (server.max_state_bytes); \
                 keep large data outside the workflow state",
                self.max_event_bytes
            )),
            _ => Ok(()),
        }
    }

    /// Why `state` nests too deeply, if it does.
    fn depth_error(&self, state: &JsonObject) -> Option<String> {
        let depth = 1 + state.values().map(json_depth).max().unwrap_or(0);
        (depth > MAX_STATE_DEPTH)
            .then(|| format!("the new state nests {depth} levels deep; the limit is {MAX_STATE_DEPTH} levels"))
    }
}

/// How deeply a committed state may nest (objects and lists). Every decoder of the pipeline
/// reads its events within protobuf's recursion limit of 100, where each JSON level costs up
/// to three nested messages.
pub const MAX_STATE_DEPTH: usize = 30;

fn json_depth(value: &serde_json::Value) -> usize {
    match value {
        serde_json::Value::Object(map) => 1 + map.values().map(json_depth).max().unwrap_or(0),
        serde_json::Value::Array(list) => 1 + list.iter().map(json_depth).max().unwrap_or(0),
        _ => 0,
    }
}

/// The workflow type and namespace a workflow was created with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// Workflow type.
    pub workflow_type: String,
    /// Namespace.
    pub namespace: String,
}

/// The state of one workflow as its owner holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct Held {
    /// Version of `state` (0: the workflow does not exist yet).
    pub version: Version,
    /// The state at that version.
    pub state: JsonObject,
    /// Fixed at creation; `None` while the workflow does not exist.
    pub identity: Option<Identity>,
}

impl Held {
    /// A workflow that does not exist yet.
    pub fn absent() -> Self {
        Self {
            version: Version::NONE,
            state: JsonObject::new(),
            identity: None,
        }
    }

    /// What the store has, or [`Held::absent`].
    pub fn from_stored(stored: Option<StoredState>) -> Self {
        match stored {
            // A deleted workflow: nothing exists, but the next commit continues its versions.
            Some(stored) if stored.deleted => Self {
                version: stored.version,
                ..Self::absent()
            },
            Some(stored) => Self {
                version: stored.version,
                state: stored.state,
                identity: Some(Identity {
                    workflow_type: stored.workflow_type,
                    namespace: stored.namespace,
                }),
            },
            None => Self::absent(),
        }
    }
}

/// A direct compare-and-set, as `TryCommit` asks for it.
#[derive(Debug, Clone, PartialEq)]
pub struct DirectCommit {
    /// The workflow.
    pub key: WorkflowKey,
    /// Commit only if the stored version is this one (0: the workflow must not exist).
    pub expected: Version,
    /// The new state.
    pub state: JsonObject,
    /// The workflow type the caller names, if any; it must match the stored one.
    pub workflow_type: Option<TypeName>,
    /// Who made the change and why, kept with the state and in its event.
    pub provenance: Provenance,
    /// Delete the workflow instead of writing `state` (which is then ignored).
    pub delete: bool,
}

/// Who made a direct change, and why.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Provenance {
    /// The caller's action id for the change, if any.
    pub action_id: String,
    /// Who made it.
    pub actor: String,
    /// Why.
    pub reason: String,
    /// Correlation id carried by the event.
    pub correlation_id: String,
}

/// What a direct compare-and-set did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DirectOutcome {
    /// Committed at this version.
    Committed(Version),
    /// The stored version was another one; nothing was written.
    Conflict(Version),
}

/// One key's commit under construction.
#[derive(Debug)]
pub struct Fold {
    key: WorkflowKey,
    start: Version,
    held: Held,
    dedup_ttl: Duration,
    limits: StateLimits,
    write: Option<StateWrite>,
    records: Vec<NewRecord>,
    events: Vec<OutboxEvent>,
    history: Vec<HistoryEntry>,
}

impl Fold {
    /// A fold starting from the state the owner holds.
    pub fn new(key: WorkflowKey, held: Held, dedup_ttl: Duration, limits: StateLimits) -> Self {
        Self {
            key,
            start: held.version,
            held,
            dedup_ttl,
            limits,
            write: None,
            records: Vec::new(),
            events: Vec::new(),
            history: Vec::new(),
        }
    }

    /// The state as the actions folded so far leave it.
    pub fn held(&self) -> &Held {
        &self.held
    }

    /// Refuses an action whose workflow type is not the workflow's. (The namespace is part
    /// of the key, so a workflow only ever sees actions of its own namespace.)
    pub fn check_identity(&self, action: &Action) -> Result<(), EngineError> {
        let Some(identity) = &self.held.identity else {
            return Ok(());
        };
        if identity.workflow_type != action.workflow_type.as_str() {
            return Err(EngineError::Mismatch(format!(
                "workflow {} has type {}, not {}; send actions of its own type or use another workflow key",
                action.key, identity.workflow_type, action.workflow_type
            )));
        }
        Ok(())
    }

    /// Adds an action's decision at the current version and returns the outcome it yields
    /// once the fold commits. Call inside the action's commit span: its events carry the
    /// span's trace context.
    pub fn add_action(&mut self, action: &Action, fingerprint: &str, decision: Decision, attempt: u32) -> Outcome {
        let version = self.held.version;
        let mut committed = None;
        let decision = match decision {
            Decision::Commit(reduction) => {
                let next = version.next();
                let hash = result_hash(
                    ActionStatus::Committed,
                    next,
                    Some(&reduction.state),
                    &reduction.intents,
                    None,
                );
                let events = commit_events(
                    &CommitContext::of(action),
                    next,
                    &reduction.state,
                    &reduction.intents,
                    &hash,
                );
                // A state (or intent) beyond the limits would commit but could not travel
                // through the pipeline: it is refused, and nothing of it is written.
                match self.limits.check(&reduction.state, &events) {
                    Ok(()) => {
                        committed = Some((hash, events));
                        Decision::Commit(reduction)
                    }
                    Err(reason) => Decision::Reject(Rejection { reason }),
                }
            }
            reject => reject,
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
                self.held.state.clone(),
                Vec::new(),
                Some(rejection.reason),
            ),
        };
        let (hash, events) = match committed {
            Some(done) => (done.0, Some(done.1)),
            None => (
                result_hash(status, new_version, None, &intents, reason.as_deref()),
                None,
            ),
        };
        self.history.push(HistoryEntry {
            namespace: action.namespace().to_string(),
            workflow_key: action.key.to_string(),
            version: new_version,
            workflow_type: action.workflow_type.to_string(),
            action_id: action.id.to_string(),
            action_type: action.action_type.to_string(),
            correlation_id: action.correlation_id.clone(),
            status,
            state: (status == ActionStatus::Committed).then(|| new_state.clone()),
            payload: Some(action.payload.clone()),
            intents: intents.clone(),
            reason: reason.clone(),
            result_hash: hash.clone(),
            actor: "reducer-service".to_owned(),
        });
        self.records.push(NewRecord {
            action_id: action.id,
            request_hash: fingerprint.to_owned(),
            result_hash: hash.clone(),
            version: new_version,
            status,
            intents: intents.clone(),
            rejection_reason: reason.clone(),
            ttl: self.dedup_ttl,
        });
        if let Some(events) = events {
            self.events.extend(events);
            self.write = Some(StateWrite {
                state: new_state.clone(),
                version: new_version,
                workflow_type: action.workflow_type.clone(),
                provenance: serde_json::json!({
                    "action_id": action.id.to_string(),
                    "action_type": action.action_type.as_str(),
                    "correlation_id": action.correlation_id,
                    "actor": "reducer-service",
                }),
                deleted: false,
            });
            self.held = Held {
                version: new_version,
                state: new_state.clone(),
                identity: Some(Identity {
                    workflow_type: action.workflow_type.to_string(),
                    namespace: action.namespace().to_string(),
                }),
            };
        }
        Outcome {
            status,
            version: new_version,
            state: Some(new_state),
            intents,
            rejection_reason: reason,
            attempts: attempt,
            result_hash: hash,
        }
    }

    /// Adds a direct compare-and-set at the current version. A conflict with the state the
    /// fold holds answers at once and adds nothing.
    pub fn add_direct(&mut self, commit: &DirectCommit) -> Result<DirectOutcome, EngineError> {
        if commit.delete {
            return self.add_deletion(commit);
        }
        let namespace: &Namespace = commit.key.namespace();
        let workflow_type = match &self.held.identity {
            Some(identity) => {
                if let Some(given) = &commit.workflow_type
                    && given.as_str() != identity.workflow_type
                {
                    return Err(EngineError::Mismatch(format!(
                        "workflow {} has type {}, not {given}",
                        commit.key, identity.workflow_type
                    )));
                }
                TypeName::parse(&identity.workflow_type, "workflow_type")
                    .map_err(|err| EngineError::Bug(format!("stored workflow type: {err}")))?
            }
            None => match &commit.workflow_type {
                Some(given) => given.clone(),
                None => TypeName::parse("default", "workflow_type")?,
            },
        };
        if self.held.version != commit.expected {
            return Ok(DirectOutcome::Conflict(self.held.version));
        }
        let version = commit.expected.next();
        let provenance = &commit.provenance;
        let hash = result_hash(ActionStatus::Committed, version, Some(&commit.state), &[], None);
        let context = CommitContext {
            workflow_key: commit.key.as_str(),
            namespace: namespace.as_str(),
            workflow_type: workflow_type.as_str(),
            action_id: provenance.action_id.clone(),
            action_type: "TryCommit",
            correlation_id: &provenance.correlation_id,
        };
        let events = commit_events(&context, version, &commit.state, &[], &hash);
        if let Err(reason) = self.limits.check(&commit.state, &events) {
            return Err(EngineError::InvalidArgument(vec![purereducer_core::FieldError::new(
                "state", reason,
            )]));
        }
        self.events.extend(events);
        self.history.push(HistoryEntry {
            namespace: namespace.to_string(),
            workflow_key: commit.key.to_string(),
            version,
            workflow_type: workflow_type.to_string(),
            action_id: provenance.action_id.clone(),
            action_type: "TryCommit".to_owned(),
            correlation_id: provenance.correlation_id.clone(),
            status: ActionStatus::Committed,
            state: Some(commit.state.clone()),
            payload: None,
            intents: Vec::new(),
            reason: (!provenance.reason.is_empty()).then(|| provenance.reason.clone()),
            result_hash: hash.clone(),
            actor: provenance.actor.clone(),
        });
        self.write = Some(StateWrite {
            state: commit.state.clone(),
            version,
            workflow_type: workflow_type.clone(),
            provenance: serde_json::json!({
                "action_id": provenance.action_id,
                "correlation_id": provenance.correlation_id,
                "actor": provenance.actor,
                "reason": provenance.reason,
            }),
            deleted: false,
        });
        self.held = Held {
            version,
            state: commit.state.clone(),
            identity: Some(Identity {
                workflow_type: workflow_type.to_string(),
                namespace: namespace.to_string(),
            }),
        };
        Ok(DirectOutcome::Committed(version))
    }

    /// Adds the deletion of the workflow at the current version: a tombstone that takes the
    /// next version, its `WorkflowDeleted` event and history entry.
    fn add_deletion(&mut self, commit: &DirectCommit) -> Result<DirectOutcome, EngineError> {
        let Some(identity) = self.held.identity.clone() else {
            return Err(EngineError::NotFound(format!(
                "workflow {} does not exist{}; nothing was deleted",
                commit.key,
                if self.held.version == Version::NONE {
                    String::new()
                } else {
                    format!(" (it was deleted at version {})", self.held.version)
                }
            )));
        };
        // Expected version 0: whatever the version is now.
        if commit.expected != Version::NONE && self.held.version != commit.expected {
            return Ok(DirectOutcome::Conflict(self.held.version));
        }
        let workflow_type = TypeName::parse(&identity.workflow_type, "workflow_type")
            .map_err(|err| EngineError::Bug(format!("stored workflow type: {err}")))?;
        let version = self.held.version.next();
        let provenance = &commit.provenance;
        let context = CommitContext {
            workflow_key: commit.key.as_str(),
            namespace: commit.key.namespace().as_str(),
            workflow_type: workflow_type.as_str(),
            action_id: provenance.action_id.clone(),
            action_type: "DeleteWorkflow",
            correlation_id: &provenance.correlation_id,
        };
        let (event, history) = crate::events::deletion(&context, version, &provenance.actor, &provenance.reason);
        self.events.push(event);
        self.history.push(history);
        self.write = Some(StateWrite {
            state: JsonObject::new(),
            version,
            workflow_type,
            provenance: serde_json::json!({
                "correlation_id": provenance.correlation_id,
                "actor": provenance.actor,
                "reason": provenance.reason,
                "deleted": true,
            }),
            deleted: true,
        });
        self.held = Held {
            version,
            ..Held::absent()
        };
        Ok(DirectOutcome::Committed(version))
    }

    /// The one commit of everything folded (`None` when nothing needs writing), and the
    /// state it leaves.
    pub fn finish(self) -> (Option<CommitRequest>, Held) {
        if self.write.is_none() && self.records.is_empty() && self.events.is_empty() && self.history.is_empty() {
            return (None, self.held);
        }
        let request = CommitRequest {
            key: self.key,
            expected: self.start,
            write: self.write,
            records: self.records,
            events: self.events,
            history: self.history,
        };
        (Some(request), self.held)
    }
}

/// The answer to an action that was processed before: its first outcome, marked
/// `DUPLICATE`, or `Reused` when the action id came back with other content.
pub fn duplicate(
    action: &Action,
    fingerprint: &str,
    record: &ProcessedRecord,
    held: &Held,
) -> Result<Outcome, EngineError> {
    if !record.request_hash.is_empty() && record.request_hash != fingerprint {
        return Err(EngineError::Reused(format!(
            "action_id {} was already used on workflow {} with a different workflow type, action type, namespace or payload; \
             send a new action_id for a new action",
            action.id, action.key
        )));
    }
    // The state is returned only while the workflow is still at the recorded version.
    let state = (held.version == record.version && held.identity.is_some()).then(|| held.state.clone());
    Ok(Outcome {
        status: ActionStatus::Duplicate,
        version: record.version,
        state,
        intents: record.intents.clone(),
        rejection_reason: record.rejection_reason.clone(),
        attempts: 0,
        result_hash: record.result_hash.clone(),
    })
}
