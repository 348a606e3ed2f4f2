//! `history` and `list` (CanonicalStoreService.GetHistory and ListWorkflows).

use std::time::Duration;

use purereducer_api::v1::canonical_store_service_client::CanonicalStoreServiceClient;
use purereducer_api::v1::{GetHistoryRequest, HistoryEntry, ListWorkflowsRequest};
use serde_json::Value as Json;

use crate::cli::{HistoryArgs, ListArgs};
use crate::client::{Connection, within};
use crate::convert::{struct_to_json, timestamp_to_json};
use crate::error::CliError;
use crate::output::{Printer, Record};

/// Entries or workflows asked for per call.
const PAGE: u32 = 500;

/// Prints a workflow's history, one entry per version, each commit with what it changed.
pub async fn history(connection: &Connection, printer: &Printer, args: HistoryArgs) -> Result<(), CliError> {
    let mut client = CanonicalStoreServiceClient::new(connection.channel.clone());
    let mut entries: Vec<HistoryEntry> = Vec::new();
    let mut page_token = String::new();
    while entries.len() < args.limit {
        let deadline = Some(connection.deadline(Duration::ZERO));
        let want = (args.limit - entries.len()).min(PAGE as usize) as u32;
        let answer = within(
            deadline,
            client.get_history(connection.request(
                GetHistoryRequest {
                    workflow_key: args.workflow_key.clone(),
                    namespace: args.namespace.clone(),
                    from_version: args.from_version,
                    limit: want,
                    reverse: args.reverse,
                    page_token: page_token.clone(),
                },
                deadline,
            )),
        )
        .await?
        .into_inner();
        entries.extend(answer.entries);
        if answer.next_page_token.is_empty() {
            break;
        }
        page_token = answer.next_page_token;
    }
    // Diffs run oldest to newest, whatever order the entries print in.
    let mut chronological: Vec<usize> = (0..entries.len()).collect();
    if args.reverse {
        chronological.reverse();
    }
    let mut changes: Vec<Option<Vec<Change>>> = vec![None; entries.len()];
    let mut previous: Option<Json> = match chronological
        .iter()
        .find_map(|&i| entries[i].state.is_some().then(|| entries[i].version))
    {
        Some(first) if first > 1 => state_at(connection, &mut client, &args, first - 1).await?,
        _ => None,
    };
    for &index in &chronological {
        let Some(state) = entries[index].state.as_ref().map(struct_to_json) else {
            continue;
        };
        let base = match (&previous, entries[index].version) {
            (Some(before), _) => Some(before.clone()),
            (None, 1) => Some(Json::Object(serde_json::Map::new())),
            // The version before the first one shown is not in this listing.
            (None, _) => None,
        };
        changes[index] = base.map(|before| diff(&before, &state));
        previous = Some(state);
    }
    if entries.is_empty() {
        return Ok(printer.line(&Record::new().field(
            "history",
            format!(
                "no history for {} (not created yet, or pruned by history.retention)",
                args.workflow_key
            ),
        ))?);
    }
    for (entry, changes) in entries.iter().zip(changes) {
        printer.line(&entry_record(entry, changes.as_deref(), printer.is_json()))?;
        for change in changes.iter().flatten() {
            printer.text(&format!("    {change}"))?;
        }
    }
    Ok(())
}

/// The state committed at `version`, when history still has it: the base of the first diff.
async fn state_at(
    connection: &Connection,
    client: &mut CanonicalStoreServiceClient<tonic::transport::Channel>,
    args: &HistoryArgs,
    version: u64,
) -> Result<Option<Json>, CliError> {
    let deadline = Some(connection.deadline(Duration::ZERO));
    let answer = within(
        deadline,
        client.get_history(connection.request(
            GetHistoryRequest {
                workflow_key: args.workflow_key.clone(),
                namespace: args.namespace.clone(),
                from_version: version,
                limit: 1,
                ..Default::default()
            },
            deadline,
        )),
    )
    .await?
    .into_inner();
    Ok(answer
        .entries
        .first()
        .filter(|entry| entry.version == version)
        .and_then(|entry| entry.state.as_ref())
        .map(struct_to_json))
}

