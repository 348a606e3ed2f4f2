//! Without Kafka, one process at a time materializes the outbox (it holds the pipeline's
//! singleton). So that subscribers of every other process on the database see the same
//! events, in the same order, the materializing process announces each batch's outbox ids on
//! [`channels::EVENTS`] after the batch commits; the others read those rows and hand them to
//! their own subscribers. A process ignores its own announcements (by its hub's origin): it
//! delivered the batch already.

use purereducer_storage::{Store, channels};

use crate::hub::Hub;
use crate::projection::decode;

/// Longest announcement payload; PostgreSQL refuses payloads of 8,000 bytes or more.
const MAX_NOTE_BYTES: usize = 7_000;

/// The announcements of `ids` (in order, runs written `a-b`), each `origin:list` short enough
/// for a notification.
pub fn notes(origin: &str, ids: &[i64]) -> Vec<String> {
    let mut runs: Vec<(i64, i64)> = Vec::new();
    for &id in ids {
        match runs.last_mut() {
            Some((_, last)) if id == *last + 1 => *last = id,
            _ => runs.push((id, id)),
        }
    }
    let mut notes = Vec::new();
    let mut note = String::new();
    for (first, last) in runs {
        let run = if first == last {
            first.to_string()
        } else {
            format!("{first}-{last}")
        };
        if !note.is_empty() && origin.len() + 1 + note.len() + 1 + run.len() > MAX_NOTE_BYTES {
            notes.push(format!("{origin}:{note}"));
            note.clear();
        }
        if !note.is_empty() {
            note.push(',');
        }
        note.push_str(&run);
    }
    if !note.is_empty() {
        notes.push(format!("{origin}:{note}"));
    }
    notes
}

/// The origin and outbox ids of an announcement; `None` for a payload that is not one.
pub fn parse(payload: &str) -> Option<(&str, Vec<i64>)> {
    let (origin, list) = payload.split_once(':')?;
    let mut ids = Vec::new();
    for run in list.split(',') {
        match run.split_once('-') {
            Some((first, last)) => {
                let (first, last): (i64, i64) = (first.parse().ok()?, last.parse().ok()?);
                if last < first || last - first > 100_000 {
                    return None;
                }
                ids.extend(first..=last);
            }
            None => ids.push(run.parse().ok()?),
        }
    }
    Some((origin, ids))
}

/// Tells every other process which outbox rows this one just materialized. A failure is only
/// logged: the rows are applied and marked, and other processes' subscribers miss this batch
/// (as they would across a listener reconnect).
pub async fn announce(store: &dyn Store, hub: &Hub, ids: &[i64]) {
    if ids.is_empty() {
        return;
    }
    if let Err(err) = store.announce(channels::EVENTS, &notes(hub.origin(), ids)).await {
        tracing::warn!(error = %err, events = ids.len(), "cannot announce materialized events to other processes");
    }
}

/// Hands the events another process announced to this process's subscribers.
pub async fn deliver(store: &dyn Store, hub: &Hub, payload: &str) {
    let Some((from, ids)) = parse(payload) else {
        tracing::warn!(payload, "ignoring a malformed event announcement");
        return;
    };
    if from == hub.origin() {
        return;
    }
    match store.events_by_id(&ids).await {
        Ok(rows) => {
            for row in rows {
                // Undecodable rows were dead-lettered by the materializing process.
                if let Ok(event) = decode(&row.event.payload) {
                    hub.publish_event(event);
                }
            }
        }
        Err(err) => tracing::warn!(error = %err, events = ids.len(), "cannot read announced events"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn announcements_list_ids_in_order_with_runs_and_stay_short() {
        let ids = [5, 6, 7, 9, 3, 4, 20];
        let notes = notes("p1", &ids);
        assert_eq!(notes, ["p1:5-7,9,3-4,20"]);
        assert_eq!(parse(&notes[0]), Some(("p1", ids.to_vec())));

        // Far apart ids need several notes, each under the limit, together in order.
        let spread: Vec<i64> = (0..3_000).map(|n| n * 1_000_003).collect();
        let notes = super::notes("p2", &spread);
        assert!(notes.len() > 1);
        assert!(notes.iter().all(|n| n.len() <= MAX_NOTE_BYTES));
        let back: Vec<i64> = notes.iter().flat_map(|n| parse(n).expect("parses").1).collect();
        assert_eq!(back, spread);
    }

    #[test]
    fn malformed_announcements_are_refused() {
        for payload in ["", "p1", "p1:", "p1:x", "p1:5-3", "p1:1-999999999", "p1:1,,2"] {
            assert_eq!(parse(payload), None, "{payload:?}");
        }
    }
}
