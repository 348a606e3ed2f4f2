//! DeleteWorkflow through the real server on both backends: the workflow is gone from reads,
//! listings and the projection, its versions never go back (a replica still holding the old
//! state learns it from the compare-and-set), its history and a `WorkflowDeleted` event
//! remain (replayed and live to subscribers), and its next action starts it again from the
//! initial state.

use purereducer_api::v1::{
    self as api, ActionStatus, DeleteWorkflowRequest, GetHistoryRequest, GetProjectionRequest, GetStateRequest,
    ListWorkflowsRequest, event,
};
use serde_json::json;
use tonic::Code;

use crate::engine::pair;
use crate::support::{Backend, TestServer, action, bad_fields, handle, json, new_id, start, status_of};

fn delete(key: &str, expected_version: u64, reason: &str) -> DeleteWorkflowRequest {
    DeleteWorkflowRequest {
        workflow_key: key.into(),
        namespace: String::new(),
        expected_version,
        reason: reason.into(),
    }
}

async fn set(server: &TestServer, key: &str, payload: serde_json::Value) -> api::HandleActionResponse {
    let reply = handle(server, action(&new_id(), key, "merge", "set", payload))
        .await
        .expect("handled");
    assert_eq!(status_of(&reply), ActionStatus::Committed);
    reply
}

