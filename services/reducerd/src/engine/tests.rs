//! How the owners fold and batch, seen exactly: a real SQLite store wrapped so a test can
//! hold one commit while work piles up behind it, and play another replica writing first.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use purereducer_core::{Action, ActionId, ActionStatus, TypeName, Version, WorkflowKey, WorkflowTypes};
use purereducer_storage::sqlite::SqliteStore;
use purereducer_storage::testing::{Instrumented, fresh_sqlite};
use purereducer_storage::{CommitResult, Store};
use serde_json::json;

use super::*;
use crate::config::OwnerLimits;

const LIMITS: OwnerLimits = OwnerLimits {
    owners: 1,
    max_batch_actions: 512,
    max_cached_workflows: 1000,
    max_state_bytes: 900_000,
};

async fn engine_on(store: Arc<dyn Store>, max_attempts: u32) -> Engine {
    let retry = RetryPolicy {
        max_attempts,
        backoff_base_ms: 1,
        backoff_cap_ms: 5,
    };
    Engine::new(
        store,
        WorkflowTypes::builtin(),
        retry,
        Duration::from_secs(3600),
        crate::hub::Hub::new(),
        LIMITS,
    )
    .expect("engine")
}

fn action(key: &str, workflow_type: &str, payload: serde_json::Value) -> Action {
    Action {
        id: ActionId::from_uuid(uuid::Uuid::new_v4()),
        key: WorkflowKey::parse(&purereducer_core::Namespace::default(), key).expect("key"),
        workflow_type: TypeName::parse(workflow_type, "workflow_type").expect("type"),
        action_type: TypeName::parse("set", "action_type").expect("action type"),
        payload: payload.as_object().expect("object").clone(),
        correlation_id: uuid::Uuid::new_v4().to_string(),
    }
}

fn patch(ops: serde_json::Value) -> serde_json::Value {
    json!({ "patch": ops })
}

/// Submits without waiting, so the caller knows the actions are in the owner's mailbox.
async fn submit(engine: &Engine, action: &Action) -> oneshot::Receiver<Result<Outcome, EngineError>> {
    engine
        .submit(action.clone(), tracing::Span::none(), false)
        .await
        .expect("submitted")
}

async fn outcome(answer: oneshot::Receiver<Result<Outcome, EngineError>>) -> Outcome {
    answer.await.expect("answered").expect("an outcome")
}

/// Another replica (`other`, its own engine on the same database) commits `key` at the
/// version stored now, as if it had won the race.
async fn write_first(other: &Engine, reader: &Arc<SqliteStore>, key: &str) -> DirectOutcome {
    let key = WorkflowKey::parse(&purereducer_core::Namespace::default(), key).expect("key");
    let current = reader.get_state(&key).await.expect("read").expect("exists");
    other
        .try_commit(DirectCommit {
            key,
            expected: current.version,
            state: json!({"n": "other"}).as_object().expect("object").clone(),
            workflow_type: None,
            provenance: Provenance::default(),
            delete: false,
        })
        .await
        .expect("the other replica commits")
}

