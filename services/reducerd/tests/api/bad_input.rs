//! One test per bad-input class: a precise status, field details, and nothing stored.

use purereducer_api::v1::{GetStateRequest, HandleActionRequest, TryCommitRequest};
use serde_json::json;
use tonic::Code;

use crate::support::{Backend, TestServer, action, bad_fields, handle, new_id, object, start};

async fn assert_absent(server: &TestServer, key: &str) {
    let status = server
        .canonical()
        .get_state(GetStateRequest {
            namespace: Default::default(),
            workflow_key: key.to_owned(),
        })
        .await
        .expect_err("nothing stored");
    assert_eq!(status.code(), Code::NotFound);
}

async fn version_of(server: &TestServer, key: &str) -> u64 {
    server
        .canonical()
        .get_state(GetStateRequest {
            namespace: Default::default(),
            workflow_key: key.to_owned(),
        })
        .await
        .expect("stored")
        .into_inner()
        .version
}

#[tokio::test]
async fn bad_workflow_key_is_invalid_argument_with_field_details() {
    let server = start(Backend::Sqlite, |_| {}).await;
    for bad in ["", "has space", &"k".repeat(257), "ünïcode"] {
        let status = handle(&server, action(&new_id(), bad, "merge", "set", json!({})))
            .await
            .expect_err("refused");
        assert_eq!(status.code(), Code::InvalidArgument, "{bad:?}");
        assert_eq!(bad_fields(&status), vec!["action.workflow_key"], "{bad:?}");
    }
    let status = server
        .canonical()
        .get_state(GetStateRequest {
            namespace: Default::default(),
            workflow_key: "a b".into(),
        })
        .await
        .expect_err("refused");
    assert_eq!(bad_fields(&status), vec!["workflow_key"]);
    server.stop().await;
}

#[tokio::test]
async fn bad_uuid_is_invalid_argument_and_stores_nothing() {
    let server = start(Backend::Sqlite, |_| {}).await;
    for bad in ["", "123", "not-a-uuid-at-all-really-not-one"] {
        let status = handle(&server, action(bad, "k1", "merge", "set", json!({"a": 1})))
            .await
            .expect_err("refused");
        assert_eq!(status.code(), Code::InvalidArgument);
        assert_eq!(bad_fields(&status), vec!["action.action_id"]);
    }
    assert_absent(&server, "k1").await;
    server.stop().await;
}

#[tokio::test]
async fn missing_or_non_json_state_is_invalid_argument() {
    let server = start(Backend::Sqlite, |_| {}).await;
    let missing = TryCommitRequest {
        workflow_key: "k2".into(),
        expected_version: 0,
        ..Default::default()
    };
    let status = server.canonical().try_commit(missing).await.expect_err("refused");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(bad_fields(&status), vec!["state"]);
    let mut nan = object(json!({}));
    nan.fields.insert(
        "x".into(),
        prost_types::Value {
            kind: Some(prost_types::value::Kind::NumberValue(f64::NAN)),
        },
    );
    let status = server
        .canonical()
        .try_commit(TryCommitRequest {
            workflow_key: "k2".into(),
            state: Some(nan),
            ..Default::default()
        })
        .await
        .expect_err("refused");
    assert_eq!(bad_fields(&status), vec!["state"]);
    let missing_action = server
        .reducer()
        .handle_action(HandleActionRequest { action: None })
        .await
        .expect_err("refused");
    assert_eq!(bad_fields(&missing_action), vec!["action"]);
    assert_absent(&server, "k2").await;
    server.stop().await;
}

#[tokio::test]
async fn oversized_payload_is_invalid_argument_and_leaves_state_alone() {
    let server = start(Backend::Sqlite, |_| {}).await;
    handle(&server, action(&new_id(), "k3", "merge", "set", json!({"a": 1})))
        .await
        .expect("created");
    // Over the 1 MiB default payload limit, under the transport limit.
    let big = json!({"blob": "x".repeat(1024 * 1024 + 16)});
    let status = handle(&server, action(&new_id(), "k3", "merge", "set", big.clone()))
        .await
        .expect_err("refused");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(bad_fields(&status), vec!["action.payload"]);
    assert!(status.message().contains("max_payload_bytes"), "{}", status.message());
    let status = server
        .canonical()
        .try_commit(TryCommitRequest {
            workflow_key: "k3".into(),
            expected_version: 1,
            state: Some(object(big)),
            ..Default::default()
        })
        .await
        .expect_err("refused");
    assert_eq!(bad_fields(&status), vec!["state"]);
    assert_eq!(version_of(&server, "k3").await, 1);
    server.stop().await;
}

#[tokio::test]
async fn payload_limit_is_configurable() {
    let server = start(Backend::Sqlite, |config| config.server.max_payload_bytes = 64).await;
    let status = handle(
        &server,
        action(&new_id(), "k4", "merge", "set", json!({"a": "y".repeat(100)})),
    )
    .await
    .expect_err("refused");
    assert_eq!(bad_fields(&status), vec!["action.payload"]);
    handle(&server, action(&new_id(), "k4", "merge", "set", json!({"a": 1})))
        .await
        .expect("small payload passes");
    server.stop().await;
}