async fn a_deleted_workflow_is_gone_but_its_versions_and_history_stay(backend: Backend) {
    let (first, second, _) = pair(backend, 3).await;
    set(&first, "doomed", json!({"a": 1})).await;
    set(&first, "doomed", json!({"b": 2})).await;
    set(&first, "neighbour", json!({})).await;

    // At a version it is not at: refused, nothing deleted.
    let stale = second
        .canonical()
        .delete_workflow(delete("doomed", 1, ""))
        .await
        .expect_err("stale version");
    assert_eq!(stale.code(), Code::FailedPrecondition, "{stale:?}");
    assert!(stale.message().contains("at version 2"), "{}", stale.message());
    // Whatever its version, from the other replica.
    let deleted = second
        .canonical()
        .delete_workflow(delete("doomed", 0, "customer asked"))
        .await
        .expect("delete")
        .into_inner();
    assert_eq!(deleted.version, 3, "the deletion takes the next version");
    let again = second
        .canonical()
        .delete_workflow(delete("doomed", 0, ""))
        .await
        .expect_err("already deleted");
    assert_eq!(again.code(), Code::NotFound, "{again:?}");
    assert!(again.message().contains("deleted at version 3"), "{}", again.message());

    let read = first
        .canonical()
        .get_state(GetStateRequest {
            workflow_key: "doomed".into(),
            namespace: String::new(),
        })
        .await
        .expect_err("deleted");
    assert_eq!(read.code(), Code::NotFound);
    assert!(read.message().contains("deleted at version 3"), "{}", read.message());
    let listed: Vec<String> = first
        .canonical()
        .list_workflows(ListWorkflowsRequest::default())
        .await
        .expect("list")
        .into_inner()
        .workflows
        .into_iter()
        .map(|w| w.workflow_key)
        .collect();
    assert_eq!(listed, ["neighbour"]);

    // The first replica still held version 2: its compare-and-set fails, it reads the
    // tombstone and starts the workflow again from the initial state at version 4.
    let reborn = set(&first, "doomed", json!({"c": 3})).await;
    assert_eq!(reborn.version, 4);
    assert_eq!(
        reborn.state.as_ref().map(json),
        Some(json!({"c": 3})),
        "nothing of the old state"
    );

    let entries = first
        .canonical()
        .get_history(GetHistoryRequest {
            workflow_key: "doomed".into(),
            ..Default::default()
        })
        .await
        .expect("history")
        .into_inner()
        .entries;
    let shape: Vec<(u64, bool, &str)> = entries
        .iter()
        .map(|e| (e.version, e.deleted, e.action_type.as_str()))
        .collect();
    assert_eq!(
        shape,
        [
            (1, false, "set"),
            (2, false, "set"),
            (3, true, "DeleteWorkflow"),
            (4, false, "set")
        ]
    );
    assert_eq!(
        (entries[2].reason.as_str(), entries[2].state.is_none()),
        ("customer asked", true)
    );
    assert_eq!(
        entries[2].actor, "anonymous",
        "the caller's identity (authentication is off)"
    );

    first.stop().await;
    second.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_workflow_is_gone_but_its_versions_and_history_stay_on_postgres() {
    a_deleted_workflow_is_gone_but_its_versions_and_history_stay(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_workflow_is_gone_but_its_versions_and_history_stay_on_sqlite() {
    a_deleted_workflow_is_gone_but_its_versions_and_history_stay(Backend::Sqlite).await;
}

async fn projection(
    server: &TestServer,
    key: &str,
    min_version: u64,
) -> Result<api::GetProjectionResponse, tonic::Status> {
    server
        .projections()
        .get_projection(GetProjectionRequest {
            namespace: String::new(),
            workflow_key: key.into(),
            min_version,
            max_wait_ms: 10_000,
        })
        .await
        .map(tonic::Response::into_inner)
}

async fn the_projection_follows_a_deletion(backend: Backend) {
    let server = start(backend, |_| {}).await;
    set(&server, "projected", json!({"status": "open"})).await;
    assert_eq!(
        projection(&server, "projected", 1)
            .await
            .expect("projected")
            .projection
            .map(|p| p.version),
        Some(1)
    );
    server
        .canonical()
        .delete_workflow(delete("projected", 1, ""))
        .await
        .expect("delete");
    // The materializer writes the tombstone at version 2: the projection says deleted.
    let gone = projection(&server, "projected", 2).await.expect_err("deleted");
    assert_eq!(gone.code(), Code::NotFound, "{gone:?}");
    assert!(gone.message().contains("deleted at version 2"), "{}", gone.message());
    let row = server
        .store
        .get_projection(&purereducer_core::WorkflowKey::parse(&Default::default(), "projected").expect("key"))
        .await
        .expect("read projection row")
        .map(|p| (p.row.version.get(), p.row.deleted));
    assert_eq!(row, Some((2, true)), "a tombstone row keeps the version");

    // A subscriber replaying the key sees the deletion between the two lives, in order: the
    // first two from history, the new commit live.
    let mut stream = server.subscribe_keys(&["projected"], 1).await.expect("subscribe");
    let mut next = async || match stream
        .message()
        .await
        .expect("stream")
        .and_then(|m| m.event)
        .and_then(|e| e.kind)
    {
        Some(event::Kind::StateCommitted(e)) => (e.version, "committed".to_owned()),
        Some(event::Kind::WorkflowDeleted(e)) => (e.version, format!("deleted {} by {}", e.workflow_type, e.actor)),
        other => panic!("unexpected event {other:?}"),
    };
    assert_eq!(next().await, (1, "committed".to_owned()));
    assert_eq!(next().await, (2, "deleted merge by anonymous".to_owned()));
    set(&server, "projected", json!({"status": "new"})).await;
    assert_eq!(next().await, (3, "committed".to_owned()));

    let back = projection(&server, "projected", 3).await.expect("projected again");
    assert!(!back.from_canonical);
    let back = back.projection.expect("row");
    assert_eq!((back.version, back.tag.as_str()), (3, "new"));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_projection_follows_a_deletion_on_postgres() {
    the_projection_follows_a_deletion(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_projection_follows_a_deletion_on_sqlite() {
    the_projection_follows_a_deletion(Backend::Sqlite).await;
}

#[tokio::test]
async fn deleting_what_is_not_there_or_with_bad_fields_is_refused_precisely() {
    let server = start(Backend::Sqlite, |_| {}).await;
    let missing = server
        .canonical()
        .delete_workflow(delete("never-was", 0, ""))
        .await
        .expect_err("missing");
    assert_eq!(missing.code(), Code::NotFound);
    assert!(missing.message().contains("does not exist"), "{}", missing.message());
    let bad_key = server
        .canonical()
        .delete_workflow(delete("", 0, ""))
        .await
        .expect_err("empty key");
    assert_eq!(bad_key.code(), Code::InvalidArgument);
    set(&server, "kept", json!({"n": 1})).await;
    let bad_reason = server
        .canonical()
        .delete_workflow(delete("kept", 0, "line\u{7}bell"))
        .await
        .expect_err("control character");
    assert_eq!(bad_reason.code(), Code::InvalidArgument);
    assert_eq!(bad_fields(&bad_reason), ["reason"]);
    let too_big = server
        .canonical()
        .delete_workflow(delete("kept", u64::MAX, ""))
        .await
        .expect_err("version out of range");
    assert_eq!(bad_fields(&too_big), ["expected_version"]);
    // Nothing was touched.
    let state = server
        .canonical()
        .get_state(GetStateRequest {
            workflow_key: "kept".into(),
            namespace: String::new(),
        })
        .await
        .expect("still there")
        .into_inner();
    assert_eq!(state.version, 1);
    server.stop().await;
}
