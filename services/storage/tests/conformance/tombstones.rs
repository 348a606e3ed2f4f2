//! Deleted workflows: the state row and the projection row stay as tombstones that keep the
//! version, so a workflow started again on the key continues after it.

use super::*;
use purereducer_storage::WorkflowFilter;

fn deletion(version: u64) -> StateWrite {
    StateWrite {
        deleted: true,
        ..write(version, json!({}))
    }
}

pub async fn a_deleted_workflow_keeps_its_version_as_a_tombstone(store: Arc<dyn Store>) {
    assert!(matches!(
        commit(&store, "gone", 0, json!({"n": 1})).await,
        CommitResult::Committed { .. }
    ));
    let delete = |expected: u64| CommitRequest {
        key: key("gone"),
        expected: Version::new(expected),
        write: Some(deletion(expected + 1)),
        records: Vec::new(),
        events: vec![event("gone", expected + 1, "WorkflowDeleted")],
        history: Vec::new(),
    };
    // The deletion is a compare-and-set like any commit.
    assert_eq!(
        store.commit(delete(0)).await.expect("stale delete"),
        CommitResult::Conflict {
            current: Version::new(1)
        }
    );
    assert_eq!(
        store.commit(delete(1)).await.expect("delete"),
        CommitResult::Committed {
            version: Version::new(2)
        }
    );

    for stored in [
        store.get_state(&key("gone")).await.expect("read").expect("tombstone"),
        store
            .get_states(&[key("gone")])
            .await
            .expect("read many")
            .remove(&key("gone"))
            .expect("tombstone"),
        store
            .snapshot(&key("gone"), new_id())
            .await
            .expect("snapshot")
            .state
            .expect("tombstone"),
    ] {
        assert!(stored.deleted, "read as deleted: {stored:?}");
        assert_eq!((stored.version, stored.state.len()), (Version::new(2), 0));
    }
    assert!(matches!(
        commit(&store, "kept", 0, json!({})).await,
        CommitResult::Committed { .. }
    ));
    let listed: Vec<String> = store
        .list_workflows(&WorkflowFilter {
            namespace: "default".to_owned(),
            limit: 10,
            ..WorkflowFilter::default()
        })
        .await
        .expect("list")
        .into_iter()
        .map(|w| w.workflow_key)
        .collect();
    assert_eq!(listed, ["kept"], "a deleted workflow is not listed");

    // A new workflow on the key continues after the tombstone, with a type of its own.
    let again = CommitRequest {
        key: key("gone"),
        expected: Version::new(2),
        write: Some(StateWrite {
            workflow_type: TypeName::parse("order", "workflow_type").expect("type"),
            ..write(3, json!({"n": 2}))
        }),
        records: Vec::new(),
        events: Vec::new(),
        history: Vec::new(),
    };
    assert_eq!(
        store.commit(again).await.expect("recreate"),
        CommitResult::Committed {
            version: Version::new(3)
        }
    );
    let stored = store.get_state(&key("gone")).await.expect("read").expect("state");
    assert!(!stored.deleted);
    assert_eq!(
        (stored.version, stored.workflow_type.as_str()),
        (Version::new(3), "order")
    );
    assert_eq!(stored.state, object(json!({"n": 2})));
}

pub async fn a_projection_tombstone_outlives_redelivered_events(store: Arc<dyn Store>) {
    let tombstone = |offset: i64, version: u64| {
        let mut update = update(offset, "p", version);
        if let Some(row) = update.row.as_mut() {
            row.deleted = true;
            row.tag = None;
            row.indices = json!({});
            row.extras = json!({});
        }
        update
    };
    store
        .apply_projections(&[update(0, "p", 1), tombstone(1, 2)])
        .await
        .expect("apply");
    let row = store.get_projection(&key("p")).await.expect("read").expect("tombstone");
    assert!(row.row.deleted);
    assert_eq!((row.row.version, row.row.tag), (Version::new(2), None));

    // A re-sent event of the deleted workflow (a new offset, an old version) changes nothing.
    let stats = store.apply_projections(&[update(2, "p", 1)]).await.expect("apply");
    assert_eq!((stats.applied.len(), stats.regressions), (0, 1));
    assert!(
        store
            .get_projection(&key("p"))
            .await
            .expect("read")
            .expect("row")
            .row
            .deleted
    );

    // The first commit of a new workflow on the key brings the row back.
    store.apply_projections(&[update(3, "p", 3)]).await.expect("apply");
    let row = store.get_projection(&key("p")).await.expect("read").expect("row");
    assert!(!row.row.deleted);
    assert_eq!(row.row.version, Version::new(3));
}
