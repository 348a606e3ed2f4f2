//! Group commit on PostgreSQL: many workflows' changes in one transaction, each with its own
//! compare-and-set, in a fixed number of round trips whatever the batch size (`unnest` arrays
//! instead of one statement per row).

use std::collections::{HashMap, HashSet};

use purereducer_core::{ActionId, Version, WorkflowKey};
use sqlx::{PgConnection, PgPool, Row};

use super::{RECORD_COLUMNS, record_from_row, state_from_row, version_param};
use crate::model::outcome_json;
use crate::{CommitRequest, CommitResult, ProcessedRecord, StorageError, StorageResult, StoredState};

/// See [`crate::Store::commit_batch`].
pub(super) async fn commit_batch(pool: &PgPool, requests: &[CommitRequest]) -> StorageResult<Vec<CommitResult>> {
    if requests.is_empty() {
        return Ok(Vec::new());
    }
    // Key order is the lock order, so two batches over the same keys cannot deadlock.
    let mut order: Vec<usize> = (0..requests.len()).collect();
    order.sort_by(|a, b| requests[*a].key.as_str().cmp(requests[*b].key.as_str()));
    let mut tx = pool.begin().await?;
    let mut results: Vec<Option<CommitResult>> = vec![None; requests.len()];

    // 1. Lock the existing rows this batch checks or changes, and read their versions.
    let creates = |r: &CommitRequest| r.expected == Version::NONE && r.write.is_some();
    let locked_keys: Vec<&str> = order
        .iter()
        .map(|i| &requests[*i])
        .filter(|r| !creates(r))
        .map(|r| r.key.as_str())
        .collect();
    let mut current: HashMap<String, i64> = HashMap::new();
    if !locked_keys.is_empty() {
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT workflow_key, version FROM workflow_state WHERE workflow_key = ANY($1) \
             ORDER BY workflow_key FOR UPDATE",
        )
        .bind(&locked_keys)
        .fetch_all(&mut *tx)
        .await?;
        current.extend(rows);
    }
    for (i, request) in requests.iter().enumerate() {
        if creates(request) {
            continue;
        }
        let stored = current.get(request.key.as_str()).copied().unwrap_or(0);
        if stored != version_param(request.expected)? {
            results[i] = Some(CommitResult::Conflict {
                current: Version::new(stored.max(0) as u64),
            });
        }
    }

    // 2. Create new workflows; a key another transaction created first is a conflict.
    let new: Vec<usize> = order.iter().copied().filter(|i| creates(&requests[*i])).collect();
    if !new.is_empty() {
        let created = insert_states(&mut tx, requests, &new).await?;
        for i in &new {
            if !created.contains(requests[*i].key.as_str()) {
                let stored: i64 = sqlx::query_scalar("SELECT version FROM workflow_state WHERE workflow_key = $1")
                    .bind(requests[*i].key.as_str())
                    .fetch_optional(&mut *tx)
                    .await?
                    .unwrap_or(0);
                results[*i] = Some(CommitResult::Conflict {
                    current: Version::new(stored.max(0) as u64),
                });
            }
        }
    }

    // 3. Update the rows whose check passed.
    let passing: Vec<usize> = order.iter().copied().filter(|i| results[*i].is_none()).collect();
    let updates: Vec<usize> = passing
        .iter()
        .copied()
        .filter(|i| requests[*i].write.is_some() && requests[*i].expected != Version::NONE)
        .collect();
    if !updates.is_empty() {
        update_states(&mut tx, requests, &updates).await?;
    }

    // 4. Dedup records; an existing one (another process applied the action first) rolls
    //    the whole batch back so nothing is half-written.
    let clashes = insert_records(&mut tx, requests, &passing).await?;
    if !clashes.is_empty() {
        tx.rollback().await?;
        return deferred(pool, requests, &clashes).await;
    }

    // 5. Outbox events, in request order and, within a request, in the given order.
    insert_events(&mut tx, requests, &passing).await?;
    tx.commit().await?;
    Ok(results
        .into_iter()
        .zip(requests)
        .map(|(result, request)| {
            result.unwrap_or_else(|| CommitResult::Committed {
                version: request.write.as_ref().map_or(request.expected, |w| w.version),
            })
        })
        .collect())
}

