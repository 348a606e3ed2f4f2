//! Applying projection updates on PostgreSQL in a fixed number of statements per batch:
//! watermarks locked once, rows upserted together, one notification statement.

use std::collections::HashMap;

use purereducer_core::Version;
use sqlx::PgPool;

use crate::model::channels;
use crate::{ApplyStats, ProjectionRow, ProjectionUpdate, StorageError, StorageResult};

/// Applies `updates` in order, in one transaction with their watermarks (see
/// [`crate::Store::apply_projections`]). Within a batch only each workflow's newest row is
/// written: the older ones would be overwritten in the same transaction anyway.
pub(super) async fn apply_projections(pool: &PgPool, updates: &[ProjectionUpdate]) -> StorageResult<ApplyStats> {
    let mut stats = ApplyStats::default();
    if updates.is_empty() {
        return Ok(stats);
    }
    let mut tx = pool.begin().await?;
    let mut positions: Vec<(&str, i32)> = updates.iter().map(|u| (u.topic.as_str(), u.partition)).collect();
    positions.sort_unstable();
    positions.dedup();
    let topics: Vec<&str> = positions.iter().map(|(t, _)| *t).collect();
    let partitions: Vec<i32> = positions.iter().map(|(_, p)| *p).collect();
    sqlx::query(
        "INSERT INTO projection_watermarks (topic, partition, \"offset\") \
         SELECT t, p, 0 FROM unnest($1::text[], $2::int[]) AS u(t, p) ON CONFLICT (topic, partition) DO NOTHING",
    )
    .bind(&topics)
    .bind(&partitions)
    .execute(&mut *tx)
    .await?;
    // Locked in a fixed order so two materializers on one partition cannot interleave.
    let marks: Vec<(String, i32, i64)> = sqlx::query_as(
        "SELECT w.topic, w.partition, w.\"offset\" FROM projection_watermarks w \
         JOIN unnest($1::text[], $2::int[]) AS u(t, p) ON w.topic = u.t AND w.partition = u.p \
         ORDER BY w.topic, w.partition FOR UPDATE OF w",
    )
    .bind(&topics)
    .bind(&partitions)
    .fetch_all(&mut *tx)
    .await?;
    let mut next: HashMap<(String, i32), i64> = marks.into_iter().map(|(t, p, o)| ((t, p), o)).collect();

    // Walk the batch in order: skip what the watermark says is applied, keep the newest row
    // of each workflow.
    let mut newest: HashMap<&str, &ProjectionRow> = HashMap::new();
    let mut candidates: Vec<&ProjectionRow> = Vec::new();
    for update in updates {
        let Some(watermark) = next.get_mut(&(update.topic.clone(), update.partition)) else {
            return Err(StorageError::Database(
                "a watermark row vanished inside its transaction".to_owned(),
            ));
        };
        if update.offset < *watermark {
            stats.duplicates += 1;
            continue;
        }
        *watermark = update.offset + 1;
        let Some(row) = &update.row else { continue };
        candidates.push(row);
        let slot = newest.entry(row.workflow_key.as_str()).or_insert(row);
        if row.version > slot.version {
            *slot = row;
        }
    }
    let keys: Vec<&str> = newest.keys().copied().collect();
    let stored: HashMap<String, i64> = if keys.is_empty() {
        HashMap::new()
    } else {
        let rows: Vec<(String, i64)> =
            sqlx::query_as("SELECT workflow_key, version FROM workflow_projection WHERE workflow_key = ANY($1)")
                .bind(&keys)
                .fetch_all(&mut *tx)
                .await?;
        rows.into_iter().collect()
    };
    // Count each event as the row-by-row apply would have: applied when newer than what the
    // projection holds at that point, a regression when older, a duplicate when equal.
    let mut running = stored.clone();
    for row in candidates {
        let version = version_param(row.version);
        let current = running.entry(row.workflow_key.clone()).or_insert(0);
        if version > *current {
            *current = version;
            stats.applied.push((row.workflow_key.clone(), row.version));
        } else if *current > version {
            stats.regressions += 1;
        } else {
            stats.duplicates += 1;
        }
    }
    let fresh: Vec<&ProjectionRow> = newest
        .values()
        .copied()
        .filter(|row| {
            stored
                .get(row.workflow_key.as_str())
                .is_none_or(|v| *v < version_param(row.version))
        })
        .collect();
    let written = upsert_rows(&mut tx, fresh).await?;
    if !written.is_empty() {
        let notes: Vec<String> = written
            .iter()
            .map(|(key, version)| format!("{version}:{key}"))
            .collect();
        sqlx::query("SELECT pg_notify($1, n) FROM unnest($2::text[]) AS n")
            .bind(channels::PROJECTION)
            .bind(&notes)
            .execute(&mut *tx)
            .await?;
    }
    let offsets: Vec<i64> = positions
        .iter()
        .map(|(t, p)| next.get(&((*t).to_owned(), *p)).copied().unwrap_or(0))
        .collect();
    sqlx::query(
        "UPDATE projection_watermarks AS w SET \"offset\" = u.o, updated_at = now() \
         FROM unnest($1::text[], $2::int[], $3::bigint[]) AS u(t, p, o) \
         WHERE w.topic = u.t AND w.partition = u.p AND w.\"offset\" < u.o",
    )
    .bind(&topics)
    .bind(&partitions)
    .bind(&offsets)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(stats)
}

