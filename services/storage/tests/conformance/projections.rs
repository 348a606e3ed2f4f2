//! Projection rows and their forward-only watermarks.

use super::*;

pub fn update(offset: i64, key: &str, version: u64) -> ProjectionUpdate {
    ProjectionUpdate {
        topic: "t".to_owned(),
        partition: 3,
        offset,
        row: Some(ProjectionRow {
            workflow_key: key.to_owned(),
            version: Version::new(version),
            tag: Some(format!("v{version}")),
            last_action: "set".to_owned(),
            namespace: "default".to_owned(),
            indices: json!({"workflow_type": "merge"}),
            extras: json!({"v": version}),
            deleted: false,
        }),
    }
}

pub async fn projections_apply_once_with_forward_only_watermarks(store: Arc<dyn Store>) {
    let stats = store
        .apply_projections(&[update(0, "a", 1), update(1, "a", 2), update(2, "b", 1)])
        .await
        .expect("apply");
    assert_eq!(stats.applied.len(), 3);
    let row = store.get_projection(&key("a")).await.expect("read").expect("row");
    assert_eq!((row.row.version, row.row.tag.as_deref()), (Version::new(2), Some("v2")));
    assert_eq!(row.row.extras, json!({"v": 2}));

    // Redelivered offsets are skipped and change nothing.
    let again = store
        .apply_projections(&[update(0, "a", 1), update(1, "a", 2)])
        .await
        .expect("apply");
    assert_eq!((again.applied.len(), again.duplicates, again.regressions), (0, 2, 0));
    // A new offset carrying an old version is a regression; the same version a duplicate.
    let stale = store
        .apply_projections(&[update(3, "a", 1), update(4, "a", 2)])
        .await
        .expect("apply");
    assert_eq!((stale.applied.len(), stale.duplicates, stale.regressions), (0, 1, 1));
    assert_eq!(
        store
            .get_projection(&key("a"))
            .await
            .expect("read")
            .expect("row")
            .row
            .version,
        Version::new(2)
    );

    // A row-less update only moves the watermark.
    let skip = ProjectionUpdate {
        row: None,
        ..update(7, "c", 1)
    };
    store.apply_projections(&[skip]).await.expect("apply");
    assert_eq!(store.get_projection(&key("c")).await.expect("read"), None);
    let marks = store.list_watermarks().await.expect("watermarks");
    assert_eq!(marks.len(), 1);
    assert_eq!(
        (marks[0].topic.as_str(), marks[0].partition, marks[0].offset),
        ("t", 3, 8)
    );
    // Watermarks never move back.
    store.apply_projections(&[update(5, "a", 9)]).await.expect("apply");
    assert_eq!(store.list_watermarks().await.expect("watermarks")[0].offset, 8);
    assert_eq!(
        store
            .get_projection(&key("a"))
            .await
            .expect("read")
            .expect("row")
            .row
            .version,
        Version::new(2)
    );
}