#[tokio::test]
async fn a_keys_waiting_actions_fold_into_one_commit_with_a_refusal_and_a_duplicate_inside() {
    let (sqlite, _) = fresh_sqlite().await.expect("sqlite");
    let store = Instrumented::new(sqlite);
    let engine = engine_on(store.clone(), 3).await;

    let first = action(
        "order",
        "json-patch",
        patch(json!([{"op": "add", "path": "/a", "value": 0}])),
    );
    let paused = store.pause_next_commit();
    let first_answer = submit(&engine, &first).await;
    paused.entered.notified().await;
    // The owner is inside the first commit: these wait in its mailbox, in this order.
    let second = action(
        "order",
        "json-patch",
        patch(json!([{"op": "add", "path": "/b", "value": 1}])),
    );
    let refused = action(
        "order",
        "json-patch",
        patch(json!([{"op": "test", "path": "/a", "value": 99}, {"op": "add", "path": "/x", "value": 1}])),
    );
    let third = action(
        "order",
        "json-patch",
        patch(json!([{"op": "add", "path": "/c", "value": 2}])),
    );
    let answers = vec![
        submit(&engine, &second).await,
        submit(&engine, &refused).await,
        submit(&engine, &third).await,
        submit(&engine, &second).await,
    ];
    paused.release();

    assert_eq!(outcome(first_answer).await.version, Version::new(1));
    let mut outcomes = Vec::new();
    for answer in answers {
        outcomes.push(outcome(answer).await);
    }
    let statuses: Vec<(ActionStatus, u64)> = outcomes.iter().map(|o| (o.status, o.version.get())).collect();
    assert_eq!(
        statuses,
        vec![
            (ActionStatus::Committed, 2),
            (ActionStatus::Rejected, 2),
            (ActionStatus::Committed, 3),
            (ActionStatus::Duplicate, 2),
        ],
        "the refusal takes no version; the repeated action answers with the first outcome"
    );
    assert_eq!(outcomes[3].result_hash, outcomes[0].result_hash);
    assert_eq!(
        outcomes[2].state.as_ref().map(|s| s.len()),
        Some(3),
        "the third action saw the second's state"
    );

    let batches = store.batches();
    assert_eq!(batches.len(), 2, "one commit for the first action, one for the fold");
    let (key, folded) = &batches[1].requests[0];
    assert_eq!(key, "order");
    assert_eq!(
        folded.expected,
        Version::new(1),
        "one compare-and-set on the version the fold started from"
    );
    assert_eq!(folded.writes, Some(Version::new(3)));
    assert_eq!(
        folded.records,
        vec![
            (second.id, ActionStatus::Committed, Version::new(2)),
            (refused.id, ActionStatus::Rejected, Version::new(2)),
            (third.id, ActionStatus::Committed, Version::new(3)),
        ]
    );
    assert_eq!(folded.events, 2, "one StateCommitted per committed action");
    let events = store.pending_events(100).await.expect("outbox");
    let versions: Vec<u64> = events.iter().map(|e| e.event.version.get()).collect();
    assert_eq!(versions, vec![1, 2, 3], "events in version order");
}

#[tokio::test]
async fn in_a_batch_across_keys_only_the_keys_another_writer_moved_retry() {
    let (sqlite, _) = fresh_sqlite().await.expect("sqlite");
    let store = Instrumented::new(sqlite.clone());
    let engine = engine_on(store.clone(), 3).await;
    // Another replica on the same database, with owners of its own.
    let other = Arc::new(engine_on(sqlite.clone(), 3).await);
    let keys: Vec<String> = (0..10).map(|i| format!("k{i}")).collect();
    for key in &keys {
        engine
            .handle(&action(key, "merge", json!({"n": 0})))
            .await
            .expect("created");
    }

    let moved = ["k0", "k3"];
    let fired = Arc::new(AtomicU32::new(0));
    let (other_writer, sqlite_reader, fired_in) = (other.clone(), sqlite.clone(), fired.clone());
    store.interfere(Arc::new(move |batch_keys| {
        let (other, reader, fired) = (other_writer.clone(), sqlite_reader.clone(), fired_in.clone());
        Box::pin(async move {
            if batch_keys.len() < 10 || fired.fetch_add(1, Ordering::SeqCst) > 0 {
                return;
            }
            for key in moved {
                let done = write_first(&other, &reader, key).await;
                assert!(matches!(done, DirectOutcome::Committed(_)));
            }
        })
    }));

    let paused = store.pause_next_commit();
    let opener = submit(&engine, &action("z", "merge", json!({}))).await;
    paused.entered.notified().await;
    let mut answers = Vec::new();
    for key in &keys {
        answers.push(submit(&engine, &action(key, "merge", json!({"n": 1}))).await);
    }
    paused.release();
    outcome(opener).await;
    for (key, answer) in keys.iter().zip(answers) {
        let outcome = outcome(answer).await;
        assert_eq!(outcome.status, ActionStatus::Committed, "{key}");
        if moved.contains(&key.as_str()) {
            assert_eq!(
                (outcome.attempts, outcome.version.get()),
                (2, 3),
                "{key} retried after the other write"
            );
        } else {
            assert_eq!(
                (outcome.attempts, outcome.version.get()),
                (1, 2),
                "{key} committed in the batch"
            );
        }
    }

    let batches = store.batches();
    let batch = batches
        .iter()
        .find(|b| b.requests.len() == 10)
        .expect("the ten keys went into one transaction");
    for ((key, _), result) in batch.requests.iter().zip(&batch.results) {
        let conflicted = matches!(result, CommitResult::Conflict { .. });
        assert_eq!(conflicted, moved.contains(&key.as_str()), "{key}: {result:?}");
    }
    let retried: Vec<&str> = batches
        .iter()
        .skip_while(|b| b.requests.len() != 10)
        .skip(1)
        .flat_map(|b| b.requests.iter().map(|(k, _)| k.as_str()))
        .collect();
    let mut retried_sorted = retried.clone();
    retried_sorted.sort_unstable();
    assert_eq!(
        retried_sorted,
        moved.to_vec(),
        "only the moved keys were committed again"
    );
}