async fn insert_states(
    tx: &mut PgConnection,
    requests: &[CommitRequest],
    new: &[usize],
) -> StorageResult<HashSet<String>> {
    let mut keys = Vec::new();
    let mut versions = Vec::new();
    let mut states = Vec::new();
    let mut types = Vec::new();
    let mut namespaces = Vec::new();
    let mut provenances = Vec::new();
    for i in new {
        let request = &requests[*i];
        let Some(write) = &request.write else { continue };
        keys.push(request.key.as_str());
        versions.push(version_param(write.version)?);
        states.push(to_json(&write.state)?);
        types.push(write.workflow_type.as_str());
        namespaces.push(write.namespace.as_str());
        provenances.push(to_json(&write.provenance)?);
    }
    let created: Vec<String> = sqlx::query_scalar(
        "INSERT INTO workflow_state (workflow_key, version, state, workflow_type, namespace, provenance) \
         SELECT k, v, s::jsonb, t, n, p::jsonb \
         FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[]) AS u(k, v, s, t, n, p) \
         ORDER BY k \
         ON CONFLICT (workflow_key) DO NOTHING RETURNING workflow_key",
    )
    .bind(&keys)
    .bind(&versions)
    .bind(&states)
    .bind(&types)
    .bind(&namespaces)
    .bind(&provenances)
    .fetch_all(&mut *tx)
    .await?;
    Ok(created.into_iter().collect())
}

async fn update_states(tx: &mut PgConnection, requests: &[CommitRequest], updates: &[usize]) -> StorageResult<()> {
    let mut keys = Vec::new();
    let mut versions = Vec::new();
    let mut states = Vec::new();
    let mut provenances = Vec::new();
    for i in updates {
        let request = &requests[*i];
        let Some(write) = &request.write else { continue };
        keys.push(request.key.as_str());
        versions.push(version_param(write.version)?);
        states.push(to_json(&write.state)?);
        provenances.push(to_json(&write.provenance)?);
    }
    // The rows are locked by this transaction already, so the update cannot miss.
    let done = sqlx::query(
        "UPDATE workflow_state AS s SET state = u.s::jsonb, version = u.v, provenance = u.p::jsonb, updated_at = now() \
         FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[]) AS u(k, v, s, p) \
         WHERE s.workflow_key = u.k",
    )
    .bind(&keys)
    .bind(&versions)
    .bind(&states)
    .bind(&provenances)
    .execute(&mut *tx)
    .await?;
    if done.rows_affected() != keys.len() as u64 {
        return Err(StorageError::Database(format!(
            "group commit updated {} of {} locked workflows",
            done.rows_affected(),
            keys.len()
        )));
    }
    Ok(())
}

/// Inserts the dedup records of `passing`, replacing expired ones; returns the
/// (request index, action id) of records that already existed unexpired.
async fn insert_records(
    tx: &mut PgConnection,
    requests: &[CommitRequest],
    passing: &[usize],
) -> StorageResult<Vec<(usize, ActionId)>> {
    let mut keys = Vec::new();
    let mut ids = Vec::new();
    let mut request_hashes = Vec::new();
    let mut result_hashes = Vec::new();
    let mut versions = Vec::new();
    let mut statuses = Vec::new();
    let mut outcomes = Vec::new();
    let mut ttls = Vec::new();
    let mut owner: HashMap<(String, uuid::Uuid), usize> = HashMap::new();
    for i in passing {
        let request = &requests[*i];
        for record in &request.records {
            keys.push(request.key.as_str());
            ids.push(record.action_id.as_uuid());
            request_hashes.push(record.request_hash.as_str());
            result_hashes.push(record.result_hash.as_str());
            versions.push(version_param(record.version)?);
            statuses.push(record.status.as_str());
            outcomes.push(to_json(&outcome_json(
                &record.intents,
                record.rejection_reason.as_deref(),
            ))?);
            ttls.push(record.ttl.as_secs_f64());
            owner.insert((request.key.as_str().to_owned(), record.action_id.as_uuid()), *i);
        }
    }
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let inserted: Vec<(String, uuid::Uuid)> = sqlx::query_as(
        "INSERT INTO action_dedup_log \
            (workflow_key, action_id, request_hash, result_hash, version, status, outcome, expires_at) \
         SELECT k, a, rq, rs, v, st, o::jsonb, now() + make_interval(secs => ttl) \
         FROM unnest($1::text[], $2::uuid[], $3::text[], $4::text[], $5::bigint[], $6::text[], $7::text[], $8::float8[]) \
              AS u(k, a, rq, rs, v, st, o, ttl) \
         ORDER BY k, a \
         ON CONFLICT (workflow_key, action_id) DO UPDATE SET \
            request_hash = EXCLUDED.request_hash, result_hash = EXCLUDED.result_hash, \
            version = EXCLUDED.version, status = EXCLUDED.status, outcome = EXCLUDED.outcome, \
            created_at = now(), expires_at = EXCLUDED.expires_at \
         WHERE action_dedup_log.expires_at <= now() \
         RETURNING workflow_key, action_id",
    )
    .bind(&keys)
    .bind(&ids)
    .bind(&request_hashes)
    .bind(&result_hashes)
    .bind(&versions)
    .bind(&statuses)
    .bind(&outcomes)
    .bind(&ttls)
    .fetch_all(&mut *tx)
    .await?;
    if inserted.len() == keys.len() {
        return Ok(Vec::new());
    }
    for pair in inserted {
        owner.remove(&pair);
    }
    Ok(owner
        .into_iter()
        .map(|((_, id), i)| (i, ActionId::from_uuid(id)))
        .collect())
}