/// One entry; the state and the changes as fields only for `--json` (as text the changes
/// follow on lines of their own).
fn entry_record(entry: &HistoryEntry, changes: Option<&[Change]>, json: bool) -> Record {
    let record = Record::new()
        .field("version", format!("v{}", entry.version))
        .field("status", super::status_name(entry.status))
        .field("action_type", entry.action_type.clone())
        .non_empty("action_id", &entry.action_id)
        .non_empty("correlation_id", &entry.correlation_id)
        .field("actor", entry.actor.clone())
        .field("recorded_at", timestamp_to_json(entry.recorded_at.as_ref()))
        .non_empty("reason", &entry.reason);
    let record = if entry.intents.is_empty() {
        record
    } else {
        let types: Vec<Json> = entry
            .intents
            .iter()
            .map(|i| Json::String(i.intent_type.clone()))
            .collect();
        record.field("intents", Json::Array(types))
    };
    match (&entry.state, changes) {
        (Some(state), changes) if json => record.field("state", struct_to_json(state)).field(
            "changes",
            changes.map_or(Json::Null, |changes| {
                Json::Array(changes.iter().map(Change::to_json).collect())
            }),
        ),
        _ => record,
    }
}

/// One difference between two states, at a JSON path (`$.a.b`).
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    path: String,
    before: Option<Json>,
    after: Option<Json>,
}

impl Change {
    fn to_json(&self) -> Json {
        serde_json::json!({ "path": self.path, "before": self.before, "after": self.after })
    }
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.before, &self.after) {
            (None, Some(after)) => write!(f, "+ {} = {after}", self.path),
            (Some(before), None) => write!(f, "- {} (was {before})", self.path),
            (Some(before), Some(after)) => write!(f, "~ {}: {before} -> {after}", self.path),
            (None, None) => Ok(()),
        }
    }
}

/// What changed from `before` to `after`: members added, removed or changed, descending
/// into objects; lists and scalars change as a whole.
pub fn diff(before: &Json, after: &Json) -> Vec<Change> {
    let mut changes = Vec::new();
    walk("$", before, after, &mut changes);
    changes
}

fn walk(path: &str, before: &Json, after: &Json, changes: &mut Vec<Change>) {
    match (before, after) {
        (Json::Object(old), Json::Object(new)) => {
            let mut names: Vec<&String> = old.keys().chain(new.keys()).collect();
            names.sort();
            names.dedup();
            for name in names {
                let at = format!("{path}.{name}");
                match (old.get(name), new.get(name)) {
                    (Some(o), Some(n)) => walk(&at, o, n, changes),
                    (o, n) => changes.push(Change {
                        path: at,
                        before: o.cloned(),
                        after: n.cloned(),
                    }),
                }
            }
        }
        (o, n) if o != n => changes.push(Change {
            path: path.to_owned(),
            before: Some(o.clone()),
            after: Some(n.clone()),
        }),
        _ => {}
    }
}

/// Prints the workflows matching the filter, following pages up to `--limit`.
pub async fn list(connection: &Connection, printer: &Printer, args: ListArgs) -> Result<(), CliError> {
    let mut client = CanonicalStoreServiceClient::new(connection.channel.clone());
    let mut rows = Vec::new();
    let mut page_token = String::new();
    while rows.len() < args.limit {
        let deadline = Some(connection.deadline(Duration::ZERO));
        let want = (args.limit - rows.len()).min(PAGE as usize) as u32;
        let answer = within(
            deadline,
            client.list_workflows(connection.request(
                ListWorkflowsRequest {
                    namespace: args.namespace.clone(),
                    workflow_type: args.workflow_type.clone(),
                    key_prefix: args.prefix.clone(),
                    tag: args.status.clone(),
                    limit: want,
                    page_token: page_token.clone(),
                    ..Default::default()
                },
                deadline,
            )),
        )
        .await?
        .into_inner();
        rows.extend(answer.workflows.into_iter().map(|w| {
            Record::new()
                .field("workflow_key", w.workflow_key)
                .field("workflow_type", w.workflow_type)
                .field("version", w.version)
                .field("status", w.tag)
                .field("updated_at", timestamp_to_json(w.updated_at.as_ref()))
        }));
        if answer.next_page_token.is_empty() {
            break;
        }
        page_token = answer.next_page_token;
    }
    Ok(printer.table("workflows", &rows, "no workflows match")?)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn diffs_name_each_added_removed_and_changed_member() {
        let before = json!({"status": "open", "items": [1], "customer": {"name": "ana", "vip": false}});
        let after = json!({"status": "paid", "items": [1], "customer": {"name": "ana"}, "total": 42});
        let lines: Vec<String> = diff(&before, &after).iter().map(ToString::to_string).collect();
        assert_eq!(
            lines,
            vec![
                "- $.customer.vip (was false)",
                "~ $.status: \"open\" -> \"paid\"",
                "+ $.total = 42"
            ]
        );
        assert!(diff(&after, &after).is_empty());
    }
}
