//! The reducer contract and the built-in reducers.
//!
//! A reducer is a pure function of (state, version, action): no clock, randomness or I/O.
//! Anything time-like that a reducer needs must arrive in the action payload.

mod fsm;
mod json_patch;
mod merge;

use serde::{Deserialize, Serialize};

pub use self::fsm::{FsmReducer, Transition};
pub use self::json_patch::JsonPatchReducer;
pub use self::merge::MergeReducer;
use crate::{Action, JsonObject, Version};

/// A side effect a reducer asks the platform to publish after the commit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Intent {
    /// What kind of side effect.
    pub intent_type: String,
    /// Its data.
    pub payload: JsonObject,
}

/// The result of a successful reduction.
#[derive(Debug, Clone, PartialEq)]
pub struct Reduction {
    /// The next state.
    pub state: JsonObject,
    /// Side effects to publish with the commit.
    pub intents: Vec<Intent>,
}

/// A reducer's refusal of an action, with a reason for the caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct Rejection {
    /// Why the action was refused.
    pub reason: String,
}

impl Rejection {
    /// A refusal with the given reason.
    pub fn new(reason: impl Into<String>) -> Self {
        Self { reason: reason.into() }
    }
}

/// A pure state transition function.
pub trait Reducer: Send + Sync + std::fmt::Debug {
    /// Computes the next state of a workflow at `version` (0: no state yet, `state` empty).
    fn reduce(&self, state: &JsonObject, version: Version, action: &Action) -> Result<Reduction, Rejection>;
}

/// Turns a JSON value that must be an object into one, or refuses the action.
fn into_object(value: serde_json::Value, what: &str) -> Result<JsonObject, Rejection> {
    match value {
        serde_json::Value::Object(object) => Ok(object),
        other => Err(Rejection::new(format!(
            "{what} must leave the state a JSON object, not {}",
            json_kind(&other)
        ))),
    }
}

fn json_kind(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

#[cfg(test)]
pub(crate) mod test_support {
    use serde_json::Value;

    use crate::id::{ActionId, Namespace, TypeName, WorkflowKey};
    use crate::{Action, JsonObject};

    pub fn object(value: Value) -> JsonObject {
        value.as_object().cloned().expect("object literal")
    }

    pub fn action(action_type: &str, payload: Value) -> Action {
        Action {
            id: ActionId::from_uuid(uuid::Uuid::nil()),
            key: WorkflowKey::parse(&Namespace::default(), "wf-1").expect("valid key"),
            workflow_type: TypeName::parse("test", "workflow_type").expect("valid type"),
            action_type: TypeName::parse(action_type, "action_type").expect("valid type"),
            payload: object(payload),
            correlation_id: "c".to_owned(),
        }
    }
}
