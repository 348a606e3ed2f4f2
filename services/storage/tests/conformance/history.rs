//! Conformance tests of workflow history (written with its commit, paged both ways, pruned
//! by count and age) and of listing workflows.

use purereducer_storage::{HistoryEntry, HistoryPage, HistoryRecord, HistoryRetention, WorkflowFilter};

use super::*;

fn entry(k: &str, version: u64, status: ActionStatus, state: Option<serde_json::Value>) -> HistoryEntry {
    HistoryEntry {
        namespace: "default".to_owned(),
        workflow_key: k.to_owned(),
        version: Version::new(version),
        workflow_type: "merge".to_owned(),
        action_id: new_id().to_string(),
        action_type: "Set".to_owned(),
        correlation_id: "c".to_owned(),
        status,
        state: state.map(object),
        payload: Some(object(json!({"set": version}))),
        intents: Vec::new(),
        reason: (status != ActionStatus::Committed).then(|| "no".to_owned()),
        result_hash: format!("h{version}"),
        actor: "conformance".to_owned(),
    }
}

fn request(k: &str, expected: u64, writes: u64, history: Vec<HistoryEntry>) -> CommitRequest {
    CommitRequest {
        key: key(k),
        expected: Version::new(expected),
        write: Some(write(writes, json!({ "v": writes }))),
        records: Vec::new(),
        events: Vec::new(),
        history,
    }
}

fn shape(records: &[HistoryRecord]) -> Vec<(u64, ActionStatus)> {
    records
        .iter()
        .map(|r| (r.entry.version.get(), r.entry.status))
        .collect()
}

async fn all_pages(store: &Arc<dyn Store>, k: &str, mut page: HistoryPage) -> Vec<Vec<HistoryRecord>> {
    let mut pages = Vec::new();
    loop {
        let found = store.history(&key(k), page).await.expect("history");
        let Some(last) = found.last() else { return pages };
        page.after = (i64::try_from(last.entry.version.get()).expect("small"), last.seq);
        pages.push(found);
    }
}

pub(crate) async fn history_is_written_with_its_commit_and_paged_both_ways(store: Arc<dyn Store>) {
    let committed = |v: u64| entry("wf", v, ActionStatus::Committed, Some(json!({ "v": v })));
    store
        .commit(request("wf", 0, 1, vec![committed(1)]))
        .await
        .expect("create");
    // A fold: commit v2, a refusal seen at v2, commit v3.
    let folded = vec![committed(2), entry("wf", 2, ActionStatus::Rejected, None), committed(3)];
    store.commit(request("wf", 1, 3, folded)).await.expect("fold");
    // A stale commit writes no history.
    let stale = store
        .commit(request("wf", 1, 2, vec![committed(2)]))
        .await
        .expect("stale");
    assert_eq!(
        stale,
        CommitResult::Conflict {
            current: Version::new(3)
        }
    );
    store
        .append_events(
            vec![event("wf", 3, "ReducerGaveUp")],
            vec![entry("wf", 3, ActionStatus::GaveUp, None)],
        )
        .await
        .expect("gave up");

    use ActionStatus::{Committed, GaveUp, Rejected};
    let forward = all_pages(&store, "wf", HistoryPage::starting_at(Version::NONE, false, 2)).await;
    let pages: Vec<_> = forward.iter().map(|p| shape(p)).collect();
    assert_eq!(
        pages,
        vec![
            vec![(1, Committed), (2, Committed)],
            vec![(2, Rejected), (3, Committed)],
            vec![(3, GaveUp)]
        ]
    );
    let first = &forward[0][0];
    assert_eq!(first.entry.state, Some(object(json!({"v": 1}))));
    assert_eq!(first.entry.actor, "conformance");
    assert!(first.recorded_at_ms > 0);
    let backward: Vec<_> = all_pages(&store, "wf", HistoryPage::starting_at(Version::NONE, true, 3))
        .await
        .iter()
        .flat_map(|p| shape(p))
        .collect();
    assert_eq!(
        backward,
        vec![
            (3, GaveUp),
            (3, Committed),
            (2, Rejected),
            (2, Committed),
            (1, Committed)
        ]
    );
    let from_two = store
        .history(&key("wf"), HistoryPage::starting_at(Version::new(2), false, 10))
        .await
        .expect("from 2");
    assert_eq!(
        shape(&from_two),
        vec![(2, Committed), (2, Rejected), (3, Committed), (3, GaveUp)]
    );
    let down_from_two = store
        .history(&key("wf"), HistoryPage::starting_at(Version::new(2), true, 10))
        .await
        .expect("down from 2");
    assert_eq!(
        shape(&down_from_two),
        vec![(2, Rejected), (2, Committed), (1, Committed)]
    );
    // Another namespace's workflow of the same name has its own (empty) history.
    let other = WorkflowKey::parse(&Namespace::parse_or_default("tenant-b").expect("namespace"), "wf").expect("key");
    let elsewhere = store
        .history(&other, HistoryPage::starting_at(Version::NONE, false, 10))
        .await
        .expect("other namespace");
    assert!(elsewhere.is_empty());
}

