//! The storage conformance suite: every test runs against PostgreSQL and SQLite.

use std::sync::Arc;
use std::time::Duration;

use purereducer_core::{ActionId, ActionStatus, JsonObject, Namespace, TypeName, Version, WorkflowKey};
use purereducer_storage::testing::fresh_store;
use purereducer_storage::{
    CommitRequest, CommitResult, Completion, NewRecord, OutboxEvent, ProjectionRow, ProjectionUpdate, RecordResult,
    StateWrite, Store,
};
use serde_json::json;

#[path = "conformance/batches.rs"]
mod batches;
#[path = "conformance/history.rs"]
mod history;
use history::*;
#[path = "conformance/migration.rs"]
mod migration;
use batches::*;
#[path = "conformance/projections.rs"]
mod projections;
use projections::*;
#[path = "conformance/queue.rs"]
mod queue;
use queue::*;
#[path = "conformance/tombstones.rs"]
mod tombstones;
use tombstones::*;

/// Runs each listed test once per backend.
macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let store = super::fresh_store("postgres").await.expect("postgres test database");
                super::$name(store).await;
            })*
        }
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let store = super::fresh_store("sqlite").await.expect("sqlite test database");
                super::$name(store).await;
            })*
        }
    };
}

conformance!(
    create_then_read,
    stale_expected_version_conflicts_and_writes_nothing,
    create_of_existing_workflow_conflicts,
    reused_action_id_is_refused_atomically,
    snapshot_reads_state_and_record_together,
    record_processed_keeps_the_first_record,
    expired_records_are_invisible_cleaned_and_replaceable,
    outbox_events_commit_with_the_state_in_order,
    version_only_commit_checks_without_writing,
    concurrent_compare_and_set_has_no_gaps,
    projections_apply_once_with_forward_only_watermarks,
    completions_keep_the_first_outcome,
    published_events_leave_the_pending_list,
    group_commit_checks_each_workflow_on_its_own,
    group_commit_with_an_already_processed_action_writes_nothing,
    batched_reads_return_states_and_records_by_key,
    projections_and_publication_marks_commit_together,
    completions_are_kept_per_action,
    queued_actions_are_claimed_in_order_and_leave_when_finished,
    an_unfinished_claim_gives_its_actions_back,
    retention_prunes_only_published_rows_and_old_completions,
    the_same_key_in_two_namespaces_is_two_workflows,
    history_is_written_with_its_commit_and_paged_both_ways,
    history_is_pruned_by_count_and_by_age,
    workflows_are_listed_by_filter_in_key_order,
    a_deleted_workflow_keeps_its_version_as_a_tombstone,
    a_projection_tombstone_outlives_redelivered_events,
);

fn key(raw: &str) -> WorkflowKey {
    WorkflowKey::parse(&Namespace::default(), raw).expect("valid key")
}

fn object(value: serde_json::Value) -> JsonObject {
    value.as_object().cloned().expect("object literal")
}

fn write(version: u64, state: serde_json::Value) -> StateWrite {
    StateWrite {
        state: object(state),
        version: Version::new(version),
        workflow_type: TypeName::parse("merge", "workflow_type").expect("valid"),
        provenance: json!({"actor": "conformance"}),
        deleted: false,
    }
}

fn record(action_id: ActionId, version: u64, ttl: Duration) -> NewRecord {
    NewRecord {
        action_id,
        request_hash: "req".to_owned(),
        result_hash: format!("res-{version}"),
        version: Version::new(version),
        status: ActionStatus::Committed,
        intents: Vec::new(),
        rejection_reason: None,
        ttl,
    }
}

fn event(key: &str, version: u64, event_type: &str) -> OutboxEvent {
    OutboxEvent {
        namespace: "default".to_owned(),
        workflow_key: key.to_owned(),
        version: Version::new(version),
        event_type: event_type.to_owned(),
        payload: vec![1, 2, 3],
        headers: json!({"correlation_id": "c"}),
    }
}

fn new_id() -> ActionId {
    ActionId::from_uuid(uuid::Uuid::new_v4())
}

const HOURS_6: Duration = Duration::from_secs(6 * 3600);

async fn commit(store: &Arc<dyn Store>, k: &str, expected: u64, state: serde_json::Value) -> CommitResult {
    store
        .commit(CommitRequest {
            key: key(k),
            expected: Version::new(expected),
            write: Some(write(expected + 1, state)),
            records: Vec::new(),
            events: Vec::new(),
            history: Vec::new(),
        })
        .await
        .expect("commit")
}

