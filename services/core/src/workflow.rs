//! Declared workflow types and the reducer each one names.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crate::reducer::{FsmReducer, JsonPatchReducer, MergeReducer, Reducer};

/// How a workflow type reduces its actions.
#[derive(Debug, Clone)]
pub enum ReducerSpec {
    /// A reducer that runs in process.
    Local(Arc<dyn Reducer>),
    /// A user's `ReducerFunction` gRPC endpoint.
    Remote {
        /// Endpoint URI, for example `http://127.0.0.1:7000`.
        endpoint: String,
        /// Deadline for one call.
        timeout: Duration,
    },
}

/// The workflow types the platform accepts, by name.
#[derive(Debug, Clone)]
pub struct WorkflowTypes {
    types: BTreeMap<String, ReducerSpec>,
}

impl WorkflowTypes {
    /// An empty set of types.
    pub fn empty() -> Self {
        Self { types: BTreeMap::new() }
    }

    /// The built-in types, usable without any configuration: `default` and `merge` (merge
    /// patch), `json-patch`, and `fsm` (the default state machine).
    pub fn builtin() -> Self {
        let mut types = Self::empty();
        types.insert("default", ReducerSpec::Local(Arc::new(MergeReducer)));
        types.insert("merge", ReducerSpec::Local(Arc::new(MergeReducer)));
        types.insert("json-patch", ReducerSpec::Local(Arc::new(JsonPatchReducer)));
        types.insert("fsm", ReducerSpec::Local(Arc::new(FsmReducer::default_machine())));
        types
    }

    /// Declares (or redeclares) a type.
    pub fn insert(&mut self, name: impl Into<String>, spec: ReducerSpec) {
        self.types.insert(name.into(), spec);
    }

    /// The reducer of a type.
    pub fn get(&self, name: &str) -> Option<&ReducerSpec> {
        self.types.get(name)
    }

    /// The declared type names, sorted.
    pub fn names(&self) -> Vec<&str> {
        self.types.keys().map(String::as_str).collect()
    }
}
