//! What happened to a workflow, through the real server on both backends: history of
//! commits, a refusal, direct commits and a give-up in order and paged both ways; pruning by
//! retention; listing workflows; Subscribe replaying from a version and then following live.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use purereducer_api::v1::{
    self as api, ActionStatus, GetHistoryRequest, GetHistoryResponse, GetStateRequest, ListWorkflowsRequest,
    SubscribeRequest, TryCommitRequest, event,
};
use serde_json::json;
use tonic::Code;

use crate::engine::pair;
use crate::support::{Backend, TestServer, action, handle, json, new_id, object, start, status_of};

fn patch(ops: serde_json::Value) -> serde_json::Value {
    json!({ "patch": ops })
}

async fn history(server: &TestServer, request: GetHistoryRequest) -> GetHistoryResponse {
    server
        .canonical()
        .get_history(request)
        .await
        .expect("history")
        .into_inner()
}

/// Every entry of `key`, a page of `limit` at a time.
async fn all_entries(server: &TestServer, key: &str, reverse: bool, limit: u32) -> (Vec<api::HistoryEntry>, usize) {
    let (mut entries, mut pages, mut page_token) = (Vec::new(), 0, String::new());
    loop {
        let page = history(
            server,
            GetHistoryRequest {
                workflow_key: key.into(),
                limit,
                reverse,
                page_token: page_token.clone(),
                ..Default::default()
            },
        )
        .await;
        pages += 1;
        entries.extend(page.entries);
        if page.next_page_token.is_empty() {
            return (entries, pages);
        }
        page_token = page.next_page_token;
    }
}

fn shape(entries: &[api::HistoryEntry]) -> Vec<(u64, ActionStatus, String)> {
    entries
        .iter()
        .map(|e| (e.version, e.status(), e.action_type.clone()))
        .collect()
}

