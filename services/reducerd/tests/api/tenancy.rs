//! Namespaces as key spaces, through the real server with token credentials: the same
//! workflow key in two namespaces is two independent workflows, and a credential of one
//! namespace can neither read, write, wait on nor subscribe to the other's.

use purereducer_api::v1::action_dedup_service_client::ActionDedupServiceClient;
use purereducer_api::v1::canonical_store_service_client::CanonicalStoreServiceClient;
use purereducer_api::v1::event_bus_service_client::EventBusServiceClient;
use purereducer_api::v1::projection_service_client::ProjectionServiceClient;
use purereducer_api::v1::reducer_service_client::ReducerServiceClient;
use purereducer_api::v1::{
    self as api, GetProjectionRequest, GetStateRequest, HandleActionRequest, PublishActionRequest,
    RecordProcessedRequest, SubscribeRequest, TryCommitRequest, WaitForCompletionRequest, event,
};
use purereducer_core::{Namespace, WorkflowKey};
use serde_json::json;
use tonic::Code;

use crate::auth::{ADMIN, ADMIN_A, READER_A, WRITER_A, WRITER_B, secured, with};
use crate::support::{TestServer, action, new_id, object};

const KEY: &str = "tenancy-shared-1";

fn state_request(namespace: &str) -> GetStateRequest {
    GetStateRequest {
        workflow_key: KEY.into(),
        namespace: namespace.into(),
    }
}

async fn stored_version(server: &TestServer, namespace: &str) -> Option<u64> {
    let namespace = Namespace::parse_or_default(namespace).expect("namespace");
    let key = WorkflowKey::parse(&namespace, KEY).expect("key");
    server
        .store
        .get_state(&key)
        .await
        .expect("read")
        .map(|stored| stored.version.get())
}

#[tokio::test]
async fn the_same_key_in_two_namespaces_is_two_workflows_each_tenant_sees_only_its_own() {
    let (server, _dir, _path) = secured().await;
    let mut bus = EventBusServiceClient::new(server.channel.clone());
    let mut stream = bus
        .subscribe(with(SubscribeRequest::default(), Some(READER_A)))
        .await
        .expect("subscribe")
        .into_inner();
    let mut reducer = ReducerServiceClient::new(server.channel.clone());
    // b plants a record under an action id first; a's action with the same id must still
    // apply: dedup records are per namespace too.
    let shared_id = new_id();
    for (token, namespace) in [(WRITER_B, "b"), (WRITER_A, "a")] {
        let mut sent = action(&shared_id, KEY, "merge", "set", json!({"owner": namespace}));
        sent.namespace = namespace.into();
        let answer = reducer
            .handle_action(with(HandleActionRequest { action: Some(sent) }, Some(token)))
            .await
            .expect("handle")
            .into_inner();
        assert_eq!(answer.status(), api::ActionStatus::Committed, "in {namespace}");
        assert_eq!(answer.version, 1, "in {namespace}: a workflow of its own");
    }
    // The subscriber of a sees a's event first, though b's committed first.
    let first = stream.message().await.expect("stream").expect("an event");
    let Some(event::Kind::StateCommitted(committed)) = first.event.and_then(|e| e.kind) else {
        panic!("expected StateCommitted");
    };
    assert_eq!(
        (committed.workflow_key.as_str(), committed.namespace.as_str()),
        (KEY, "a")
    );

    let mut canonical = CanonicalStoreServiceClient::new(server.channel.clone());
    let own = canonical
        .get_state(with(state_request("a"), Some(READER_A)))
        .await
        .expect("a reads its own")
        .into_inner();
    assert_eq!((own.namespace.as_str(), own.version), ("a", 1));
    assert_eq!(own.state, Some(object(json!({"owner": "a"}))));
    let refused = canonical
        .get_state(with(state_request("b"), Some(READER_A)))
        .await
        .expect_err("b's workflow is closed to a");
    assert_eq!(refused.code(), Code::PermissionDenied);
    assert!(!refused.message().contains("owner"), "{}", refused.message());
    // Leaving the namespace out means `default`, which a is not granted either.
    let refused = canonical
        .get_state(with(state_request(""), Some(READER_A)))
        .await
        .expect_err("default is not a's");
    assert_eq!(refused.code(), Code::PermissionDenied);
    let theirs = canonical
        .get_state(with(state_request("b"), Some(ADMIN)))
        .await
        .expect("the operator reads every namespace")
        .into_inner();
    assert_eq!(theirs.state, Some(object(json!({"owner": "b"}))));
    let none = canonical
        .get_state(with(state_request(""), Some(ADMIN)))
        .await
        .expect_err("nothing under that key in default");
    assert_eq!(none.code(), Code::NotFound);

    // A TryCommit in a moves a's workflow only.
    let committed = canonical
        .try_commit(with(
            TryCommitRequest {
                workflow_key: KEY.into(),
                expected_version: 1,
                state: Some(object(json!({"owner": "a", "again": true}))),
                namespace: "a".into(),
                ..Default::default()
            },
            Some(ADMIN_A),
        ))
        .await
        .expect("a's admin commits in a")
        .into_inner();
    assert!(matches!(
        committed.outcome,
        Some(api::try_commit_response::Outcome::Committed(
            api::try_commit_response::Committed { version: 2 }
        ))
    ));
    let refused = canonical
        .try_commit(with(
            TryCommitRequest {
                workflow_key: KEY.into(),
                expected_version: 1,
                state: Some(object(json!({"taken": true}))),
                namespace: "b".into(),
                ..Default::default()
            },
            Some(ADMIN_A),
        ))
        .await
        .expect_err("a's admin cannot commit into b");
    assert_eq!(refused.code(), Code::PermissionDenied);
    assert_eq!(stored_version(&server, "a").await, Some(2));
    assert_eq!(stored_version(&server, "b").await, Some(1));
    assert_eq!(stored_version(&server, "default").await, None);

    // A record planted in a answers a's ShouldProcess, not b's.
    let planted = new_id();
    let mut dedup = ActionDedupServiceClient::new(server.channel.clone());
    dedup
        .record_processed(with(
            RecordProcessedRequest {
                workflow_key: KEY.into(),
                action_id: planted.clone(),
                result_hash: "planted".into(),
                version: 2,
                ttl_seconds: 0,
                namespace: "a".into(),
            },
            Some(ADMIN_A),
        ))
        .await
        .expect("a's admin records in a");
    let mut sent = action(&planted, KEY, "merge", "set", json!({"second": true}));
    sent.namespace = "b".into();
    let answer = reducer
        .handle_action(with(HandleActionRequest { action: Some(sent) }, Some(WRITER_B)))
        .await
        .expect("handle")
        .into_inner();
    assert_eq!(
        answer.status(),
        api::ActionStatus::Committed,
        "a's record does not stop b's action"
    );

    // Projections, one per namespace.
    let mut projections = ProjectionServiceClient::new(server.channel.clone());
    for (namespace, token, version) in [("a", READER_A, 2), ("b", ADMIN, 2)] {
        let projection = projections
            .get_projection(with(
                GetProjectionRequest {
                    workflow_key: KEY.into(),
                    min_version: version,
                    max_wait_ms: 10_000,
                    namespace: namespace.into(),
                },
                Some(token),
            ))
            .await
            .expect("projection")
            .into_inner()
            .projection
            .expect("a projection");
        assert_eq!(
            (projection.namespace.as_str(), projection.version),
            (namespace, version)
        );
    }
    let refused = projections
        .get_projection(with(
            GetProjectionRequest {
                workflow_key: KEY.into(),
                namespace: "b".into(),
                ..Default::default()
            },
            Some(READER_A),
        ))
        .await
        .expect_err("b's projection is closed to a");
    assert_eq!(refused.code(), Code::PermissionDenied);
    server.stop().await;
}