#[tokio::test]
async fn unknown_workflow_is_not_found() {
    let server = start(Backend::Sqlite, |_| {}).await;
    let status = server
        .canonical()
        .get_state(GetStateRequest {
            namespace: Default::default(),
            workflow_key: "ghost".into(),
        })
        .await
        .expect_err("absent");
    assert_eq!(status.code(), Code::NotFound);
    assert!(status.message().contains("ghost"), "{}", status.message());
    server.stop().await;
}

#[tokio::test]
async fn workflow_type_mismatch_is_failed_precondition() {
    let server = start(Backend::Sqlite, |_| {}).await;
    handle(&server, action(&new_id(), "k5", "merge", "set", json!({"a": 1})))
        .await
        .expect("created");
    let status = handle(&server, action(&new_id(), "k5", "fsm", "PROCESSING", json!({})))
        .await
        .expect_err("refused");
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert!(status.message().contains("has type merge"), "{}", status.message());
    let status = server
        .canonical()
        .try_commit(TryCommitRequest {
            workflow_key: "k5".into(),
            expected_version: 1,
            state: Some(object(json!({}))),
            workflow_type: "fsm".into(),
            ..Default::default()
        })
        .await
        .expect_err("refused");
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert_eq!(version_of(&server, "k5").await, 1);
    server.stop().await;
}

#[tokio::test]
async fn reused_action_id_with_another_payload_is_already_exists() {
    let server = start(Backend::Sqlite, |_| {}).await;
    let id = new_id();
    handle(&server, action(&id, "k6", "merge", "set", json!({"a": 1})))
        .await
        .expect("first");
    let status = handle(&server, action(&id, "k6", "merge", "set", json!({"a": 2})))
        .await
        .expect_err("refused");
    assert_eq!(status.code(), Code::AlreadyExists);
    assert!(status.message().contains("new action_id"), "{}", status.message());
    assert_eq!(version_of(&server, "k6").await, 1);
    server.stop().await;
}

#[tokio::test]
async fn undeclared_workflow_type_is_invalid_argument() {
    let server = start(Backend::Sqlite, |_| {}).await;
    let status = handle(&server, action(&new_id(), "k7", "nonesuch", "set", json!({})))
        .await
        .expect_err("refused");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(bad_fields(&status), vec!["action.workflow_type"]);
    assert_absent(&server, "k7").await;
    server.stop().await;
}

#[tokio::test]
async fn garbage_bytes_get_a_status_and_the_server_keeps_serving() {
    let server = start(Backend::Sqlite, |_| {}).await;
    let garbage: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let status = send_raw(&server, "/purereducer.v1.ReducerService/HandleAction", garbage)
        .await
        .expect_err("undecodable request");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(
        !status.message().contains("wire type") && !status.message().contains("buffer"),
        "{status:?}"
    );
    handle(&server, action(&new_id(), "k8", "merge", "set", json!({"ok": true})))
        .await
        .expect("still serving");
    server.stop().await;
}

/// Sends `bytes` as the request message of `path`.
pub async fn send_raw(server: &TestServer, path: &'static str, bytes: Vec<u8>) -> Result<Vec<u8>, tonic::Status> {
    use tonic::codegen::http::uri::PathAndQuery;
    let mut grpc = tonic::client::Grpc::new(server.channel.clone());
    grpc.ready()
        .await
        .map_err(|err| tonic::Status::unavailable(err.to_string()))?;
    let path = PathAndQuery::from_static(path);
    grpc.unary(tonic::Request::new(bytes), path, RawCodec)
        .await
        .map(tonic::Response::into_inner)
}

/// Sends and receives raw bytes, to put undecodable messages on the wire.
#[derive(Debug, Clone, Default)]
struct RawCodec;

impl tonic::codec::Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawCodec;
    type Decoder = RawCodec;

    fn encoder(&mut self) -> Self::Encoder {
        RawCodec
    }

    fn decoder(&mut self) -> Self::Decoder {
        RawCodec
    }
}

impl tonic::codec::Encoder for RawCodec {
    type Item = Vec<u8>;
    type Error = tonic::Status;

    fn encode(&mut self, item: Self::Item, dst: &mut tonic::codec::EncodeBuf<'_>) -> Result<(), Self::Error> {
        use bytes::BufMut;
        dst.put_slice(&item);
        Ok(())
    }
}

impl tonic::codec::Decoder for RawCodec {
    type Item = Vec<u8>;
    type Error = tonic::Status;

    fn decode(&mut self, src: &mut tonic::codec::DecodeBuf<'_>) -> Result<Option<Self::Item>, Self::Error> {
        use bytes::Buf;
        let mut out = vec![0; src.remaining()];
        src.copy_to_slice(&mut out);
        Ok(Some(out))
    }
}