#[tokio::test]
async fn an_action_that_keeps_losing_to_another_writer_gives_up_and_is_counted() {
    let (sqlite, _) = fresh_sqlite().await.expect("sqlite");
    let store = Instrumented::new(sqlite.clone());
    let engine = engine_on(store.clone(), 3).await;
    let other = Arc::new(engine_on(sqlite.clone(), 3).await);
    engine
        .handle(&action("hot", "merge", json!({"n": 0})))
        .await
        .expect("created");
    let (writer, reader) = (other.clone(), sqlite.clone());
    store.interfere(Arc::new(move |_| {
        let (other, reader) = (writer.clone(), reader.clone());
        Box::pin(async move {
            write_first(&other, &reader, "hot").await;
        })
    }));
    let losing = action("hot", "merge", json!({"n": 1}));
    let lost = engine.handle(&losing).await.expect("an outcome");
    assert_eq!(lost.status, ActionStatus::GaveUp);
    assert_eq!(lost.attempts, 3);
    assert_eq!(lost.version, Version::new(4), "the version the last attempt saw");
    let commits_of_hot = store
        .batches()
        .iter()
        .skip(1)
        .filter(|b| b.requests.iter().any(|(k, _)| k == "hot"))
        .count();
    assert_eq!(commits_of_hot, 3, "one compare-and-set per attempt");
    let gave_up: Vec<_> = store
        .pending_events(100)
        .await
        .expect("outbox")
        .into_iter()
        .filter(|e| e.event.event_type == "ReducerGaveUp")
        .collect();
    assert_eq!(gave_up.len(), 1, "one ReducerGaveUp event");
    assert!(
        store
            .find_processed(&losing.key, losing.id)
            .await
            .expect("lookup")
            .is_none(),
        "a gave-up action leaves no dedup record, so a resend can still apply"
    );
}

#[tokio::test]
async fn idle_workflows_are_evicted_and_read_again_when_they_return() {
    let (sqlite, _) = fresh_sqlite().await.expect("sqlite");
    let store = Instrumented::new(sqlite.clone());
    let limits = OwnerLimits {
        max_cached_workflows: 8,
        ..LIMITS
    };
    let engine = Engine::new(
        store.clone(),
        WorkflowTypes::builtin(),
        RetryPolicy::default(),
        Duration::from_secs(3600),
        crate::hub::Hub::new(),
        limits,
    )
    .expect("engine");
    for i in 0..50 {
        engine
            .handle(&action(&format!("w{i}"), "merge", json!({"i": i})))
            .await
            .expect("applied");
    }
    // w0 was evicted long ago; its next action must start from the stored version.
    let again = engine
        .handle(&action("w0", "merge", json!({"again": true})))
        .await
        .expect("applied");
    assert_eq!((again.status, again.version.get()), (ActionStatus::Committed, 2));
}

