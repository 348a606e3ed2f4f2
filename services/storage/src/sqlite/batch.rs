//! Multi-row statements for SQLite: a group commit's dedup records and outbox rows, and the
//! states of many workflows, each in as few statements as SQLite's parameter limit allows.
//! Every statement is a round trip to the connection's worker thread, so one per row was
//! the embedded backend's main cost.

use std::collections::HashMap;

use purereducer_core::WorkflowKey;
use sqlx::types::Json;
use sqlx::{QueryBuilder, Sqlite, SqliteConnection};

use super::{NOW_MS, state_from_row, version_param};
use crate::model::outcome_json;
use crate::{NewRecord, OutboxEvent, StorageResult, StoredState};

/// Rows per statement: well under SQLite's 32,766 parameters at 9 per row.
const ROWS_PER_STATEMENT: usize = 1000;

/// Inserts dedup records, replacing expired ones; returns the (workflow key, action id) of
/// every record written. A record missing from the answer already existed unexpired.
pub(super) async fn insert_records(
    conn: &mut SqliteConnection,
    records: &[(&WorkflowKey, &NewRecord)],
) -> StorageResult<Vec<(String, String, String)>> {
    let mut written = Vec::with_capacity(records.len());
    for chunk in records.chunks(ROWS_PER_STATEMENT) {
        let mut query: QueryBuilder<Sqlite> = QueryBuilder::new(
            "INSERT INTO action_dedup_log \
             (namespace, workflow_key, action_id, request_hash, result_hash, version, status, outcome, created_at, \
              expires_at) ",
        );
        let mut failed = None;
        query.push_values(chunk, |mut row, (key, record)| {
            let ttl_ms = i64::try_from(record.ttl.as_millis()).unwrap_or(i64::MAX / 2);
            let version = match version_param(record.version) {
                Ok(version) => version,
                Err(err) => {
                    failed = Some(err);
                    0
                }
            };
            row.push_bind(key.namespace().as_str().to_owned())
                .push_bind(key.as_str().to_owned())
                .push_bind(record.action_id.to_string())
                .push_bind(record.request_hash.clone())
                .push_bind(record.result_hash.clone())
                .push_bind(version)
                .push_bind(record.status.as_str())
                .push_bind(Json(outcome_json(&record.intents, record.rejection_reason.as_deref())))
                .push(NOW_MS)
                .push(format!("{NOW_MS} + "))
                .push_bind_unseparated(ttl_ms);
        });
        if let Some(err) = failed {
            return Err(err);
        }
        query.push(format!(
            " ON CONFLICT (namespace, workflow_key, action_id) DO UPDATE SET \
                request_hash = excluded.request_hash, result_hash = excluded.result_hash, \
                version = excluded.version, status = excluded.status, outcome = excluded.outcome, \
                created_at = excluded.created_at, expires_at = excluded.expires_at \
             WHERE action_dedup_log.expires_at <= {NOW_MS} \
             RETURNING namespace, workflow_key, action_id"
        ));
        let rows: Vec<(String, String, String)> = query.build_query_as().fetch_all(&mut *conn).await?;
        written.extend(rows);
    }
    Ok(written)
}

/// Appends outbox rows in the given order.
pub(super) async fn insert_events(conn: &mut SqliteConnection, events: &[&OutboxEvent]) -> StorageResult<()> {
    for chunk in events.chunks(ROWS_PER_STATEMENT) {
        let mut query: QueryBuilder<Sqlite> = QueryBuilder::new(
            "INSERT INTO event_outbox (namespace, workflow_key, version, event_type, payload, headers, created_at) ",
        );
        let mut failed = None;
        query.push_values(chunk, |mut row, event| {
            let version = match version_param(event.version) {
                Ok(version) => version,
                Err(err) => {
                    failed = Some(err);
                    0
                }
            };
            row.push_bind(event.namespace.clone())
                .push_bind(event.workflow_key.clone())
                .push_bind(version)
                .push_bind(event.event_type.clone())
                .push_bind(event.payload.clone())
                .push_bind(Json(event.headers.clone()))
                .push(NOW_MS);
        });
        if let Some(err) = failed {
            return Err(err);
        }
        query.build().execute(&mut *conn).await?;
    }
    Ok(())
}

/// The states of `keys` that exist, by key.
pub(super) async fn get_states(
    conn: &mut SqliteConnection,
    keys: &[WorkflowKey],
) -> StorageResult<HashMap<WorkflowKey, StoredState>> {
    let mut states = HashMap::with_capacity(keys.len());
    for chunk in keys.chunks(ROWS_PER_STATEMENT) {
        let mut query: QueryBuilder<Sqlite> = QueryBuilder::new(
            "SELECT workflow_key, version, state, workflow_type, namespace, deleted_at IS NOT NULL AS deleted, \
             updated_at AS updated_at_ms \
             FROM workflow_state WHERE (namespace, workflow_key) IN (",
        );
        let mut list = query.separated(", ");
        for key in chunk {
            list.push("(")
                .push_bind_unseparated(key.namespace().as_str().to_owned())
                .push_unseparated(", ")
                .push_bind_unseparated(key.as_str().to_owned())
                .push_unseparated(")");
        }
        query.push(")");
        for row in query.build().fetch_all(&mut *conn).await? {
            let namespace: String = sqlx::Row::try_get(&row, "namespace")?;
            let name: String = sqlx::Row::try_get(&row, "workflow_key")?;
            states.insert(crate::stored_key(&namespace, &name)?, state_from_row(&row)?);
        }
    }
    Ok(states)
}
