//! Remote reducers through the `reducerd` binary: the call joins the action's trace, and a
//! reducer that fails on an action (an exception in its code) is a clear, non-retryable
//! answer with the reducer's message, logged once and counted once.

use std::sync::{Arc, Mutex};

use purereducer_api::v1::canonical_store_service_client::CanonicalStoreServiceClient;
use purereducer_api::v1::reducer_function_server::{ReducerFunction, ReducerFunctionServer};
use purereducer_api::v1::reducer_service_client::ReducerServiceClient;
use purereducer_api::v1::{GetStateRequest, HandleActionRequest, ReduceRequest, ReduceResponse};
use serde_json::json;
use tonic::{Code, Request, Response, Status};

use crate::grpcurl::Reducerd;
use crate::support::{action, new_id};
use crate::telemetry::{connect, scrape};

/// Serves `reducer` on a free port; returns its endpoint.
async fn serve_reducer<R: ReducerFunction>(reducer: R) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let endpoint = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(ReducerFunctionServer::new(reducer))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    endpoint
}

/// Starts reducerd with workflow type `pricing` served by the remote reducer at `endpoint`.
fn reducerd_with_remote(endpoint: &str) -> (Reducerd, std::path::PathBuf) {
    let config = std::env::temp_dir().join(format!("reducerd-remote-{}.toml", new_id()));
    std::fs::write(
        &config,
        format!("[workflow_types.pricing]\nreducer = \"remote\"\nendpoint = \"{endpoint}\"\ntimeout_ms = 5000\n"),
    )
    .expect("config");
    let server = Reducerd::start_with(&[("PURE_REDUCER_CONFIG", config.to_str().expect("utf-8 path"))]);
    (server, config)
}

/// A remote reducer that sets `n` from the payload and keeps the `traceparent` it was sent.
#[derive(Clone, Default)]
struct TracedReducer(Arc<Mutex<Vec<String>>>);

#[tonic::async_trait]
impl ReducerFunction for TracedReducer {
    async fn reduce(&self, request: Request<ReduceRequest>) -> Result<Response<ReduceResponse>, Status> {
        if let Some(parent) = request.metadata().get("traceparent") {
            self.0
                .lock()
                .expect("seen")
                .push(parent.to_str().unwrap_or_default().to_owned());
        }
        let state = request.into_inner().action.and_then(|action| action.payload);
        Ok(Response::new(ReduceResponse {
            outcome: Some(purereducer_api::v1::reduce_response::Outcome::Reduced(
                purereducer_api::v1::reduce_response::Reduced {
                    state,
                    intents: Vec::new(),
                },
            )),
        }))
    }
}

#[tokio::test]
async fn a_remote_reducer_is_called_inside_the_actions_trace() {
    let reducer = TracedReducer::default();
    let (server, config) = reducerd_with_remote(&serve_reducer(reducer.clone()).await);

    let trace_id = uuid::Uuid::new_v4().simple().to_string();
    let mut request = Request::new(HandleActionRequest {
        action: Some(action(&new_id(), "priced-1", "pricing", "quote", json!({"n": 7}))),
    });
    request.metadata_mut().insert(
        "traceparent",
        format!("00-{trace_id}-00f067aa0ba902b7-01").parse().expect("metadata"),
    );
    let reply = ReducerServiceClient::new(connect(&server.addr).await)
        .handle_action(request)
        .await
        .expect("handle")
        .into_inner();
    assert_eq!(reply.version, 1);
    let seen = reducer.0.lock().expect("seen").clone();
    assert_eq!(seen.len(), 1, "{seen:?}");
    let parts: Vec<&str> = seen[0].split('-').collect();
    assert_eq!(parts.len(), 4, "{seen:?}");
    assert_eq!(parts[1], trace_id, "the remote call continues the caller's trace");
    assert_ne!(
        parts[2], "00f067aa0ba902b7",
        "its parent is reducerd's span, not the caller's"
    );
    let _ = std::fs::remove_file(config);
}

/// A remote reducer whose code throws on every action, as a Python or Node reducer's
/// exception arrives: UNKNOWN with the exception's text.
#[derive(Clone, Default)]
struct ThrowingReducer(Arc<Mutex<u32>>);

#[tonic::async_trait]
impl ReducerFunction for ThrowingReducer {
    async fn reduce(&self, _request: Request<ReduceRequest>) -> Result<Response<ReduceResponse>, Status> {
        *self.0.lock().expect("calls") += 1;
        Err(Status::unknown(
            "Exception calling application: ZeroDivisionError: division by zero",
        ))
    }
}

/// The value of `name` on the series whose labels include `label`.
fn sample(metrics: &str, name: &str, label: &str) -> f64 {
    metrics
        .lines()
        .filter(|line| line.starts_with(&format!("{name}{{")) && line.contains(label))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test]
async fn a_failing_remote_reducer_is_a_clear_refusal_logged_and_counted_once() {
    let reducer = ThrowingReducer::default();
    let (server, config) = reducerd_with_remote(&serve_reducer(reducer.clone()).await);
    let channel = connect(&server.addr).await;

    let first_id = new_id();
    let sent = action(&first_id, "priced-2", "pricing", "quote", json!({"n": 1}));
    let failed = ReducerServiceClient::new(channel.clone())
        .handle_action(HandleActionRequest { action: Some(sent) })
        .await
        .expect_err("the reducer failed");
    // Not UNAVAILABLE: clients must not retry a deterministic failure.
    assert_eq!(failed.code(), Code::FailedPrecondition, "{failed:?}");
    assert!(
        failed.message().contains("ZeroDivisionError: division by zero"),
        "{}",
        failed.message()
    );
    assert!(failed.message().contains("fix the reducer"), "{}", failed.message());
    assert_eq!(
        *reducer.0.lock().expect("calls"),
        1,
        "called once, not retried by the server"
    );

    let state = CanonicalStoreServiceClient::new(channel.clone())
        .get_state(GetStateRequest {
            workflow_key: "priced-2".into(),
            namespace: String::new(),
        })
        .await
        .expect_err("nothing was written");
    assert_eq!(state.code(), Code::NotFound);

    // A second failing action: its log line is written after the first one's answer, so once
    // it has been read every line about the first action has been too.
    let second_id = new_id();
    let sent = action(&second_id, "priced-3", "pricing", "quote", json!({"n": 2}));
    let failed = ReducerServiceClient::new(channel)
        .handle_action(HandleActionRequest { action: Some(sent) })
        .await
        .expect_err("the reducer failed again");
    assert_eq!(failed.code(), Code::FailedPrecondition, "{failed:?}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let failures = loop {
        let failures: Vec<String> = server
            .log
            .lock()
            .expect("log")
            .iter()
            .filter(|line| line.contains("remote reducer failed"))
            .cloned()
            .collect();
        if failures.iter().any(|line| line.contains(&second_id)) || std::time::Instant::now() > deadline {
            break failures;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    let about_first: Vec<&String> = failures.iter().filter(|line| line.contains(&first_id)).collect();
    assert_eq!(about_first.len(), 1, "logged once: {failures:?}");
    assert!(about_first[0].contains("division by zero"), "{}", about_first[0]);

    let metrics = scrape(&server.metrics_addr).await;
    assert_eq!(
        sample(&metrics, "reducer_failed_actions_total", "workflow_type=\"pricing\""),
        2.0,
        "counted once per failed action"
    );
    let _ = std::fs::remove_file(config);
}
