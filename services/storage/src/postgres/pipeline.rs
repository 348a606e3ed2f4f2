//! PostgreSQL side of the event pipeline: outbox publication marks, projections with their
//! watermarks, the relay's singleton and notifications. Writes that waiters care about also send a
//! `NOTIFY`, delivered at commit, so replicas wait without polling.

use purereducer_core::{Version, WorkflowKey};
use sqlx::postgres::PgRow;
use sqlx::types::Json;
use sqlx::{PgPool, Row};

use crate::model::channels;
use crate::{OutboxEvent, PendingEvent, ProjectionRow, StorageResult, StoredProjection, StoredWatermark};

/// An outbox row read with `id, namespace, workflow_key, version, event_type, payload, headers`.
pub(super) fn pending_from_row(row: &PgRow) -> StorageResult<PendingEvent> {
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
pub(super) async fn events_by_id(pool: &PgPool, ids: &[i64]) -> StorageResult<Vec<PendingEvent>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let rows = sqlx::query(
        "SELECT e.id, e.namespace, e.workflow_key, e.version, e.event_type, e.payload, e.headers \
         FROM unnest($1::bigint[]) WITH ORDINALITY AS u(id, n) JOIN event_outbox e ON e.id = u.id ORDER BY u.n",
    )
    .bind(ids)
    .fetch_all(pool)
    .await?;
    rows.iter().map(pending_from_row).collect()
}

/// See [`crate::Store::announce`]: one statement, so the notifications keep their order.
pub(super) async fn announce(pool: &PgPool, channel: &str, payloads: &[String]) -> StorageResult<()> {
    if payloads.is_empty() {
        return Ok(());
    }
    sqlx::query("SELECT pg_notify($1, p) FROM unnest($2::text[]) WITH ORDINALITY AS u(p, n) ORDER BY n")
        .bind(channel)
        .bind(payloads)
        .execute(pool)
        .await?;
    Ok(())
}

pub(super) async fn mark_published(pool: &PgPool, ids: &[i64]) -> StorageResult<()> {
    sqlx::query("UPDATE event_outbox SET published_at = now() WHERE id = ANY($1) AND published_at IS NULL")
        .bind(ids)
        .execute(pool)
        .await?;
    Ok(())
}

pub(super) async fn get_projection(pool: &PgPool, key: &WorkflowKey) -> StorageResult<Option<StoredProjection>> {
    let row = sqlx::query(
        "SELECT workflow_key, version, tag, last_action, namespace, indices, extras, deleted, \
         (extract(epoch FROM updated_at) * 1000)::bigint AS updated_at_ms \
         FROM workflow_projection WHERE namespace = $1 AND workflow_key = $2",
    )
    .bind(key.namespace().as_str())
    .bind(key.as_str())
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
            deleted: row.try_get("deleted")?,
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

/// A session-level advisory lock, held as long as its session lives.
struct AdvisoryLock(sqlx::PgConnection);

#[async_trait::async_trait]
impl crate::SingletonHold for AdvisoryLock {
    async fn still_held(&mut self) -> bool {
        // The session holds nothing else, so any granted advisory lock of its own is this
        // one; a dead session fails the query.
        let held: Result<bool, sqlx::Error> = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM pg_locks \
             WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND granted)",
        )
        .fetch_one(&mut self.0)
        .await;
        match held {
            Ok(held) => held,
            Err(err) => {
                tracing::warn!(error = %err, "the singleton's database session is gone");
                false
            }
        }
    }
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
        return Ok(Some(crate::Singleton(Box::new(AdvisoryLock(conn)))));
    }
    let _ = conn.close().await;
    Ok(None)
}

pub(super) async fn notifications(pool: &PgPool) -> StorageResult<tokio::sync::mpsc::Receiver<(String, String)>> {
    let mut listener = sqlx::postgres::PgListener::connect_with(pool).await?;
    listener
        .listen_all([
            channels::PROJECTION,
            channels::COMPLETION,
            channels::QUEUE,
            channels::EVENTS,
        ])
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
                // The listener reconnects by itself on the next recv; what was sent meanwhile
                // is lost, so every waiter is told to look again.
                Err(err) => {
                    tracing::warn!(error = %err, "database notifications interrupted; reconnecting");
                    if tx.send((channels::RESYNC.to_owned(), String::new())).await.is_err() {
                        return;
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                }
            }
        }
    });
    Ok(rx)
}
