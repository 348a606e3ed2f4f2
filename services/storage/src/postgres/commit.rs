//! Group commit on PostgreSQL: many workflows' changes in one transaction, each with its own
//! compare-and-set, in ONE statement whatever the batch size (`unnest` arrays instead of a
//! statement per row, data-modifying CTEs instead of a statement per table).

use std::collections::{HashMap, HashSet};

use purereducer_core::{ActionId, Version, WorkflowKey};
use sqlx::{PgPool, Row};

use super::history::{self, HistoryColumns};
use super::{RECORD_COLUMNS, record_from_row, state_from_row, version_param};
use crate::model::outcome_json;
use crate::{CommitRequest, CommitResult, ProcessedRecord, StorageError, StorageResult, StoredState};

/// Every check and write of a group commit, in ONE statement: per-row compare-and-set on
/// existing workflows (`upd`, which also locks the rows that only check their version),
/// creation of new ones (`ins`), and the dedup records and outbox events of the requests that
/// passed. Rows are visited in key order. The statement reports the passing keys and the
/// recorded actions; a record that already existed is missing from the second list.
const GROUP_COMMIT_HEAD: &str = "\
WITH input AS (
    SELECT * FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::text[], $5::text[], $6::text[], $7::text[],
                         $37::bool[])
        AS u(k, expected, v, s, t, n, p, d)
),
upd AS (
    UPDATE workflow_state AS w
       SET state = COALESCE(i.s::jsonb, w.state),
           version = COALESCE(i.v, w.version),
           provenance = COALESCE(i.p::jsonb, w.provenance),
           workflow_type = COALESCE(i.t, w.workflow_type),
           updated_at = CASE WHEN i.v IS NULL THEN w.updated_at ELSE now() END,
           deleted_at = CASE WHEN i.v IS NULL THEN w.deleted_at WHEN i.d THEN now() END
      FROM input AS i
     WHERE i.expected > 0 AND w.namespace = i.n AND w.workflow_key = i.k AND w.version = i.expected
    RETURNING w.namespace, w.workflow_key
),
ins AS (
    INSERT INTO workflow_state (workflow_key, version, state, workflow_type, namespace, provenance)
    SELECT i.k, i.v, i.s::jsonb, i.t, i.n, i.p::jsonb FROM input AS i
     WHERE i.expected = 0 AND i.v IS NOT NULL
     ORDER BY i.n, i.k
    ON CONFLICT (namespace, workflow_key) DO NOTHING
    RETURNING namespace, workflow_key
),
absent AS (
    SELECT i.n AS namespace, i.k AS workflow_key FROM input AS i
     WHERE i.expected = 0 AND i.v IS NULL
       AND NOT EXISTS (SELECT 1 FROM workflow_state AS w WHERE w.namespace = i.n AND w.workflow_key = i.k)
),
passed AS (
    SELECT namespace, workflow_key FROM upd
    UNION ALL SELECT namespace, workflow_key FROM ins
    UNION ALL SELECT namespace, workflow_key FROM absent
),
recorded AS (
    INSERT INTO action_dedup_log
        (namespace, workflow_key, action_id, request_hash, result_hash, version, status, outcome, expires_at)
    SELECT r.n, r.k, r.a, r.rq, r.rs, r.v, r.st, r.o::jsonb, now() + make_interval(secs => r.ttl)
      FROM unnest($8::text[], $9::uuid[], $10::text[], $11::text[], $12::bigint[], $13::text[], $14::text[], $15::float8[], $21::text[])
           AS r(k, a, rq, rs, v, st, o, ttl, n)
     WHERE (r.n, r.k) IN (SELECT namespace, workflow_key FROM passed)
     ORDER BY r.n, r.k, r.a
    ON CONFLICT (namespace, workflow_key, action_id) DO UPDATE SET
        request_hash = EXCLUDED.request_hash, result_hash = EXCLUDED.result_hash,
        version = EXCLUDED.version, status = EXCLUDED.status, outcome = EXCLUDED.outcome,
        created_at = now(), expires_at = EXCLUDED.expires_at
     WHERE action_dedup_log.expires_at <= now()
    RETURNING namespace, workflow_key, action_id
),
published AS (
    INSERT INTO event_outbox (namespace, workflow_key, version, event_type, payload, headers)
    SELECT e.ns, e.k, e.v, e.t, e.p, e.h::jsonb
      FROM unnest($16::text[], $17::bigint[], $18::text[], $19::bytea[], $20::text[], $22::text[])
           WITH ORDINALITY AS e(k, v, t, p, h, ns, n)
     WHERE (e.ns, e.k) IN (SELECT namespace, workflow_key FROM passed)
     ORDER BY e.n
    RETURNING 1
),
history AS (
    {HISTORY} RETURNING 1
)
SELECT namespace, workflow_key, NULL::uuid AS action_id FROM passed
UNION ALL
SELECT namespace, workflow_key, action_id FROM recorded";

