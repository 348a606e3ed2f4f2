//! The events a commit publishes, encoded as the protobuf messages of `proto/` and wrapped
//! as outbox rows. Headers carry what consumers route on without decoding the payload.

use std::time::SystemTime;

use prost::Message;
use purereducer_api::v1;
use purereducer_core::{Action, ActionStatus, Intent, JsonObject, Version};
use purereducer_storage::{HistoryEntry, OutboxEvent};

use crate::convert::{intents_to_proto, json_to_struct};

/// Event type names, as stored in the outbox and sent in the `event_type` header.
pub mod event_type {
    /// A committed state change.
    pub const STATE_COMMITTED: &str = "StateCommitted";
    /// An action that exhausted its attempts.
    pub const REDUCER_GAVE_UP: &str = "ReducerGaveUp";
    /// A side effect requested by a reducer.
    pub const INTENT_EMITTED: &str = "IntentEmitted";
    /// A workflow deleted by an operator (on the state-committed topic, in version order).
    pub const WORKFLOW_DELETED: &str = "WorkflowDeleted";
}

/// What a commit was about, for its events.
#[derive(Debug, Clone)]
pub struct CommitContext<'a> {
    /// Workflow key.
    pub workflow_key: &'a str,
    /// Namespace.
    pub namespace: &'a str,
    /// Workflow type.
    pub workflow_type: &'a str,
    /// The action, when the commit came from one.
    pub action_id: String,
    /// The action type (or `TryCommit` for direct commits).
    pub action_type: &'a str,
    /// Correlation id.
    pub correlation_id: &'a str,
}

impl<'a> CommitContext<'a> {
    /// The context of an action's own commit.
    pub fn of(action: &'a Action) -> Self {
        Self {
            workflow_key: action.key.as_str(),
            namespace: action.namespace().as_str(),
            workflow_type: action.workflow_type.as_str(),
            action_id: action.id.to_string(),
            action_type: action.action_type.as_str(),
            correlation_id: &action.correlation_id,
        }
    }

    /// Kafka headers of an event: its type, correlation, and the W3C trace context of the
    /// span that wrote it, so the publish and the projection join the action's trace.
    fn headers(&self, event_type: &str) -> serde_json::Value {
        let mut headers = serde_json::json!({
            "event_type": event_type,
            "correlation_id": self.correlation_id,
            "namespace": self.namespace,
            "workflow_type": self.workflow_type,
        });
        if let Some(map) = headers.as_object_mut() {
            for (name, value) in purereducer_bus::trace::inject_current() {
                map.insert(name, serde_json::Value::String(value));
            }
        }
        headers
    }
}

/// The events of one commit: `StateCommitted`, then one `IntentEmitted` per intent.
pub fn commit_events(
    context: &CommitContext<'_>,
    version: Version,
    state: &JsonObject,
    intents: &[Intent],
    result_hash: &str,
) -> Vec<OutboxEvent> {
    let committed = v1::StateCommitted {
        workflow_key: context.workflow_key.to_owned(),
        version: version.get(),
        namespace: context.namespace.to_owned(),
        workflow_type: context.workflow_type.to_owned(),
        action_id: context.action_id.clone(),
        action_type: context.action_type.to_owned(),
        correlation_id: context.correlation_id.to_owned(),
        state: Some(json_to_struct(state)),
        intents: intents_to_proto(intents),
        committed_at: Some(SystemTime::now().into()),
        result_hash: result_hash.to_owned(),
    };
    let mut events = vec![outbox(
        context,
        version,
        event_type::STATE_COMMITTED,
        v1::event::Kind::StateCommitted(committed),
    )];
    for (index, intent) in intents_to_proto(intents).into_iter().enumerate() {
        let emitted = v1::IntentEmitted {
            workflow_key: context.workflow_key.to_owned(),
            version: version.get(),
            namespace: context.namespace.to_owned(),
            workflow_type: context.workflow_type.to_owned(),
            correlation_id: context.correlation_id.to_owned(),
            intent: Some(intent),
            index: u32::try_from(index).unwrap_or(u32::MAX),
        };
        events.push(outbox(
            context,
            version,
            event_type::INTENT_EMITTED,
            v1::event::Kind::IntentEmitted(emitted),
        ));
    }
    events
}