async fn create_then_read(store: Arc<dyn Store>) {
    assert_eq!(store.get_state(&key("wf")).await.expect("read"), None);
    let result = commit(&store, "wf", 0, json!({"a": 1})).await;
    assert_eq!(
        result,
        CommitResult::Committed {
            version: Version::new(1)
        }
    );
    let stored = store.get_state(&key("wf")).await.expect("read").expect("exists");
    assert_eq!(stored.version, Version::new(1));
    assert_eq!(stored.state, object(json!({"a": 1})));
    assert_eq!(stored.workflow_type, "merge");
    assert_eq!(stored.namespace, "default");
    assert!(
        stored.updated_at_ms > 1_700_000_000_000,
        "database clock in ms: {}",
        stored.updated_at_ms
    );
}

async fn stale_expected_version_conflicts_and_writes_nothing(store: Arc<dyn Store>) {
    commit(&store, "wf", 0, json!({"a": 1})).await;
    commit(&store, "wf", 1, json!({"a": 2})).await;
    let stale = commit(&store, "wf", 1, json!({"a": 99})).await;
    assert_eq!(
        stale,
        CommitResult::Conflict {
            current: Version::new(2)
        }
    );
    let missing = commit(&store, "nope", 3, json!({})).await;
    assert_eq!(missing, CommitResult::Conflict { current: Version::NONE });
    let stored = store.get_state(&key("wf")).await.expect("read").expect("exists");
    assert_eq!(stored.state, object(json!({"a": 2})));
    assert_eq!(store.get_state(&key("nope")).await.expect("read"), None);
}

async fn create_of_existing_workflow_conflicts(store: Arc<dyn Store>) {
    commit(&store, "wf", 0, json!({"a": 1})).await;
    assert_eq!(
        commit(&store, "wf", 0, json!({"a": 2})).await,
        CommitResult::Conflict {
            current: Version::new(1)
        }
    );
}

async fn reused_action_id_is_refused_atomically(store: Arc<dyn Store>) {
    let id = new_id();
    let first = CommitRequest {
        key: key("wf"),
        expected: Version::NONE,
        write: Some(write(1, json!({"n": 1}))),
        records: vec![record(id, 1, HOURS_6)],
        events: vec![event("wf", 1, "StateCommitted")],
        history: Vec::new(),
    };
    assert_eq!(
        store.commit(first).await.expect("commit"),
        CommitResult::Committed {
            version: Version::new(1)
        }
    );
    let again = CommitRequest {
        key: key("wf"),
        expected: Version::new(1),
        write: Some(write(2, json!({"n": 2}))),
        records: vec![record(id, 2, HOURS_6)],
        events: vec![event("wf", 2, "StateCommitted")],
        history: Vec::new(),
    };
    match store.commit(again).await.expect("commit") {
        CommitResult::AlreadyProcessed(existing) => {
            assert_eq!(existing.version, Version::new(1));
            assert_eq!(existing.result_hash, "res-1");
        }
        other => panic!("expected AlreadyProcessed, got {other:?}"),
    }
    let stored = store.get_state(&key("wf")).await.expect("read").expect("exists");
    assert_eq!(stored.version, Version::new(1), "the state write rolled back");
    assert_eq!(
        store.pending_events(100).await.expect("outbox").len(),
        1,
        "the event rolled back"
    );
}

async fn snapshot_reads_state_and_record_together(store: Arc<dyn Store>) {
    let id = new_id();
    let empty = store.snapshot(&key("wf"), id).await.expect("snapshot");
    assert!(empty.state.is_none() && empty.processed.is_none());
    store
        .commit(CommitRequest {
            key: key("wf"),
            expected: Version::NONE,
            write: Some(write(1, json!({"n": 1}))),
            records: vec![record(id, 1, HOURS_6)],
            events: Vec::new(),
            history: Vec::new(),
        })
        .await
        .expect("commit");
    let snapshot = store.snapshot(&key("wf"), id).await.expect("snapshot");
    assert_eq!(snapshot.state.expect("state").version, Version::new(1));
    assert_eq!(snapshot.processed.expect("record").action_id, id);
    let other = store.snapshot(&key("wf"), new_id()).await.expect("snapshot");
    assert!(other.state.is_some() && other.processed.is_none());
}

async fn record_processed_keeps_the_first_record(store: Arc<dyn Store>) {
    let id = new_id();
    let first = store
        .record_processed(&key("wf"), record(id, 1, HOURS_6))
        .await
        .expect("record");
    assert!(matches!(first, RecordResult::Recorded(ref r) if r.result_hash == "res-1"));
    let second = store
        .record_processed(&key("wf"), record(id, 2, HOURS_6))
        .await
        .expect("record");
    assert!(
        matches!(second, RecordResult::Exists(ref r) if r.result_hash == "res-1"),
        "{second:?}"
    );
    // The same id on another workflow is another action.
    let elsewhere = store
        .record_processed(&key("other"), record(id, 5, HOURS_6))
        .await
        .expect("record");
    assert!(matches!(elsewhere, RecordResult::Recorded(_)));
}

