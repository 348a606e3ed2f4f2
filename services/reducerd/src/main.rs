//! The `reducerd` command line: `reducerd` (serve, the default), `reducerd migrate` and
//! `reducerd check-config`. Flags override environment variables, which override the
//! config file, which overrides the built-in defaults.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use reducerd::App;
use reducerd::config::Config;
use tokio::net::TcpListener;

#[derive(Debug, Parser)]
#[command(name = "reducerd", version, about = "Pure Reducer server")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    overrides: Overrides,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the configured roles (the default).
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Validate the configuration and exit.
    CheckConfig,
}

#[derive(Debug, Args)]
struct Overrides {
    /// TOML config file.
    #[arg(long, env = "PURE_REDUCER_CONFIG", global = true)]
    config: Option<PathBuf>,
    /// gRPC listen address (server.listen).
    #[arg(long, env = "PURE_REDUCER_LISTEN", global = true)]
    listen: Option<String>,
    /// Prometheus listen address (server.metrics_listen).
    #[arg(long, env = "PURE_REDUCER_METRICS_LISTEN", global = true)]
    metrics_listen: Option<String>,
    /// Comma-separated roles (server.roles).
    #[arg(long, env = "PURE_REDUCER_ROLES", value_delimiter = ',', global = true)]
    roles: Option<Vec<String>>,
    /// Database URL (storage.database_url).
    #[arg(long, env = "PURE_REDUCER_DATABASE_URL", global = true)]
    database_url: Option<String>,
    /// Kafka bootstrap servers (kafka.brokers).
    #[arg(long, env = "PURE_REDUCER_KAFKA_BROKERS", global = true)]
    kafka_brokers: Option<String>,
    /// plaintext, ssl, sasl_plaintext or sasl_ssl (kafka.security_protocol).
    #[arg(long, env = "PURE_REDUCER_KAFKA_SECURITY_PROTOCOL", global = true)]
    kafka_security_protocol: Option<String>,
    /// PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (kafka.sasl_mechanism).
    #[arg(long, env = "PURE_REDUCER_KAFKA_SASL_MECHANISM", global = true)]
    kafka_sasl_mechanism: Option<String>,
    /// SASL user name (kafka.sasl_username).
    #[arg(long, env = "PURE_REDUCER_KAFKA_SASL_USERNAME", global = true)]
    kafka_sasl_username: Option<String>,
    /// SASL password (kafka.sasl_password); prefer the environment variable.
    #[arg(
        long,
        env = "PURE_REDUCER_KAFKA_SASL_PASSWORD",
        hide_env_values = true,
        global = true
    )]
    kafka_sasl_password: Option<String>,
    /// PEM CA file for the brokers' certificates (kafka.ssl_ca_file).
    #[arg(long, env = "PURE_REDUCER_KAFKA_SSL_CA_FILE", global = true)]
    kafka_ssl_ca_file: Option<PathBuf>,
    /// none or token (auth.mode).
    #[arg(long, env = "PURE_REDUCER_AUTH_MODE", global = true)]
    auth_mode: Option<String>,
    /// Tokens file (auth.tokens_file).
    #[arg(long, env = "PURE_REDUCER_AUTH_TOKENS_FILE", global = true)]
    auth_tokens_file: Option<PathBuf>,
    /// Log format, text or json (telemetry.log_format).
    #[arg(long, env = "PURE_REDUCER_LOG_FORMAT", global = true)]
    log_format: Option<String>,
    /// OTLP endpoint (telemetry.otlp_endpoint).
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT", global = true)]
    otlp_endpoint: Option<String>,
    /// Minimum pool size (storage.min_pool_size).
    #[arg(long, env = "POSTGRES_POOL_SIZE", global = true)]
    min_pool_size: Option<u32>,
    /// Maximum pool size (storage.max_pool_size).
    #[arg(long, env = "POSTGRES_POOL_MAX", global = true)]
    max_pool_size: Option<u32>,
}