#[tokio::test]
async fn a_passed_deadline_is_deadline_exceeded_and_an_oversized_message_resource_exhausted() {
    use purereducer_api::v1::WaitForCompletionRequest;

    let server = start(Backend::Sqlite, |config| {
        config.server.max_message_bytes = 2 * 1024 * 1024
    })
    .await;
    // The client's deadline (grpc-timeout) passes while the server still waits. Sent over
    // bare HTTP/2, so it is the server that enforces it (a tonic client would also time out
    // by itself, and call that CANCELLED).
    let message = WaitForCompletionRequest {
        correlation_id: new_id(),
        timeout_ms: 20_000,
        ..Default::default()
    };
    let (code, message) = raw_call(
        server.addr,
        "/purereducer.v1.EventBusService/WaitForCompletion",
        &prost::Message::encode_to_vec(&message),
        "200m",
    )
    .await;
    assert_eq!(code, "4", "DEADLINE_EXCEEDED expected, got {code}: {message}");

    // A wait longer than event_bus.max_wait_seconds is refused up front.
    let status = server
        .event_bus()
        .wait_for_completion(WaitForCompletionRequest {
            correlation_id: new_id(),
            timeout_ms: 49 * 24 * 3600 * 1000,
            ..Default::default()
        })
        .await
        .expect_err("too long a wait");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(bad_fields(&status), vec!["timeout_ms"]);

    let mut huge = action(&new_id(), "huge-1", "merge", "set", json!({}));
    huge.payload = Some(object(json!({"blob": "x".repeat(3 * 1024 * 1024)})));
    let status = handle(&server, huge).await.expect_err("too large");
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert_absent(&server, "huge-1").await;
    server.stop().await;
}

#[tokio::test]
async fn nul_characters_and_out_of_range_versions_are_refused_alike_on_both_backends() {
    use purereducer_api::v1::RecordProcessedRequest;

    for backend in [Backend::Sqlite, Backend::Postgres] {
        let server = start(backend, |_| {}).await;
        let status = handle(
            &server,
            action(&new_id(), "nul-1", "merge", "set", json!({"a": "x\u{0}y"})),
        )
        .await
        .expect_err("NUL in a value");
        assert_eq!(status.code(), Code::InvalidArgument, "{backend:?}");
        assert_eq!(bad_fields(&status), vec!["action.payload"]);
        assert!(
            !status.message().contains("22P05") && !status.message().contains("escape"),
            "{status:?}"
        );
        let status = handle(
            &server,
            action(&new_id(), "nul-1", "merge", "set", json!({"a\u{0}": 1})),
        )
        .await
        .expect_err("NUL in a key");
        assert_eq!(status.code(), Code::InvalidArgument, "{backend:?}");
        assert_absent(&server, "nul-1").await;

        let status = server
            .dedup()
            .record_processed(RecordProcessedRequest {
                namespace: Default::default(),
                workflow_key: "nul-2".into(),
                action_id: new_id(),
                result_hash: "h".into(),
                version: u64::MAX,
                ttl_seconds: 0,
            })
            .await
            .expect_err("version out of range");
        assert_eq!(status.code(), Code::InvalidArgument, "{backend:?}");
        assert_eq!(bad_fields(&status), vec!["version"]);
        let status = server
            .canonical()
            .try_commit(TryCommitRequest {
                workflow_key: "nul-2".into(),
                expected_version: 0,
                state: Some(object(json!({}))),
                provenance: Some(purereducer_api::v1::Provenance {
                    action_id: "a".repeat(1_000_000),
                    ..Default::default()
                }),
                ..Default::default()
            })
            .await
            .expect_err("a megabyte provenance.action_id");
        assert_eq!(bad_fields(&status), vec!["provenance.action_id"]);
        assert_absent(&server, "nul-2").await;
        server.stop().await;
    }
}

/// One unary call over bare HTTP/2 with a `grpc-timeout` header; returns the grpc-status and
/// grpc-message the server answered (from the headers or the trailers).
async fn raw_call(addr: std::net::SocketAddr, path: &str, message: &[u8], timeout: &str) -> (String, String) {
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let (client, connection) = h2::client::handshake(tcp).await.expect("h2 handshake");
    tokio::spawn(connection);
    let mut client = client.ready().await.expect("ready");
    let request = tonic::codegen::http::Request::post(format!("http://{addr}{path}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .header("grpc-timeout", timeout)
        .body(())
        .expect("request");
    let (response, mut body) = client.send_request(request, false).expect("send");
    let mut framed = vec![0u8];
    framed.extend_from_slice(&u32::try_from(message.len()).expect("size").to_be_bytes());
    framed.extend_from_slice(message);
    body.send_data(framed.into(), true).expect("body");
    let response = response.await.expect("response");
    let pick = |headers: &tonic::codegen::http::HeaderMap, name: &str| {
        headers.get(name).map(|v| v.to_str().unwrap_or_default().to_owned())
    };
    if let Some(code) = pick(response.headers(), "grpc-status") {
        return (code, pick(response.headers(), "grpc-message").unwrap_or_default());
    }
    let mut body = response.into_body();
    while let Some(chunk) = body.data().await {
        chunk.expect("data");
    }
    let trailers = body.trailers().await.expect("trailers").unwrap_or_default();
    (
        pick(&trailers, "grpc-status").unwrap_or_default(),
        pick(&trailers, "grpc-message").unwrap_or_default(),
    )
}
