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
        history: Vec::new(),
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
                history: Vec::new(),
            },
            CommitRequest {
                key: key("fresh"),
                expected: Version::NONE,
                write: Some(write(1, json!({"f": 1}))),
                records: vec![record(new_id(), 1, HOURS_6)],
                events: vec![event("fresh", 1, "StateCommitted")],
                history: Vec::new(),
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
    assert_eq!(states[&key("b")].state, object(json!({"b": 1})));
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
    let mut found: Vec<(String, ActionId)> = found
        .into_iter()
        .map(|(k, r)| (k.as_str().to_owned(), r.action_id))
        .collect();
    found.sort_by(|x, y| x.0.cmp(&y.0));
    assert_eq!(found, vec![("a".to_owned(), one), ("b".to_owned(), two)]);
}

pub(crate) async fn projections_and_publication_marks_commit_together(store: Arc<dyn Store>) {
    store
        .append_events(
            vec![event("wf", 1, "StateCommitted"), event("wf", 2, "StateCommitted")],
            Vec::new(),
        )
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
    let stored = store.get_projection(&key("wf")).await.expect("read").expect("row");
    assert_eq!(stored.row.version, Version::new(2));
    assert!(
        store.pending_events(10).await.expect("pending").is_empty(),
        "marked published"
    );
    let marks = store.list_watermarks().await.expect("watermarks");
    assert_eq!(marks.iter().find(|w| w.topic == "t").map(|w| w.offset), Some(3));
}

/// The same workflow key in two namespaces is two workflows in every table: state, dedup
/// records, outbox, projections and completions.
pub async fn the_same_key_in_two_namespaces_is_two_workflows(store: Arc<dyn Store>) {
    let tenant = Namespace::parse_or_default("tenant-b").expect("namespace");
    let theirs = WorkflowKey::parse(&tenant, "shared").expect("key");
    let ours = key("shared");
    let id = new_id();
    let request = |key: &WorkflowKey, state: serde_json::Value| CommitRequest {
        key: key.clone(),
        expected: Version::NONE,
        write: Some(write(1, state)),
        records: vec![record(id, 1, HOURS_6)],
        events: vec![OutboxEvent {
            namespace: key.namespace().as_str().to_owned(),
            ..event(key.as_str(), 1, "StateCommitted")
        }],
        history: Vec::new(),
    };
    // One batch may hold both: they are distinct keys, and the same action id applies once
    // in each.
    let results = store
        .commit_batch(&[
            request(&ours, json!({"who": "default"})),
            request(&theirs, json!({"who": "b"})),
        ])
        .await
        .expect("commit");
    assert_eq!(
        results,
        vec![
            CommitResult::Committed {
                version: Version::new(1)
            };
            2
        ]
    );
    let mine = store.get_state(&ours).await.expect("read").expect("exists");
    let other = store.get_state(&theirs).await.expect("read").expect("exists");
    assert_eq!(mine.state, object(json!({"who": "default"})));
    assert_eq!(other.state, object(json!({"who": "b"})));
    assert_eq!(
        (mine.namespace.as_str(), other.namespace.as_str()),
        ("default", "tenant-b")
    );
    let states = store.get_states(&[ours.clone(), theirs.clone()]).await.expect("states");
    assert_eq!(states[&theirs].state, object(json!({"who": "b"})));

    // A commit in one namespace leaves the other's version alone.
    let next = store
        .commit(CommitRequest {
            key: theirs.clone(),
            expected: Version::new(1),
            write: Some(write(2, json!({"who": "b", "again": true}))),
            records: Vec::new(),
            events: Vec::new(),
            history: Vec::new(),
        })
        .await
        .expect("commit");
    assert_eq!(
        next,
        CommitResult::Committed {
            version: Version::new(2)
        }
    );
    assert_eq!(
        store.get_state(&ours).await.expect("read").expect("exists").version,
        Version::new(1)
    );

    // A record in one namespace says nothing of the other.
    let fresh = new_id();
    store
        .record_processed(&theirs, record(fresh, 2, HOURS_6))
        .await
        .expect("record");
    assert!(store.find_processed(&ours, fresh).await.expect("find").is_none());
    assert!(
        store
            .snapshot(&ours, fresh)
            .await
            .expect("snapshot")
            .processed
            .is_none()
    );
    let found = store
        .find_processed_many(&[(ours.clone(), fresh), (theirs.clone(), fresh)])
        .await
        .expect("records");
    assert_eq!(
        found.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>(),
        vec![theirs.clone()]
    );

    // Each namespace's event keeps its namespace.
    let pending = store.pending_events(10).await.expect("pending");
    let mut spaces: Vec<&str> = pending.iter().map(|p| p.event.namespace.as_str()).collect();
    spaces.sort_unstable();
    assert_eq!(spaces, vec!["default", "tenant-b"]);

    // Projections, one row per namespace.
    let row = |namespace: &str, version: u64, offset: i64| ProjectionUpdate {
        topic: "ns".to_owned(),
        partition: 0,
        offset,
        row: Some(ProjectionRow {
            workflow_key: "shared".to_owned(),
            version: Version::new(version),
            tag: Some(namespace.to_owned()),
            last_action: "set".to_owned(),
            namespace: namespace.to_owned(),
            indices: json!({}),
            extras: json!({}),
            deleted: false,
        }),
    };
    let stats = store
        .apply_projections(&[row("tenant-b", 2, 0), row("default", 1, 1)])
        .await
        .expect("apply");
    assert_eq!(stats.applied.len(), 2, "{stats:?}");
    let projected = |key: WorkflowKey| {
        let store = store.clone();
        async move { store.get_projection(&key).await.expect("read").expect("row").row }
    };
    assert_eq!(projected(theirs.clone()).await.tag.as_deref(), Some("tenant-b"));
    assert_eq!(projected(ours.clone()).await.version, Version::new(1));

    // Completions are found only in their namespace.
    let completion = Completion {
        correlation_id: "c-shared".to_owned(),
        action_id: id,
        namespace: "tenant-b".to_owned(),
        workflow_key: "shared".to_owned(),
        status: ActionStatus::Committed,
        version: Version::new(1),
        result_hash: "h".to_owned(),
        rejection_reason: None,
    };
    store.record_completion(&completion).await.expect("record");
    assert_eq!(
        store
            .find_completion(&Namespace::default(), "c-shared", None)
            .await
            .expect("find"),
        None
    );
    assert_eq!(
        store.find_completion(&tenant, "c-shared", None).await.expect("find"),
        Some(completion)
    );
}
