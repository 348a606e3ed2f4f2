//! `reducerd`: one server binary that runs any subset of Pure Reducer's services.
//!
//! [`serve`] takes an already bound listener, so tests bind port 0 and read the address
//! back instead of guessing ports or sleeping.
//!
//! Layout:
//! - [`auth`]: bearer tokens, roles per RPC and namespaces per credential.
//! - [`config`]: layered configuration and its validation.
//! - [`engine`]: the exactly-once action engine: one owner per key, folded and group commits.
//! - [`events`]: the protobuf events a commit writes to the outbox.
//! - [`convert`]: protobuf ↔ domain conversions and request validation.
//! - [`edge`]: deadlines and precise codes for what the transport refuses.
//! - [`error`]: the one mapping from errors to gRPC statuses.
//! - [`grpc`]: the service adapters.
//! - [`hub`]: in-process fan-out of commits, projection progress and completions.
//! - [`limits`]: write rates per namespace and the bound on calls in flight.
//! - [`pipeline`]: outbox → projections, subscribers and queued-action workers.
//! - [`projection`]: events decoded and turned into projection rows.
//! - [`maintenance`]: the periodic dedup cleanup.
//! - [`metrics`]: the runbook's metrics, recorded through OpenTelemetry.
//! - [`telemetry`]: providers, the Prometheus endpoint, OTLP, trace context and logs.
//! - [`tls`]: server TLS with reloadable certificates, and the accept loops.

pub mod admin;
pub mod auth;
pub mod config;
pub mod console;
pub mod convert;
pub mod edge;
pub mod engine;
pub mod error;
pub mod events;
pub mod grpc;
pub mod hub;
pub mod limits;
pub mod maintenance;
pub mod metrics;
pub mod pipeline;
pub mod projection;
pub mod telemetry;
pub mod tls;

use std::future::Future;
use std::sync::Arc;

use anyhow::Context;
use purereducer_api::v1::action_dedup_service_server::ActionDedupServiceServer;
use purereducer_api::v1::canonical_store_service_server::CanonicalStoreServiceServer;
use purereducer_api::v1::event_bus_service_server::EventBusServiceServer;
use purereducer_api::v1::projection_service_server::ProjectionServiceServer;
use purereducer_api::v1::reducer_service_server::ReducerServiceServer;
use purereducer_storage::{PoolOptions, Store};
use tokio::net::TcpListener;
use tonic::server::NamedService;
use tonic::transport::Server;

use crate::config::{Config, Validated};
use crate::engine::Engine;
use crate::hub::Hub;

/// A configured server, connected to its database, ready to serve.
#[derive(Debug, Clone)]
pub struct App {
    config: Config,
    validated: Validated,
    store: Arc<dyn Store>,
    console: Option<console::Slot>,
}

impl App {
    /// Validates the configuration and opens the store (running migrations if configured).
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let validated = config.validate()?;
        let pool = PoolOptions {
            min_connections: config.storage.min_pool_size,
            max_connections: config.storage.max_pool_size,
            ..PoolOptions::default()
        };
        let store = purereducer_storage::connect(&config.storage.database_url, pool, config.storage.migrate_on_start)
            .await
            .with_context(|| format!("opening {}", purereducer_storage::redact(&config.storage.database_url)))?;
        Ok(Self {
            config,
            validated,
            store,
            console: None,
        })
    }

    /// Lets the web console read this app's store and engine once it serves.
    pub fn with_console(mut self, console: console::Slot) -> Self {
        self.console = Some(console);
        self
    }

    /// An app over an existing store (tests share one database this way).
    pub fn with_store(config: Config, store: Arc<dyn Store>) -> anyhow::Result<Self> {
        let validated = config.validate()?;
        Ok(Self {
            config,
            validated,
            store,
            console: None,
        })
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The checked configuration.
    pub fn validated(&self) -> &Validated {
        &self.validated
    }

    fn runs(&self, role: &str) -> bool {
        self.validated.roles.iter().any(|r| r == role)
    }
}

