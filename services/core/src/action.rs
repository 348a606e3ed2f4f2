//! The action a caller sends, and the version numbers it moves a workflow through.

use std::fmt;

use crate::JsonObject;
use crate::id::{ActionId, Namespace, TypeName, WorkflowKey};

/// A workflow version: 0 before the first commit, then 1, 2, ... with no gaps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Version(u64);

impl Version {
    /// The version of a workflow that does not exist yet.
    pub const NONE: Version = Version(0);

    /// Wraps a raw version number.
    pub fn new(raw: u64) -> Self {
        Self(raw)
    }

    /// The raw version number.
    pub fn get(self) -> u64 {
        self.0
    }

    /// The version a commit on top of this one produces.
    #[must_use]
    pub fn next(self) -> Self {
        Self(self.0 + 1)
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A validated action.
#[derive(Debug, Clone, PartialEq)]
pub struct Action {
    /// Unique id; the same id applies at most once per workflow.
    pub id: ActionId,
    /// The workflow the action targets.
    pub key: WorkflowKey,
    /// The declared workflow type, which names the reducer.
    pub workflow_type: TypeName,
    /// What the action does, interpreted by the reducer.
    pub action_type: TypeName,
    /// Action data.
    pub payload: JsonObject,
    /// Correlation id carried into events (a new UUID when the caller gave none).
    pub correlation_id: String,
}

impl Action {
    /// The tenant namespace, the one of the workflow key.
    pub fn namespace(&self) -> &Namespace {
        self.key.namespace()
    }
}
