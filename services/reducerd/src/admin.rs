//! Operator repairs, shared by the gRPC API and the console: retrying an action that gave up,
//! and replaying a dead-lettered event into the projection. Both are deterministic: a
//! retried action is the same action (same id, type and payload) reduced by the same pure
//! reducer, so it applies at most once; a replayed event writes the same row it would have.

use purereducer_core::{ActionId, ActionStatus, Outcome, TypeName, WorkflowKey};
use purereducer_storage::{Replayed, Store};

use crate::auth::Identity;
use crate::engine::Engine;
use crate::error::ApiError;

/// Applies again an action whose last attempt gave up, from what history kept of it.
pub async fn retry(
    engine: &Engine,
    key: &WorkflowKey,
    action_id: &str,
) -> Result<(purereducer_core::Action, Outcome), ApiError> {
    let id = ActionId::parse(action_id, "action_id")?;
    let Some(record) = engine.store().history_of_action(key, &id.to_string()).await? else {
        return Err(ApiError::NotFound(format!(
            "workflow {key} has no history of action {id}; list give-ups to find the actions that can be retried"
        )));
    };
    let entry = record.entry;
    if entry.status != ActionStatus::GaveUp {
        return Err(ApiError::FailedPrecondition(format!(
            "action {id} did not give up: it ended {} at version {}; only a GAVE_UP action can be retried",
            entry.status.as_str(),
            entry.version
        )));
    }
    let stored = |field: &str| ApiError::Internal(format!("history entry of {id} holds an unusable {field}"));
    let action = purereducer_core::Action {
        id,
        key: key.clone(),
        workflow_type: TypeName::parse(&entry.workflow_type, "workflow_type").map_err(|_| stored("workflow type"))?,
        action_type: TypeName::parse(&entry.action_type, "action_type").map_err(|_| stored("action type"))?,
        payload: entry.payload.ok_or_else(|| stored("payload"))?,
        correlation_id: entry.correlation_id,
    };
    let outcome = engine.handle(&action).await?;
    Ok((action, outcome))
}

/// What a replay did, in words for the operator.
pub fn describe(replayed: Replayed, id: i64) -> Result<String, ApiError> {
    match replayed {
        Replayed::Applied => Ok(format!("dead letter {id} was applied to the projection")),
        Replayed::Superseded => Ok(format!(
            "the projection already had this version or a newer one; dead letter {id} is marked replayed"
        )),
        Replayed::AlreadyReplayed => Err(replayed_before(id)),
        Replayed::NotFound => Err(no_letter(id)),
    }
}

fn replayed_before(id: i64) -> ApiError {
    ApiError::FailedPrecondition(format!("dead letter {id} was replayed before; nothing was written"))
}

fn no_letter(id: i64) -> ApiError {
    ApiError::NotFound(format!(
        "there is no dead letter {id}; list dead letters to find their ids"
    ))
}

/// Writes a dead-lettered `StateCommitted` event to the projection and marks it replayed,
/// for a caller granted the letter's namespace.
pub async fn replay(store: &dyn Store, identity: &Identity, id: i64) -> Result<(Replayed, String), ApiError> {
    let Some(stored) = store.dead_letter(id).await? else {
        return Err(no_letter(id));
    };
    crate::auth::require_namespace(identity, &stored.letter.namespace).map_err(ApiError::Denied)?;
    if stored.replayed_at_ms.is_some() {
        return Err(replayed_before(id));
    }
    let event = crate::projection::decode(&stored.letter.payload).map_err(|err| {
        ApiError::FailedPrecondition(format!(
            "dead letter {id} cannot be replayed: {err}; it stays for inspection"
        ))
    })?;
    let row = crate::projection::row_of_event(&event.event)
        .map_err(|err| ApiError::FailedPrecondition(format!("dead letter {id} cannot be replayed: {err}")))?
        .ok_or_else(|| {
            ApiError::FailedPrecondition(format!(
                "dead letter {id} is a {} event, which writes no projection; nothing to replay",
                stored.letter.event_type
            ))
        })?;
    let replayed = store.replay_dead_letter(id, &row).await?;
    let message = describe(replayed, id)?;
    Ok((replayed, message))
}
