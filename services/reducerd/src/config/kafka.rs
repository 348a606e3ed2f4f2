//! `[kafka]`: where the brokers are, how to reach them securely, and the topics.

use std::path::PathBuf;

use serde::Deserialize;

use super::{ConfigError, invalid};

/// `[kafka]`
#[derive(Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KafkaConfig {
    /// Bootstrap servers; empty keeps events in process.
    pub brokers: String,
    /// Topic of queued actions.
    pub actions_topic: String,
    /// Topic of `StateCommitted` events.
    pub state_committed_topic: String,
    /// Topic of `ReducerGaveUp` events.
    pub reducer_gave_up_topic: String,
    /// Topic of intent events.
    pub intents_topic: String,
    /// Topic of events the materializer could not apply.
    pub dead_letter_topic: String,
    /// Partitions of topics created at start-up.
    pub partitions: i32,
    /// Replicas of each partition of topics created at start-up (3 for a production
    /// cluster; 1 for a single broker).
    pub replication_factor: i32,
    /// `plaintext`, `ssl`, `sasl_plaintext` or `sasl_ssl`.
    pub security_protocol: String,
    /// `PLAIN`, `SCRAM-SHA-256` or `SCRAM-SHA-512`, with a `sasl_*` protocol.
    pub sasl_mechanism: String,
    /// SASL user name.
    pub sasl_username: String,
    /// SASL password (prefer `PURE_REDUCER_KAFKA_SASL_PASSWORD` to writing it in a file).
    pub sasl_password: String,
    /// PEM CA certificates that signed the brokers' certificates; the system's when unset.
    pub ssl_ca_file: Option<PathBuf>,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        Self {
            brokers: String::new(),
            actions_topic: "omninode_bridge.onex.cmd.reducer-action.v1".to_owned(),
            state_committed_topic: "omninode_bridge.onex.evt.state-committed.v1".to_owned(),
            reducer_gave_up_topic: "omninode_bridge.onex.evt.reducer-gave-up.v1".to_owned(),
            intents_topic: "omninode_bridge.onex.evt.intent.v1".to_owned(),
            dead_letter_topic: "omninode_bridge.onex.dlq.projection.v1".to_owned(),
            partitions: 6,
            replication_factor: 1,
            security_protocol: "plaintext".to_owned(),
            sasl_mechanism: String::new(),
            sasl_username: String::new(),
            sasl_password: String::new(),
            ssl_ca_file: None,
        }
    }
}

impl std::fmt::Debug for KafkaConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaConfig")
            .field("brokers", &self.brokers)
            .field("security_protocol", &self.security_protocol)
            .field("sasl_mechanism", &self.sasl_mechanism)
            .field("sasl_username", &self.sasl_username)
            .field("sasl_password", &"<redacted>")
            .field("ssl_ca_file", &self.ssl_ca_file)
            .finish_non_exhaustive()
    }
}

impl KafkaConfig {
    /// The brokers and how to reach them, for the bus.
    pub fn brokers(&self) -> purereducer_bus::Brokers {
        purereducer_bus::Brokers {
            servers: self.brokers.trim().to_owned(),
            security_protocol: self.security_protocol.to_ascii_lowercase(),
            sasl_mechanism: self.sasl_mechanism.to_ascii_uppercase(),
            sasl_username: self.sasl_username.clone(),
            sasl_password: self.sasl_password.clone(),
            ssl_ca_file: self.ssl_ca_file.clone(),
        }
    }

    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        let protocol = self.security_protocol.to_ascii_lowercase();
        if !matches!(protocol.as_str(), "plaintext" | "ssl" | "sasl_plaintext" | "sasl_ssl") {
            return Err(invalid(
                "kafka.security_protocol",
                format!(
                    "unknown protocol '{}'; use plaintext, ssl, sasl_plaintext or sasl_ssl",
                    self.security_protocol
                ),
            ));
        }
        let sasl = protocol.starts_with("sasl_");
        let mechanism = self.sasl_mechanism.to_ascii_uppercase();
        if sasl {
            if !matches!(mechanism.as_str(), "PLAIN" | "SCRAM-SHA-256" | "SCRAM-SHA-512") {
                return Err(invalid(
                    "kafka.sasl_mechanism",
                    format!("must be PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 with security_protocol {protocol}"),
                ));
            }
            if self.sasl_username.is_empty() || self.sasl_password.is_empty() {
                return Err(invalid(
                    "kafka.sasl_username",
                    format!("sasl_username and sasl_password are required with security_protocol {protocol}"),
                ));
            }
        } else if !mechanism.is_empty() || !self.sasl_username.is_empty() || !self.sasl_password.is_empty() {
            return Err(invalid(
                "kafka.sasl_mechanism",
                format!("SASL settings need security_protocol sasl_ssl or sasl_plaintext, not {protocol}"),
            ));
        }
        if let Some(ca) = &self.ssl_ca_file {
            if !protocol.ends_with("ssl") {
                return Err(invalid(
                    "kafka.ssl_ca_file",
                    format!("needs security_protocol ssl or sasl_ssl, not {protocol}"),
                ));
            }
            if !ca.is_file() {
                return Err(invalid(
                    "kafka.ssl_ca_file",
                    format!("{} is not a readable file", ca.display()),
                ));
            }
        }
        Ok(())
    }
}
