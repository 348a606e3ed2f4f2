//! Listing workflows on SQLite: each filter is a condition the migration's indexes
//! serve, and pages continue after the last key (SQLite compares text bytewise).

use purereducer_core::Version;
use sqlx::{QueryBuilder, Row, Sqlite, SqlitePool};

use crate::{StorageResult, WorkflowFilter, WorkflowSummary};

/// The listing statement for `filter`, after `lead` (empty, or `EXPLAIN `).
fn query(lead: &str, filter: &WorkflowFilter) -> QueryBuilder<Sqlite> {
    let mut q: QueryBuilder<Sqlite> = QueryBuilder::new(lead);
    q.push(
        "SELECT namespace, workflow_key, workflow_type, version, \
         updated_at AS updated_at_ms, CASE WHEN json_type(state, '$.status') = 'text' THEN json_extract(state, '$.status') END AS tag \
         FROM workflow_state WHERE deleted_at IS NULL AND namespace = ",
    );
    q.push_bind(filter.namespace.clone());
    if let Some(workflow_type) = &filter.workflow_type {
        q.push(" AND workflow_type = ").push_bind(workflow_type.clone());
    }
    if let Some(tag) = &filter.tag {
        q.push(" AND json_extract(state, '$.status') = ").push_bind(tag.clone());
    }
    if let Some(prefix) = &filter.key_prefix {
        q.push(" AND workflow_key >= ")
            .push_bind(prefix.clone())
            .push(" AND workflow_key < ")
            .push_bind(format!("{prefix}\u{10FFFF}"));
    }
    if let Some(after) = filter.updated_after_ms {
        q.push(" AND updated_at >= ").push_bind(after);
    }
    if let Some(before) = filter.updated_before_ms {
        q.push(" AND updated_at < ").push_bind(before);
    }
    if let Some(after_key) = &filter.after_key {
        q.push(" AND workflow_key > ").push_bind(after_key.clone());
    }
    q.push(" ORDER BY workflow_key LIMIT ")
        .push_bind(i64::from(filter.limit));
    q
}

/// See [`crate::Store::list_workflows`].
pub(super) async fn list(pool: &SqlitePool, filter: &WorkflowFilter) -> StorageResult<Vec<WorkflowSummary>> {
    let rows = query("", filter).build().fetch_all(pool).await?;
    rows.iter()
        .map(|row| {
            Ok(WorkflowSummary {
                namespace: row.try_get("namespace")?,
                workflow_key: row.try_get("workflow_key")?,
                workflow_type: row.try_get("workflow_type")?,
                version: Version::new(row.try_get::<i64, _>("version")?.max(0) as u64),
                updated_at_ms: row.try_get("updated_at_ms")?,
                tag: row.try_get("tag")?,
            })
        })
        .collect()
}

/// The plan SQLite chooses for the listing of `filter` (`EXPLAIN QUERY PLAN`), one line per
/// row, with fresh statistics.
pub(super) async fn explain(pool: &SqlitePool, filter: &WorkflowFilter) -> StorageResult<String> {
    sqlx::query("ANALYZE").execute(pool).await?;
    let rows = query("EXPLAIN QUERY PLAN ", filter).build().fetch_all(pool).await?;
    let lines: Result<Vec<String>, _> = rows.iter().map(|row| row.try_get::<String, _>("detail")).collect();
    Ok(lines?.join("\n"))
}
