//! Process-wide telemetry: OpenTelemetry meter and tracer providers, the Prometheus
//! endpoint, OTLP push when an endpoint is configured, W3C trace-context propagation, and
//! structured logs (text or JSON) that carry the trace id of the request they belong to.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{WithExportConfig as _, WithTonicConfig as _};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::SdkMeterProvider;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tokio::net::TcpListener;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

use crate::config::TelemetryConfig;

/// The installed providers; [`Telemetry::shutdown`] flushes what is still buffered.
#[derive(Debug)]
pub struct Telemetry {
    registry: prometheus::Registry,
    meters: SdkMeterProvider,
    tracers: SdkTracerProvider,
}

/// Installs the global providers and the log subscriber. Call once, inside the runtime
/// (the OTLP exporters use it).
pub fn init(config: &TelemetryConfig) -> anyhow::Result<Telemetry> {
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    // OTEL_SERVICE_NAME (one per role in the deployments) wins over the binary's name.
    let mut resource = Resource::builder();
    if std::env::var_os("OTEL_SERVICE_NAME").is_none() {
        resource = resource.with_service_name("reducerd");
    }
    let resource = resource.build();
    let otlp = (!config.otlp_endpoint.is_empty()).then_some(config.otlp_endpoint.as_str());

    let registry = prometheus::Registry::new();
    // The runbook's names are used as they are: no unit or `_total` rewriting.
    let prometheus_reader = opentelemetry_prometheus::exporter()
        .with_registry(registry.clone())
        .without_units()
        .without_counter_suffixes()
        .without_target_info()
        .scope_info_enabled(false)
        .build()
        .context("creating the Prometheus exporter")?;
    let mut meters = SdkMeterProvider::builder()
        .with_resource(resource.clone())
        .with_reader(prometheus_reader);
    let mut tracers = SdkTracerProvider::builder().with_resource(resource);
    if let Some(endpoint) = otlp {
        let metric_exporter = opentelemetry_otlp::MetricExporter::builder()
            .with_tonic()
            .with_endpoint(endpoint)
            .with_tls_config(otlp_tls())
            .build()
            .with_context(|| format!("telemetry.otlp_endpoint {endpoint}: creating the metric exporter"))?;
        meters = meters.with_periodic_exporter(metric_exporter);
        let span_exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(endpoint)
            .with_tls_config(otlp_tls())
            .build()
            .with_context(|| format!("telemetry.otlp_endpoint {endpoint}: creating the span exporter"))?;
        tracers = tracers.with_batch_exporter(span_exporter);
    }
    let meters = meters.build();
    let tracers = tracers.build();
    opentelemetry::global::set_meter_provider(meters.clone());
    opentelemetry::global::set_tracer_provider(tracers.clone());

    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn,h2=warn,tower=warn"));
    let traces = tracing_opentelemetry::layer().with_tracer(tracers.tracer("reducerd"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let registry_layers = tracing_subscriber::registry().with(filter).with(traces);
    if config.log_format == "json" {
        registry_layers
            .with(tracing_subscriber::fmt::layer().json().with_current_span(true))
            .try_init()
            .context("installing the log subscriber")?;
    } else {
        registry_layers
            .with(tracing_subscriber::fmt::layer().with_ansi(ansi))
            .try_init()
            .context("installing the log subscriber")?;
    }
    crate::metrics::metrics().initialise();
    if let Some(endpoint) = otlp {
        tracing::info!(endpoint, "exporting traces and metrics over OTLP");
    }
    Ok(Telemetry {
        registry,
        meters,
        tracers,
    })
}

impl Telemetry {
    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> anyhow::Result<String> {
        render(&self.registry)
    }

    /// Serves `GET /metrics` and the web console on `listener` until the task is dropped.
    /// With authentication on, a scrape needs a bearer token of any role (401 without).
    pub fn serve_metrics(
        &self,
        listener: TcpListener,
        auth: Arc<crate::auth::Authenticator>,
        console: crate::console::Slot,
        tls: Option<Arc<crate::tls::ServerTls>>,
    ) -> anyhow::Result<tokio::task::JoinHandle<()>> {
        let addr: SocketAddr = listener.local_addr()?;
        let registry = self.registry.clone();
        let console = crate::console::router(console, auth.clone(), registry.clone());
        let app = axum::Router::new()
            .route(
                "/metrics",
                axum::routing::get(move |headers: axum::http::HeaderMap| {
                    let registry = registry.clone();
                    let auth = auth.clone();
                    async move {
                        let authorization = headers.get(header::AUTHORIZATION).map(|value| value.as_bytes());
                        match auth.authenticate(authorization) {
                            Ok(identity) if identity.has(crate::auth::Role::Reader) => {}
                            Ok(_) => return (StatusCode::FORBIDDEN, "this credential holds no role\n").into_response(),
                            Err(rejection) => {
                                return (
                                    StatusCode::UNAUTHORIZED,
                                    [(header::WWW_AUTHENTICATE, "Bearer")],
                                    format!("{}\n", rejection.status().message()),
                                )
                                    .into_response();
                            }
                        }
                        match render(&registry) {
                            Ok(text) => (
                                StatusCode::OK,
                                [(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
                                text,
                            )
                                .into_response(),
                            Err(err) => (StatusCode::INTERNAL_SERVER_ERROR, err.to_string()).into_response(),
                        }
                    }
                }),
            )
            .merge(console);
        tracing::info!(addr = %addr, tls = tls.is_some(), "reducerd serving metrics and the console");
        Ok(match tls {
            Some(tls) => tokio::spawn(serve_http(crate::tls::HttpsListener::new(listener, tls)?, app)),
            None => tokio::spawn(serve_http(listener, app)),
        })
    }

    /// Flushes buffered spans and metrics and stops the exporters.
    pub async fn shutdown(self) {
        let Self { meters, tracers, .. } = self;
        // The exporters block while flushing; keep that off the async workers.
        let _ = tokio::task::spawn_blocking(move || {
            if let Err(err) = tracers.shutdown() {
                eprintln!("reducerd: flushing traces failed: {err}");
            }
            if let Err(err) = meters.shutdown() {
                eprintln!("reducerd: flushing metrics failed: {err}");
            }
        })
        .await;
    }
}

/// Serves the HTTP port's routes on `listener` (plain TCP or TLS) until the task is dropped.
async fn serve_http<L>(listener: L, app: axum::Router)
where
    L: axum::serve::Listener,
    L::Addr: std::fmt::Debug,
{
    if let Err(err) = axum::serve(listener, app).await {
        tracing::error!(error = %err, "metrics endpoint failed");
    }
}

fn render(registry: &prometheus::Registry) -> anyhow::Result<String> {
    let mut text = String::new();
    let mut families = registry.gather();
    crate::metrics::add_zero_histograms(&mut families);
    prometheus::TextEncoder::new()
        .encode_utf8(&families, &mut text)
        .context("encoding metrics")?;
    Ok(text)
}

/// TLS for an `https://` OTLP endpoint: the system's CA certificates (`SSL_CERT_FILE` adds
/// one). Ignored for `http://`.
fn otlp_tls() -> tonic::transport::ClientTlsConfig {
    crate::tls::install_default_provider();
    tonic::transport::ClientTlsConfig::new().with_native_roots()
}
