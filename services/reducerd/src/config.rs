//! Configuration: built-in defaults, then a TOML file, then environment variables and flags
//! (clap reads a flag's environment variable when the flag is absent). Validated once, at
//! start-up; an invalid value stops the server with a message naming its key.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use purereducer_core::reducer::{FsmReducer, JsonPatchReducer, MergeReducer, Transition};
use purereducer_core::{ReducerSpec, RetryPolicy, TypeName, WorkflowTypes};
use serde::Deserialize;

/// The roles one `reducerd` process can run.
pub const ROLES: [&str; 5] = [
    "canonical-store",
    "action-dedup",
    "reducer-service",
    "event-bus",
    "projection-materializer",
];

/// A configuration problem, naming the key at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML or has unknown keys or wrong types.
    #[error("config file {path}: {message}")]
    Parse {
        /// The file.
        path: String,
        /// The parser's message, which names the key.
        message: String,
    },
    /// A value is out of range.
    #[error("config key {key}: {message}")]
    Invalid {
        /// The dotted key, for example `reducer.max_attempts`.
        key: String,
        /// What is wrong and what is accepted.
        message: String,
    },
}

fn invalid(key: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.to_owned(),
        message: message.into(),
    }
}

/// The whole configuration.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Listening addresses, roles and request limits.
    pub server: ServerConfig,
    /// Database connection.
    pub storage: StorageConfig,
    /// Conflict retries.
    pub reducer: ReducerConfig,
    /// Dedup record lifetime and cleanup.
    pub dedup: DedupConfig,
    /// How long published outbox rows and completions are kept.
    pub retention: RetentionConfig,
    /// How much of each workflow's history is kept.
    pub history: HistoryConfig,
    /// Kafka connection and topics (empty brokers: events stay in process).
    pub kafka: KafkaConfig,
    /// Projection materializer tuning.
    pub projection: ProjectionConfig,
    /// Event bus waits.
    pub event_bus: EventBusConfig,
    /// Logs, metrics and traces.
    pub telemetry: TelemetryConfig,
    /// Who may call what.
    pub auth: crate::auth::AuthConfig,
    /// Rates and calls in flight.
    pub limits: crate::limits::LimitsConfig,
    /// Declared workflow types by name, on top of the built-in ones.
    pub workflow_types: BTreeMap<String, WorkflowTypeConfig>,
}

/// `[server]`
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// gRPC address.
    pub listen: String,
    /// Prometheus `/metrics` address.
    pub metrics_listen: String,
    /// Roles to run; all when empty.
    pub roles: Vec<String>,
    /// Largest accepted gRPC message, in bytes.
    pub max_message_bytes: usize,
    /// Largest accepted JSON payload or state, in bytes.
    pub max_payload_bytes: usize,
    /// Largest event a commit may write, in encoded bytes: the `StateCommitted` event
    /// carries the whole new state, so this bounds the state a reducer or TryCommit may
    /// produce. Must fit under the Kafka producer's message limit when Kafka is used.
    pub max_state_bytes: usize,
    /// `admin`: gRPC reflection is served to admins (everyone when auth is off); `off`: not
    /// served.
    pub reflection: String,
    /// `[server.tls]`: TLS and client certificates for the gRPC port.
    pub tls: crate::tls::TlsConfig,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            // Loopback until an operator turns authentication on and opens it up.
            listen: "127.0.0.1:50051".to_owned(),
            metrics_listen: "127.0.0.1:8000".to_owned(),
            roles: Vec::new(),
            max_message_bytes: 4 * 1024 * 1024,
            max_payload_bytes: 1024 * 1024,
            max_state_bytes: 900_000,
            reflection: "admin".to_owned(),
            tls: crate::tls::TlsConfig::default(),
        }
    }
}

/// `[storage]`
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageConfig {
    /// `postgres://...` for production, `sqlite:...` for the embedded default.
    pub database_url: String,
    /// Connections kept open (`POSTGRES_POOL_SIZE`).
    pub min_pool_size: u32,
    /// Upper bound on connections (`POSTGRES_POOL_MAX`).
    pub max_pool_size: u32,
    /// Run pending migrations at start-up.
    pub migrate_on_start: bool,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            database_url: "sqlite://pure-reducer.db".to_owned(),
            min_pool_size: 10,
            max_pool_size: 50,
            migrate_on_start: true,
        }
    }
}

