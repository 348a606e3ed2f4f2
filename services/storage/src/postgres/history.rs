//! A workflow's history on PostgreSQL: entries written with the commit that decided them,
//! read by keyset pages, pruned by count and age.

use purereducer_core::{ActionStatus, Intent, JsonObject, Version, WorkflowKey};
use sqlx::postgres::PgRow;
use sqlx::types::Json;
use sqlx::{PgConnection, PgPool, Row};

use super::version_param;
use crate::{HistoryEntry, HistoryPage, HistoryRecord, HistoryRetention, StorageError, StorageResult};

/// The `INSERT` of history entries from the arrays `$first` … `$first + 13`, keeping only
/// the workflows in `passed` when given (a CTE of the group commit).
pub(super) fn insert_sql(first: usize, passed: Option<&str>) -> String {
    let p: Vec<String> = (first..first + 14).map(|i| format!("${i}")).collect();
    let filter = passed
        .map(|cte| format!("WHERE (h.n, h.k) IN (SELECT namespace, workflow_key FROM {cte})"))
        .unwrap_or_default();
    format!(
        "INSERT INTO workflow_history (namespace, workflow_key, version, workflow_type, action_id, action_type, \
         correlation_id, status, state, payload, intents, reason, result_hash, actor) \
         SELECT h.n, h.k, h.v, h.wt, h.a, h.at, h.c, h.st, h.s::jsonb, h.pl::jsonb, h.i::jsonb, h.r, h.rh, h.ac \
           FROM unnest({}::text[], {}::text[], {}::bigint[], {}::text[], {}::text[], {}::text[], {}::text[], \
                       {}::text[], {}::text[], {}::text[], {}::text[], {}::text[], {}::text[], {}::text[]) \
                WITH ORDINALITY AS h(n, k, v, wt, a, at, c, st, s, i, r, rh, ac, pl, ord) \
           {filter} ORDER BY h.ord",
        p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7], p[8], p[9], p[10], p[11], p[12], p[13]
    )
}

/// History entries as the statement's arrays, column by column.
#[derive(Default)]
pub(super) struct HistoryColumns<'a> {
    namespaces: Vec<&'a str>,
    keys: Vec<&'a str>,
    versions: Vec<i64>,
    types: Vec<&'a str>,
    action_ids: Vec<&'a str>,
    action_types: Vec<&'a str>,
    correlations: Vec<&'a str>,
    statuses: Vec<&'a str>,
    states: Vec<Option<String>>,
    intents: Vec<String>,
    reasons: Vec<Option<&'a str>>,
    hashes: Vec<&'a str>,
    actors: Vec<&'a str>,
    payloads: Vec<Option<String>>,
}

impl<'a> HistoryColumns<'a> {
    /// Adds an entry.
    pub(super) fn push(&mut self, entry: &'a HistoryEntry) -> StorageResult<()> {
        self.namespaces.push(&entry.namespace);
        self.keys.push(&entry.workflow_key);
        self.versions.push(version_param(entry.version)?);
        self.types.push(&entry.workflow_type);
        self.action_ids.push(&entry.action_id);
        self.action_types.push(&entry.action_type);
        self.correlations.push(&entry.correlation_id);
        self.statuses.push(entry.status.as_str());
        self.states.push(entry.state.as_ref().map(to_json).transpose()?);
        self.intents.push(to_json(&entry.intents)?);
        self.reasons.push(entry.reason.as_deref());
        self.hashes.push(&entry.result_hash);
        self.actors.push(&entry.actor);
        self.payloads.push(entry.payload.as_ref().map(to_json).transpose()?);
        Ok(())
    }

    /// Binds the arrays, in [`insert_sql`]'s order.
    pub(super) fn bind<'q, O>(
        &'q self,
        query: sqlx::query::QueryAs<'q, sqlx::Postgres, O, sqlx::postgres::PgArguments>,
    ) -> sqlx::query::QueryAs<'q, sqlx::Postgres, O, sqlx::postgres::PgArguments> {
        query
            .bind(&self.namespaces)
            .bind(&self.keys)
            .bind(&self.versions)
            .bind(&self.types)
            .bind(&self.action_ids)
            .bind(&self.action_types)
            .bind(&self.correlations)
            .bind(&self.statuses)
            .bind(&self.states)
            .bind(&self.intents)
            .bind(&self.reasons)
            .bind(&self.hashes)
            .bind(&self.actors)
            .bind(&self.payloads)
    }
}