/// The event of an action that gave up after `attempts` conflicts.
pub fn gave_up_event(action: &Action, attempts: u32, last_seen: Version) -> OutboxEvent {
    let context = CommitContext::of(action);
    let gave_up = v1::ReducerGaveUp {
        workflow_key: action.key.to_string(),
        namespace: action.namespace().to_string(),
        workflow_type: action.workflow_type.to_string(),
        action_id: action.id.to_string(),
        action_type: action.action_type.to_string(),
        correlation_id: action.correlation_id.clone(),
        attempts,
        last_seen_version: last_seen.get(),
        gave_up_at: Some(SystemTime::now().into()),
    };
    outbox(
        &context,
        last_seen,
        event_type::REDUCER_GAVE_UP,
        v1::event::Kind::ReducerGaveUp(gave_up),
    )
}

/// The event of a workflow deleted at `version`, and the history entry that records it (a
/// commit without state).
pub fn deletion(
    context: &CommitContext<'_>,
    version: Version,
    actor: &str,
    reason: &str,
) -> (OutboxEvent, HistoryEntry) {
    let deleted = v1::WorkflowDeleted {
        workflow_key: context.workflow_key.to_owned(),
        version: version.get(),
        namespace: context.namespace.to_owned(),
        workflow_type: context.workflow_type.to_owned(),
        actor: actor.to_owned(),
        reason: reason.to_owned(),
        deleted_at: Some(SystemTime::now().into()),
    };
    let event = outbox(
        context,
        version,
        event_type::WORKFLOW_DELETED,
        v1::event::Kind::WorkflowDeleted(deleted),
    );
    let history = HistoryEntry {
        namespace: context.namespace.to_owned(),
        workflow_key: context.workflow_key.to_owned(),
        version,
        workflow_type: context.workflow_type.to_owned(),
        action_id: context.action_id.clone(),
        action_type: context.action_type.to_owned(),
        correlation_id: context.correlation_id.to_owned(),
        status: ActionStatus::Committed,
        state: None,
        payload: None,
        intents: Vec::new(),
        reason: (!reason.is_empty()).then(|| reason.to_owned()),
        result_hash: purereducer_core::outcome::result_hash(ActionStatus::Committed, version, None, &[], None),
        actor: actor.to_owned(),
    };
    (event, history)
}

/// The history entry of an action that gave up after `attempts` conflicts.
pub fn gave_up_history(action: &Action, attempts: u32, last_seen: Version) -> HistoryEntry {
    HistoryEntry {
        namespace: action.namespace().to_string(),
        workflow_key: action.key.to_string(),
        version: last_seen,
        workflow_type: action.workflow_type.to_string(),
        action_id: action.id.to_string(),
        action_type: action.action_type.to_string(),
        correlation_id: action.correlation_id.clone(),
        status: ActionStatus::GaveUp,
        state: None,
        payload: Some(action.payload.clone()),
        intents: Vec::new(),
        reason: Some(format!(
            "gave up after {attempts} attempts lost to concurrent commits; it last saw version {last_seen}"
        )),
        result_hash: purereducer_core::outcome::result_hash(ActionStatus::GaveUp, last_seen, None, &[], None),
        actor: "reducer-service".to_owned(),
    }
}

fn outbox(context: &CommitContext<'_>, version: Version, event_type: &str, kind: v1::event::Kind) -> OutboxEvent {
    OutboxEvent {
        namespace: context.namespace.to_owned(),
        workflow_key: context.workflow_key.to_owned(),
        version,
        event_type: event_type.to_owned(),
        payload: v1::Event { kind: Some(kind) }.encode_to_vec(),
        headers: context.headers(event_type),
    }
}
