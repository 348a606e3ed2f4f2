//! PostgreSQL side of the event pipeline: outbox publication marks, projections with their
//! watermarks, and completions of queued actions. Writes that waiters care about also send a
//! `NOTIFY`, delivered at commit, so replicas wait without polling.

use purereducer_core::{ActionId, ActionStatus, Version};
use sqlx::postgres::PgRow;
use sqlx::types::Json;
use sqlx::{PgPool, Row};

use crate::model::channels;
use crate::{Completion, ProjectionRow, StorageError, StorageResult, StoredProjection, StoredWatermark};

pub(super) async fn mark_published(pool: &PgPool, ids: &[i64]) -> StorageResult<()> {
    sqlx::query("UPDATE event_outbox SET published_at = now() WHERE id = ANY($1) AND published_at IS NULL")
        .bind(ids)
        .execute(pool)
        .await?;
    Ok(())
}

pub(super) async fn get_projection(pool: &PgPool, key: &str) -> StorageResult<Option<StoredProjection>> {
    let row = sqlx::query(
        "SELECT workflow_key, version, tag, last_action, namespace, indices, extras, \
         (extract(epoch FROM updated_at) * 1000)::bigint AS updated_at_ms \
         FROM workflow_projection WHERE workflow_key = $1",
    )
    .bind(key)
    .fetch_optional(pool)
    .await?;
    row.map(|row| projection_from_row(&row)).transpose()
}

fn projection_from_row(row: &PgRow) -> StorageResult<StoredProjection> {
    Ok(StoredProjection {
        row: ProjectionRow {
            workflow_key: row.try_get("workflow_key")?,
            version: Version::new(row.try_get::<i64, _>("version")?.max(0) as u64),
            tag: row.try_get("tag")?,
            last_action: row.try_get::<Option<String>, _>("last_action")?.unwrap_or_default(),
            namespace: row.try_get("namespace")?,
            indices: row.try_get::<Json<serde_json::Value>, _>("indices")?.0,
            extras: row.try_get::<Json<serde_json::Value>, _>("extras")?.0,
        },
        updated_at_ms: row.try_get("updated_at_ms")?,
    })
}

pub(super) async fn list_watermarks(pool: &PgPool) -> StorageResult<Vec<StoredWatermark>> {
    let rows = sqlx::query(
        "SELECT topic, partition, \"offset\", (extract(epoch FROM updated_at) * 1000)::bigint AS updated_at_ms \
         FROM projection_watermarks ORDER BY updated_at DESC, topic, partition",
    )
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(StoredWatermark {
                topic: row.try_get("topic")?,
                partition: row.try_get("partition")?,
                offset: row.try_get("offset")?,
                updated_at_ms: row.try_get("updated_at_ms")?,
            })
        })
        .collect()
}

pub(super) async fn record_completion(pool: &PgPool, completion: &Completion) -> StorageResult<()> {
    record_completions(pool, std::slice::from_ref(completion)).await
}

/// One statement for the whole batch: the rows, and a notification per correlation id,
/// delivered when it commits.
pub(super) async fn record_completions(pool: &PgPool, completions: &[Completion]) -> StorageResult<()> {
    if completions.is_empty() {
        return Ok(());
    }
    let ids: Vec<&str> = completions.iter().map(|c| c.correlation_id.as_str()).collect();
    let actions: Vec<uuid::Uuid> = completions.iter().map(|c| c.action_id.as_uuid()).collect();
    let keys: Vec<&str> = completions.iter().map(|c| c.workflow_key.as_str()).collect();
    let statuses: Vec<&str> = completions.iter().map(|c| c.status.as_str()).collect();
    let versions: Vec<i64> = completions.iter().map(|c| version_param(c.version)).collect();
    let hashes: Vec<&str> = completions.iter().map(|c| c.result_hash.as_str()).collect();
    let reasons: Vec<Option<&str>> = completions.iter().map(|c| c.rejection_reason.as_deref()).collect();
    sqlx::query(
        "WITH recorded AS ( \
            INSERT INTO action_completions \
                (correlation_id, action_id, workflow_key, status, version, result_hash, rejection_reason) \
            SELECT * FROM unnest($1::text[], $2::uuid[], $3::text[], $4::text[], $5::bigint[], $6::text[], $7::text[]) \
            ON CONFLICT (correlation_id) DO NOTHING RETURNING 1) \
         SELECT pg_notify($8, c) FROM unnest($1::text[]) AS c",
    )
    .bind(&ids)
    .bind(&actions)
    .bind(&keys)
    .bind(&statuses)
    .bind(&versions)
    .bind(&hashes)
    .bind(&reasons)
    .bind(channels::COMPLETION)
    .execute(pool)
    .await?;
    Ok(())
}

pub(super) async fn find_completion(pool: &PgPool, correlation_id: &str) -> StorageResult<Option<Completion>> {
    let row = sqlx::query(
        "SELECT correlation_id, action_id, workflow_key, status, version, result_hash, rejection_reason \
         FROM action_completions WHERE correlation_id = $1",
    )
    .bind(correlation_id)
    .fetch_optional(pool)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let status: String = row.try_get("status")?;
    Ok(Some(Completion {
        correlation_id: row.try_get("correlation_id")?,
        action_id: ActionId::from_uuid(row.try_get("action_id")?),
        workflow_key: row.try_get("workflow_key")?,
        status: ActionStatus::parse(&status).ok_or_else(|| StorageError::Corrupt(format!("status '{status}'")))?,
        version: Version::new(row.try_get::<i64, _>("version")?.max(0) as u64),
        result_hash: row.try_get("result_hash")?,
        rejection_reason: row.try_get("rejection_reason")?,
    }))
}

fn version_param(version: Version) -> i64 {
    i64::try_from(version.get()).unwrap_or(i64::MAX)
}

pub(super) async fn try_singleton(pool: &PgPool, name: &str) -> StorageResult<Option<crate::Singleton>> {
    use sqlx::Connection;
    // A session-level lock on a connection taken out of the pool: closing the connection
    // (dropping the guard) releases it, also when the process dies.
    let mut conn = pool.acquire().await?.detach();
    let held: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock(hashtext($1))")
        .bind(name)
        .fetch_one(&mut conn)
        .await?;
    if held {
        return Ok(Some(crate::Singleton(Box::new(conn))));
    }
    let _ = conn.close().await;
    Ok(None)
}

pub(super) async fn notifications(pool: &PgPool) -> StorageResult<tokio::sync::mpsc::Receiver<(String, String)>> {
    let mut listener = sqlx::postgres::PgListener::connect_with(pool).await?;
    listener
        .listen_all([channels::PROJECTION, channels::COMPLETION])
        .await?;
    let (tx, rx) = tokio::sync::mpsc::channel(1024);
    tokio::spawn(async move {
        loop {
            match listener.recv().await {
                Ok(note) => {
                    if tx
                        .send((note.channel().to_owned(), note.payload().to_owned()))
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
                // The listener reconnects by itself on the next recv.
                Err(err) => {
                    tracing::warn!(error = %err, "database notifications interrupted; reconnecting");
                    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                }
            }
        }
    });
    Ok(rx)
}
