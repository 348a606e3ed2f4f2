//! Telemetry of the `reducerd` binary: the Prometheus endpoint with the runbook's names and
//! types, and one OTLP trace that follows an action from the RPC to its projection.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{ExportMetricsServiceRequest, ExportMetricsServiceResponse};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{TraceService, TraceServiceServer};
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use opentelemetry_proto::tonic::trace::v1::Span;
use purereducer_api::v1::canonical_store_service_client::CanonicalStoreServiceClient;
use purereducer_api::v1::event_bus_service_client::EventBusServiceClient;
use purereducer_api::v1::projection_service_client::ProjectionServiceClient;
use purereducer_api::v1::reducer_service_client::ReducerServiceClient;
use purereducer_api::v1::{
    GetProjectionRequest, GetStateRequest, HandleActionRequest, PublishActionRequest, TryCommitRequest,
    WaitForCompletionRequest,
};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Notify;
use tonic::transport::Channel;
use tonic::{Code, Request, Response, Status};

use crate::grpcurl::Reducerd;
use crate::kafka::mock_cluster;
use crate::support::{action, new_id, object};

/// Every metric the runbook names, with the Prometheus type it must have.
const RUNBOOK_METRICS: &[(&str, &str)] = &[
    ("canonical_store_state_commits_total", "counter"),
    ("canonical_store_state_conflicts_total", "counter"),
    ("canonical_store_commit_latency_ms", "histogram"),
    ("canonical_store_get_state_total", "counter"),
    ("canonical_store_get_state_errors", "counter"),
    ("reducer_successful_actions_total", "counter"),
    ("reducer_failed_actions_total", "counter"),
    ("reducer_conflict_attempts_total", "counter"),
    ("reducer_backoff_ms", "histogram"),
    ("reducer_gave_up_total", "counter"),
    ("projection_materializer_projections_materialized_total", "counter"),
    ("projection_materializer_projections_failed_total", "counter"),
    ("projection_materializer_wm_lag_ms", "gauge"),
    ("projection_materializer_max_lag_ms", "gauge"),
    ("projection_materializer_wm_regressions_total", "counter"),
    ("projection_materializer_duplicate_events_skipped", "counter"),
    ("projection_materializer_events_processed_per_second", "gauge"),
    ("action_dedup_checks_total", "counter"),
    ("action_dedup_hits_total", "counter"),
    ("action_dedup_records_total", "counter"),
    ("action_dedup_cleanup_deleted_total", "counter"),
    ("event_bus_published_total", "counter"),
    ("event_bus_consumed_total", "counter"),
    ("event_bus_timeout_total", "counter"),
    ("event_bus_wait_time_ms", "histogram"),
];

pub(crate) async fn connect(addr: &str) -> Channel {
    Channel::from_shared(format!("http://{addr}"))
        .expect("uri")
        .connect()
        .await
        .expect("connect to reducerd")
}

