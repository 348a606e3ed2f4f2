//! Applying projection updates on PostgreSQL in two statements per batch, whatever its size:
//! one locks (creating if needed) the batch's watermarks, one writes the rows, notifies the
//! waiters, moves the watermarks and, for the in-process pipeline, marks the outbox rows
//! published, all in the same transaction.

use std::collections::HashMap;

use purereducer_core::Version;
use sqlx::PgPool;

use crate::model::channels;
use crate::{ApplyStats, ProjectionRow, ProjectionUpdate, StorageError, StorageResult};

/// Locks the batch's watermark rows in a fixed order (so two materializers on one partition
/// cannot interleave), creating missing ones, and returns their offsets.
const LOCK_WATERMARKS: &str = "\
INSERT INTO projection_watermarks (topic, partition, \"offset\")
SELECT t, p, 0 FROM unnest($1::text[], $2::int[]) AS u(t, p) ORDER BY t, p
ON CONFLICT (topic, partition) DO UPDATE SET \"offset\" = projection_watermarks.\"offset\"
RETURNING topic, partition, \"offset\"";

/// Upserts the rows newer than the stored ones, reports the versions stored before, notifies
/// waiters of each written row, moves the watermarks forward and marks outbox rows published.
const APPLY: &str = "\
WITH input AS (
    SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
                         $13::bool[])
        AS u(k, v, t, a, n, i, e, d)
),
before AS (
    SELECT p.namespace, p.workflow_key, p.version FROM workflow_projection AS p
      JOIN input ON p.namespace = input.n AND p.workflow_key = input.k
),
written AS (
    INSERT INTO workflow_projection (workflow_key, version, tag, last_action, namespace, indices, extras, deleted)
    SELECT k, v, t, a, n, i::jsonb, e::jsonb, d FROM input ORDER BY n, k
    ON CONFLICT (namespace, workflow_key) DO UPDATE SET version = EXCLUDED.version, tag = EXCLUDED.tag,
        last_action = EXCLUDED.last_action, updated_at = now(),
        indices = EXCLUDED.indices, extras = EXCLUDED.extras, deleted = EXCLUDED.deleted
     WHERE workflow_projection.version < EXCLUDED.version
    RETURNING namespace, workflow_key, version
),
notified AS (
    SELECT pg_notify($8, version::text || ':' || namespace || '/' || workflow_key) FROM written
),
moved AS (
    UPDATE projection_watermarks AS w SET \"offset\" = m.o, updated_at = now()
      FROM unnest($9::text[], $10::int[], $11::bigint[]) AS m(t, p, o)
     WHERE w.topic = m.t AND w.partition = m.p AND w.\"offset\" < m.o
    RETURNING 1
),
published AS (
    UPDATE event_outbox SET published_at = now() WHERE id = ANY($12) AND published_at IS NULL
    RETURNING 1
)
SELECT false AS fresh, namespace, workflow_key, version FROM before
UNION ALL
SELECT true, namespace, workflow_key, version FROM written
UNION ALL
SELECT true, '', '', -1 FROM (SELECT count(*) FROM notified) AS n";

/// Applies `updates` in order, in one transaction with their watermarks (see
/// [`crate::Store::apply_projections`]), and marks the outbox rows `published` as published
/// in the same transaction. Within a batch only each workflow's newest row is written: the
/// older ones would be overwritten in the same transaction anyway.
pub(super) async fn apply_projections(
    pool: &PgPool,
    updates: &[ProjectionUpdate],
    published: &[i64],
) -> StorageResult<ApplyStats> {
    let mut stats = ApplyStats::default();
    if updates.is_empty() {
        return Ok(stats);
    }
    let mut positions: Vec<(&str, i32)> = updates.iter().map(|u| (u.topic.as_str(), u.partition)).collect();
    positions.sort_unstable();
    positions.dedup();
    let topics: Vec<&str> = positions.iter().map(|(t, _)| *t).collect();
    let partitions: Vec<i32> = positions.iter().map(|(_, p)| *p).collect();
    let mut tx = pool.begin().await?;
    let marks: Vec<(String, i32, i64)> = sqlx::query_as(LOCK_WATERMARKS)
        .bind(&topics)
        .bind(&partitions)
        .fetch_all(&mut *tx)
        .await?;
    let mut next: HashMap<(String, i32), i64> = marks.into_iter().map(|(t, p, o)| ((t, p), o)).collect();

    // Walk the batch in order: skip what the watermark says is applied, keep the newest row
    // of each workflow.
    let mut newest: HashMap<(&str, &str), &ProjectionRow> = HashMap::new();
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
        let slot = newest
            .entry((row.namespace.as_str(), row.workflow_key.as_str()))
            .or_insert(row);
        if row.version > slot.version {
            *slot = row;
        }
    }
    let mut rows: Vec<&ProjectionRow> = newest.into_values().collect();
    rows.sort_unstable_by(|a, b| (&a.namespace, &a.workflow_key).cmp(&(&b.namespace, &b.workflow_key)));
    let offsets: Vec<i64> = positions
        .iter()
        .map(|(t, p)| next.get(&((*t).to_owned(), *p)).copied().unwrap_or(0))
        .collect();
    let results: Vec<(bool, String, String, i64)> = sqlx::query_as(APPLY)
        .bind(rows.iter().map(|r| r.workflow_key.as_str()).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| version_param(r.version)).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.tag.as_deref()).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.last_action.as_str()).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.namespace.as_str()).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.indices.to_string()).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.extras.to_string()).collect::<Vec<_>>())
        .bind(channels::PROJECTION)
        .bind(&topics)
        .bind(&partitions)
        .bind(&offsets)
        .bind(published)
        .bind(rows.iter().map(|r| r.deleted).collect::<Vec<_>>())
        .fetch_all(&mut *tx)
        .await?;
    tx.commit().await?;
    let stored: HashMap<(String, String), i64> = results
        .into_iter()
        .filter(|(fresh, _, _, _)| !fresh)
        .map(|(_, namespace, key, version)| ((namespace, key), version))
        .collect();
    // Count each event as a row-by-row apply would have: applied when newer than what the
    // projection held at that point, a regression when older, a duplicate when equal.
    let mut running = stored;
    for row in candidates {
        let version = version_param(row.version);
        let current = running
            .entry((row.namespace.clone(), row.workflow_key.clone()))
            .or_insert(0);
        if version > *current {
            *current = version;
            stats
                .applied
                .push((row.namespace.clone(), row.workflow_key.clone(), row.version));
        } else if *current > version {
            stats.regressions += 1;
        } else {
            stats.duplicates += 1;
        }
    }
    Ok(stats)
}

fn version_param(version: Version) -> i64 {
    i64::try_from(version.get()).unwrap_or(i64::MAX)
}