/// The group commit statement, with the history entries' insert (parameters 23 to 36; the
/// deletion flags are parameter 37).
static GROUP_COMMIT: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| GROUP_COMMIT_HEAD.replace("{HISTORY}", &history::insert_sql(23, Some("passed"))));

/// The statement's parameters, column by column.
#[derive(Default)]
struct Columns<'a> {
    keys: Vec<&'a str>,
    expected: Vec<i64>,
    versions: Vec<Option<i64>>,
    states: Vec<Option<String>>,
    types: Vec<Option<&'a str>>,
    deletes: Vec<bool>,
    namespaces: Vec<&'a str>,
    provenances: Vec<Option<String>>,
    record_keys: Vec<&'a str>,
    record_ids: Vec<uuid::Uuid>,
    request_hashes: Vec<&'a str>,
    result_hashes: Vec<&'a str>,
    record_versions: Vec<i64>,
    statuses: Vec<&'a str>,
    outcomes: Vec<String>,
    ttls: Vec<f64>,
    record_namespaces: Vec<&'a str>,
    event_keys: Vec<&'a str>,
    event_versions: Vec<i64>,
    event_types: Vec<&'a str>,
    payloads: Vec<&'a [u8]>,
    headers: Vec<String>,
    event_namespaces: Vec<&'a str>,
    history: HistoryColumns<'a>,
}

impl<'a> Columns<'a> {
    fn of(requests: &'a [CommitRequest], order: &[usize]) -> StorageResult<Self> {
        let mut c = Self::default();
        for i in order {
            let request = &requests[*i];
            c.keys.push(request.key.as_str());
            c.expected.push(version_param(request.expected)?);
            let write = request.write.as_ref();
            c.versions.push(write.map(|w| version_param(w.version)).transpose()?);
            c.states.push(write.map(|w| to_json(&w.state)).transpose()?);
            c.types.push(write.map(|w| w.workflow_type.as_str()));
            c.deletes.push(write.is_some_and(|w| w.deleted));
            c.namespaces.push(request.key.namespace().as_str());
            c.provenances.push(write.map(|w| to_json(&w.provenance)).transpose()?);
            for record in &request.records {
                c.record_keys.push(request.key.as_str());
                c.record_ids.push(record.action_id.as_uuid());
                c.request_hashes.push(record.request_hash.as_str());
                c.result_hashes.push(record.result_hash.as_str());
                c.record_versions.push(version_param(record.version)?);
                c.statuses.push(record.status.as_str());
                c.outcomes.push(to_json(&outcome_json(
                    &record.intents,
                    record.rejection_reason.as_deref(),
                ))?);
                c.ttls.push(record.ttl.as_secs_f64());
                c.record_namespaces.push(request.key.namespace().as_str());
            }
        }
        // Events in request order, not key order: callers list a key's events in version order.
        for request in requests {
            for event in &request.events {
                c.event_keys.push(event.workflow_key.as_str());
                c.event_versions.push(version_param(event.version)?);
                c.event_types.push(event.event_type.as_str());
                c.payloads.push(event.payload.as_slice());
                c.headers.push(to_json(&event.headers)?);
                c.event_namespaces.push(event.namespace.as_str());
            }
            for entry in &request.history {
                c.history.push(entry)?;
            }
        }
        Ok(c)
    }
}

