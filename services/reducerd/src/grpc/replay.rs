//! `Subscribe` with `from_version`: each named workflow's history is replayed as the events
//! its commits and give-ups published, then the live stream follows. The live subscription is
//! taken before history is read, so nothing committed in between is missed; what the live
//! stream then brings again (an event at or below a replayed version) is dropped at the seam.

use std::collections::{HashMap, HashSet};

use purereducer_api::v1;
use purereducer_core::{ActionStatus, Version, WorkflowKey};
use purereducer_storage::{HistoryPage, HistoryRecord, Store};
use tonic::Status;

use crate::convert::{intents_to_proto, json_to_struct};
use crate::grpc::timestamp_ms;
use crate::hub::PublishedEvent;

/// History entries read per page while replaying.
const REPLAY_PAGE: u32 = 500;

/// What a replay sent, so the live stream does not send it again.
#[derive(Debug, Default)]
pub struct Seen {
    /// The highest version replayed per (namespace, key).
    last: HashMap<(String, String), u64>,
    /// Give-ups replayed, by action id.
    gave_up: HashSet<String>,
}

impl Seen {
    /// Whether a live event was already sent by the replay (or precedes what was asked).
    pub fn covers(&self, event: &PublishedEvent) -> bool {
        let Some(last) = self.last.get(&(event.namespace.clone(), event.workflow_key.clone())) else {
            return false;
        };
        match &event.event.kind {
            Some(v1::event::Kind::StateCommitted(e)) => e.version <= *last,
            Some(v1::event::Kind::IntentEmitted(e)) => e.version <= *last,
            Some(v1::event::Kind::WorkflowDeleted(e)) => e.version <= *last,
            Some(v1::event::Kind::ReducerGaveUp(e)) => self.gave_up.contains(&e.action_id),
            None => false,
        }
    }
}

/// Sends the history of each key from `from` through `send`, oldest first; fails with
/// OUT_OF_RANGE when retention already removed versions that were asked for.
pub async fn replay<F, Fut>(store: &dyn Store, keys: &[WorkflowKey], from: Version, mut send: F) -> Result<Seen, Status>
where
    F: FnMut(v1::Event) -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let mut seen = Seen::default();
    for key in keys {
        let mut page = HistoryPage::starting_at(from, false, REPLAY_PAGE);
        let mut first = true;
        let mut last = from.get().saturating_sub(1);
        loop {
            let records = store.history(key, page).await.map_err(crate::error::ApiError::from)?;
            if first {
                check_kept(store, key, from, records.first()).await?;
                first = false;
            }
            let Some(tail) = records.last() else { break };
            page.after = (i64::try_from(tail.entry.version.get()).unwrap_or(i64::MAX), tail.seq);
            for record in &records {
                last = last.max(record.entry.version.get());
                if record.entry.status == ActionStatus::GaveUp {
                    seen.gave_up.insert(record.entry.action_id.clone());
                }
                for event in events_of(record) {
                    if !send(event).await {
                        return Ok(seen);
                    }
                }
            }
            if records.len() < REPLAY_PAGE as usize {
                break;
            }
        }
        seen.last.insert((key.namespace().to_string(), key.to_string()), last);
    }
    Ok(seen)
}

/// OUT_OF_RANGE when `key` has versions from `from` on that history no longer holds.
async fn check_kept(
    store: &dyn Store,
    key: &WorkflowKey,
    from: Version,
    first: Option<&HistoryRecord>,
) -> Result<(), Status> {
    let oldest = match first {
        Some(record) => record.entry.version,
        None => match store.get_state(key).await.map_err(crate::error::ApiError::from)? {
            Some(state) if state.version >= from => state.version.next(),
            _ => return Ok(()),
        },
    };
    if oldest > from {
        return Err(Status::out_of_range(format!(
            "the history of workflow {key} before version {oldest} was pruned (history.retention); \
             subscribe with from_version {oldest} or later, or read the current state with GetState"
        )));
    }
    Ok(())
}

/// The events a history entry published: a commit and its intents, or a give-up. Refusals
/// publish nothing.
fn events_of(record: &HistoryRecord) -> Vec<v1::Event> {
    let entry = &record.entry;
    let at = Some(timestamp_ms(record.recorded_at_ms));
    match entry.status {
        ActionStatus::Committed if entry.is_deletion() => vec![v1::Event {
            kind: Some(v1::event::Kind::WorkflowDeleted(v1::WorkflowDeleted {
                workflow_key: entry.workflow_key.clone(),
                version: entry.version.get(),
                namespace: entry.namespace.clone(),
                workflow_type: entry.workflow_type.clone(),
                actor: entry.actor.clone(),
                reason: entry.reason.clone().unwrap_or_default(),
                deleted_at: at,
            })),
        }],
        ActionStatus::Committed => {
            let committed = v1::StateCommitted {
                workflow_key: entry.workflow_key.clone(),
                version: entry.version.get(),
                namespace: entry.namespace.clone(),
                workflow_type: entry.workflow_type.clone(),
                action_id: entry.action_id.clone(),
                action_type: entry.action_type.clone(),
                correlation_id: entry.correlation_id.clone(),
                state: entry.state.as_ref().map(json_to_struct),
                intents: intents_to_proto(&entry.intents),
                committed_at: at,
                result_hash: entry.result_hash.clone(),
            };
            let mut events = vec![v1::Event {
                kind: Some(v1::event::Kind::StateCommitted(committed)),
            }];
            for (index, intent) in intents_to_proto(&entry.intents).into_iter().enumerate() {
                events.push(v1::Event {
                    kind: Some(v1::event::Kind::IntentEmitted(v1::IntentEmitted {
                        workflow_key: entry.workflow_key.clone(),
                        version: entry.version.get(),
                        namespace: entry.namespace.clone(),
                        workflow_type: entry.workflow_type.clone(),
                        correlation_id: entry.correlation_id.clone(),
                        intent: Some(intent),
                        index: u32::try_from(index).unwrap_or(u32::MAX),
                    })),
                });
            }
            events
        }
        ActionStatus::GaveUp => vec![v1::Event {
            kind: Some(v1::event::Kind::ReducerGaveUp(v1::ReducerGaveUp {
                workflow_key: entry.workflow_key.clone(),
                namespace: entry.namespace.clone(),
                workflow_type: entry.workflow_type.clone(),
                action_id: entry.action_id.clone(),
                action_type: entry.action_type.clone(),
                correlation_id: entry.correlation_id.clone(),
                attempts: 0,
                last_seen_version: entry.version.get(),
                gave_up_at: at,
            })),
        }],
        _ => Vec::new(),
    }
}
