//! SQLite side of the event pipeline (the embedded default: one process, so waiters are
//! woken in process and no notifications are sent).

use std::collections::HashMap;

use purereducer_core::{Version, WorkflowKey};
use sqlx::types::Json;
use sqlx::{AssertSqlSafe, Row, SqlitePool};

use super::NOW_MS;
use crate::{
    ApplyStats, OutboxEvent, PendingEvent, ProjectionRow, ProjectionUpdate, StorageResult, StoredProjection,
    StoredWatermark,
};

/// An outbox row read with `id, namespace, workflow_key, version, event_type, payload, headers`.
pub(super) fn pending_from_row(row: &sqlx::sqlite::SqliteRow) -> StorageResult<PendingEvent> {
    Ok(PendingEvent {
        id: row.try_get("id")?,
        event: OutboxEvent {
            namespace: row.try_get("namespace")?,
            workflow_key: row.try_get("workflow_key")?,
            version: Version::new(row.try_get::<i64, _>("version")?.max(0) as u64),
            event_type: row.try_get("event_type")?,
            payload: row.try_get("payload")?,
            headers: row.try_get::<Json<serde_json::Value>, _>("headers")?.0,
        },
    })
}

/// See [`crate::Store::events_by_id`].
pub(super) async fn events_by_id(pool: &SqlitePool, ids: &[i64]) -> StorageResult<Vec<PendingEvent>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let ids = serde_json::to_string(ids).unwrap_or_else(|_| "[]".to_owned());
    // In the order given; ids with no row left are skipped.
    let rows = sqlx::query(
        "SELECT e.id, e.namespace, e.workflow_key, e.version, e.event_type, e.payload, e.headers \
         FROM json_each(?1) AS wanted JOIN event_outbox AS e ON e.id = wanted.value ORDER BY wanted.key",
    )
    .bind(ids)
    .fetch_all(pool)
    .await?;
    rows.iter().map(pending_from_row).collect()
}

pub(super) async fn mark_published(pool: &SqlitePool, ids: &[i64]) -> StorageResult<()> {
    let ids = serde_json::to_string(ids).unwrap_or_else(|_| "[]".to_owned());
    sqlx::query(AssertSqlSafe(format!(
        "UPDATE event_outbox SET published_at = {NOW_MS} \
         WHERE id IN (SELECT value FROM json_each(?1)) AND published_at IS NULL"
    )))
    .bind(ids)
    .execute(pool)
    .await?;
    Ok(())
}