impl Overrides {
    fn load(self) -> anyhow::Result<Config> {
        let mut config = match &self.config {
            Some(path) => Config::from_file(path)?,
            None => Config::default(),
        };
        let server = &mut config.server;
        if let Some(listen) = self.listen {
            server.listen = listen;
        }
        if let Some(metrics_listen) = self.metrics_listen {
            server.metrics_listen = metrics_listen;
        }
        if let Some(roles) = self.roles {
            server.roles = roles
                .into_iter()
                .map(|r| r.trim().to_owned())
                .filter(|r| !r.is_empty())
                .collect();
        }
        if let Some(url) = self.database_url {
            config.storage.database_url = url;
        }
        if let Some(size) = self.min_pool_size {
            config.storage.min_pool_size = size;
        }
        if let Some(size) = self.max_pool_size {
            config.storage.max_pool_size = size;
        }
        if let Some(brokers) = self.kafka_brokers {
            config.kafka.brokers = brokers;
        }
        let kafka = &mut config.kafka;
        for (value, field) in [
            (self.kafka_security_protocol, &mut kafka.security_protocol),
            (self.kafka_sasl_mechanism, &mut kafka.sasl_mechanism),
            (self.kafka_sasl_username, &mut kafka.sasl_username),
            (self.kafka_sasl_password, &mut kafka.sasl_password),
        ] {
            if let Some(value) = value {
                *field = value;
            }
        }
        if let Some(ca) = self.kafka_ssl_ca_file {
            kafka.ssl_ca_file = Some(ca);
        }
        if let Some(mode) = self.auth_mode {
            config.auth.mode = mode;
        }
        if let Some(file) = self.auth_tokens_file {
            config.auth.tokens_file = Some(file);
        }
        if let Some(format) = self.log_format {
            config.telemetry.log_format = format;
        }
        if let Some(endpoint) = self.otlp_endpoint {
            config.telemetry.otlp_endpoint = endpoint;
        }
        Ok(config)
    }
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(signal) => signal,
            Err(_) => {
                let _ = interrupt.await;
                return;
            }
        };
        tokio::select! {
            _ = interrupt => {},
            _ = terminate.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
    tracing::info!("shutdown requested; draining in-flight requests");
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let config = cli.overrides.load()?;
    let telemetry = reducerd::telemetry::init(&config.telemetry)?;
    let validated = config.validate()?;
    match cli.command.unwrap_or(Command::Serve) {
        Command::CheckConfig => {
            println!("configuration is valid; roles: {}", validated.roles.join(","));
            Ok(())
        }
        Command::Migrate => {
            let url = &config.storage.database_url;
            let pool = purereducer_storage::PoolOptions {
                min_connections: 0,
                max_connections: 2,
                ..Default::default()
            };
            let report = purereducer_storage::migrate(url, pool)
                .await
                .with_context(|| format!("migrating {}", purereducer_storage::redact(url)))?;
            if report.applied.is_empty() {
                println!("the database was already up to date");
            }
            for (version, description) in &report.applied {
                println!("applied {version} {description}");
            }
            for note in &report.notes {
                println!("{note}");
            }
            Ok(())
        }
        Command::Serve => {
            let listener = TcpListener::bind(validated.listen)
                .await
                .with_context(|| format!("binding server.listen {}", validated.listen))?;
            let metrics_listener = TcpListener::bind(validated.metrics_listen)
                .await
                .with_context(|| format!("binding server.metrics_listen {}", validated.metrics_listen))?;
            let console = reducerd::console::slot();
            let metrics = telemetry.serve_metrics(
                metrics_listener,
                validated.auth.clone(),
                console.clone(),
                validated.metrics_tls.clone(),
            )?;
            let app = App::build(config).await?.with_console(console);
            let served = reducerd::serve(listener, app, shutdown_signal()).await;
            metrics.abort();
            telemetry.shutdown().await;
            served
        }
    }
}