async fn expired_records_are_invisible_cleaned_and_replaceable(store: Arc<dyn Store>) {
    let expired = new_id();
    let live = new_id();
    store
        .record_processed(&key("wf"), record(expired, 1, Duration::ZERO))
        .await
        .expect("record");
    store
        .record_processed(&key("wf"), record(live, 1, HOURS_6))
        .await
        .expect("record");
    assert_eq!(store.find_processed(&key("wf"), expired).await.expect("find"), None);
    assert!(store.find_processed(&key("wf"), live).await.expect("find").is_some());
    // An expired record does not block a new one even before cleanup.
    let replaced = store
        .record_processed(&key("wf"), record(expired, 7, HOURS_6))
        .await
        .expect("record");
    assert!(
        matches!(replaced, RecordResult::Recorded(ref r) if r.version == Version::new(7)),
        "{replaced:?}"
    );
    let third = new_id();
    store
        .record_processed(&key("wf"), record(third, 1, Duration::ZERO))
        .await
        .expect("record");
    assert_eq!(store.cleanup_expired().await.expect("cleanup"), 1);
    assert_eq!(store.cleanup_expired().await.expect("cleanup"), 0);
    assert!(store.find_processed(&key("wf"), live).await.expect("find").is_some());
}

async fn outbox_events_commit_with_the_state_in_order(store: Arc<dyn Store>) {
    for version in 0..3u64 {
        let result = store
            .commit(CommitRequest {
                key: key("wf"),
                expected: Version::new(version),
                write: Some(write(version + 1, json!({"v": version + 1}))),
                records: vec![record(new_id(), version + 1, HOURS_6)],
                events: vec![
                    event("wf", version + 1, "StateCommitted"),
                    event("wf", version + 1, "IntentEmitted"),
                ],
                history: Vec::new(),
            })
            .await
            .expect("commit");
        assert_eq!(
            result,
            CommitResult::Committed {
                version: Version::new(version + 1)
            }
        );
    }
    // A losing commit leaves no events behind.
    let lost = store
        .commit(CommitRequest {
            key: key("wf"),
            expected: Version::new(1),
            write: Some(write(2, json!({}))),
            records: Vec::new(),
            events: vec![event("wf", 2, "StateCommitted")],
            history: Vec::new(),
        })
        .await
        .expect("commit");
    assert_eq!(
        lost,
        CommitResult::Conflict {
            current: Version::new(3)
        }
    );
    store
        .append_events(vec![event("wf", 3, "ReducerGaveUp")], Vec::new())
        .await
        .expect("append");
    let pending = store.pending_events(100).await.expect("outbox");
    let seen: Vec<(u64, &str)> = pending
        .iter()
        .map(|p| (p.event.version.get(), p.event.event_type.as_str()))
        .collect();
    assert_eq!(
        seen,
        vec![
            (1, "StateCommitted"),
            (1, "IntentEmitted"),
            (2, "StateCommitted"),
            (2, "IntentEmitted"),
            (3, "StateCommitted"),
            (3, "IntentEmitted"),
            (3, "ReducerGaveUp"),
        ]
    );
    assert!(pending.windows(2).all(|w| w[0].id < w[1].id));
    assert_eq!(pending[0].event.payload, vec![1, 2, 3]);
    assert_eq!(pending[0].event.headers, json!({"correlation_id": "c"}));
}

async fn version_only_commit_checks_without_writing(store: Arc<dyn Store>) {
    commit(&store, "wf", 0, json!({"a": 1})).await;
    let mut rejected = record(new_id(), 1, HOURS_6);
    rejected.status = ActionStatus::Rejected;
    rejected.rejection_reason = Some("no".to_owned());
    let ok = store
        .commit(CommitRequest {
            key: key("wf"),
            expected: Version::new(1),
            write: None,
            records: vec![rejected.clone()],
            events: Vec::new(),
            history: Vec::new(),
        })
        .await
        .expect("commit");
    assert_eq!(
        ok,
        CommitResult::Committed {
            version: Version::new(1)
        }
    );
    let found = store
        .find_processed(&key("wf"), rejected.action_id)
        .await
        .expect("find")
        .expect("recorded");
    assert_eq!(found.status, ActionStatus::Rejected);
    assert_eq!(found.rejection_reason.as_deref(), Some("no"));
    let mut stale = record(new_id(), 0, HOURS_6);
    stale.status = ActionStatus::Rejected;
    let conflict = store
        .commit(CommitRequest {
            key: key("wf"),
            expected: Version::NONE,
            write: None,
            records: vec![stale.clone()],
            events: Vec::new(),
            history: Vec::new(),
        })
        .await
        .expect("commit");
    assert_eq!(
        conflict,
        CommitResult::Conflict {
            current: Version::new(1)
        }
    );
    assert_eq!(
        store.find_processed(&key("wf"), stale.action_id).await.expect("find"),
        None
    );
}