pub(super) async fn apply_projections(pool: &SqlitePool, updates: &[ProjectionUpdate]) -> StorageResult<ApplyStats> {
    let mut tx = pool.begin().await?;
    let mut stats = ApplyStats::default();
    let mut next: HashMap<(String, i32), i64> = HashMap::new();
    for update in updates {
        let position = (update.topic.clone(), update.partition);
        let watermark = match next.get(&position) {
            Some(offset) => *offset,
            None => {
                // The insert takes SQLite's write lock first, so the read below cannot go stale.
                sqlx::query(AssertSqlSafe(format!(
                    "INSERT INTO projection_watermarks (topic, partition, \"offset\", updated_at) \
                     VALUES (?1, ?2, 0, {NOW_MS}) ON CONFLICT (topic, partition) DO NOTHING"
                )))
                .bind(&update.topic)
                .bind(update.partition)
                .execute(&mut *tx)
                .await?;
                sqlx::query_scalar::<_, i64>(
                    "SELECT \"offset\" FROM projection_watermarks WHERE topic = ?1 AND partition = ?2",
                )
                .bind(&update.topic)
                .bind(update.partition)
                .fetch_one(&mut *tx)
                .await?
            }
        };
        if update.offset < watermark {
            stats.duplicates += 1;
            next.insert(position, watermark);
            continue;
        }
        next.insert(position, update.offset + 1);
        let Some(row) = &update.row else { continue };
        if upsert_row(&mut tx, row).await? {
            stats
                .applied
                .push((row.namespace.clone(), row.workflow_key.clone(), row.version));
            continue;
        }
        let current: Option<i64> =
            sqlx::query_scalar("SELECT version FROM workflow_projection WHERE namespace = ?2 AND workflow_key = ?1")
                .bind(&row.workflow_key)
                .bind(&row.namespace)
                .fetch_optional(&mut *tx)
                .await?;
        if current.is_some_and(|v| v > version_param(row.version)) {
            stats.regressions += 1;
        } else {
            stats.duplicates += 1;
        }
    }
    for ((topic, partition), offset) in next {
        sqlx::query(AssertSqlSafe(format!(
            "UPDATE projection_watermarks SET \"offset\" = ?3, updated_at = {NOW_MS} \
             WHERE topic = ?1 AND partition = ?2 AND \"offset\" < ?3"
        )))
        .bind(topic)
        .bind(partition)
        .bind(offset)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(stats)
}

async fn upsert_row(conn: &mut sqlx::SqliteConnection, row: &ProjectionRow) -> StorageResult<bool> {
    let done = sqlx::query(AssertSqlSafe(format!(
        "INSERT INTO workflow_projection \
            (workflow_key, version, tag, last_action, namespace, updated_at, indices, extras, deleted) \
         VALUES (?1, ?2, ?3, ?4, ?5, {NOW_MS}, ?6, ?7, ?8) \
         ON CONFLICT (namespace, workflow_key) DO UPDATE SET version = excluded.version, tag = excluded.tag, \
            last_action = excluded.last_action, updated_at = excluded.updated_at, \
            indices = excluded.indices, extras = excluded.extras, deleted = excluded.deleted \
         WHERE workflow_projection.version < excluded.version"
    )))
    .bind(&row.workflow_key)
    .bind(version_param(row.version))
    .bind(&row.tag)
    .bind(&row.last_action)
    .bind(&row.namespace)
    .bind(Json(&row.indices))
    .bind(Json(&row.extras))
    .bind(row.deleted)
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub(super) async fn get_projection(pool: &SqlitePool, key: &WorkflowKey) -> StorageResult<Option<StoredProjection>> {
    let row = sqlx::query(
        "SELECT workflow_key, version, tag, last_action, namespace, indices, extras, deleted, updated_at \
         FROM workflow_projection WHERE namespace = ?2 AND workflow_key = ?1",
    )
    .bind(key.as_str())
    .bind(key.namespace().as_str())
    .fetch_optional(pool)
    .await?;
    let Some(row) = row else { return Ok(None) };
    Ok(Some(StoredProjection {
        row: ProjectionRow {
            workflow_key: row.try_get("workflow_key")?,
            version: Version::new(row.try_get::<i64, _>("version")?.max(0) as u64),
            tag: row.try_get("tag")?,
            last_action: row.try_get::<Option<String>, _>("last_action")?.unwrap_or_default(),
            namespace: row.try_get("namespace")?,
            indices: row.try_get::<Json<serde_json::Value>, _>("indices")?.0,
            extras: row.try_get::<Json<serde_json::Value>, _>("extras")?.0,
            deleted: row.try_get("deleted")?,
        },
        updated_at_ms: row.try_get("updated_at")?,
    }))
}

pub(super) async fn list_watermarks(pool: &SqlitePool) -> StorageResult<Vec<StoredWatermark>> {
    let rows = sqlx::query(
        "SELECT topic, partition, \"offset\", updated_at FROM projection_watermarks \
         ORDER BY updated_at DESC, topic, partition",
    )
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(StoredWatermark {
                topic: row.try_get("topic")?,
                partition: row.try_get("partition")?,
                offset: row.try_get("offset")?,
                updated_at_ms: row.try_get("updated_at")?,
            })
        })
        .collect()
}

fn version_param(version: Version) -> i64 {
    i64::try_from(version.get()).unwrap_or(i64::MAX)
}