/// Serves gRPC on `listener` until `shutdown` resolves, then drains in-flight requests.
pub async fn serve(
    listener: TcpListener,
    app: App,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    tls::install_default_provider();
    metrics::limit_namespace_labels(
        &app.config.telemetry.metric_namespaces,
        app.config.telemetry.max_metric_namespaces,
    );
    let max_payload = app.config.server.max_payload_bytes;
    let max_message = app.config.server.max_message_bytes;
    let hub = Hub::new();
    let engine = Arc::new(Engine::new(
        app.store.clone(),
        app.validated.workflow_types.clone(),
        app.validated.retry,
        app.validated.dedup_ttl,
        hub.clone(),
        app.validated.owners,
    )?);
    metrics::set_materializing(app.runs("projection-materializer"));
    metrics::metrics().initialise_labelled(
        &app.validated.workflow_types.names(),
        &app.config.telemetry.metric_namespaces,
    );
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    // Turns true as soon as shutdown starts, while in-flight requests still drain.
    let (draining_tx, draining_rx) = tokio::sync::watch::channel(false);
    let stopping_engine = engine.clone();
    let shutdown = async move {
        shutdown.await;
        let _ = draining_tx.send(true);
        // Queued actions stuck in an outage stay queued for the next start.
        stopping_engine.stop_retrying();
    };
    let wait_cap = std::time::Duration::from_secs(app.config.event_bus.timeout_seconds);

    let rate = limits::NamespaceRate::new(&app.config.limits);
    let (health, health_service) = tonic_health::server::health_reporter();
    let canonical = app.runs("canonical-store").then(|| {
        CanonicalStoreServiceServer::new(
            grpc::canonical_store::CanonicalStore::new(engine.clone(), max_payload).with_rate(rate.clone()),
        )
        .max_decoding_message_size(max_message)
    });
    // Dedup is part of applying actions, so the reducer role serves it too.
    let dedup = (app.runs("action-dedup") || app.runs("reducer-service")).then(|| {
        ActionDedupServiceServer::new(grpc::action_dedup::ActionDedup::new(
            app.store.clone(),
            app.validated.dedup_ttl,
        ))
        .max_decoding_message_size(max_message)
    });
    let reducer = app.runs("reducer-service").then(|| {
        ReducerServiceServer::new(grpc::reducer::Reducer::new(engine.clone(), max_payload).with_rate(rate.clone()))
            .max_decoding_message_size(max_message)
    });
    let pipeline = pipeline::start(pipeline::Context {
        config: &app.config,
        roles: &app.validated.roles,
        store: app.store.clone(),
        hub: hub.clone(),
        engine: engine.clone(),
        stop: stop_rx.clone(),
    })
    .await?;
    // Projections are read where the materializer or the canonical store runs.
    let projections = (app.runs("projection-materializer") || app.runs("canonical-store")).then(|| {
        ProjectionServiceServer::new(grpc::projection::Projections::new(
            app.store.clone(),
            hub.clone(),
            wait_cap,
        ))
    });
    let event_bus = pipeline.queue.clone().map(|queue| {
        EventBusServiceServer::new(
            grpc::event_bus::EventBus::new(
                engine.clone(),
                queue,
                hub.clone(),
                max_payload,
                (
                    wait_cap,
                    std::time::Duration::from_secs(app.config.event_bus.max_wait_seconds),
                ),
                draining_rx.clone(),
            )
            .with_rate(rate.clone()),
        )
        .max_decoding_message_size(max_message)
    });
    mark_serving::<CanonicalStoreServiceServer<grpc::canonical_store::CanonicalStore>>(&health, canonical.is_some())
        .await;
    mark_serving::<ActionDedupServiceServer<grpc::action_dedup::ActionDedup>>(&health, dedup.is_some()).await;
    mark_serving::<ReducerServiceServer<grpc::reducer::Reducer>>(&health, reducer.is_some()).await;
    mark_serving::<ProjectionServiceServer<grpc::projection::Projections>>(&health, projections.is_some()).await;
    mark_serving::<EventBusServiceServer<grpc::event_bus::EventBus>>(&health, event_bus.is_some()).await;
    if let Some(console) = &app.console {
        let kafka = !app.config.kafka.brokers.trim().is_empty();
        let groups = if kafka && app.runs("projection-materializer") {
            vec![(
                app.config.projection.consumer_group.clone(),
                vec![app.config.kafka.state_committed_topic.clone()],
            )]
        } else {
            Vec::new()
        };
        let _ = console.set(Arc::new(console::ConsoleState {
            store: app.store.clone(),
            engine: engine.clone(),
            roles: app.validated.roles.clone(),
            mode: if kafka { "kafka" } else { "in-process" },
            consumer_groups: groups,
            started: std::time::Instant::now(),
        }));
    }

    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(purereducer_api::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    // Widely installed grpcurl builds speak only the v1alpha reflection protocol.
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(purereducer_api::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()?;

    let cleanup = (dedup.is_some() && app.config.dedup.cleanup_interval_seconds > 0).then(|| {
        let interval = std::time::Duration::from_secs(app.config.dedup.cleanup_interval_seconds);
        tokio::spawn(maintenance::run_dedup_cleanup(
            app.store.clone(),
            interval,
            stop_rx.clone(),
        ))
    });

    let retention = (app.config.retention.interval_seconds > 0).then(|| {
        tokio::spawn(maintenance::run_retention(
            app.store.clone(),
            app.config.retention.clone(),
            app.config.history.retention.bounds(),
            stop_rx.clone(),
        ))
    });

    let addr = listener.local_addr()?;
    let auth = app.validated.auth.clone();
    if !auth.required() && !addr.ip().is_loopback() {
        tracing::warn!(
            addr = %addr,
            "auth.mode is \"none\" on a non-loopback address: anyone who can reach it may call every RPC"
        );
    }
    tracing::info!(
        addr = %addr,
        roles = %app.validated.roles.join(","),
        backend = app.store.backend(),
        tls = app.validated.tls.is_some(),
        auth = app.config.auth.mode.as_str(),
        "reducerd serving gRPC"
    );
    let reflection = app.config.server.reflection == "admin";
    let event_bus_config = &app.config.event_bus;
    let longest_wait = event_bus_config.max_wait_seconds.max(event_bus_config.timeout_seconds);
    let call_cap = std::time::Duration::from_secs(longest_wait + CALL_CAP_MARGIN_SECONDS);
    let router = Server::builder()
        .trace_fn(rpc_span)
        .max_concurrent_streams(Some(MAX_CONCURRENT_STREAMS))
        .http2_max_header_list_size(MAX_HEADER_LIST_BYTES)
        .http2_keepalive_interval(Some(KEEPALIVE_INTERVAL))
        .http2_keepalive_timeout(Some(KEEPALIVE_TIMEOUT))
        .layer(
            tower::ServiceBuilder::new()
                .layer(edge::EdgeLayer::new(call_cap, app.config.limits.max_in_flight))
                .layer(auth::AuthLayer::new(auth))
                .into_inner(),
        )
        .add_service(health_service)
        .add_optional_service(reflection.then_some(reflection_v1))
        .add_optional_service(reflection.then_some(reflection_v1alpha))
        .add_optional_service(canonical)
        .add_optional_service(dedup)
        .add_optional_service(reducer)
        .add_optional_service(projections)
        .add_optional_service(event_bus);
    let served = match app.validated.tls.clone() {
        Some(server_tls) => {
            router
                .serve_with_incoming_shutdown(tls::tls_incoming(listener, server_tls), shutdown)
                .await
        }
        None => {
            router
                .serve_with_incoming_shutdown(tls::plain_incoming(listener), shutdown)
                .await
        }
    };
    served.context("gRPC server failed")?;

    // In-flight RPCs are done; let queued actions finish, then drain the outbox.
    drop(engine);
    let pipeline::Pipeline {
        queue,
        queue_workers,
        tasks,
    } = pipeline;
    drop(queue);
    for worker in queue_workers {
        let _ = worker.await;
    }
    let _ = stop_tx.send(true);
    for task in tasks.into_iter().chain(cleanup).chain(retention) {
        let _ = task.await;
    }
    tracing::info!("reducerd stopped");
    Ok(())
}

/// Streams one client connection may have open at once.
const MAX_CONCURRENT_STREAMS: u32 = 512;
/// The largest block of request headers (metadata, tokens) a call may carry. A larger one is
/// refused by HTTP/2 itself (status 431), before any gRPC handling.
const MAX_HEADER_LIST_BYTES: u32 = 64 * 1024;
/// How often an idle connection is pinged, and how long the answer may take before the
/// connection is closed: peers that vanished do not keep their streams for ever.
const KEEPALIVE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(30);
const KEEPALIVE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
/// Every call ends this long after the longest wait a client may ask for.
const CALL_CAP_MARGIN_SECONDS: u64 = 30;

/// The server span of one RPC, continuing the caller's trace when its metadata carries a
/// W3C `traceparent`. Logs inside the RPC carry the span's `trace_id`.
fn rpc_span(request: &tonic::codegen::http::Request<()>) -> tracing::Span {
    let path = request.uri().path().trim_start_matches('/');
    if path.starts_with("grpc.health.") || path.starts_with("grpc.reflection.") {
        return tracing::Span::none();
    }
    let (service, method) = path.split_once('/').unwrap_or((path, ""));
    let span = tracing::info_span!(
        "rpc",
        otel.name = %path,
        otel.kind = "server",
        rpc.system = "grpc",
        rpc.service = %service,
        rpc.method = %method,
        trace_id = tracing::field::Empty,
    );
    let carrier = purereducer_bus::trace::carrier(|name| request.headers().get(name)?.to_str().ok());
    purereducer_bus::trace::set_parent(&span, &carrier);
    if let Some(trace_id) = purereducer_bus::trace::trace_id(&span) {
        span.record("trace_id", trace_id);
    }
    span
}

async fn mark_serving<S: NamedService>(health: &tonic_health::server::HealthReporter, serving: bool) {
    if serving {
        health.set_serving::<S>().await;
    }
}