/// `[reducer]`
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReducerConfig {
    /// Attempts per action before giving up on version conflicts.
    pub max_attempts: u32,
    /// Backoff ceiling after the first conflict.
    pub backoff_base_ms: u64,
    /// Largest backoff ceiling.
    pub backoff_cap_ms: u64,
    /// Owner tasks of this process; each owns the workflows that hash to it and has at most
    /// one commit transaction in flight.
    pub owners: usize,
    /// Most actions one owner puts into one commit transaction.
    pub max_batch_actions: usize,
    /// Most workflows whose state the owners keep in memory; idle ones beyond it are evicted.
    pub max_cached_workflows: usize,
}

impl Default for ReducerConfig {
    fn default() -> Self {
        let policy = RetryPolicy::default();
        Self {
            max_attempts: policy.max_attempts,
            backoff_base_ms: policy.backoff_base_ms,
            backoff_cap_ms: policy.backoff_cap_ms,
            owners: 2,
            max_batch_actions: 512,
            max_cached_workflows: 10_000,
        }
    }
}

/// `[dedup]`
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DedupConfig {
    /// How long a processed action id is remembered.
    pub ttl_seconds: u64,
    /// How often expired records are deleted (0 disables the periodic cleanup).
    pub cleanup_interval_seconds: u64,
}

impl Default for DedupConfig {
    fn default() -> Self {
        Self {
            ttl_seconds: 6 * 3600,
            cleanup_interval_seconds: 300,
        }
    }
}

/// `[retention]`
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionConfig {
    /// Published outbox rows older than this are deleted (unpublished ones never are).
    pub outbox_seconds: u64,
    /// Completions of queued actions older than this are deleted; a later
    /// WaitForCompletion for them times out.
    pub completions_seconds: u64,
    /// How often both are pruned (0 disables pruning).
    pub interval_seconds: u64,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        Self {
            outbox_seconds: 7 * 24 * 3600,
            completions_seconds: 24 * 3600,
            interval_seconds: 300,
        }
    }
}

/// `[projection]`
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProjectionConfig {
    /// Skip events the projection already has. Always on: `false` is refused by
    /// [`Config::validate`], as applying an event at or below a projection's version would
    /// let it go back.
    pub enable_idempotence: bool,
    /// Longest wait for a batch.
    pub batch_timeout_ms: u64,
    /// Largest batch.
    pub max_records: usize,
    /// Kafka consumer group.
    pub consumer_group: String,
}

impl Default for ProjectionConfig {
    fn default() -> Self {
        Self {
            enable_idempotence: true,
            batch_timeout_ms: 1000,
            max_records: 500,
            consumer_group: "projection-materializer".to_owned(),
        }
    }
}

/// `[event_bus]`
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EventBusConfig {
    /// Default wait of `WaitForCompletion`.
    pub timeout_seconds: u64,
    /// Longest wait a `WaitForCompletion` may ask for; longer ones are refused.
    pub max_wait_seconds: u64,
}

impl Default for EventBusConfig {
    fn default() -> Self {
        Self {
            timeout_seconds: 30,
            max_wait_seconds: 300,
        }
    }
}

/// `[telemetry]`
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TelemetryConfig {
    /// OTLP endpoint for traces and metrics; empty disables the push.
    pub otlp_endpoint: String,
    /// `text` or `json`.
    pub log_format: String,
    /// Namespaces that always get their own `namespace` metric label.
    pub metric_namespaces: Vec<String>,
    /// How many other namespaces get their own label, first seen first; the rest share
    /// `namespace="other"`, so clients cannot grow the number of series without bound.
    pub max_metric_namespaces: usize,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self {
            otlp_endpoint: String::new(),
            log_format: "text".to_owned(),
            metric_namespaces: vec!["default".to_owned()],
            max_metric_namespaces: 50,
        }
    }
}

/// `[workflow_types.NAME]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkflowTypeConfig {
    /// `merge`, `json-patch`, `fsm` or `remote`.
    pub reducer: String,
    /// fsm: the initial state.
    pub initial: Option<String>,
    /// fsm: the allowed transitions.
    pub transitions: Option<Vec<Transition>>,
    /// remote: the `ReducerFunction` endpoint.
    pub endpoint: Option<String>,
    /// remote: deadline of one call.
    pub timeout_ms: Option<u64>,
}

