//! Bearer tokens, roles and namespaces, through the real server: every RPC refuses a missing
//! or unknown credential and a role or namespace it does not grant, and changes nothing.

use std::path::{Path, PathBuf};

use purereducer_api::v1::action_dedup_service_client::ActionDedupServiceClient;
use purereducer_api::v1::canonical_store_service_client::CanonicalStoreServiceClient;
use purereducer_api::v1::event_bus_service_client::EventBusServiceClient;
use purereducer_api::v1::projection_service_client::ProjectionServiceClient;
use purereducer_api::v1::reducer_service_client::ReducerServiceClient;
use purereducer_api::v1::{
    CleanupExpiredRequest, GetProjectionRequest, GetStateRequest, HandleActionRequest, ListWatermarksRequest,
    PublishActionRequest, RecordProcessedRequest, ShouldProcessRequest, SubscribeRequest, SubscriptionFilter,
    TryCommitRequest, WaitForCompletionRequest,
};
use purereducer_core::WorkflowKey;
use serde_json::json;
use sha2::{Digest, Sha256};
use tonic::{Code, Request};

use crate::support::{Backend, TestServer, action, new_id, object, start};

pub(crate) const ADMIN: &str = "admin-token-everything";
pub(crate) const READER_A: &str = "reader-token-of-a";
pub(crate) const WRITER_A: &str = "writer-token-of-a";
pub(crate) const WRITER_B: &str = "writer-token-of-b";
pub(crate) const ADMIN_A: &str = "admin-token-of-a";

fn entry(token: &str, subject: &str, namespaces: &[&str], roles: &[&str]) -> String {
    format!(
        "[[token]]\nsha256 = \"{:x}\"\nsubject = \"{subject}\"\nnamespaces = {namespaces:?}\nroles = {roles:?}\n\n",
        Sha256::digest(token.as_bytes())
    )
}

fn standard_tokens() -> String {
    [
        entry(ADMIN, "operator", &["*"], &["admin"]),
        entry(READER_A, "dashboard-a", &["a"], &["reader"]),
        entry(WRITER_A, "service-a", &["a"], &["writer"]),
        entry(WRITER_B, "service-b", &["b"], &["writer"]),
        entry(ADMIN_A, "operator-a", &["a"], &["admin"]),
    ]
    .concat()
}

/// Replaces the file in one step, as an operator's deploy tool would.
fn write_tokens(path: &Path, text: &str) {
    let staged = path.with_extension("new");
    std::fs::write(&staged, text).expect("write tokens");
    std::fs::rename(&staged, path).expect("replace tokens");
}

pub(crate) async fn secured() -> (TestServer, tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("tokens.toml");
    write_tokens(&path, &standard_tokens());
    let file = path.clone();
    let server = start(Backend::Sqlite, move |config| {
        config.auth.mode = "token".to_owned();
        config.auth.tokens_file = Some(file);
    })
    .await;
    (server, dir, path)
}

pub(crate) fn with<T>(message: T, token: Option<&str>) -> Request<T> {
    let mut request = Request::new(message);
    if let Some(token) = token {
        request
            .metadata_mut()
            .insert("authorization", format!("Bearer {token}").parse().expect("ascii"));
    }
    request
}