/// See [`crate::Store::commit_batch`].
pub(super) async fn commit_batch(pool: &PgPool, requests: &[CommitRequest]) -> StorageResult<Vec<CommitResult>> {
    if requests.is_empty() {
        return Ok(Vec::new());
    }
    // Key order is the lock order, so two batches over the same keys cannot deadlock.
    let mut order: Vec<usize> = (0..requests.len()).collect();
    order.sort_by(|a, b| requests[*a].key.cmp(&requests[*b].key));
    let c = Columns::of(requests, &order)?;
    let mut tx = pool.begin().await?;
    let query = sqlx::query_as(sqlx::AssertSqlSafe(GROUP_COMMIT.as_str()))
        .bind(&c.keys)
        .bind(&c.expected)
        .bind(&c.versions)
        .bind(&c.states)
        .bind(&c.types)
        .bind(&c.namespaces)
        .bind(&c.provenances)
        .bind(&c.record_keys)
        .bind(&c.record_ids)
        .bind(&c.request_hashes)
        .bind(&c.result_hashes)
        .bind(&c.record_versions)
        .bind(&c.statuses)
        .bind(&c.outcomes)
        .bind(&c.ttls)
        .bind(&c.event_keys)
        .bind(&c.event_versions)
        .bind(&c.event_types)
        .bind(&c.payloads)
        .bind(&c.headers)
        .bind(&c.record_namespaces)
        .bind(&c.event_namespaces);
    let rows: Vec<(String, String, Option<uuid::Uuid>)> =
        c.history.bind(query).bind(&c.deletes).fetch_all(&mut *tx).await?;
    let mut passed: HashSet<(String, String)> = HashSet::new();
    let mut recorded: HashSet<(String, String, uuid::Uuid)> = HashSet::new();
    for (namespace, key, action_id) in rows {
        match action_id {
            Some(id) => {
                recorded.insert((namespace, key, id));
            }
            None => {
                passed.insert((namespace, key));
            }
        }
    }
    let passed_key =
        |key: &WorkflowKey| passed.contains(&(key.namespace().as_str().to_owned(), key.as_str().to_owned()));
    // A record that already existed: another process applied that action first. Nothing of
    // the batch may stay.
    let clashes: Vec<(usize, ActionId)> = requests
        .iter()
        .enumerate()
        .filter(|(_, r)| passed_key(&r.key))
        .flat_map(|(i, r)| {
            let recorded = &recorded;
            r.records
                .iter()
                .filter(move |rec| {
                    !recorded.contains(&(
                        r.key.namespace().as_str().to_owned(),
                        r.key.as_str().to_owned(),
                        rec.action_id.as_uuid(),
                    ))
                })
                .map(move |rec| (i, rec.action_id))
        })
        .collect();
    if !clashes.is_empty() {
        tx.rollback().await?;
        return deferred(pool, requests, &clashes).await;
    }
    tx.commit().await?;
    let lost: Vec<&WorkflowKey> = requests.iter().map(|r| &r.key).filter(|k| !passed_key(k)).collect();
    let current: HashMap<(String, String), i64> = if lost.is_empty() {
        HashMap::new()
    } else {
        let namespaces: Vec<&str> = lost.iter().map(|k| k.namespace().as_str()).collect();
        let names: Vec<&str> = lost.iter().map(|k| k.as_str()).collect();
        let rows: Vec<(String, String, i64)> = sqlx::query_as(
            "SELECT w.namespace, w.workflow_key, w.version FROM workflow_state w \
             JOIN unnest($1::text[], $2::text[]) AS u(n, k) ON w.namespace = u.n AND w.workflow_key = u.k",
        )
        .bind(&namespaces)
        .bind(&names)
        .fetch_all(pool)
        .await?;
        rows.into_iter().map(|(n, k, v)| ((n, k), v)).collect()
    };
    Ok(requests
        .iter()
        .map(|request| {
            if passed_key(&request.key) {
                CommitResult::Committed {
                    version: request.write.as_ref().map_or(request.expected, |w| w.version),
                }
            } else {
                let stored = current
                    .get(&(
                        request.key.namespace().as_str().to_owned(),
                        request.key.as_str().to_owned(),
                    ))
                    .copied()
                    .unwrap_or(0);
                CommitResult::Conflict {
                    current: Version::new(stored.max(0) as u64),
                }
            }
        })
        .collect())
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
         WHERE namespace = $3 AND workflow_key = $1 AND action_id = $2 AND expires_at > now()"
    )))
    .bind(key.as_str())
    .bind(action_id.as_uuid())
    .bind(key.namespace().as_str())
    .fetch_optional(pool)
    .await?;
    row.map(|row| record_from_row(&row)).transpose()
}