async fn concurrent_compare_and_set_has_no_gaps(store: Arc<dyn Store>) {
    const WRITERS: u64 = 16;
    let mut tasks = Vec::new();
    for writer in 0..WRITERS {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let id = new_id();
            loop {
                let current = store
                    .get_state(&key("hot"))
                    .await
                    .expect("read")
                    .map_or(0, |s| s.version.get());
                let request = CommitRequest {
                    key: key("hot"),
                    expected: Version::new(current),
                    write: Some(write(current + 1, json!({"last": writer}))),
                    records: vec![record(id, current + 1, HOURS_6)],
                    events: vec![event("hot", current + 1, "StateCommitted")],
                    history: Vec::new(),
                };
                match store.commit(request).await.expect("commit") {
                    CommitResult::Committed { version } => return version.get(),
                    CommitResult::Conflict { .. } => continue,
                    other => panic!("unexpected {other:?}"),
                }
            }
        }));
    }
    let mut versions = Vec::new();
    for task in tasks {
        versions.push(task.await.expect("writer"));
    }
    versions.sort_unstable();
    assert_eq!(versions, (1..=WRITERS).collect::<Vec<_>>());
    let pending = store.pending_events(1000).await.expect("outbox");
    let mut event_versions: Vec<u64> = pending.iter().map(|p| p.event.version.get()).collect();
    event_versions.sort_unstable();
    assert_eq!(event_versions, (1..=WRITERS).collect::<Vec<_>>());
}

async fn completions_keep_the_first_outcome(store: Arc<dyn Store>) {
    assert_eq!(
        store
            .find_completion(&Namespace::default(), "c-1", None)
            .await
            .expect("find"),
        None
    );
    let first = Completion {
        correlation_id: "c-1".to_owned(),
        action_id: new_id(),
        namespace: "default".to_owned(),
        workflow_key: "wf".to_owned(),
        status: ActionStatus::Committed,
        version: Version::new(4),
        result_hash: "h".to_owned(),
        rejection_reason: None,
    };
    store.record_completion(&first).await.expect("record");
    let later = Completion {
        status: ActionStatus::Duplicate,
        ..first.clone()
    };
    store.record_completion(&later).await.expect("record again");
    assert_eq!(
        store
            .find_completion(&Namespace::default(), "c-1", None)
            .await
            .expect("find"),
        Some(first.clone())
    );

    // Many at once, with a repeat inside the batch and one recorded before: first wins.
    let second = Completion {
        correlation_id: "c-2".to_owned(),
        ..first.clone()
    };
    let repeat = Completion {
        status: ActionStatus::Rejected,
        ..second.clone()
    };
    store
        .record_completions(&[second.clone(), repeat, later])
        .await
        .expect("record a batch");
    assert_eq!(
        store
            .find_completion(&Namespace::default(), "c-2", None)
            .await
            .expect("find"),
        Some(second)
    );
    assert_eq!(
        store
            .find_completion(&Namespace::default(), "c-1", None)
            .await
            .expect("find"),
        Some(first)
    );
}

async fn published_events_leave_the_pending_list(store: Arc<dyn Store>) {
    store
        .append_events(
            vec![
                event("wf", 1, "StateCommitted"),
                event("wf", 2, "StateCommitted"),
                event("wf", 3, "StateCommitted"),
            ],
            Vec::new(),
        )
        .await
        .expect("append");
    let pending = store.pending_events(10).await.expect("pending");
    store
        .mark_published(&[pending[0].id, pending[2].id])
        .await
        .expect("mark");
    let left: Vec<u64> = store
        .pending_events(10)
        .await
        .expect("pending")
        .iter()
        .map(|p| p.event.version.get())
        .collect();
    assert_eq!(left, vec![2]);

    // Read back by id (published or not), in the order asked, skipping ids with no row.
    let ids = [pending[2].id, pending[0].id, pending[2].id + 1_000, pending[1].id];
    let versions: Vec<u64> = store
        .events_by_id(&ids)
        .await
        .expect("by id")
        .iter()
        .map(|p| p.event.version.get())
        .collect();
    assert_eq!(versions, vec![3, 1, 2]);
    assert!(store.events_by_id(&[]).await.expect("none").is_empty());
}