/// Calls every RPC once with `token`, each about workflow `key` in namespace `namespace`,
/// and returns what each answered.
async fn every_rpc(server: &TestServer, token: Option<&str>, key: &str, namespace: &str) -> Vec<(&'static str, Code)> {
    let channel = server.channel.clone();
    let mut reducer = ReducerServiceClient::new(channel.clone());
    let mut canonical = CanonicalStoreServiceClient::new(channel.clone());
    let mut dedup = ActionDedupServiceClient::new(channel.clone());
    let mut bus = EventBusServiceClient::new(channel.clone());
    let mut projections = ProjectionServiceClient::new(channel);
    let mut sent = action(&new_id(), key, "merge", "set", json!({"n": 1}));
    sent.namespace = namespace.to_owned();
    let code = |result: Result<(), tonic::Status>| result.err().map_or(Code::Ok, |status| status.code());
    vec![
        (
            "GetState",
            code(
                canonical
                    .get_state(with(
                        GetStateRequest {
                            namespace: namespace.into(),
                            workflow_key: key.into(),
                        },
                        token,
                    ))
                    .await
                    .map(drop),
            ),
        ),
        (
            "TryCommit",
            code(
                canonical
                    .try_commit(with(
                        TryCommitRequest {
                            workflow_key: key.into(),
                            expected_version: 0,
                            state: Some(object(json!({"planted": true}))),
                            namespace: namespace.into(),
                            ..Default::default()
                        },
                        token,
                    ))
                    .await
                    .map(drop),
            ),
        ),
        (
            "HandleAction",
            code(
                reducer
                    .handle_action(with(
                        HandleActionRequest {
                            action: Some(sent.clone()),
                        },
                        token,
                    ))
                    .await
                    .map(drop),
            ),
        ),
        (
            "PublishAction",
            code(
                bus.publish_action(with(
                    PublishActionRequest {
                        action: Some(sent.clone()),
                    },
                    token,
                ))
                .await
                .map(drop),
            ),
        ),
        (
            "WaitForCompletion",
            code(
                bus.wait_for_completion(with(
                    WaitForCompletionRequest {
                        correlation_id: new_id(),
                        timeout_ms: 1,
                        namespace: namespace.into(),
                        ..Default::default()
                    },
                    token,
                ))
                .await
                .map(drop),
            ),
        ),
        (
            "Subscribe",
            code(
                bus.subscribe(with(
                    SubscribeRequest {
                        filter: Some(SubscriptionFilter {
                            namespaces: vec![namespace.into()],
                            ..Default::default()
                        }),
                        ..Default::default()
                    },
                    token,
                ))
                .await
                .map(drop),
            ),
        ),
        (
            "GetProjection",
            code(
                projections
                    .get_projection(with(
                        GetProjectionRequest {
                            workflow_key: key.into(),
                            namespace: namespace.into(),
                            ..Default::default()
                        },
                        token,
                    ))
                    .await
                    .map(drop),
            ),
        ),
        (
            "ListWatermarks",
            code(
                projections
                    .list_watermarks(with(ListWatermarksRequest {}, token))
                    .await
                    .map(drop),
            ),
        ),
        (
            "ShouldProcess",
            code(
                dedup
                    .should_process(with(
                        ShouldProcessRequest {
                            namespace: namespace.into(),
                            workflow_key: key.into(),
                            action_id: new_id(),
                        },
                        token,
                    ))
                    .await
                    .map(drop),
            ),
        ),
        (
            "RecordProcessed",
            code(
                dedup
                    .record_processed(with(
                        RecordProcessedRequest {
                            namespace: namespace.into(),
                            workflow_key: key.into(),
                            action_id: sent.action_id.clone(),
                            result_hash: "planted".into(),
                            version: 1,
                            ttl_seconds: 0,
                        },
                        token,
                    ))
                    .await
                    .map(drop),
            ),
        ),
        (
            "CleanupExpired",
            code(
                dedup
                    .cleanup_expired(with(CleanupExpiredRequest {}, token))
                    .await
                    .map(drop),
            ),
        ),
    ]
}

async fn assert_untouched(server: &TestServer, key: &str, namespace: &str) {
    let namespace = purereducer_core::Namespace::parse_or_default(namespace).expect("namespace");
    let key = WorkflowKey::parse(&namespace, key).expect("key");
    assert!(
        server.store.get_state(&key).await.expect("read").is_none(),
        "{key} was written"
    );
    let queued = server.store.claim_actions(100).await.expect("claim");
    assert!(queued.actions.is_empty(), "actions were queued");
    queued.release().await.expect("release");
}

#[tokio::test]
async fn every_rpc_refuses_a_missing_or_unknown_credential_and_changes_nothing() {
    let (server, _dir, _path) = secured().await;
    for token in [None, Some("not-a-token"), Some("")] {
        for (rpc, code) in every_rpc(&server, token, "auth-none-1", "a").await {
            assert_eq!(code, Code::Unauthenticated, "{rpc} with {token:?}");
        }
    }
    assert_untouched(&server, "auth-none-1", "a").await;
    server.stop().await;
}

#[tokio::test]
async fn a_reader_reads_and_is_refused_every_write() {
    let (server, _dir, _path) = secured().await;
    for (rpc, code) in every_rpc(&server, Some(READER_A), "auth-reader-1", "a").await {
        let expected = match rpc {
            "TryCommit" | "HandleAction" | "PublishAction" | "RecordProcessed" | "CleanupExpired" => {
                Code::PermissionDenied
            }
            "GetState" | "GetProjection" => Code::NotFound,
            "WaitForCompletion" => Code::DeadlineExceeded,
            _ => Code::Ok,
        };
        assert_eq!(code, expected, "{rpc}");
    }
    assert_untouched(&server, "auth-reader-1", "a").await;
    server.stop().await;
}