#[tokio::test]
async fn a_resend_in_a_batch_rolls_back_only_to_answer_as_a_duplicate_and_the_rest_commits() {
    let (sqlite, _) = fresh_sqlite().await.expect("sqlite");
    let store = Instrumented::new(sqlite);
    let engine = engine_on(store.clone(), 3).await;
    let first = action("a", "merge", json!({"n": 1}));
    let original = engine.handle(&first).await.expect("applied");

    let paused = store.pause_next_commit();
    let opener = submit(&engine, &action("z", "merge", json!({}))).await;
    paused.entered.notified().await;
    let resend = submit(&engine, &first).await;
    let other = submit(&engine, &action("b", "merge", json!({"n": 2}))).await;
    paused.release();
    outcome(opener).await;
    let resent = outcome(resend).await;
    assert_eq!(resent.status, ActionStatus::Duplicate);
    assert_eq!(
        (resent.version, resent.result_hash),
        (original.version, original.result_hash)
    );
    assert_eq!(outcome(other).await.status, ActionStatus::Committed);

    let batches = store.batches();
    let together = batches
        .iter()
        .find(|b| b.requests.len() == 2)
        .expect("the resend and b went into one transaction");
    assert!(matches!(
        together.results[..],
        [CommitResult::AlreadyProcessed(_), CommitResult::Deferred]
    ));
    let events = store.pending_events(100).await.expect("outbox");
    let keys: Vec<&str> = events.iter().map(|e| e.event.workflow_key.as_str()).collect();
    assert_eq!(keys, vec!["a", "z", "b"], "the resend wrote nothing; b committed once");
}

#[tokio::test]
async fn a_queued_action_waits_out_an_outage_in_order_while_a_direct_caller_is_told_to_retry() {
    let (sqlite, _) = fresh_sqlite().await.expect("sqlite");
    let store = Instrumented::new(sqlite);
    let engine = engine_on(store.clone(), 3).await;

    // A direct caller gets the outage back: it resends.
    store.fail_next_commits(1);
    let direct = engine.handle(&action("k", "merge", json!({"direct": 1}))).await;
    assert!(matches!(direct, Err(EngineError::Unavailable(_))), "{direct:?}");

    // Queued actions have nobody to resend them: three failed commits later they apply, in
    // the order they were queued.
    store.fail_next_commits(3);
    let queued: Vec<Action> = (0..5).map(|i| action("k", "merge", json!({"last": i}))).collect();
    let outcomes = engine
        .submit_queued(queued.iter().map(|a| (a.clone(), tracing::Span::none())).collect())
        .await
        .await;
    let versions: Vec<u64> = outcomes
        .iter()
        .map(|(_, outcome)| {
            let outcome = outcome.as_ref().expect("decided");
            assert_eq!(outcome.status, ActionStatus::Committed);
            outcome.version.get()
        })
        .collect();
    assert_eq!(versions, vec![1, 2, 3, 4, 5]);
    let stored = store
        .get_state(&WorkflowKey::parse(&purereducer_core::Namespace::default(), "k").expect("key"))
        .await
        .expect("read")
        .expect("state");
    assert_eq!(stored.state.get("last"), Some(&json!(4)));
    assert!(store.batches().iter().filter(|b| b.results.is_empty()).count() >= 3);
}

#[tokio::test]
async fn a_stopping_engine_hands_an_undecided_queued_action_back_instead_of_retrying() {
    let (sqlite, _) = fresh_sqlite().await.expect("sqlite");
    let store = Instrumented::new(sqlite);
    let engine = engine_on(store.clone(), 3).await;
    store.fail_next_commits(u32::MAX);
    let queued = action("k", "merge", json!({"n": 1}));
    let outcomes = engine.submit_queued(vec![(queued, tracing::Span::none())]).await;
    let outcomes = tokio::spawn(outcomes);
    // Once it has failed at least once, the process stops.
    while store.batches().is_empty() {
        tokio::task::yield_now().await;
    }
    engine.stop_retrying();
    let outcomes = outcomes.await.expect("joined");
    assert!(
        matches!(outcomes[0].1, Err(EngineError::Unavailable(_))),
        "{:?}",
        outcomes[0].1
    );
    let stored = store
        .get_state(&WorkflowKey::parse(&purereducer_core::Namespace::default(), "k").expect("key"))
        .await
        .expect("read");
    assert!(stored.is_none(), "nothing was written");
}
