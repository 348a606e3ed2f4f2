//! The domain core of Pure Reducer: what a workflow, an action and a reducer are, and how
//! an action's outcome is decided. No I/O lives here: storage, transport and clocks belong to
//! the crates around it, so everything in this crate is deterministic and unit-testable.
//!
//! Layout:
//! - [`id`]: validated identifiers (workflow keys, action ids, namespaces, type names).
//! - [`action`]: the action a caller sends and the version it produces.
//! - [`reducer`]: the pure reducer contract and the built-in `merge`, `json-patch`, `fsm`.
//! - [`workflow`]: the declared workflow types and the reducer each one names.
//! - [`outcome`]: action statuses, the result hash and the request fingerprint.
//! - [`retry`]: the conflict retry policy with full-jitter backoff.
//! - [`limits`]: payload validation (size, depth, object shape).

pub mod action;
pub mod id;
pub mod limits;
pub mod outcome;
pub mod reducer;
pub mod retry;
pub mod workflow;

pub use action::{Action, Version};
pub use id::{ActionId, FieldError, Namespace, TypeName, WorkflowKey};
pub use outcome::{ActionStatus, Outcome};
pub use reducer::{Intent, Reducer, Reduction, Rejection};
pub use retry::RetryPolicy;
pub use workflow::{ReducerSpec, WorkflowTypes};

/// A JSON object: the shape of every state and payload.
pub type JsonObject = serde_json::Map<String, serde_json::Value>;
