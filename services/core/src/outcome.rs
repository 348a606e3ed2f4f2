//! How an action ends, and the hashes that make outcomes comparable.

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::action::Version;
use crate::reducer::Intent;
use crate::{Action, JsonObject};

/// How an action ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ActionStatus {
    /// A new version was committed.
    Committed,
    /// The action id was processed before; the first outcome is repeated.
    Duplicate,
    /// The reducer refused the action; nothing changed.
    Rejected,
    /// Every attempt met a version conflict; nothing changed.
    GaveUp,
}

impl ActionStatus {
    /// The stored name of the status.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Committed => "COMMITTED",
            Self::Duplicate => "DUPLICATE",
            Self::Rejected => "REJECTED",
            Self::GaveUp => "GAVE_UP",
        }
    }

    /// Parses a stored status name.
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "COMMITTED" => Some(Self::Committed),
            "DUPLICATE" => Some(Self::Duplicate),
            "REJECTED" => Some(Self::Rejected),
            "GAVE_UP" => Some(Self::GaveUp),
            _ => None,
        }
    }
}

/// The decided outcome of one action.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// How the action ended.
    pub status: ActionStatus,
    /// The version after the action (the version seen, when nothing was committed).
    pub version: Version,
    /// The state after the action, when known.
    pub state: Option<JsonObject>,
    /// Side effects the reducer requested.
    pub intents: Vec<Intent>,
    /// Why the reducer refused the action.
    pub rejection_reason: Option<String>,
    /// Reduce-and-commit attempts made by this call.
    pub attempts: u32,
    /// Hash identifying the outcome; the same for every reply about one action.
    pub result_hash: String,
}

#[derive(Serialize)]
struct HashedOutcome<'a> {
    status: ActionStatus,
    version: u64,
    state: Option<&'a JsonObject>,
    intents: &'a [Intent],
    rejection_reason: Option<&'a str>,
}

/// The result hash of an outcome: SHA-256 over its canonical JSON (object keys sorted).
pub fn result_hash(
    status: ActionStatus,
    version: Version,
    state: Option<&JsonObject>,
    intents: &[Intent],
    rejection_reason: Option<&str>,
) -> String {
    let hashed = HashedOutcome {
        status,
        version: version.get(),
        state,
        intents,
        rejection_reason,
    };
    // Serializing plain maps and strings cannot fail; an empty hash would still be stable.
    let bytes = serde_json::to_vec(&hashed).unwrap_or_default();
    hex(&Sha256::digest(bytes))
}

/// A fingerprint of what an action asks for, so a reused id with other content is caught.
pub fn request_hash(action: &Action) -> String {
    let fingerprint = serde_json::json!({
        "workflow_type": action.workflow_type.as_str(),
        "action_type": action.action_type.as_str(),
        "namespace": action.namespace().as_str(),
        "payload": action.payload,
    });
    let bytes = serde_json::to_vec(&fingerprint).unwrap_or_default();
    hex(&Sha256::digest(bytes))
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn object(value: serde_json::Value) -> JsonObject {
        value.as_object().cloned().expect("object literal")
    }

    #[test]
    fn result_hash_ignores_key_order_but_not_values() {
        let a = object(json!({"x": 1, "y": 2}));
        let b = object(json!({"y": 2, "x": 1}));
        let c = object(json!({"x": 1, "y": 3}));
        let h = |s: &JsonObject| result_hash(ActionStatus::Committed, Version::new(1), Some(s), &[], None);
        assert_eq!(h(&a), h(&b));
        assert_ne!(h(&a), h(&c));
        assert_eq!(h(&a).len(), 64);
    }

    #[test]
    fn statuses_round_trip_through_their_stored_names() {
        for status in [
            ActionStatus::Committed,
            ActionStatus::Duplicate,
            ActionStatus::Rejected,
            ActionStatus::GaveUp,
        ] {
            assert_eq!(ActionStatus::parse(status.as_str()), Some(status));
        }
    }
}