impl Config {
    /// Reads a TOML file over the defaults.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_toml(&text).map_err(|message| ConfigError::Parse {
            path: path.display().to_string(),
            message,
        })
    }

    /// Parses TOML text over the defaults.
    pub fn from_toml(text: &str) -> Result<Self, String> {
        toml::from_str(text).map_err(|err| err.to_string())
    }

    /// The roles to run, validated.
    pub fn roles(&self) -> Result<Vec<String>, ConfigError> {
        if self.server.roles.is_empty() {
            return Ok(ROLES.iter().map(|r| (*r).to_owned()).collect());
        }
        for role in &self.server.roles {
            if !ROLES.contains(&role.as_str()) {
                return Err(invalid(
                    "server.roles",
                    format!("unknown role '{role}'; known roles: {}", ROLES.join(", ")),
                ));
            }
        }
        Ok(self.server.roles.clone())
    }

    /// Checks every value once; the first problem found is returned.
    pub fn validate(&self) -> Result<Validated, ConfigError> {
        let listen = parse_addr("server.listen", &self.server.listen)?;
        let metrics_listen = parse_addr("server.metrics_listen", &self.server.metrics_listen)?;
        let roles = self.roles()?;
        addresses::check(self)?;
        if self.server.max_payload_bytes == 0 {
            return Err(invalid("server.max_payload_bytes", "must be greater than 0"));
        }
        if self.server.max_message_bytes < self.server.max_payload_bytes {
            return Err(invalid(
                "server.max_message_bytes",
                format!(
                    "must be at least server.max_payload_bytes ({})",
                    self.server.max_payload_bytes
                ),
            ));
        }
        if self.server.max_state_bytes == 0 {
            return Err(invalid("server.max_state_bytes", "must be greater than 0"));
        }
        let kafka_room = purereducer_bus::MAX_MESSAGE_BYTES - purereducer_bus::MESSAGE_OVERHEAD_BYTES;
        if !self.kafka.brokers.trim().is_empty() && self.server.max_state_bytes > kafka_room {
            return Err(invalid(
                "server.max_state_bytes",
                format!(
                    "must be at most {kafka_room} with Kafka: events larger than the producer's message.max.bytes ({}) less room for key and headers could never be published",
                    purereducer_bus::MAX_MESSAGE_BYTES
                ),
            ));
        }
        if self.storage.max_pool_size == 0 {
            return Err(invalid("storage.max_pool_size", "must be at least 1"));
        }
        if self.storage.min_pool_size > self.storage.max_pool_size {
            return Err(invalid(
                "storage.min_pool_size",
                format!("must not exceed storage.max_pool_size ({})", self.storage.max_pool_size),
            ));
        }
        if self.reducer.max_attempts == 0 {
            return Err(invalid("reducer.max_attempts", "must be at least 1"));
        }
        if self.reducer.backoff_base_ms > self.reducer.backoff_cap_ms {
            return Err(invalid(
                "reducer.backoff_base_ms",
                format!(
                    "must not exceed reducer.backoff_cap_ms ({})",
                    self.reducer.backoff_cap_ms
                ),
            ));
        }
        for (key, value) in [
            ("reducer.owners", self.reducer.owners),
            ("reducer.max_batch_actions", self.reducer.max_batch_actions),
            ("reducer.max_cached_workflows", self.reducer.max_cached_workflows),
        ] {
            if value == 0 {
                return Err(invalid(key, "must be at least 1"));
            }
        }
        if self.dedup.ttl_seconds == 0 {
            return Err(invalid("dedup.ttl_seconds", "must be at least 1"));
        }
        if !self.projection.enable_idempotence {
            return Err(invalid(
                "projection.enable_idempotence",
                "must be true: the materializer always skips events a projection already holds (at or below its \
                 version), which is what keeps projections from going back; remove the key or set it to true",
            ));
        }
        if self.event_bus.timeout_seconds == 0 {
            return Err(invalid("event_bus.timeout_seconds", "must be at least 1"));
        }
        if self.event_bus.max_wait_seconds < self.event_bus.timeout_seconds {
            return Err(invalid(
                "event_bus.max_wait_seconds",
                format!(
                    "must be at least event_bus.timeout_seconds ({})",
                    self.event_bus.timeout_seconds
                ),
            ));
        }
        if !matches!(self.telemetry.log_format.as_str(), "text" | "json") {
            return Err(invalid("telemetry.log_format", "must be \"text\" or \"json\""));
        }
        if !matches!(self.server.reflection.as_str(), "admin" | "off") {
            return Err(invalid("server.reflection", "must be \"admin\" or \"off\""));
        }
        let auth = Arc::new(crate::auth::Authenticator::from_config(&self.auth)?);
        let tls = crate::tls::ServerTls::load(&self.server.tls)?;
        let metrics_tls = tls.clone().filter(|_| self.server.tls.metrics);
        self.kafka.validate()?;
        let workflow_types = self.workflow_types()?;
        Ok(Validated {
            auth,
            tls,
            metrics_tls,
            listen,
            metrics_listen,
            roles,
            retry: RetryPolicy {
                max_attempts: self.reducer.max_attempts,
                backoff_base_ms: self.reducer.backoff_base_ms,
                backoff_cap_ms: self.reducer.backoff_cap_ms,
            },
            dedup_ttl: Duration::from_secs(self.dedup.ttl_seconds),
            owners: OwnerLimits {
                owners: self.reducer.owners,
                max_batch_actions: self.reducer.max_batch_actions,
                max_cached_workflows: self.reducer.max_cached_workflows,
                max_state_bytes: self.server.max_state_bytes,
            },
            workflow_types,
        })
    }

    fn workflow_types(&self) -> Result<WorkflowTypes, ConfigError> {
        let mut types = WorkflowTypes::builtin();
        for (name, declared) in &self.workflow_types {
            let key = format!("workflow_types.{name}");
            TypeName::parse(name, &key).map_err(|err| invalid(&key, err.description))?;
            let spec = match declared.reducer.as_str() {
                "merge" => ReducerSpec::Local(Arc::new(MergeReducer)),
                "json-patch" => ReducerSpec::Local(Arc::new(JsonPatchReducer)),
                "fsm" => ReducerSpec::Local(Arc::new(fsm_from(&key, declared)?)),
                "remote" => remote_from(&key, declared)?,
                other => {
                    return Err(invalid(
                        &format!("{key}.reducer"),
                        format!("unknown reducer '{other}'; use merge, json-patch, fsm or remote"),
                    ));
                }
            };
            types.insert(name.clone(), spec);
        }
        Ok(types)
    }
}

