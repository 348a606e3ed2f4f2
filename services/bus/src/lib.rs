//! The Kafka side of Pure Reducer, on rdkafka: topic names and creation, the transactional
//! outbox relay, and batch consumption with offsets committed only after the caller's work
//! is durable.
//!
//! Layout:
//! - [`topics`]: the topics events and actions travel on, and creating them at start-up.
//! - [`relay`]: publishes outbox rows in order and marks them only after delivery.
//! - [`consumer`]: consumer construction, batching and offset commits.
//! - [`member`]: a group member that rejoins when its group stops consuming.
//! - [`trace`]: W3C trace context carried through the outbox and Kafka headers.

pub mod consumer;
pub mod member;
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

/// Where the brokers are and how to reach them: TLS and SASL as librdkafka spells them.
#[derive(Clone, Default)]
pub struct Brokers {
    /// `host:port[,host:port…]`.
    pub servers: String,
    /// `plaintext`, `ssl`, `sasl_plaintext` or `sasl_ssl`; empty means plaintext.
    pub security_protocol: String,
    /// `PLAIN`, `SCRAM-SHA-256` or `SCRAM-SHA-512`, with a `sasl_*` protocol.
    pub sasl_mechanism: String,
    /// SASL user name.
    pub sasl_username: String,
    /// SASL password; never printed.
    pub sasl_password: String,
    /// PEM CA certificates that signed the brokers' certificates (else the system's).
    pub ssl_ca_file: Option<std::path::PathBuf>,
}

impl Brokers {
    /// Brokers reached over plaintext.
    pub fn plain(servers: &str) -> Self {
        Self {
            servers: servers.to_owned(),
            ..Self::default()
        }
    }
}

impl std::fmt::Debug for Brokers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Brokers")
            .field("servers", &self.servers)
            .field("security_protocol", &self.security_protocol)
            .field("sasl_mechanism", &self.sasl_mechanism)
            .field("sasl_username", &self.sasl_username)
            .field("sasl_password", &"<redacted>")
            .field("ssl_ca_file", &self.ssl_ca_file)
            .finish()
    }
}

/// Settings shared by every client: the brokers, how to reach them, and a client id that
/// shows in broker logs.
pub fn client_config(brokers: &Brokers, client_id: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &brokers.servers)
        .set("client.id", client_id);
    if !brokers.security_protocol.is_empty() {
        config.set("security.protocol", brokers.security_protocol.to_ascii_lowercase());
    }
    if !brokers.sasl_mechanism.is_empty() {
        config
            .set("sasl.mechanism", &brokers.sasl_mechanism)
            .set("sasl.username", &brokers.sasl_username)
            .set("sasl.password", &brokers.sasl_password);
    }
    if let Some(ca) = &brokers.ssl_ca_file {
        config.set("ssl.ca.location", ca.display().to_string());
    }
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
pub fn reliable_producer(brokers: &Brokers, client_id: &str) -> Result<rdkafka::producer::FutureProducer, BusError> {
    Ok(client_config(brokers, client_id)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("message.timeout.ms", "0")
        .set("linger.ms", "2")
        .set("message.max.bytes", MAX_MESSAGE_BYTES.to_string())
        .create()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn security_settings_reach_every_client_and_plaintext_sets_none() {
        let plain = client_config(&Brokers::plain("b:9092"), "t");
        assert_eq!(plain.get("bootstrap.servers"), Some("b:9092"));
        for key in [
            "security.protocol",
            "sasl.mechanism",
            "sasl.username",
            "sasl.password",
            "ssl.ca.location",
        ] {
            assert_eq!(plain.get(key), None, "{key}");
        }
        let secured = Brokers {
            servers: "b:9093".into(),
            security_protocol: "sasl_ssl".into(),
            sasl_mechanism: "SCRAM-SHA-512".into(),
            sasl_username: "reducerd".into(),
            sasl_password: "pw".into(),
            ssl_ca_file: Some("/etc/kafka/ca.pem".into()),
        };
        let config = client_config(&secured, "t");
        assert_eq!(config.get("security.protocol"), Some("sasl_ssl"));
        assert_eq!(config.get("sasl.mechanism"), Some("SCRAM-SHA-512"));
        assert_eq!(config.get("sasl.username"), Some("reducerd"));
        assert_eq!(config.get("sasl.password"), Some("pw"));
        assert_eq!(config.get("ssl.ca.location"), Some("/etc/kafka/ca.pem"));
        // librdkafka accepts the settings (it was built with TLS and SASL/SCRAM); the CA file
        // is read at creation, so it is left out here.
        let without_ca = Brokers {
            ssl_ca_file: None,
            ..secured.clone()
        };
        let producer: Result<rdkafka::producer::BaseProducer, _> = client_config(&without_ca, "t").create();
        assert!(producer.is_ok(), "{:?}", producer.err());
        assert!(!format!("{secured:?}").contains("pw"), "the password was printed");
    }
}
