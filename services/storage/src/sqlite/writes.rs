//! One workflow's row writes inside a write transaction: the compare-and-set on its state,
//! the version check of an outcome that writes none, and a dedup record.

use purereducer_core::{Version, WorkflowKey};
use sqlx::types::Json;
use sqlx::{AssertSqlSafe, SqliteConnection};

use super::{NOW_MS, RECORD_COLUMNS, record_from_row, version_param};
use crate::error::{classify, is_unique_violation};
use crate::model::outcome_json;
use crate::{NewRecord, ProcessedRecord, StateWrite, StorageResult};

/// Writes `write` if the stored version is `expected` (0: creates the workflow); whether it did.
pub(super) async fn write_state(
    conn: &mut SqliteConnection,
    key: &WorkflowKey,
    expected: Version,
    write: &StateWrite,
) -> StorageResult<bool> {
    let state = Json(&write.state);
    let provenance = Json(&write.provenance);
    let version = version_param(write.version)?;
    if expected == Version::NONE {
        let inserted = sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO workflow_state \
                (workflow_key, version, state, workflow_type, namespace, provenance, created_at, updated_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, {NOW_MS}, {NOW_MS}) ON CONFLICT (namespace, workflow_key) DO NOTHING"
        )))
        .bind(key.as_str())
        .bind(version)
        .bind(state)
        .bind(write.workflow_type.as_str())
        .bind(key.namespace().as_str())
        .bind(provenance)
        .execute(&mut *conn)
        .await?;
        return Ok(inserted.rows_affected() == 1);
    }
    let updated = sqlx::query(AssertSqlSafe(format!(
        "UPDATE workflow_state SET state = ?3, version = ?4, provenance = ?5, workflow_type = ?7, \
            updated_at = {NOW_MS}, deleted_at = CASE WHEN ?8 THEN {NOW_MS} END \
         WHERE namespace = ?6 AND workflow_key = ?1 AND version = ?2"
    )))
    .bind(key.as_str())
    .bind(version_param(expected)?)
    .bind(state)
    .bind(version)
    .bind(provenance)
    .bind(key.namespace().as_str())
    .bind(write.workflow_type.as_str())
    .bind(write.deleted)
    .execute(&mut *conn)
    .await?;
    Ok(updated.rows_affected() == 1)
}

/// The stored version of a workflow (0 when it does not exist), inside a transaction.
pub(super) async fn version_in(conn: &mut SqliteConnection, key: &WorkflowKey) -> StorageResult<Version> {
    let version: Option<i64> =
        sqlx::query_scalar("SELECT version FROM workflow_state WHERE namespace = ?2 AND workflow_key = ?1")
            .bind(key.as_str())
            .bind(key.namespace().as_str())
            .fetch_optional(&mut *conn)
            .await?;
    Ok(Version::new(version.unwrap_or(0).max(0) as u64))
}

/// Whether the stored version is `expected`, holding the write lock until the transaction ends.
pub(super) async fn check_version(
    conn: &mut SqliteConnection,
    key: &WorkflowKey,
    expected: Version,
) -> StorageResult<bool> {
    // Take the write lock first so the version cannot move before the transaction ends.
    sqlx::query("UPDATE workflow_state SET version = version WHERE namespace = ?2 AND workflow_key = ?1")
        .bind(key.as_str())
        .bind(key.namespace().as_str())
        .execute(&mut *conn)
        .await?;
    let stored: Option<i64> =
        sqlx::query_scalar("SELECT version FROM workflow_state WHERE namespace = ?2 AND workflow_key = ?1")
            .bind(key.as_str())
            .bind(key.namespace().as_str())
            .fetch_optional(&mut *conn)
            .await?;
    Ok(stored.unwrap_or(0) == version_param(expected)?)
}

/// Inserts a dedup record, replacing an expired one; `None` when an unexpired one exists.
pub(super) async fn insert_record(
    conn: &mut SqliteConnection,
    key: &WorkflowKey,
    record: &NewRecord,
) -> StorageResult<Option<ProcessedRecord>> {
    let outcome = outcome_json(&record.intents, record.rejection_reason.as_deref());
    let ttl_ms = i64::try_from(record.ttl.as_millis()).unwrap_or(i64::MAX / 2);
    let result = sqlx::query(AssertSqlSafe(format!(
        "INSERT INTO action_dedup_log \
            (namespace, workflow_key, action_id, request_hash, result_hash, version, status, outcome, created_at, \
             expires_at) \
         VALUES (?9, ?1, ?2, ?3, ?4, ?5, ?6, ?7, {NOW_MS}, {NOW_MS} + ?8) \
         ON CONFLICT (namespace, workflow_key, action_id) DO UPDATE SET \
            request_hash = excluded.request_hash, result_hash = excluded.result_hash, \
            version = excluded.version, status = excluded.status, outcome = excluded.outcome, \
            created_at = excluded.created_at, expires_at = excluded.expires_at \
         WHERE action_dedup_log.expires_at <= {NOW_MS} \
         RETURNING {RECORD_COLUMNS}"
    )))
    .bind(key.as_str())
    .bind(record.action_id.to_string())
    .bind(&record.request_hash)
    .bind(&record.result_hash)
    .bind(version_param(record.version)?)
    .bind(record.status.as_str())
    .bind(Json(outcome))
    .bind(ttl_ms)
    .bind(key.namespace().as_str())
    .fetch_optional(&mut *conn)
    .await;
    match result {
        Ok(row) => row.map(|row| record_from_row(&row)).transpose(),
        Err(err) if is_unique_violation(&err) => Ok(None),
        Err(err) => Err(classify(&err)),
    }
}
