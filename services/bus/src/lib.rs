//! The Kafka side of Pure Reducer, on rdkafka: topic names and creation, the transactional
//! outbox relay, and batch consumption with offsets committed only after the caller's work
//! is durable.
//!
//! Layout:
//! - [`topics`]: the topics events and actions travel on, and creating them at start-up.
//! - [`relay`]: publishes outbox rows in order and marks them only after delivery.
//! - [`consumer`]: consumer construction, batching and offset commits.
//! - [`trace`]: W3C trace context carried through the outbox and Kafka headers.

pub mod consumer;
pub mod relay;
pub mod topics;
pub mod trace;

use rdkafka::ClientConfig;

pub use crate::topics::Topics;

/// Why a Kafka operation failed.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// librdkafka reported an error.
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    /// The configuration cannot work.
    #[error("invalid kafka configuration: {0}")]
    Config(String),
}

/// Settings shared by every client: the brokers, and a client id that shows in broker logs.
pub fn client_config(brokers: &str, client_id: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", brokers).set("client.id", client_id);
    config
}

/// The headers every dead-letter record carries: why, and where the event came from.
pub fn dead_letter_headers(reason: &str, source: &str) -> rdkafka::message::OwnedHeaders {
    use rdkafka::message::{Header, OwnedHeaders};
    OwnedHeaders::new()
        .insert(Header {
            key: "error",
            value: Some(reason.as_bytes()),
        })
        .insert(Header {
            key: "source",
            value: Some(source.as_bytes()),
        })
}

/// The producers' `message.max.bytes`: the largest record reducerd sends.
pub const MAX_MESSAGE_BYTES: usize = 1_000_000;

/// Room kept in a record for its key, headers and framing beside the event itself.
pub const MESSAGE_OVERHEAD_BYTES: usize = 64 * 1024;

/// An idempotent producer that waits for every in-sync replica and never gives up on a
/// message by itself: a broker outage only delays delivery, and order per partition holds.
pub fn reliable_producer(brokers: &str, client_id: &str) -> Result<rdkafka::producer::FutureProducer, BusError> {
    Ok(client_config(brokers, client_id)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("message.timeout.ms", "0")
        .set("linger.ms", "2")
        .set("message.max.bytes", MAX_MESSAGE_BYTES.to_string())
        .create()?)
}
