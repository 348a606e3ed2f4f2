//! The in-process pipeline of the embedded default: the outbox itself is the event log.

use std::sync::Arc;
use std::time::Duration;

use purereducer_api::v1;
use purereducer_storage::{PendingEvent, ProjectionUpdate, Store};
use tokio::sync::watch;

use crate::hub::{Hub, PublishedEvent};
use crate::projection::{decode, row_of};

/// The watermark topic of the in-process log.
pub const TOPIC: &str = "outbox";

/// Applies outbox rows to projections and subscribers, in outbox order.
#[derive(Debug)]
pub struct LocalPipeline {
    store: Arc<dyn Store>,
    hub: Arc<Hub>,
    max_records: u32,
    batch_timeout: Duration,
}

impl LocalPipeline {
    /// A pipeline over `store`, waking on `hub`'s outbox notifications.
    pub fn new(store: Arc<dyn Store>, hub: Arc<Hub>, max_records: usize, batch_timeout: Duration) -> Self {
        Self {
            store,
            hub,
            max_records: u32::try_from(max_records).unwrap_or(u32::MAX).max(1),
            batch_timeout,
        }
    }

    /// Runs until `stop` turns true, then drains what is already in the outbox.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        let mut next_offset: Option<i64> = None;
        loop {
            let stopping = *stop.borrow();
            match self.pass(&mut next_offset).await {
                Ok(0) if stopping => return,
                Ok(0) => {
                    tokio::select! {
                        _ = self.hub.outbox_wait() => {}
                        // Rows written by another process carry no in-process wake-up.
                        _ = tokio::time::sleep(self.batch_timeout) => {}
                        _ = stop.changed() => {}
                    }
                }
                Ok(_) => {}
                Err(err) => {
                    tracing::warn!(error = %err, "pipeline pass failed; retrying");
                    next_offset = None;
                    if stopping {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    }

    /// One batch; returns how many outbox rows it handled.
    async fn pass(&self, next_offset: &mut Option<i64>) -> Result<usize, purereducer_storage::StorageError> {
        let rows = self.store.pending_events(self.max_records).await?;
        if rows.is_empty() {
            return Ok(0);
        }
        let first = match *next_offset {
            Some(offset) => offset,
            None => self
                .store
                .list_watermarks()
                .await?
                .iter()
                .find(|w| w.topic == TOPIC && w.partition == 0)
                .map_or(0, |w| w.offset),
        };
        let decoded: Vec<Option<PublishedEvent>> = rows.iter().map(decode_row).collect();
        let updates: Vec<ProjectionUpdate> = decoded
            .iter()
            .zip(first..)
            .map(|(event, offset)| ProjectionUpdate {
                topic: TOPIC.to_owned(),
                partition: 0,
                offset,
                row: projection_row(event.as_ref()),
            })
            .collect();
        let metrics = crate::metrics::metrics();
        let mut times = super::CommitTimes::new();
        let spans: Vec<tracing::Span> = rows
            .iter()
            .zip(&decoded)
            .map(|(row, event)| {
                metrics
                    .published
                    .add(1, &crate::metrics::event_labels(&row.event.event_type));
                if let Some(event) = event {
                    super::note_commit_time(&mut times, event);
                }
                let span =
                    tracing::info_span!("projection apply", event_type = %row.event.event_type, outbox_id = row.id);
                purereducer_bus::trace::set_parent(&span, &purereducer_bus::trace::from_json(&row.event.headers));
                span
            })
            .collect();
        let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
        // The projection, its watermark and the publication marks commit together.
        let stats = self.store.apply_and_mark_published(&updates, &ids).await?;
        drop(spans);
        *next_offset = Some(first + i64::try_from(rows.len()).unwrap_or(i64::MAX));
        super::account(&stats, &times);
        for (key, version) in stats.applied {
            self.hub.projection_applied(key, version.get());
        }
        for event in decoded.into_iter().flatten() {
            self.hub.publish_event(event);
        }
        Ok(rows.len())
    }
}

fn decode_row(row: &PendingEvent) -> Option<PublishedEvent> {
    match decode(&row.event.payload) {
        Ok(event) => Some(event),
        Err(err) => {
            tracing::error!(outbox_id = row.id, error = %err, "outbox row is not an event; skipped");
            None
        }
    }
}

fn projection_row(event: Option<&PublishedEvent>) -> Option<purereducer_storage::ProjectionRow> {
    let Some(v1::event::Kind::StateCommitted(committed)) = event.and_then(|e| e.event.kind.as_ref()) else {
        return None;
    };
    match row_of(committed) {
        Ok(row) => Some(row),
        Err(err) => {
            tracing::error!(workflow_key = %committed.workflow_key, error = %err, "event has no usable state; skipped");
            None
        }
    }
}
