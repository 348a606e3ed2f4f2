//! The in-process pipeline of the embedded default: the outbox itself is the event log.

use std::sync::Arc;
use std::time::Duration;

use purereducer_storage::{ApplyStats, DeadLetter, PendingEvent, ProjectionUpdate, Singleton, StorageError, Store};
use tokio::sync::watch;

use crate::hub::{Hub, PublishedEvent};
use crate::projection::{decode, row_of_event};

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

    /// Runs while `hold` (the pipeline's singleton) is held, until `stop` turns true, then
    /// drains what is already in the outbox; returns whether it stopped (rather than lost the
    /// hold). A database outage only delays it (retried with backoff, never dead-lettering
    /// anything).
    pub async fn run(&self, mut stop: watch::Receiver<bool>, hold: &mut Singleton) -> bool {
        let mut next_offset: Option<i64> = None;
        let mut failures = 0u32;
        loop {
            let stopping = *stop.borrow();
            // Asked before every batch: once another process may hold it, this one must not
            // apply or mark anything more.
            if !hold.still_held().await {
                tracing::warn!("lost the pipeline's singleton; standing by");
                return false;
            }
            match self.pass(&mut next_offset).await {
                Ok(0) if stopping => return true,
                Ok(0) => {
                    failures = 0;
                    tokio::select! {
                        _ = self.hub.outbox_wait() => {}
                        // Rows written by another process carry no in-process wake-up.
                        _ = tokio::time::sleep(self.batch_timeout) => {}
                        _ = stop.changed() => {}
                    }
                }
                Ok(_) => failures = 0,
                Err(err) => {
                    failures += 1;
                    tracing::warn!(error = %err, "pipeline pass failed; retrying");
                    next_offset = None;
                    if stopping {
                        return true;
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(crate::engine::outage_backoff(failures)) => {}
                        _ = stop.changed() => {}
                    }
                }
            }
        }
    }

    /// One batch; returns how many outbox rows it handled.
    async fn pass(&self, next_offset: &mut Option<i64>) -> Result<usize, StorageError> {
        let rows = self.store.pending_events(self.max_records).await?;
        if rows.is_empty() {
            // Caught up: nothing is waiting, so projections lag nothing.
            crate::metrics::metrics().materializer_idle();
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
        let mut letters = Vec::new();
        let mut decoded: Vec<Option<PublishedEvent>> = Vec::with_capacity(rows.len());
        let mut projection_rows = Vec::with_capacity(rows.len());
        for row in &rows {
            let (event, projection) = match decode(&row.event.payload) {
                Ok(event) => match projection_row(&event) {
                    Ok(projection) => (Some(event), projection),
                    Err(reason) => {
                        letters.push(dead_letter(row, reason));
                        (Some(event), None)
                    }
                },
                Err(err) => {
                    letters.push(dead_letter(row, format!("not an event: {err}")));
                    (None, None)
                }
            };
            decoded.push(event);
            projection_rows.push(projection);
        }
        // Kept before the rows are marked, so nothing is skipped without a record.
        self.keep_dead_letters(&letters).await?;
        let updates: Vec<ProjectionUpdate> = projection_rows
            .into_iter()
            .zip(first..)
            .map(|(row, offset)| ProjectionUpdate {
                topic: TOPIC.to_owned(),
                partition: 0,
                offset,
                row,
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
        let stats = self.apply(&rows, updates, &ids).await?;
        drop(spans);
        *next_offset = Some(first + i64::try_from(rows.len()).unwrap_or(i64::MAX));
        super::account(&stats, &times);
        for (namespace, key, version) in stats.applied {
            self.hub
                .projection_applied(crate::hub::projection_key(&namespace, &key), version.get());
        }
        for event in decoded.into_iter().flatten() {
            self.hub.publish_event(event);
        }
        super::fanout::announce(self.store.as_ref(), &self.hub, &ids).await;
        Ok(rows.len())
    }

    /// Applies a batch; a batch the database refuses (not an outage) a few times is applied
    /// row by row, and a row refused every time is dead-lettered and passed.
    async fn apply(
        &self,
        rows: &[PendingEvent],
        updates: Vec<ProjectionUpdate>,
        ids: &[i64],
    ) -> Result<ApplyStats, StorageError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.store.apply_and_mark_published(&updates, ids).await {
                Ok(stats) => return Ok(stats),
                Err(err @ StorageError::Unavailable(_)) => return Err(err),
                Err(err) if attempt < POISON_ATTEMPTS => {
                    tracing::warn!(error = %err, attempt, "projection batch failed; retrying");
                }
                Err(err) => {
                    tracing::warn!(error = %err, "projection batch keeps failing; isolating the failing events");
                    break;
                }
            }
        }
        let mut total = ApplyStats::default();
        for ((row, update), id) in rows.iter().zip(updates).zip(ids) {
            let mut attempt = 0;
            let stats = loop {
                attempt += 1;
                match self
                    .store
                    .apply_and_mark_published(std::slice::from_ref(&update), &[*id])
                    .await
                {
                    Ok(stats) => break stats,
                    Err(err @ StorageError::Unavailable(_)) => return Err(err),
                    Err(err) if attempt < POISON_ATTEMPTS => {
                        tracing::warn!(error = %err, attempt, outbox_id = row.id, "event failed; retrying");
                    }
                    Err(err) => {
                        self.keep_dead_letters(&[dead_letter(row, err.to_string())]).await?;
                        let pass = ProjectionUpdate { row: None, ..update };
                        break self.store.apply_and_mark_published(&[pass], &[*id]).await?;
                    }
                }
            };
            total.applied.extend(stats.applied);
            total.duplicates += stats.duplicates;
            total.regressions += stats.regressions;
        }
        Ok(total)
    }

    async fn keep_dead_letters(&self, letters: &[DeadLetter]) -> Result<(), StorageError> {
        if letters.is_empty() {
            return Ok(());
        }
        self.store.record_dead_letters(letters).await?;
        for letter in letters {
            tracing::error!(source = %letter.source, workflow_key = %letter.workflow_key, version = %letter.version, error = %letter.error, "event dead-lettered");
        }
        crate::metrics::metrics()
            .projections_failed
            .add(letters.len() as u64, &[]);
        Ok(())
    }
}

/// Attempts at a failing batch, then at a failing event, before it is dead-lettered.
const POISON_ATTEMPTS: u32 = 3;

fn dead_letter(row: &PendingEvent, error: String) -> DeadLetter {
    DeadLetter {
        source: format!("outbox/{}", row.id),
        namespace: row.event.namespace.clone(),
        workflow_key: row.event.workflow_key.clone(),
        version: row.event.version,
        event_type: row.event.event_type.clone(),
        payload: row.event.payload.clone(),
        error,
    }
}

/// The projection row an event writes (`None` for events that write none).
fn projection_row(event: &PublishedEvent) -> Result<Option<purereducer_storage::ProjectionRow>, String> {
    row_of_event(&event.event).map_err(|err| format!("event has no usable state: {err}"))
}
