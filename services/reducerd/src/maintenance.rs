//! Background upkeep: the periodic cleanup of expired dedup records.

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