async fn insert_events(tx: &mut PgConnection, requests: &[CommitRequest], passing: &[usize]) -> StorageResult<()> {
    let mut keys = Vec::new();
    let mut versions = Vec::new();
    let mut types = Vec::new();
    let mut payloads = Vec::new();
    let mut headers = Vec::new();
    // Request order, not key order: callers list a key's events in version order.
    let mut in_order = passing.to_vec();
    in_order.sort_unstable();
    for i in in_order {
        for event in &requests[i].events {
            keys.push(event.workflow_key.as_str());
            versions.push(version_param(event.version)?);
            types.push(event.event_type.as_str());
            payloads.push(event.payload.as_slice());
            headers.push(to_json(&event.headers)?);
        }
    }
    if keys.is_empty() {
        return Ok(());
    }
    // Ids are drawn in ordinality order, so each key's events keep their order in the outbox.
    sqlx::query(
        "INSERT INTO event_outbox (workflow_key, version, event_type, payload, headers) \
         SELECT k, v, t, p, h::jsonb \
         FROM unnest($1::text[], $2::bigint[], $3::text[], $4::bytea[], $5::text[]) WITH ORDINALITY AS u(k, v, t, p, h, n) \
         ORDER BY n",
    )
    .bind(&keys)
    .bind(&versions)
    .bind(&types)
    .bind(&payloads)
    .bind(&headers)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// The results of a batch rolled back because some actions were already processed.
async fn deferred(
    pool: &PgPool,
    requests: &[CommitRequest],
    clashes: &[(usize, ActionId)],
) -> StorageResult<Vec<CommitResult>> {
    let mut results = vec![CommitResult::Deferred; requests.len()];
    for (i, action_id) in clashes {
        let record = find_processed(pool, &requests[*i].key, *action_id).await?;
        // A record that expired in between: the retry will see no clash.
        if let Some(record) = record {
            results[*i] = CommitResult::AlreadyProcessed(record);
        }
    }
    Ok(results)
}

async fn find_processed(
    pool: &PgPool,
    key: &WorkflowKey,
    action_id: ActionId,
) -> StorageResult<Option<ProcessedRecord>> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {RECORD_COLUMNS} FROM action_dedup_log \
         WHERE workflow_key = $1 AND action_id = $2 AND expires_at > now()"
    )))
    .bind(key.as_str())
    .bind(action_id.as_uuid())
    .fetch_optional(pool)
    .await?;
    row.map(|row| record_from_row(&row)).transpose()
}

/// See [`crate::Store::get_states`].
pub(super) async fn get_states(pool: &PgPool, keys: &[WorkflowKey]) -> StorageResult<HashMap<String, StoredState>> {
    if keys.is_empty() {
        return Ok(HashMap::new());
    }
    let names: Vec<&str> = keys.iter().map(WorkflowKey::as_str).collect();
    let rows = sqlx::query(
        "SELECT workflow_key, version, state, workflow_type, namespace, \
         (extract(epoch FROM updated_at) * 1000)::bigint AS updated_at_ms \
         FROM workflow_state WHERE workflow_key = ANY($1)",
    )
    .bind(&names)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|row| Ok((row.try_get::<String, _>("workflow_key")?, state_from_row(row, "")?)))
        .collect()
}

/// See [`crate::Store::find_processed_many`].
pub(super) async fn find_processed_many(
    pool: &PgPool,
    pairs: &[(WorkflowKey, ActionId)],
) -> StorageResult<Vec<(String, ProcessedRecord)>> {
    if pairs.is_empty() {
        return Ok(Vec::new());
    }
    let keys: Vec<&str> = pairs.iter().map(|(k, _)| k.as_str()).collect();
    let ids: Vec<uuid::Uuid> = pairs.iter().map(|(_, id)| id.as_uuid()).collect();
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT d.workflow_key, {RECORD_COLUMNS} FROM action_dedup_log d \
         JOIN unnest($1::text[], $2::uuid[]) AS u(k, a) ON d.workflow_key = u.k AND d.action_id = u.a \
         WHERE d.expires_at > now()"
    )))
    .bind(&keys)
    .bind(&ids)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|row| Ok((row.try_get::<String, _>("workflow_key")?, record_from_row(row)?)))
        .collect()
}

fn to_json<T: serde::Serialize + ?Sized>(value: &T) -> StorageResult<String> {
    serde_json::to_string(value).map_err(|err| StorageError::Database(format!("cannot encode JSON: {err}")))
}