#[tokio::test]
async fn a_correlation_id_used_in_two_namespaces_answers_each_its_own_wait() {
    let (server, _dir, _path) = secured().await;
    let mut bus = EventBusServiceClient::new(server.channel.clone());
    let correlation = format!("shared-{}", new_id());
    // b publishes first, so a wait that ignored namespaces would find b's outcome.
    for (token, namespace, key) in [(WRITER_B, "b", "tenancy-wait-b"), (WRITER_A, "a", "tenancy-wait-a")] {
        let mut sent = action(&new_id(), key, "merge", "set", json!({"owner": namespace}));
        sent.namespace = namespace.into();
        sent.correlation_id = correlation.clone();
        bus.publish_action(with(PublishActionRequest { action: Some(sent) }, Some(token)))
            .await
            .expect("publish");
    }
    for (token, namespace, key) in [(WRITER_A, "a", "tenancy-wait-a"), (WRITER_B, "b", "tenancy-wait-b")] {
        let done = bus
            .wait_for_completion(with(
                WaitForCompletionRequest {
                    correlation_id: correlation.clone(),
                    timeout_ms: 30_000,
                    namespace: namespace.into(),
                    ..Default::default()
                },
                Some(token),
            ))
            .await
            .expect("completes")
            .into_inner();
        assert_eq!((done.namespace.as_str(), done.workflow_key.as_str()), (namespace, key));
        assert_eq!(done.status(), api::ActionStatus::Committed);
    }
    let refused = bus
        .wait_for_completion(with(
            WaitForCompletionRequest {
                correlation_id: correlation.clone(),
                timeout_ms: 1_000,
                namespace: "b".into(),
                ..Default::default()
            },
            Some(READER_A),
        ))
        .await
        .expect_err("b's outcome is closed to a");
    assert_eq!(refused.code(), Code::PermissionDenied);
    server.stop().await;
}
