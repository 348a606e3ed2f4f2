//! Listing workflows on PostgreSQL: each filter is a condition the migration's indexes
//! serve, and pages continue after the last key (bytewise, `COLLATE "C"`).

use purereducer_core::Version;
use sqlx::{PgPool, Postgres, QueryBuilder, Row};

use crate::{StorageResult, WorkflowFilter, WorkflowSummary};

/// The listing statement for `filter`, after `lead` (empty, or `EXPLAIN `).
fn query(lead: &str, filter: &WorkflowFilter) -> QueryBuilder<Postgres> {
    let mut q: QueryBuilder<Postgres> = QueryBuilder::new(lead);
    q.push(
        "SELECT namespace, workflow_key, workflow_type, version, \
         (extract(epoch FROM updated_at) * 1000)::bigint AS updated_at_ms, CASE WHEN jsonb_typeof(state->'status') = 'string' THEN state->>'status' END AS tag \
         FROM workflow_state WHERE deleted_at IS NULL AND namespace = ",
    );
    q.push_bind(filter.namespace.clone());
    if let Some(workflow_type) = &filter.workflow_type {
        q.push(" AND workflow_type = ").push_bind(workflow_type.clone());
    }
    if let Some(tag) = &filter.tag {
        q.push(" AND state->>'status' = ").push_bind(tag.clone());
    }
    if let Some(prefix) = &filter.key_prefix {
        q.push(" AND workflow_key COLLATE \"C\" >= ")
            .push_bind(prefix.clone())
            .push(" AND workflow_key COLLATE \"C\" < ")
            .push_bind(format!("{prefix}\u{10FFFF}"));
    }
    if let Some(after) = filter.updated_after_ms {
        q.push(" AND updated_at >= to_timestamp(")
            .push_bind(seconds(after))
            .push(")");
    }
    if let Some(before) = filter.updated_before_ms {
        q.push(" AND updated_at < to_timestamp(")
            .push_bind(seconds(before))
            .push(")");
    }
    if let Some(after_key) = &filter.after_key {
        q.push(" AND workflow_key COLLATE \"C\" > ")
            .push_bind(after_key.clone());
    }
    q.push(" ORDER BY workflow_key COLLATE \"C\" LIMIT ")
        .push_bind(i64::from(filter.limit));
    q
}

/// Unix milliseconds as seconds for `to_timestamp`, within the years 1970 to 9999 that
/// PostgreSQL's timestamps hold.
fn seconds(ms: i64) -> f64 {
    ms.clamp(0, 253_402_300_799_999) as f64 / 1000.0
}

/// See [`crate::Store::list_workflows`].
pub(super) async fn list(pool: &PgPool, filter: &WorkflowFilter) -> StorageResult<Vec<WorkflowSummary>> {
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

/// The plan PostgreSQL chooses for the listing of `filter` (`EXPLAIN`), one line per row,
/// with fresh statistics and sequential scans allowed (reducerd's own sessions discourage
/// them), so the plan shows what the indexes alone make cheap.
pub(super) async fn explain(pool: &PgPool, filter: &WorkflowFilter) -> StorageResult<String> {
    let mut tx = pool.begin().await?;
    sqlx::query("ANALYZE workflow_state").execute(&mut *tx).await?;
    sqlx::query("SET LOCAL enable_seqscan = on").execute(&mut *tx).await?;
    let rows = query("EXPLAIN ", filter).build().fetch_all(&mut *tx).await?;
    tx.rollback().await?;
    let lines: Result<Vec<String>, _> = rows.iter().map(|row| row.try_get::<String, _>(0)).collect();
    Ok(lines?.join("\n"))
}