fn to_json<T: serde::Serialize + ?Sized>(value: &T) -> StorageResult<String> {
    serde_json::to_string(value).map_err(|err| StorageError::Database(format!("cannot encode JSON: {err}")))
}

/// Writes entries on their own (outcomes that commit no state).
pub(super) async fn insert(conn: &mut PgConnection, entries: &[HistoryEntry]) -> StorageResult<()> {
    if entries.is_empty() {
        return Ok(());
    }
    let mut columns = HistoryColumns::default();
    for entry in entries {
        columns.push(entry)?;
    }
    let sql = format!("WITH ins AS ({}) SELECT 1", insert_sql(1, None));
    let query = sqlx::query_as::<_, (i32,)>(sqlx::AssertSqlSafe(sql));
    columns.bind(query).fetch_all(conn).await?;
    Ok(())
}

/// The columns [`record_from_row`] reads.
pub(super) const COLUMNS: &str = "seq, namespace, workflow_key, version, workflow_type, action_id, action_type, \
     correlation_id, status, state, payload, intents, reason, result_hash, actor, \
     (extract(epoch FROM recorded_at) * 1000)::bigint AS recorded_at_ms";

/// [`COLUMNS`] of a table aliased `h`.
pub(super) const COLUMNS_OF_H: &str = "h.seq, h.namespace, h.workflow_key, h.version, h.workflow_type, h.action_id, \
     h.action_type, h.correlation_id, h.status, h.state, h.payload, h.intents, h.reason, h.result_hash, h.actor, \
     (extract(epoch FROM h.recorded_at) * 1000)::bigint AS recorded_at_ms";

/// See [`crate::Store::history`].
pub(super) async fn page(pool: &PgPool, key: &WorkflowKey, page: HistoryPage) -> StorageResult<Vec<HistoryRecord>> {
    let (compare, order) = if page.reverse { ("<", "DESC") } else { (">", "ASC") };
    let sql = format!(
        "SELECT {COLUMNS} FROM workflow_history WHERE namespace = $1 AND workflow_key = $2 AND (version, seq) {compare} ($3, $4) \
         ORDER BY version {order}, seq {order} LIMIT $5"
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(key.namespace().as_str())
        .bind(key.as_str())
        .bind(page.after.0)
        .bind(page.after.1)
        .bind(i64::from(page.limit))
        .fetch_all(pool)
        .await?;
    rows.iter().map(record_from_row).collect()
}

pub(super) fn record_from_row(row: &PgRow) -> StorageResult<HistoryRecord> {
    crate::rows::history_record_from_row!(row)
}

/// See [`crate::Store::prune_history`].
pub(super) async fn prune(pool: &PgPool, retention: HistoryRetention, limit: u32) -> StorageResult<u64> {
    let mut deleted = 0;
    if let Some(age) = retention.max_age {
        deleted += sqlx::query(
            "DELETE FROM workflow_history WHERE seq IN (SELECT seq FROM workflow_history \
             WHERE recorded_at <= now() - make_interval(secs => $1) ORDER BY recorded_at LIMIT $2)",
        )
        .bind(age.as_secs_f64())
        .bind(i64::from(limit))
        .execute(pool)
        .await?
        .rows_affected();
    }
    if let Some(keep) = retention.keep_versions {
        let keep = i64::try_from(keep).unwrap_or(i64::MAX);
        deleted += sqlx::query(
            "DELETE FROM workflow_history WHERE seq IN (SELECT h.seq FROM workflow_state w \
             JOIN workflow_history h ON h.namespace = w.namespace AND h.workflow_key = w.workflow_key \
             WHERE w.version > $1 AND h.version <= w.version - $1 LIMIT $2)",
        )
        .bind(keep)
        .bind(i64::from(limit))
        .execute(pool)
        .await?
        .rows_affected();
    }
    Ok(deleted)
}
