//! The database action queue and the completions of queued actions. A claim is a
//! transaction that holds its rows' locks (`FOR UPDATE SKIP LOCKED`) while the process
//! applies them; finishing it records the completions and deletes the rows in that same
//! transaction. A process that dies releases its claims with its connection.

use std::collections::{HashMap, HashSet};

use purereducer_core::{ActionId, ActionStatus, Namespace, Version};
use sqlx::{PgPool, Postgres, Row, Transaction};

use crate::model::channels;
use crate::{ActionClaim, ClaimFinish, ClaimedAction, Completion, QueuedAction, StorageError, StorageResult};

/// One statement for the whole batch, with one notification so idle claimers look.
pub(super) async fn enqueue(pool: &PgPool, actions: &[QueuedAction]) -> StorageResult<()> {
    if actions.is_empty() {
        return Ok(());
    }
    let namespaces: Vec<&str> = actions.iter().map(|a| a.namespace.as_str()).collect();
    let keys: Vec<&str> = actions.iter().map(|a| a.workflow_key.as_str()).collect();
    let payloads: Vec<&[u8]> = actions.iter().map(|a| a.payload.as_slice()).collect();
    let headers: Vec<&str> = actions.iter().map(|a| a.headers.as_str()).collect();
    sqlx::query(
        "WITH queued AS ( \
            INSERT INTO action_queue (namespace, workflow_key, action, headers) \
            SELECT ns, k, a, h FROM unnest($1::text[], $2::bytea[], $3::text[], $5::text[]) \
                WITH ORDINALITY AS t(k, a, h, ns, n) \
            ORDER BY n RETURNING 1) \
         SELECT pg_notify($4, '') FROM (SELECT count(*) FROM queued) AS done",
    )
    .bind(&keys)
    .bind(&payloads)
    .bind(&headers)
    .bind(channels::QUEUE)
    .bind(&namespaces)
    .execute(pool)
    .await?;
    Ok(())
}

pub(super) async fn claim(pool: &PgPool, limit: u32) -> StorageResult<ActionClaim> {
    let mut tx = pool.begin().await?;
    let rows = sqlx::query(
        "SELECT seq, namespace, workflow_key, action, headers FROM action_queue \
         ORDER BY seq LIMIT $1 FOR UPDATE SKIP LOCKED",
    )
    .bind(i64::from(limit.max(1)))
    .fetch_all(&mut *tx)
    .await?;
    if rows.is_empty() {
        tx.rollback().await?;
        return Ok(ActionClaim::empty());
    }
    let mut actions = Vec::with_capacity(rows.len());
    for row in rows {
        actions.push(ClaimedAction {
            seq: row.try_get("seq")?,
            action: QueuedAction {
                namespace: row.try_get("namespace")?,
                workflow_key: row.try_get("workflow_key")?,
                payload: row.try_get("action")?,
                headers: row.try_get("headers")?,
            },
        });
    }
    // Rows come in queue order and every unlocked one is taken, so an earlier row of a key
    // that is not among them is held by another claim: that key waits for it.
    let mut first: HashMap<(&str, &str), i64> = HashMap::new();
    for claimed in &actions {
        first
            .entry((claimed.action.namespace.as_str(), claimed.action.workflow_key.as_str()))
            .or_insert(claimed.seq);
    }
    let mut namespaces = Vec::with_capacity(first.len());
    let mut keys = Vec::with_capacity(first.len());
    let mut firsts = Vec::with_capacity(first.len());
    for ((namespace, key), seq) in first {
        namespaces.push(namespace);
        keys.push(key);
        firsts.push(seq);
    }
    let blocked: Vec<(String, String)> = sqlx::query_as(
        "SELECT c.n, c.k FROM unnest($1::text[], $2::bigint[], $3::text[]) AS c(k, first, n) \
         WHERE EXISTS (SELECT 1 FROM action_queue q \
                        WHERE q.namespace = c.n AND q.workflow_key = c.k AND q.seq < c.first)",
    )
    .bind(&keys)
    .bind(&firsts)
    .bind(&namespaces)
    .fetch_all(&mut *tx)
    .await?;
    if !blocked.is_empty() {
        let blocked: HashSet<(String, String)> = blocked.into_iter().collect();
        actions.retain(|claimed| {
            !blocked.contains(&(claimed.action.namespace.clone(), claimed.action.workflow_key.clone()))
        });
    }
    Ok(ActionClaim::new(actions, Box::new(PgClaim { tx })))
}