/// `GET /metrics` over plain HTTP/1.0.
pub(crate) async fn scrape(addr: &str) -> String {
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect to /metrics");
    stream
        .write_all(format!("GET /metrics HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
        .await
        .expect("request");
    let mut response = String::new();
    stream.read_to_string(&mut response).await.expect("response");
    let (head, body) = response.split_once("\r\n\r\n").expect("an HTTP response");
    assert!(
        head.starts_with("HTTP/1.0 200") || head.starts_with("HTTP/1.1 200"),
        "{head}"
    );
    assert!(head.to_ascii_lowercase().contains("content-type: text/plain"), "{head}");
    body.to_owned()
}

/// Drives every code path behind the runbook's metrics, one after another.
async fn exercise(channel: Channel) {
    let mut reducer = ReducerServiceClient::new(channel.clone());
    let mut canonical = CanonicalStoreServiceClient::new(channel.clone());
    let mut bus = EventBusServiceClient::new(channel.clone());
    let mut projections = ProjectionServiceClient::new(channel);

    // A commit, then the same action again (a dedup hit).
    let first = action(&new_id(), "metrics-1", "merge", "set", json!({"n": 1}));
    for _ in 0..2 {
        reducer
            .handle_action(HandleActionRequest {
                action: Some(first.clone()),
            })
            .await
            .expect("handle");
    }
    // A read and a stale compare-and-set (a conflict).
    canonical
        .get_state(GetStateRequest {
            namespace: Default::default(),
            workflow_key: "metrics-1".into(),
        })
        .await
        .expect("state");
    let stale = canonical
        .try_commit(TryCommitRequest {
            workflow_key: "metrics-1".into(),
            expected_version: 0,
            state: Some(object(json!({"n": 0}))),
            ..Default::default()
        })
        .await
        .expect("try commit")
        .into_inner();
    assert!(matches!(
        stale.outcome,
        Some(purereducer_api::v1::try_commit_response::Outcome::Conflict(_))
    ));
    // A queued action and its completion, then a wait that times out.
    let queued = bus
        .publish_action(PublishActionRequest {
            action: Some(action(&new_id(), "metrics-2", "merge", "set", json!({"n": 2}))),
        })
        .await
        .expect("publish")
        .into_inner();
    let done = bus
        .wait_for_completion(WaitForCompletionRequest {
            namespace: Default::default(),
            correlation_id: queued.correlation_id,
            timeout_ms: 30_000,
            action_id: String::new(),
        })
        .await
        .expect("completion")
        .into_inner();
    assert_eq!(done.version, 1);
    let seen = projections
        .get_projection(GetProjectionRequest {
            namespace: Default::default(),
            workflow_key: "metrics-1".into(),
            min_version: 1,
            max_wait_ms: 30_000,
        })
        .await
        .expect("projection")
        .into_inner();
    assert!(!seen.from_canonical);
    let timeout = bus
        .wait_for_completion(WaitForCompletionRequest {
            namespace: Default::default(),
            correlation_id: format!("never-{}", new_id()),
            timeout_ms: 50,
            action_id: String::new(),
        })
        .await
        .expect_err("nothing completes");
    assert_eq!(timeout.code(), Code::DeadlineExceeded);
}

/// The value of the series `name{labels}` (labels as written, or empty), if present.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.trim().parse().ok())
}

#[tokio::test]
async fn metrics_endpoint_serves_the_runbook_names_types_and_labels() {
    let server = Reducerd::start();
    exercise(connect(&server.addr).await).await;
    let text = scrape(&server.metrics_addr).await;

    // Present once some work ran: everything but the conflict-retry metrics, which need
    // contention (the live Prometheus check produces those).
    let needs_contention = [
        "reducer_conflict_attempts_total",
        "reducer_backoff_ms",
        "reducer_gave_up_total",
        "reducer_failed_actions_total",
    ];
    for (name, kind) in RUNBOOK_METRICS {
        if needs_contention.contains(name) {
            continue;
        }
        assert!(
            text.lines().any(|line| line == format!("# TYPE {name} {kind}")),
            "no `# TYPE {name} {kind}` in /metrics:\n{text}"
        );
    }
    // Exact names: no unit or `_total` rewriting, no scope labels, and buckets that answer
    // the SLAs (commit 10/50 ms).
    assert!(!text.contains("_milliseconds"), "{text}");
    assert!(!text.contains("otel_scope"), "{text}");
    assert!(!text.contains("_total_total"), "{text}");
    let labels = r#"namespace="default",workflow_type="merge""#;
    for le in ["10", "50"] {
        assert!(
            text.contains(&format!(
                "canonical_store_commit_latency_ms_bucket{{{labels},le=\"{le}\"}}"
            )),
            "no le={le} bucket:\n{text}"
        );
    }
    // metrics-1 and the queued metrics-2 each committed once; the repeat was a dedup hit.
    assert_eq!(
        sample(&text, &format!("canonical_store_state_commits_total{{{labels}}}")),
        Some(2.0)
    );
    assert_eq!(
        sample(&text, &format!("canonical_store_state_conflicts_total{{{labels}}}")),
        Some(1.0)
    );
    assert_eq!(
        sample(&text, &format!("action_dedup_hits_total{{{labels}}}")),
        Some(1.0)
    );
    assert_eq!(
        sample(&text, &format!("reducer_successful_actions_total{{{labels}}}")),
        Some(2.0)
    );
    assert_eq!(
        sample(&text, r#"event_bus_timeout_total{event_type="ActionCompleted"}"#),
        Some(1.0)
    );
    assert_eq!(
        sample(&text, r#"event_bus_consumed_total{event_type="ActionCompleted"}"#),
        Some(1.0)
    );
    // metrics-1 was projected before the scrape; metrics-2 may still be on its way.
    assert!(
        sample(&text, "projection_materializer_projections_materialized_total").is_some_and(|n| n >= 1.0),
        "{text}"
    );
    assert_eq!(sample(&text, "projection_materializer_wm_regressions_total"), Some(0.0));
    // A workflow key never becomes a label.
    assert!(
        !text.contains("metrics-1") && !text.contains("metrics-2"),
        "a workflow key leaked into a label:\n{text}"
    );
}

/// What the in-process OTLP receiver has been sent.
#[derive(Default)]
struct Received {
    spans: Mutex<Vec<Span>>,
    metric_names: Mutex<Vec<String>>,
    arrived: Notify,
}

#[derive(Clone)]
struct Receiver(Arc<Received>);

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        let spans = request
            .into_inner()
            .resource_spans
            .into_iter()
            .flat_map(|resource| resource.scope_spans)
            .flat_map(|scope| scope.spans);
        self.0.spans.lock().expect("spans").extend(spans);
        self.0.arrived.notify_waiters();
        Ok(Response::new(ExportTraceServiceResponse::default()))
    }
}

#[tonic::async_trait]
impl MetricsService for Receiver {
    async fn export(
        &self,
        request: Request<ExportMetricsServiceRequest>,
    ) -> Result<Response<ExportMetricsServiceResponse>, Status> {
        let names = request
            .into_inner()
            .resource_metrics
            .into_iter()
            .flat_map(|resource| resource.scope_metrics)
            .flat_map(|scope| scope.metrics)
            .map(|metric| metric.name);
        self.0.metric_names.lock().expect("metrics").extend(names);
        self.0.arrived.notify_waiters();
        Ok(Response::new(ExportMetricsServiceResponse::default()))
    }
}

/// Waits (woken by each export) until `done` holds, for at most a minute.
async fn until(received: &Received, what: &str, done: impl Fn(&Received) -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let arrived = received.arrived.notified();
        if done(received) {
            return;
        }
        if tokio::time::timeout_at(deadline, arrived).await.is_err() {
            panic!("{what} did not arrive over OTLP within a minute");
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_otlp_trace_follows_an_action_from_the_rpc_through_kafka_to_its_projection() {
    let received = Arc::new(Received::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let otlp = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(Receiver(received.clone())))
            .add_service(MetricsServiceServer::new(Receiver(received.clone())))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    let cluster = mock_cluster();
    let brokers = cluster.bootstrap_servers();
    let database = purereducer_storage::testing::fresh_postgres_url()
        .await
        .expect("database");
    let server = Reducerd::start_with(&[
        ("PURE_REDUCER_DATABASE_URL", database.as_str()),
        ("PURE_REDUCER_KAFKA_BROKERS", brokers.as_str()),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", otlp.as_str()),
        ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ("OTEL_METRIC_EXPORT_INTERVAL", "500"),
    ]);
    let channel = connect(&server.addr).await;

    // The caller starts the trace; its id comes back on every span of the action.
    let trace_id = uuid::Uuid::new_v4().simple().to_string();
    let mut request = Request::new(HandleActionRequest {
        action: Some(action(&new_id(), "traced-1", "merge", "set", json!({"n": 1}))),
    });
    request.metadata_mut().insert(
        "traceparent",
        format!("00-{trace_id}-00f067aa0ba902b7-01").parse().expect("metadata"),
    );
    let reply = ReducerServiceClient::new(channel.clone())
        .handle_action(request)
        .await
        .expect("handle")
        .into_inner();
    assert_eq!(reply.version, 1);
    let seen = ProjectionServiceClient::new(channel)
        .get_projection(GetProjectionRequest {
            namespace: Default::default(),
            workflow_key: "traced-1".into(),
            min_version: 1,
            max_wait_ms: 60_000,
        })
        .await
        .expect("projection")
        .into_inner();
    assert!(!seen.from_canonical, "the materializer applied the commit");

    let wanted = [
        "purereducer.v1.ReducerService/HandleAction",
        "reduce",
        "commit",
        "outbox publish",
        "kafka consume",
        "projection apply",
    ];
    let of_trace = |received: &Received| -> HashMap<String, Span> {
        received
            .spans
            .lock()
            .expect("spans")
            .iter()
            .filter(|span| hex(&span.trace_id) == trace_id)
            .map(|span| (span.name.clone(), span.clone()))
            .collect()
    };
    until(&received, "the action's spans", |received| {
        let spans = of_trace(received);
        wanted.iter().all(|name| spans.contains_key(*name))
    })
    .await;
    let spans = of_trace(&received);
    let parent_of = |child: &str, parent: &str| {
        assert_eq!(
            hex(&spans[child].parent_span_id),
            hex(&spans[parent].span_id),
            "`{child}` should be a child of `{parent}`"
        );
    };
    assert_eq!(
        hex(&spans["purereducer.v1.ReducerService/HandleAction"].parent_span_id),
        "00f067aa0ba902b7",
        "the RPC continues the caller's trace"
    );
    parent_of("reduce", "purereducer.v1.ReducerService/HandleAction");
    parent_of("commit", "purereducer.v1.ReducerService/HandleAction");
    parent_of("outbox publish", "commit");
    parent_of("kafka consume", "outbox publish");
    parent_of("projection apply", "kafka consume");

    // Metrics go out over OTLP too, under the same names.
    until(&received, "the commit metrics", |received| {
        let names = received.metric_names.lock().expect("metrics");
        [
            "canonical_store_state_commits_total",
            "canonical_store_commit_latency_ms",
            "projection_materializer_wm_lag_ms",
        ]
        .iter()
        .all(|wanted| names.iter().any(|name| name == wanted))
    })
    .await;
    drop(server);
    drop(cluster);
}

#[tokio::test]
async fn json_logs_carry_the_trace_id_of_the_request_they_belong_to() {
    let server = Reducerd::start_with(&[("PURE_REDUCER_LOG_FORMAT", "json")]);
    let trace_id = uuid::Uuid::new_v4().simple().to_string();
    let mut request = Request::new(WaitForCompletionRequest {
        namespace: Default::default(),
        correlation_id: format!("never-{}", new_id()),
        timeout_ms: 20,
        action_id: String::new(),
    });
    request.metadata_mut().insert(
        "traceparent",
        format!("00-{trace_id}-00f067aa0ba902b7-01").parse().expect("metadata"),
    );
    let status = EventBusServiceClient::new(connect(&server.addr).await)
        .wait_for_completion(request)
        .await
        .expect_err("nothing completes");
    assert_eq!(status.code(), Code::DeadlineExceeded);

    // The line is written before the reply; the reader thread may not have collected it yet.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let line = loop {
        let found = server.log.lock().expect("log").iter().find_map(|line| {
            let json: serde_json::Value = serde_json::from_str(line).ok()?;
            (json["fields"]["message"] == "Timeout waiting for event").then_some(json)
        });
        if let Some(line) = found {
            break line;
        }
        assert!(std::time::Instant::now() < deadline, "no timeout line in the JSON log");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(line["level"], "INFO");
    assert_eq!(line["span"]["trace_id"], trace_id.as_str(), "{line}");
    assert_eq!(line["span"]["rpc.method"], "WaitForCompletion", "{line}");
    // Every line is one JSON object.
    for line in server.log.lock().expect("log").iter() {
        serde_json::from_str::<serde_json::Value>(line).unwrap_or_else(|_| panic!("not JSON: {line}"));
    }
}