/// Writes each row if it is newer than the stored one; returns the written keys and versions.
async fn upsert_rows(tx: &mut sqlx::PgConnection, rows: Vec<&ProjectionRow>) -> StorageResult<HashMap<String, i64>> {
    if rows.is_empty() {
        return Ok(HashMap::new());
    }
    let mut rows = rows;
    // Key order is the lock order.
    rows.sort_unstable_by(|a, b| a.workflow_key.cmp(&b.workflow_key));
    let keys: Vec<&str> = rows.iter().map(|r| r.workflow_key.as_str()).collect();
    let versions: Vec<i64> = rows.iter().map(|r| version_param(r.version)).collect();
    let tags: Vec<Option<&str>> = rows.iter().map(|r| r.tag.as_deref()).collect();
    let actions: Vec<&str> = rows.iter().map(|r| r.last_action.as_str()).collect();
    let namespaces: Vec<&str> = rows.iter().map(|r| r.namespace.as_str()).collect();
    let indices: Vec<String> = rows.iter().map(|r| r.indices.to_string()).collect();
    let extras: Vec<String> = rows.iter().map(|r| r.extras.to_string()).collect();
    let written: Vec<(String, i64)> = sqlx::query_as(
        "INSERT INTO workflow_projection (workflow_key, version, tag, last_action, namespace, indices, extras) \
         SELECT k, v, t, a, n, i::jsonb, e::jsonb \
         FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[]) \
              AS u(k, v, t, a, n, i, e) \
         ORDER BY k \
         ON CONFLICT (workflow_key) DO UPDATE SET version = EXCLUDED.version, tag = EXCLUDED.tag, \
            last_action = EXCLUDED.last_action, namespace = EXCLUDED.namespace, updated_at = now(), \
            indices = EXCLUDED.indices, extras = EXCLUDED.extras \
         WHERE workflow_projection.version < EXCLUDED.version \
         RETURNING workflow_key, version",
    )
    .bind(&keys)
    .bind(&versions)
    .bind(&tags)
    .bind(&actions)
    .bind(&namespaces)
    .bind(&indices)
    .bind(&extras)
    .fetch_all(&mut *tx)
    .await?;
    Ok(written.into_iter().collect())
}

fn version_param(version: Version) -> i64 {
    i64::try_from(version.get()).unwrap_or(i64::MAX)
}