fn fsm_from(key: &str, declared: &WorkflowTypeConfig) -> Result<FsmReducer, ConfigError> {
    let (Some(initial), Some(transitions)) = (&declared.initial, &declared.transitions) else {
        return Ok(FsmReducer::default_machine());
    };
    if transitions.is_empty() {
        return Err(invalid(
            &format!("{key}.transitions"),
            "must list at least one transition",
        ));
    }
    Ok(FsmReducer::new(initial.clone(), transitions.clone()))
}

fn remote_from(key: &str, declared: &WorkflowTypeConfig) -> Result<ReducerSpec, ConfigError> {
    let Some(endpoint) = declared.endpoint.as_ref().filter(|e| !e.is_empty()) else {
        return Err(invalid(
            &format!("{key}.endpoint"),
            "is required for a remote reducer (http://host:port)",
        ));
    };
    if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
        return Err(invalid(
            &format!("{key}.endpoint"),
            "must start with http:// or https://",
        ));
    }
    let timeout_ms = declared.timeout_ms.unwrap_or(1000);
    if timeout_ms == 0 {
        return Err(invalid(&format!("{key}.timeout_ms"), "must be at least 1"));
    }
    Ok(ReducerSpec::Remote {
        endpoint: endpoint.clone(),
        timeout: Duration::from_millis(timeout_ms),
    })
}

fn parse_addr(key: &str, raw: &str) -> Result<SocketAddr, ConfigError> {
    raw.parse()
        .map_err(|_| invalid(key, format!("'{raw}' is not an address such as 0.0.0.0:50051")))
}

/// Sizing of the engine's key owners (see [`crate::engine`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OwnerLimits {
    /// Owner tasks.
    pub owners: usize,
    /// Most actions per commit transaction.
    pub max_batch_actions: usize,
    /// Most workflow states kept in memory across all owners.
    pub max_cached_workflows: usize,
    /// Largest event a commit may write (`server.max_state_bytes`).
    pub max_state_bytes: usize,
}

/// The checked, ready-to-use parts of the configuration.
#[derive(Debug, Clone)]
pub struct Validated {
    /// How callers are authenticated.
    pub auth: Arc<crate::auth::Authenticator>,
    /// Server TLS, when configured.
    pub tls: Option<Arc<crate::tls::ServerTls>>,
    /// TLS of the HTTP port, when `server.tls.metrics` asks for it.
    pub metrics_tls: Option<Arc<crate::tls::ServerTls>>,
    /// gRPC address.
    pub listen: SocketAddr,
    /// Metrics address.
    pub metrics_listen: SocketAddr,
    /// Roles to run.
    pub roles: Vec<String>,
    /// Conflict retry policy.
    pub retry: RetryPolicy,
    /// Dedup record lifetime.
    pub dedup_ttl: Duration,
    /// How the engine's owners are sized.
    pub owners: OwnerLimits,
    /// Declared workflow types.
    pub workflow_types: WorkflowTypes,
}

mod addresses;
mod history;
mod kafka;
#[cfg(test)]
mod tests;

pub use history::{HistoryConfig, HistoryRetentionConfig};
pub use kafka::KafkaConfig;