async fn history_tells_what_happened_in_order(backend: Backend) {
    let (first, second, recorded) = pair(backend, 3).await;
    let key = "history-1";
    let open = action(
        &new_id(),
        key,
        "json-patch",
        "open",
        patch(json!([{"op": "add", "path": "/status", "value": "open"}])),
    );
    assert_eq!(
        status_of(&handle(&first, open).await.expect("open")),
        ActionStatus::Committed
    );
    let failed_test = patch(json!([{"op": "test", "path": "/status", "value": "paid"}]));
    let refused = handle(&first, action(&new_id(), key, "json-patch", "pay", failed_test))
        .await
        .expect("refused");
    assert_eq!(status_of(&refused), ActionStatus::Rejected);
    // Before each of the first server's next commits, the second server commits directly.
    let interfering = Arc::new(AtomicBool::new(true));
    let (on, channel) = (interfering.clone(), second.channel.clone());
    recorded.interfere(Arc::new(move |keys| {
        let (on, channel) = (on.clone(), channel.clone());
        Box::pin(async move {
            if !on.load(Ordering::SeqCst) || !keys.iter().any(|k| k == "history-1") {
                return;
            }
            let mut canonical = api::canonical_store_service_client::CanonicalStoreServiceClient::new(channel);
            let current = canonical
                .get_state(GetStateRequest {
                    workflow_key: "history-1".into(),
                    ..Default::default()
                })
                .await
                .expect("state")
                .into_inner();
            let mut state = json(current.state.as_ref().expect("state"));
            state["touched"] = json!(current.version);
            canonical
                .try_commit(TryCommitRequest {
                    workflow_key: "history-1".into(),
                    expected_version: current.version,
                    state: Some(object(state)),
                    provenance: Some(api::Provenance {
                        actor: "ops".into(),
                        reason: "manual fix".into(),
                        ..Default::default()
                    }),
                    ..Default::default()
                })
                .await
                .expect("the other server commits");
        })
    }));
    let add = patch(json!([{"op": "add", "path": "/total", "value": 42}]));
    let lost = handle(&first, action(&new_id(), key, "json-patch", "total", add.clone()))
        .await
        .expect("gave up");
    assert_eq!(status_of(&lost), ActionStatus::GaveUp);
    interfering.store(false, Ordering::SeqCst);
    let done = handle(&first, action(&new_id(), key, "json-patch", "total", add))
        .await
        .expect("total");
    assert_eq!((status_of(&done), done.version), (ActionStatus::Committed, 5));

    use ActionStatus::{Committed, GaveUp, Rejected};
    let expected = vec![
        (1, Committed, "open".to_owned()),
        (1, Rejected, "pay".to_owned()),
        (2, Committed, "TryCommit".to_owned()),
        (3, Committed, "TryCommit".to_owned()),
        (4, Committed, "TryCommit".to_owned()),
        (4, GaveUp, "total".to_owned()),
        (5, Committed, "total".to_owned()),
    ];
    let (forward, pages) = all_entries(&first, key, false, 3).await;
    assert_eq!(shape(&forward), expected);
    assert_eq!(pages, 3, "7 entries in pages of 3");
    let (mut backward, _) = all_entries(&first, key, true, 2).await;
    backward.reverse();
    assert_eq!(shape(&backward), expected);
    // Each entry says what it was: the state committed, why it was refused, who acted.
    assert_eq!(
        json(forward[0].state.as_ref().expect("v1 state")),
        json!({"status": "open"})
    );
    assert!(
        forward[1].state.is_none() && forward[1].reason.contains("json patch failed"),
        "{:?}",
        forward[1]
    );
    assert_eq!(
        (forward[2].actor.as_str(), forward[2].reason.as_str()),
        ("ops", "manual fix")
    );
    assert!(forward[5].reason.contains("3 attempts"), "{}", forward[5].reason);
    assert_eq!(
        json(forward[6].state.as_ref().expect("v5 state")),
        json!({"status": "open", "touched": 3, "total": 42})
    );
    assert_eq!(forward[6].result_hash, done.result_hash);
    // From a version, and from a version downwards.
    let from_four = history(
        &first,
        GetHistoryRequest {
            workflow_key: key.into(),
            from_version: 4,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(shape(&from_four.entries), expected[4..].to_vec());
    let down = history(
        &first,
        GetHistoryRequest {
            workflow_key: key.into(),
            from_version: 1,
            reverse: true,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(shape(&down.entries), vec![expected[1].clone(), expected[0].clone()]);
    // A token of one direction is refused in the other, and a made-up one too.
    let forward_page = history(
        &first,
        GetHistoryRequest {
            workflow_key: key.into(),
            limit: 1,
            ..Default::default()
        },
    )
    .await;
    for (token, reverse) in [(forward_page.next_page_token.as_str(), true), ("f.x.1", false)] {
        let refused = first
            .canonical()
            .get_history(GetHistoryRequest {
                workflow_key: key.into(),
                page_token: token.into(),
                reverse,
                ..Default::default()
            })
            .await
            .expect_err("bad token");
        assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
        assert!(refused.message().contains("page_token"), "{}", refused.message());
    }
    first.stop().await;
    second.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_tells_what_happened_in_order_on_postgres() {
    history_tells_what_happened_in_order(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_tells_what_happened_in_order_on_sqlite() {
    history_tells_what_happened_in_order(Backend::Sqlite).await;
}

async fn set(server: &TestServer, key: &str, payload: serde_json::Value) -> api::HandleActionResponse {
    let reply = handle(server, action(&new_id(), key, "merge", "set", payload))
        .await
        .expect("handled");
    assert_eq!(status_of(&reply), ActionStatus::Committed);
    reply
}

async fn history_is_pruned_by_retention_and_replays_refuse_what_is_gone(backend: Backend) {
    let server = start(backend, |config| {
        config.history.retention.keep_versions = 2;
        config.retention.interval_seconds = 1;
    })
    .await;
    for n in 1..=6 {
        set(&server, "pruned", json!({ "n": n })).await;
    }
    // The retention task runs every second; wait (bounded) until it has pruned.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    let kept = loop {
        let (entries, _) = all_entries(&server, "pruned", false, 100).await;
        if entries.len() == 2 || tokio::time::Instant::now() > deadline {
            break entries;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert_eq!(
        kept.iter().map(|e| e.version).collect::<Vec<_>>(),
        vec![5, 6],
        "versions 1-4 pruned"
    );
    let mut stream = server.subscribe_keys(&["pruned"], 2).await.expect("subscribe");
    let refused = stream.message().await.expect_err("pruned versions");
    assert_eq!(refused.code(), Code::OutOfRange, "{refused:?}");
    assert!(refused.message().contains("from_version 5"), "{}", refused.message());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_is_pruned_by_retention_on_postgres() {
    history_is_pruned_by_retention_and_replays_refuse_what_is_gone(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_is_pruned_by_retention_on_sqlite() {
    history_is_pruned_by_retention_and_replays_refuse_what_is_gone(Backend::Sqlite).await;
}

fn committed_version(response: api::SubscribeResponse) -> (String, u64) {
    match response.event.and_then(|e| e.kind) {
        Some(event::Kind::StateCommitted(committed)) => (committed.workflow_key, committed.version),
        other => panic!("expected StateCommitted, got {other:?}"),
    }
}

async fn subscribe_replays_from_a_version_then_follows_live(backend: Backend) {
    let server = start(backend, |_| {}).await;
    for n in 1..=5 {
        set(&server, "replayed", json!({ "n": n })).await;
    }
    // Commits keep coming while the subscription replays and switches to live events.
    let writer = {
        let server_channel = server.channel.clone();
        tokio::spawn(async move {
            let mut reducer = api::reducer_service_client::ReducerServiceClient::new(server_channel);
            for n in 6..=40 {
                let sent = action(&new_id(), "replayed", "merge", "set", json!({ "n": n }));
                let reply = reducer
                    .handle_action(api::HandleActionRequest { action: Some(sent) })
                    .await
                    .expect("handled")
                    .into_inner();
                assert_eq!(reply.version, n);
            }
        })
    };
    let mut stream = server.subscribe_keys(&["replayed"], 3).await.expect("subscribe");
    let mut seen = Vec::new();
    while seen.last() != Some(&40) {
        let message = stream.message().await.expect("stream").expect("an event");
        let (key, version) = committed_version(message);
        assert_eq!(key, "replayed");
        seen.push(version);
    }
    writer.await.expect("writer");
    assert_eq!(seen, (3..=40).collect::<Vec<u64>>(), "no gap and no repeat at the seam");
    // The replayed events carry the states as committed.
    let mut again = server.subscribe_keys(&["replayed"], 1).await.expect("subscribe again");
    let first = again.message().await.expect("stream").expect("an event");
    let Some(event::Kind::StateCommitted(committed)) = first.event.and_then(|e| e.kind) else {
        panic!("expected StateCommitted");
    };
    assert_eq!(
        (committed.version, json(committed.state.as_ref().expect("state"))),
        (1, json!({"n": 1}))
    );
    // Without keys there is nothing to replay: refused, with what to do.
    let refused = server
        .event_bus()
        .subscribe(SubscribeRequest {
            filter: None,
            from_version: 1,
        })
        .await
        .expect_err("no keys");
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert!(
        refused.message().contains("filter.workflow_keys"),
        "{}",
        refused.message()
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribe_replays_from_a_version_then_follows_live_on_postgres() {
    subscribe_replays_from_a_version_then_follows_live(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribe_replays_from_a_version_then_follows_live_on_sqlite() {
    subscribe_replays_from_a_version_then_follows_live(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workflows_are_listed_by_filter_and_page_through_the_api() {
    let server = start(Backend::Postgres, |_| {}).await;
    for i in 0..25 {
        let status = if i % 5 == 0 { "held" } else { "open" };
        set(&server, &format!("list-{i:02}"), json!({ "status": status })).await;
    }
    set(&server, "other-1", json!({})).await;
    let mut canonical = server.canonical();
    let (mut keys, mut page_token) = (Vec::new(), String::new());
    loop {
        let page = canonical
            .list_workflows(ListWorkflowsRequest {
                key_prefix: "list-".into(),
                limit: 10,
                page_token: page_token.clone(),
                ..Default::default()
            })
            .await
            .expect("list")
            .into_inner();
        keys.extend(page.workflows.iter().map(|w| w.workflow_key.clone()));
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    assert_eq!(keys, (0..25).map(|i| format!("list-{i:02}")).collect::<Vec<_>>());
    let held = canonical
        .list_workflows(ListWorkflowsRequest {
            tag: "held".into(),
            ..Default::default()
        })
        .await
        .expect("held")
        .into_inner();
    let held: Vec<(String, String, u64)> = held
        .workflows
        .into_iter()
        .map(|w| (w.workflow_key, w.tag, w.version))
        .collect();
    assert_eq!(held.len(), 5);
    assert!(
        held.iter().all(|(_, tag, version)| tag == "held" && *version == 1),
        "{held:?}"
    );
    let too_many = canonical
        .list_workflows(ListWorkflowsRequest {
            limit: 5000,
            ..Default::default()
        })
        .await
        .expect_err("limit");
    assert_eq!(too_many.code(), Code::InvalidArgument);
    server.stop().await;
}
