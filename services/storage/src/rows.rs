//! Reading the rows both backends store alike. Each is a macro rather than a function: the
//! row types differ per backend (`PgRow`, `SqliteRow`) while the columns and decoding do not.

/// A [`crate::HistoryRecord`] from a row with the history columns.
macro_rules! history_record_from_row {
    ($row:expr) => {{
        let row = $row;
        let status: String = row.try_get("status")?;
        let state: Option<Json<JsonObject>> = row.try_get("state")?;
        let payload: Option<Json<JsonObject>> = row.try_get("payload")?;
        let intents: Json<Vec<Intent>> = row.try_get("intents")?;
        Ok(HistoryRecord {
            seq: row.try_get("seq")?,
            recorded_at_ms: row.try_get("recorded_at_ms")?,
            entry: HistoryEntry {
                namespace: row.try_get("namespace")?,
                workflow_key: row.try_get("workflow_key")?,
                version: Version::new(row.try_get::<i64, _>("version")?.max(0) as u64),
                workflow_type: row.try_get("workflow_type")?,
                action_id: row.try_get("action_id")?,
                action_type: row.try_get("action_type")?,
                correlation_id: row.try_get("correlation_id")?,
                status: ActionStatus::parse(&status)
                    .ok_or_else(|| StorageError::Corrupt(format!("unknown history status '{status}'")))?,
                state: state.map(|s| s.0),
                payload: payload.map(|p| p.0),
                intents: intents.0,
                reason: row.try_get("reason")?,
                result_hash: row.try_get("result_hash")?,
                actor: row.try_get("actor")?,
            },
        })
    }};
}

/// A [`crate::StoredDeadLetter`] from a row with the dead letter columns.
macro_rules! dead_letter_from_row {
    ($row:expr) => {{
        let row = $row;
        Ok(StoredDeadLetter {
            id: row.try_get("id")?,
            created_at_ms: row.try_get("created_at_ms")?,
            replayed_at_ms: row.try_get("replayed_at_ms")?,
            letter: DeadLetter {
                source: row.try_get("source")?,
                namespace: row.try_get("namespace")?,
                workflow_key: row.try_get("workflow_key")?,
                version: Version::new(row.try_get::<i64, _>("version")?.max(0) as u64),
                event_type: row.try_get("event_type")?,
                payload: row.try_get("payload")?,
                error: row.try_get("error")?,
            },
        })
    }};
}

pub(crate) use {dead_letter_from_row, history_record_from_row};