pub(crate) async fn history_is_pruned_by_count_and_by_age(store: Arc<dyn Store>) {
    for v in 1..=5u64 {
        let entries = vec![entry("wf", v, ActionStatus::Committed, Some(json!({ "v": v })))];
        store.commit(request("wf", v - 1, v, entries)).await.expect("commit");
    }
    let entries = vec![entry("short", 1, ActionStatus::Committed, Some(json!({})))];
    store.commit(request("short", 0, 1, entries)).await.expect("commit");
    let keep_two = HistoryRetention {
        keep_versions: Some(2),
        max_age: None,
    };
    assert_eq!(store.prune_history(keep_two, 1000).await.expect("prune"), 3);
    let left = store
        .history(&key("wf"), HistoryPage::starting_at(Version::NONE, false, 10))
        .await
        .expect("history");
    assert_eq!(
        shape(&left),
        vec![(4, ActionStatus::Committed), (5, ActionStatus::Committed)]
    );
    assert_eq!(store.prune_history(keep_two, 1000).await.expect("again"), 0);
    let by_age = HistoryRetention {
        keep_versions: None,
        max_age: Some(Duration::from_secs(3600)),
    };
    assert_eq!(
        store.prune_history(by_age, 1000).await.expect("young"),
        0,
        "nothing is an hour old"
    );
    let everything = HistoryRetention {
        keep_versions: None,
        max_age: Some(Duration::ZERO),
    };
    assert_eq!(
        store.prune_history(everything, 2).await.expect("bounded"),
        2,
        "at most the limit"
    );
    assert_eq!(store.prune_history(everything, 1000).await.expect("rest"), 1);
}

pub(crate) async fn workflows_are_listed_by_filter_in_key_order(store: Arc<dyn Store>) {
    let typed = |k: &str, workflow_type: &str, status: &str| CommitRequest {
        write: Some(StateWrite {
            workflow_type: TypeName::parse(workflow_type, "workflow_type").expect("type"),
            ..write(1, json!({ "status": status }))
        }),
        ..request(k, 0, 1, Vec::new())
    };
    let requests = vec![
        typed("order-2", "order", "open"),
        typed("order-1", "order", "closed"),
        typed("order-3", "order", "open"),
        typed("user-1", "user", "open"),
        typed("orders", "order", "open"),
    ];
    store.commit_batch(&requests).await.expect("create");
    let filter = |f: WorkflowFilter| WorkflowFilter {
        namespace: "default".to_owned(),
        limit: 100,
        ..f
    };
    let keys = |found: Vec<purereducer_storage::WorkflowSummary>| {
        found.into_iter().map(|w| w.workflow_key).collect::<Vec<_>>()
    };
    let all = store
        .list_workflows(&filter(WorkflowFilter::default()))
        .await
        .expect("all");
    assert_eq!(all[0].workflow_type, "order");
    assert_eq!(all[0].tag.as_deref(), Some("closed"));
    assert_eq!(all[0].version, Version::new(1));
    assert_eq!(keys(all), vec!["order-1", "order-2", "order-3", "orders", "user-1"]);
    let prefix = WorkflowFilter {
        key_prefix: Some("order-".to_owned()),
        ..Default::default()
    };
    assert_eq!(
        keys(store.list_workflows(&filter(prefix.clone())).await.expect("prefix")),
        vec!["order-1", "order-2", "order-3"]
    );
    let open_orders = WorkflowFilter {
        workflow_type: Some("order".to_owned()),
        tag: Some("open".to_owned()),
        ..Default::default()
    };
    assert_eq!(
        keys(store.list_workflows(&filter(open_orders)).await.expect("tag")),
        vec!["order-2", "order-3", "orders"]
    );
    let page = WorkflowFilter {
        after_key: Some("order-1".to_owned()),
        limit: 2,
        ..prefix
    };
    assert_eq!(
        keys(
            store
                .list_workflows(&WorkflowFilter {
                    namespace: "default".to_owned(),
                    ..page
                })
                .await
                .expect("page")
        ),
        vec!["order-2", "order-3"]
    );
    let future = WorkflowFilter {
        updated_after_ms: Some(i64::MAX / 2),
        ..Default::default()
    };
    assert!(store.list_workflows(&filter(future)).await.expect("future").is_empty());
    let past = WorkflowFilter {
        updated_before_ms: Some(i64::MAX / 2),
        updated_after_ms: Some(0),
        ..Default::default()
    };
    assert_eq!(store.list_workflows(&filter(past)).await.expect("past").len(), 5);
    let elsewhere = WorkflowFilter {
        namespace: "tenant-b".to_owned(),
        limit: 100,
        ..Default::default()
    };
    assert!(
        store
            .list_workflows(&elsewhere)
            .await
            .expect("other namespace")
            .is_empty()
    );
}

