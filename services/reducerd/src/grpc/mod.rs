//! gRPC adapters: each converts requests to domain values, calls the core, converts back.

pub mod action_dedup;
pub mod canonical_store;
pub mod event_bus;
pub mod history;
pub mod projection;
pub mod reducer;
pub mod replay;

use std::time::{Duration, UNIX_EPOCH};

/// A database timestamp (unix milliseconds) as a protobuf timestamp.
pub(crate) fn timestamp_ms(ms: i64) -> prost_types::Timestamp {
    let since_epoch = Duration::from_millis(u64::try_from(ms).unwrap_or_default());
    (UNIX_EPOCH + since_epoch).into()
}
