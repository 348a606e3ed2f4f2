//! Conformance tests of the batch operations: group commit across workflows, batched
//! reads, and projections committed with their outbox publication marks.

use super::*;

pub(crate) async fn group_commit_checks_each_workflow_on_its_own(store: Arc<dyn Store>) {
    commit(&store, "a", 0, json!({"a": 1})).await;
    commit(&store, "b", 0, json!({"b": 1})).await;
    commit(&store, "taken", 0, json!({"t": 1})).await;
    let request = |k: &str, expected: u64, writes: u64| CommitRequest {
        key: key(k),
        expected: Version::new(expected),
        write: Some(write(writes, json!({ k: writes }))),
        records: vec![record(new_id(), writes, HOURS_6)],
        events: vec![event(k, writes, "StateCommitted")],
    };
    // Three versions of "a" folded into one request, a stale "b", a new "c", and a create of
    // a workflow that exists.
    let mut folded = request("a", 1, 4);
    folded.records = (2..=4).map(|v| record(new_id(), v, HOURS_6)).collect();
    folded.events = (2..=4).map(|v| event("a", v, "StateCommitted")).collect();
    let results = store
        .commit_batch(&[folded, request("b", 7, 8), request("c", 0, 1), request("taken", 0, 1)])
        .await
        .expect("group commit");
    assert_eq!(
        results,
        vec![
            CommitResult::Committed {
                version: Version::new(4)
            },
            CommitResult::Conflict {
                current: Version::new(1)
            },
            CommitResult::Committed {
                version: Version::new(1)
            },
            CommitResult::Conflict {
                current: Version::new(1)
            },
        ]
    );
    let version = |k: &'static str| {
        let store = store.clone();
        async move { store.get_state(&key(k)).await.expect("read").map(|s| s.version.get()) }
    };
    assert_eq!(
        (
            version("a").await,
            version("b").await,
            version("c").await,
            version("taken").await
        ),
        (Some(4), Some(1), Some(1), Some(1))
    );
    let written: Vec<(String, u64)> = store
        .pending_events(100)
        .await
        .expect("outbox")
        .into_iter()
        .map(|p| (p.event.workflow_key, p.event.version.get()))
        .filter(|(k, _)| k == "a" || k == "b" || k == "c")
        .collect();
    assert_eq!(
        written,
        vec![
            ("a".to_owned(), 2),
            ("a".to_owned(), 3),
            ("a".to_owned(), 4),
            ("c".to_owned(), 1),
        ],
        "only passing requests wrote events, in request order and, per key, in version order"
    );
}

pub(crate) async fn group_commit_with_an_already_processed_action_writes_nothing(store: Arc<dyn Store>) {
    commit(&store, "a", 0, json!({"a": 1})).await;
    let seen = new_id();
    store
        .record_processed(&key("a"), record(seen, 1, HOURS_6))
        .await
        .expect("recorded");
    let results = store
        .commit_batch(&[
            CommitRequest {
                key: key("a"),
                expected: Version::new(1),
                write: Some(write(2, json!({"a": 2}))),
                records: vec![record(seen, 2, HOURS_6)],
                events: vec![event("a", 2, "StateCommitted")],
            },
            CommitRequest {
                key: key("fresh"),
                expected: Version::NONE,
                write: Some(write(1, json!({"f": 1}))),
                records: vec![record(new_id(), 1, HOURS_6)],
                events: vec![event("fresh", 1, "StateCommitted")],
            },
        ])
        .await
        .expect("group commit");
    assert!(
        matches!(&results[0], CommitResult::AlreadyProcessed(r) if r.action_id == seen),
        "{results:?}"
    );
    assert_eq!(results[1], CommitResult::Deferred);
    assert_eq!(
        store.get_state(&key("a")).await.expect("read").map(|s| s.version.get()),
        Some(1)
    );
    assert!(
        store.get_state(&key("fresh")).await.expect("read").is_none(),
        "nothing of the batch stays"
    );
    let events = store.pending_events(100).await.expect("outbox");
    assert!(events.is_empty(), "no event of the batch stays");
}

pub(crate) async fn batched_reads_return_states_and_records_by_key(store: Arc<dyn Store>) {
    commit(&store, "a", 0, json!({"a": 1})).await;
    commit(&store, "b", 0, json!({"b": 1})).await;
    let states = store
        .get_states(&[key("a"), key("b"), key("missing")])
        .await
        .expect("states");
    assert_eq!(states.len(), 2);
    assert_eq!(states["b"].state, object(json!({"b": 1})));
    let (one, two) = (new_id(), new_id());
    store
        .record_processed(&key("a"), record(one, 1, HOURS_6))
        .await
        .expect("recorded");
    store
        .record_processed(&key("b"), record(two, 1, HOURS_6))
        .await
        .expect("recorded");
    let found = store
        .find_processed_many(&[
            (key("a"), one),
            (key("a"), two),
            (key("b"), two),
            (key("missing"), new_id()),
        ])
        .await
        .expect("records");
    let mut found: Vec<(String, ActionId)> = found.into_iter().map(|(k, r)| (k, r.action_id)).collect();
    found.sort_by(|x, y| x.0.cmp(&y.0));
    assert_eq!(found, vec![("a".to_owned(), one), ("b".to_owned(), two)]);
}

pub(crate) async fn projections_and_publication_marks_commit_together(store: Arc<dyn Store>) {
    store
        .append_events(vec![event("wf", 1, "StateCommitted"), event("wf", 2, "StateCommitted")])
        .await
        .expect("append");
    let pending = store.pending_events(10).await.expect("pending");
    let ids: Vec<i64> = pending.iter().map(|p| p.id).collect();
    // Two versions of one workflow and a redelivered older one in a single batch.
    let stats = store
        .apply_and_mark_published(&[update(0, "wf", 1), update(1, "wf", 2), update(2, "wf", 1)], &ids)
        .await
        .expect("apply");
    assert_eq!(stats.applied.len(), 2, "{stats:?}");
    assert_eq!(
        stats.regressions, 1,
        "the older version after the newer is a regression"
    );
    let stored = store.get_projection("wf").await.expect("read").expect("row");
    assert_eq!(stored.row.version, Version::new(2));
    assert!(
        store.pending_events(10).await.expect("pending").is_empty(),
        "marked published"
    );
    let marks = store.list_watermarks().await.expect("watermarks");
    assert_eq!(marks.iter().find(|w| w.topic == "t").map(|w| w.offset), Some(3));
}