/// See [`crate::Store::get_states`].
pub(super) async fn get_states(
    pool: &PgPool,
    keys: &[WorkflowKey],
) -> StorageResult<HashMap<WorkflowKey, StoredState>> {
    if keys.is_empty() {
        return Ok(HashMap::new());
    }
    let namespaces: Vec<&str> = keys.iter().map(|k| k.namespace().as_str()).collect();
    let names: Vec<&str> = keys.iter().map(WorkflowKey::as_str).collect();
    let rows = sqlx::query(
        "SELECT w.workflow_key, w.version, w.state, w.workflow_type, w.namespace, w.deleted_at IS NOT NULL AS deleted, \
         (extract(epoch FROM w.updated_at) * 1000)::bigint AS updated_at_ms \
         FROM workflow_state w \
         JOIN unnest($1::text[], $2::text[]) AS u(n, k) ON w.namespace = u.n AND w.workflow_key = u.k",
    )
    .bind(&namespaces)
    .bind(&names)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|row| Ok((key_from_row(row)?, state_from_row(row, "")?)))
        .collect()
}

/// The workflow key of a row with `namespace` and `workflow_key` columns.
pub(super) fn key_from_row(row: &sqlx::postgres::PgRow) -> StorageResult<WorkflowKey> {
    let namespace: String = row.try_get("namespace")?;
    let name: String = row.try_get("workflow_key")?;
    crate::stored_key(&namespace, &name)
}

/// See [`crate::Store::find_processed_many`].
pub(super) async fn find_processed_many(
    pool: &PgPool,
    pairs: &[(WorkflowKey, ActionId)],
) -> StorageResult<Vec<(WorkflowKey, ProcessedRecord)>> {
    if pairs.is_empty() {
        return Ok(Vec::new());
    }
    let namespaces: Vec<&str> = pairs.iter().map(|(k, _)| k.namespace().as_str()).collect();
    let keys: Vec<&str> = pairs.iter().map(|(k, _)| k.as_str()).collect();
    let ids: Vec<uuid::Uuid> = pairs.iter().map(|(_, id)| id.as_uuid()).collect();
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT d.namespace, d.workflow_key, {RECORD_COLUMNS} FROM action_dedup_log d \
         JOIN unnest($1::text[], $2::uuid[], $3::text[]) AS u(k, a, n) \
           ON d.namespace = u.n AND d.workflow_key = u.k AND d.action_id = u.a \
         WHERE d.expires_at > now()"
    )))
    .bind(&keys)
    .bind(&ids)
    .bind(&namespaces)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|row| Ok((key_from_row(row)?, record_from_row(row)?)))
        .collect()
}

fn to_json<T: serde::Serialize + ?Sized>(value: &T) -> StorageResult<String> {
    serde_json::to_string(value).map_err(|err| StorageError::Database(format!("cannot encode JSON: {err}")))
}
