//! Background upkeep: the periodic cleanup of expired dedup records, and retention of
//! published outbox rows, completions and workflow history.

use std::sync::Arc;
use std::time::Duration;

use purereducer_storage::Store;
use tokio::sync::watch;

/// Deletes expired dedup records every `interval` until `stop` turns true.
pub async fn run_dedup_cleanup(store: Arc<dyn Store>, interval: Duration, mut stop: watch::Receiver<bool>) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => match store.cleanup_expired().await {
                Ok(0) => {}
                Ok(deleted) => {
                    crate::metrics::metrics().dedup_cleanup_deleted.add(deleted, &[]);
                    tracing::info!(deleted, "expired dedup records removed");
                }
                Err(err) => tracing::warn!(error = %err, "dedup cleanup failed; retrying next interval"),
            },
            changed = stop.changed() => {
                if changed.is_err() || *stop.borrow() {
                    return;
                }
            }
        }
    }
}

/// Rows deleted per statement, so pruning a large backlog never holds long locks.
const PRUNE_BATCH: u32 = 5_000;

/// Deletes published outbox rows, completions and history entries past their retention
/// every `interval` until `stop` turns true.
pub async fn run_retention(
    store: Arc<dyn Store>,
    config: crate::config::RetentionConfig,
    history: purereducer_storage::HistoryRetention,
    mut stop: watch::Receiver<bool>,
) {
    let outbox = Duration::from_secs(config.outbox_seconds);
    let completions = Duration::from_secs(config.completions_seconds);
    let mut ticker = tokio::time::interval(Duration::from_secs(config.interval_seconds.max(1)));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {
                prune_all(&store, outbox, completions, &stop).await;
                prune_history(&store, history, &stop).await;
            }
            changed = stop.changed() => {
                if changed.is_err() || *stop.borrow() {
                    return;
                }
            }
        }
    }
}

/// Prunes in batches until a batch comes back short (or the process stops).
pub async fn prune_all(store: &Arc<dyn Store>, outbox: Duration, completions: Duration, stop: &watch::Receiver<bool>) {
    let (mut rows, mut done) = (0, 0);
    loop {
        match store.prune(outbox, completions, PRUNE_BATCH).await {
            Ok((r, c)) => {
                rows += r;
                done += c;
                if r < u64::from(PRUNE_BATCH) && c < u64::from(PRUNE_BATCH) || *stop.borrow() {
                    break;
                }
            }
            Err(err) => {
                tracing::warn!(error = %err, "pruning failed; retrying next interval");
                break;
            }
        }
    }
    if rows + done > 0 {
        tracing::info!(
            outbox_rows = rows,
            completions = done,
            "published outbox rows and completions past retention removed"
        );
    }
}

/// Prunes history past `retention` in batches until a batch comes back short.
pub async fn prune_history(
    store: &Arc<dyn Store>,
    retention: purereducer_storage::HistoryRetention,
    stop: &watch::Receiver<bool>,
) {
    if retention == purereducer_storage::HistoryRetention::default() {
        return;
    }
    let mut deleted = 0;
    loop {
        match store.prune_history(retention, PRUNE_BATCH).await {
            Ok(n) => {
                deleted += n;
                if n < u64::from(PRUNE_BATCH) || *stop.borrow() {
                    break;
                }
            }
            Err(err) => {
                tracing::warn!(error = %err, "pruning history failed; retrying next interval");
                break;
            }
        }
    }
    if deleted > 0 {
        tracing::info!(entries = deleted, "history entries past retention removed");
    }
}