struct PgClaim {
    tx: Transaction<'static, Postgres>,
}

#[async_trait::async_trait]
impl ClaimFinish for PgClaim {
    async fn finish(self: Box<Self>, completions: &[Completion], done: &[i64]) -> StorageResult<()> {
        let mut tx = self.tx;
        record(&mut *tx, completions).await?;
        if !done.is_empty() {
            sqlx::query("DELETE FROM action_queue WHERE seq = ANY($1)")
                .bind(done)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn release(self: Box<Self>) -> StorageResult<()> {
        self.tx.rollback().await?;
        Ok(())
    }
}

/// One statement for the whole batch: the rows, and a notification per correlation id,
/// delivered when it commits.
pub(super) async fn record<'c, E>(executor: E, completions: &[Completion]) -> StorageResult<()>
where
    E: sqlx::Executor<'c, Database = Postgres>,
{
    if completions.is_empty() {
        return Ok(());
    }
    let ids: Vec<&str> = completions.iter().map(|c| c.correlation_id.as_str()).collect();
    let actions: Vec<uuid::Uuid> = completions.iter().map(|c| c.action_id.as_uuid()).collect();
    let keys: Vec<&str> = completions.iter().map(|c| c.workflow_key.as_str()).collect();
    let namespaces: Vec<&str> = completions.iter().map(|c| c.namespace.as_str()).collect();
    let statuses: Vec<&str> = completions.iter().map(|c| c.status.as_str()).collect();
    let versions: Vec<i64> = completions.iter().map(|c| version_param(c.version)).collect();
    let hashes: Vec<&str> = completions.iter().map(|c| c.result_hash.as_str()).collect();
    let reasons: Vec<Option<&str>> = completions.iter().map(|c| c.rejection_reason.as_deref()).collect();
    sqlx::query(
        "WITH recorded AS ( \
            INSERT INTO action_completions \
                (correlation_id, action_id, workflow_key, status, version, result_hash, rejection_reason, namespace) \
            SELECT * FROM unnest($1::text[], $2::uuid[], $3::text[], $4::text[], $5::bigint[], $6::text[], $7::text[], \
                                 $9::text[]) \
            ON CONFLICT (namespace, correlation_id, action_id) DO NOTHING RETURNING 1) \
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
    .bind(&namespaces)
    .execute(executor)
    .await?;
    Ok(())
}

pub(super) async fn find_completion(
    pool: &PgPool,
    namespace: &Namespace,
    correlation_id: &str,
    action_id: Option<ActionId>,
) -> StorageResult<Option<Completion>> {
    let row = sqlx::query(
        "SELECT namespace, correlation_id, action_id, workflow_key, status, version, result_hash, rejection_reason \
         FROM action_completions \
         WHERE namespace = $3 AND correlation_id = $1 AND ($2::uuid IS NULL OR action_id = $2) \
         ORDER BY completed_at, action_id LIMIT 1",
    )
    .bind(correlation_id)
    .bind(action_id.map(|id| id.as_uuid()))
    .bind(namespace.as_str())
    .fetch_optional(pool)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let status: String = row.try_get("status")?;
    Ok(Some(Completion {
        correlation_id: row.try_get("correlation_id")?,
        action_id: ActionId::from_uuid(row.try_get("action_id")?),
        namespace: row.try_get("namespace")?,
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

pub(super) async fn record_dead_letters(pool: &PgPool, letters: &[crate::DeadLetter]) -> StorageResult<()> {
    for letter in letters {
        sqlx::query(
            "INSERT INTO dead_letters (source, workflow_key, version, event_type, payload, error, namespace) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (source) DO NOTHING",
        )
        .bind(&letter.source)
        .bind(&letter.workflow_key)
        .bind(version_param(letter.version))
        .bind(&letter.event_type)
        .bind(&letter.payload)
        .bind(&letter.error)
        .bind(&letter.namespace)
        .execute(pool)
        .await?;
    }
    Ok(())
}