/// 10,000 workflows over two types and three statuses, created in batches.
async fn many_workflows(store: Arc<dyn Store>) {
    let statuses = ["open", "closed", "held"];
    for batch in 0..10 {
        let requests: Vec<CommitRequest> = (0..1000)
            .map(|i| {
                let n = batch * 1000 + i;
                let workflow_type = if n % 2 == 0 { "order" } else { "user" };
                CommitRequest {
                    write: Some(StateWrite {
                        workflow_type: TypeName::parse(workflow_type, "workflow_type").expect("type"),
                        ..write(1, json!({ "status": statuses[n % 3] }))
                    }),
                    ..request(&format!("wf-{n:05}"), 0, 1, Vec::new())
                }
            })
            .collect();
        store.commit_batch(&requests).await.expect("create");
    }
}

/// The filters a console and `reducerctl list` send, each of which an index must serve.
fn indexed_filters() -> Vec<(&'static str, WorkflowFilter)> {
    let base = WorkflowFilter {
        namespace: "default".to_owned(),
        limit: 50,
        after_key: Some("wf-05000".to_owned()),
        ..Default::default()
    };
    vec![
        ("page", base.clone()),
        (
            "prefix",
            WorkflowFilter {
                key_prefix: Some("wf-071".to_owned()),
                ..base.clone()
            },
        ),
        (
            "type",
            WorkflowFilter {
                workflow_type: Some("order".to_owned()),
                ..base.clone()
            },
        ),
        (
            "tag",
            WorkflowFilter {
                tag: Some("held".to_owned()),
                ..base.clone()
            },
        ),
        (
            "updated",
            WorkflowFilter {
                updated_after_ms: Some(i64::MAX / 2),
                ..base
            },
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_listings_over_ten_thousand_workflows_use_indexes() {
    let (store, _) = purereducer_storage::testing::fresh_postgres(4)
        .await
        .expect("postgres test database");
    many_workflows(store.clone()).await;
    for (name, filter) in indexed_filters() {
        let plan = store.explain_list_workflows(&filter).await.expect("explain");
        assert!(plan.contains("Index"), "{name}: no index in the plan:\n{plan}");
        assert!(!plan.contains("Seq Scan"), "{name}: a sequential scan:\n{plan}");
    }
    let page = store.list_workflows(&indexed_filters()[0].1).await.expect("page");
    assert_eq!(page.len(), 50);
    assert_eq!(page[0].workflow_key, "wf-05001");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_listings_over_ten_thousand_workflows_use_indexes() {
    let (store, _) = purereducer_storage::testing::fresh_sqlite()
        .await
        .expect("sqlite test database");
    many_workflows(store.clone()).await;
    for (name, filter) in indexed_filters() {
        let plan = store.explain_list_workflows(&filter).await.expect("explain");
        // SEARCH is a range of an index; SCAN would read the whole table or index.
        assert!(
            plan.contains("SEARCH workflow_state USING"),
            "{name}: no index search in the plan:\n{plan}"
        );
        assert!(!plan.contains("SCAN workflow_state"), "{name}: a full scan:\n{plan}");
    }
    let tagged = store.list_workflows(&indexed_filters()[3].1).await.expect("tag page");
    assert_eq!(tagged.len(), 50);
    assert!(tagged.iter().all(|w| w.tag.as_deref() == Some("held")));
}
