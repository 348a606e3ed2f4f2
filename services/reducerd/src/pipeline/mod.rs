//! The event pipeline: from outbox rows to projections, subscribers and completions.
//!
//! Without Kafka ([`local`]) one task reads the outbox in order, applies projections with
//! their watermark, fans events out to subscribers and marks the rows published; queued
//! actions run on in-process workers ([`queue`]).

pub mod local;
pub mod queue;
