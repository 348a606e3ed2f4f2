//! How a committed event becomes a projection row, and how events are decoded.

use prost::Message;
use purereducer_api::v1;
use purereducer_storage::ProjectionRow;
use serde_json::{Value, json};

use crate::convert::struct_to_json;
use crate::hub::PublishedEvent;

/// Why an event could not be used.
#[derive(Debug, thiserror::Error)]
pub enum EventError {
    /// The bytes are not a `purereducer.v1.Event`.
    #[error("undecodable event: {0}")]
    Decode(#[from] prost::DecodeError),
    /// The event has no kind or an unusable state.
    #[error("malformed event: {0}")]
    Malformed(String),
}

/// Decodes an event from the outbox or the log.
pub fn decode(payload: &[u8]) -> Result<PublishedEvent, EventError> {
    let event = v1::Event::decode(payload)?;
    let (workflow_key, namespace, workflow_type) = match &event.kind {
        Some(v1::event::Kind::StateCommitted(e)) => (&e.workflow_key, &e.namespace, &e.workflow_type),
        Some(v1::event::Kind::ReducerGaveUp(e)) => (&e.workflow_key, &e.namespace, &e.workflow_type),
        Some(v1::event::Kind::IntentEmitted(e)) => (&e.workflow_key, &e.namespace, &e.workflow_type),
        Some(v1::event::Kind::WorkflowDeleted(e)) => (&e.workflow_key, &e.namespace, &e.workflow_type),
        None => return Err(EventError::Malformed("event has no kind".to_owned())),
    };
    Ok(PublishedEvent {
        workflow_key: workflow_key.clone(),
        namespace: namespace.clone(),
        workflow_type: workflow_type.clone(),
        event,
    })
}

/// The projection row an event writes: a `StateCommitted` event's state, a `WorkflowDeleted`
/// event's tombstone; `None` for events that write none.
pub fn row_of_event(event: &v1::Event) -> Result<Option<ProjectionRow>, EventError> {
    match &event.kind {
        Some(v1::event::Kind::StateCommitted(committed)) => row_of(committed).map(Some),
        Some(v1::event::Kind::WorkflowDeleted(deleted)) => Ok(Some(tombstone_of(deleted))),
        _ => Ok(None),
    }
}

/// The tombstone row of a deleted workflow: it keeps the version, so older events of the
/// workflow delivered again cannot bring the row back.
pub fn tombstone_of(deleted: &v1::WorkflowDeleted) -> ProjectionRow {
    ProjectionRow {
        workflow_key: deleted.workflow_key.clone(),
        version: purereducer_core::Version::new(deleted.version),
        tag: None,
        last_action: "DeleteWorkflow".to_owned(),
        namespace: deleted.namespace.clone(),
        indices: json!({}),
        extras: json!({}),
        deleted: true,
    }
}

/// The projection row of a `StateCommitted` event: the `status` member (when a string) as
/// the tag, lookup fields as indices and the full state as extras.
pub fn row_of(committed: &v1::StateCommitted) -> Result<ProjectionRow, EventError> {
    let state = struct_to_json(&committed.state.clone().unwrap_or_default(), "state")
        .map_err(|err| EventError::Malformed(err.to_string()))?;
    let tag = state.get("status").and_then(Value::as_str).map(str::to_owned);
    Ok(ProjectionRow {
        workflow_key: committed.workflow_key.clone(),
        version: purereducer_core::Version::new(committed.version),
        tag: tag.clone(),
        last_action: committed.action_type.clone(),
        namespace: committed.namespace.clone(),
        indices: json!({
            "workflow_type": committed.workflow_type,
            "status": tag,
            "correlation_id": committed.correlation_id,
        }),
        extras: Value::Object(state),
        deleted: false,
    })
}