#[tokio::test]
async fn a_credential_is_refused_every_namespace_it_is_not_granted() {
    let (server, _dir, _path) = secured().await;
    // Every RPC that names a namespace refuses one not granted, reads included; only the
    // watermarks, which belong to no namespace, stay readable.
    for (rpc, code) in every_rpc(&server, Some(WRITER_B), "auth-ns-1", "a").await {
        let expected = if rpc == "ListWatermarks" {
            Code::Ok
        } else {
            Code::PermissionDenied
        };
        assert_eq!(code, expected, "{rpc}");
    }
    // An admin limited to namespace a may do anything in a, nothing elsewhere.
    for (rpc, code) in every_rpc(&server, Some(ADMIN_A), "auth-ns-2", "b").await {
        let expected = if rpc == "ListWatermarks" {
            Code::Ok
        } else {
            Code::PermissionDenied
        };
        assert_eq!(code, expected, "{rpc}");
    }
    assert_untouched(&server, "auth-ns-1", "a").await;
    assert_untouched(&server, "auth-ns-2", "b").await;
    server.stop().await;
}

#[tokio::test]
async fn a_changed_tokens_file_applies_to_the_next_call_and_a_broken_one_keeps_the_last() {
    let (server, _dir, path) = secured().await;
    let projections = ProjectionServiceClient::new(server.channel.clone());
    let call = |token: &'static str| {
        let mut projections = projections.clone();
        async move {
            projections
                .list_watermarks(with(ListWatermarksRequest {}, Some(token)))
                .await
                .map(drop)
                .map_err(|status| status.code())
        }
    };
    assert_eq!(call(READER_A).await, Ok(()));
    write_tokens(&path, &entry("rotated-token", "dashboard-a", &["a"], &["reader"]));
    assert_eq!(call("rotated-token").await, Ok(()));
    assert_eq!(call(READER_A).await, Err(Code::Unauthenticated));
    write_tokens(&path, "[[token]]\nsha256 = \"not hex\"\n");
    assert_eq!(
        call("rotated-token").await,
        Ok(()),
        "a broken file keeps the last tokens"
    );
    std::fs::remove_file(&path).expect("remove");
    assert_eq!(
        call("rotated-token").await,
        Ok(()),
        "a missing file keeps the last tokens"
    );
    server.stop().await;
}

#[tokio::test]
async fn health_stays_open_and_reflection_needs_an_admin() {
    let (server, _dir, _path) = secured().await;
    let mut health = tonic_health::pb::health_client::HealthClient::new(server.channel.clone());
    let answer = health
        .check(tonic_health::pb::HealthCheckRequest::default())
        .await
        .expect("health needs no credential")
        .into_inner();
    assert_eq!(
        answer.status(),
        tonic_health::pb::health_check_response::ServingStatus::Serving
    );

    let addr = server.addr.to_string();
    // grpcurl blocks; the server answers it from this test's runtime.
    let list = |token: &'static str| {
        let addr = addr.clone();
        tokio::task::spawn_blocking(move || {
            std::process::Command::new(crate::grpcurl::grpcurl_path())
                .args([
                    "-plaintext",
                    "-H",
                    &format!("authorization: Bearer {token}"),
                    &addr,
                    "list",
                ])
                .output()
                .expect("run grpcurl")
        })
    };
    let refused = list(READER_A).await.expect("grpcurl");
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("PermissionDenied"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    let listed = list(ADMIN).await.expect("grpcurl");
    assert!(listed.status.success(), "{}", String::from_utf8_lossy(&listed.stderr));
    assert!(String::from_utf8_lossy(&listed.stdout).contains("purereducer.v1.ReducerService"));
    server.stop().await;
}

/// `GET /metrics` with an optional bearer token; returns the status line.
async fn metrics_status(addr: &str, token: Option<&str>) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect to /metrics");
    let authorization = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    stream
        .write_all(format!("GET /metrics HTTP/1.0\r\nHost: {addr}\r\n{authorization}\r\n").as_bytes())
        .await
        .expect("request");
    let mut response = String::new();
    stream.read_to_string(&mut response).await.expect("response");
    response.lines().next().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn the_metrics_port_needs_a_token_when_auth_is_on() {
    let dir = tempfile::tempdir().expect("temp dir");
    let tokens = dir.path().join("tokens.toml");
    write_tokens(&tokens, &standard_tokens());
    let config = dir.path().join("reducerd.toml");
    std::fs::write(
        &config,
        format!(
            "[auth]\nmode = \"token\"\ntokens_file = {:?}\n",
            tokens.display().to_string()
        ),
    )
    .expect("config");
    let server = crate::grpcurl::Reducerd::start_with(&[("PURE_REDUCER_CONFIG", config.to_str().expect("utf-8"))]);
    assert!(metrics_status(&server.metrics_addr, None).await.contains(" 401"));
    assert!(
        metrics_status(&server.metrics_addr, Some("wrong"))
            .await
            .contains(" 401")
    );
    assert!(
        metrics_status(&server.metrics_addr, Some(READER_A))
            .await
            .contains(" 200")
    );
    let logged = server.log.lock().expect("log").join("\n");
    for secret in [READER_A, ADMIN, "wrong"] {
        assert!(!logged.contains(secret), "a token reached the log");
    }
}
