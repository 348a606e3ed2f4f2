//! What each caller records, merged into one tally, and percentiles over sorted samples.

use std::collections::BTreeMap;
use std::time::Duration;

use purereducer_api::v1::ActionStatus;
use serde::Serialize;

/// How one action ended, as the caller saw it.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// The server answered with a status.
    Done {
        /// The action's status.
        status: ActionStatus,
        /// Reduce-and-commit attempts, when the entry point reports them.
        attempts: Option<u32>,
    },
    /// The RPC failed; the gRPC code name, or "timeout" for the client's own deadline.
    Failed(String),
}

/// Counts and latencies of the actions that completed inside the measured window.
#[derive(Debug, Default, Clone)]
pub struct Tally {
    /// Latency of every completed action, in microseconds.
    pub latencies_us: Vec<u64>,
    /// Completed actions by status name.
    pub statuses: BTreeMap<String, u64>,
    /// Failed RPCs by gRPC code name.
    pub errors: BTreeMap<String, u64>,
    /// Sum over responses of attempts - 1: the conflict retries the server made.
    pub retries: u64,
    /// Responses that needed more than one attempt.
    pub retried_responses: u64,
}

impl Tally {
    /// Adds one action that took `latency`.
    pub fn record(&mut self, outcome: &Outcome, latency: Duration) {
        match outcome {
            Outcome::Done { status, attempts } => {
                self.latencies_us
                    .push(u64::try_from(latency.as_micros()).unwrap_or(u64::MAX));
                *self.statuses.entry(status_name(*status)).or_default() += 1;
                if let Some(attempts) = attempts.filter(|&a| a > 1) {
                    self.retries += u64::from(attempts - 1);
                    self.retried_responses += 1;
                }
            }
            Outcome::Failed(code) => *self.errors.entry(code.clone()).or_default() += 1,
        }
    }

    /// Adds everything `other` recorded.
    pub fn merge(&mut self, other: Tally) {
        self.latencies_us.extend(other.latencies_us);
        for (status, n) in other.statuses {
            *self.statuses.entry(status).or_default() += n;
        }
        for (code, n) in other.errors {
            *self.errors.entry(code).or_default() += n;
        }
        self.retries += other.retries;
        self.retried_responses += other.retried_responses;
    }

    /// Actions that got a status back.
    pub fn completed(&self) -> u64 {
        self.statuses.values().sum()
    }

    /// Completed actions with `status`.
    pub fn count(&self, status: ActionStatus) -> u64 {
        self.statuses.get(&status_name(status)).copied().unwrap_or(0)
    }
}

/// The proto name without its enum prefix: `COMMITTED`, `GAVE_UP`, ...
fn status_name(status: ActionStatus) -> String {
    let name = status.as_str_name();
    name.strip_prefix("ACTION_STATUS_").unwrap_or(name).to_owned()
}

/// Percentiles of a set of durations, in milliseconds.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Percentiles {
    /// Number of samples.
    pub samples: usize,
    /// Median.
    pub p50: f64,
    /// 95th percentile.
    pub p95: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Largest sample.
    pub max: f64,
}

impl Percentiles {
    /// Percentiles of `micros`; all zero when there are no samples.
    pub fn of_micros(mut micros: Vec<u64>) -> Self {
        micros.sort_unstable();
        let ms = |p: f64| percentile(&micros, p).map_or(0.0, |us| us as f64 / 1000.0);
        Self {
            samples: micros.len(),
            p50: ms(50.0),
            p95: ms(95.0),
            p99: ms(99.0),
            max: ms(100.0),
        }
    }
}

/// The nearest-rank percentile `p` (0-100) of ascending `sorted`: the smallest sample with at
/// least p% of the samples at or below it. None when there are no samples.
pub fn percentile(sorted: &[u64], p: f64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (p * sorted.len() as f64 / 100.0).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles_of_one_to_a_hundred() {
        let samples: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&samples, 50.0), Some(50));
        assert_eq!(percentile(&samples, 95.0), Some(95));
        assert_eq!(percentile(&samples, 99.0), Some(99));
        assert_eq!(percentile(&samples, 100.0), Some(100));
        assert_eq!(percentile(&samples, 0.0), Some(1));
    }

    #[test]
    fn small_sets_round_up_to_a_real_sample() {
        assert_eq!(percentile(&[], 50.0), None);
        assert_eq!(percentile(&[7], 99.0), Some(7));
        // Of ten samples the 95th and 99th percentile are both the largest.
        let ten: Vec<u64> = (10..=100).step_by(10).collect();
        assert_eq!(percentile(&ten, 95.0), Some(100));
        assert_eq!(percentile(&ten, 50.0), Some(50));
        assert_eq!(percentile(&ten, 51.0), Some(60));
    }

    #[test]
    fn percentiles_sort_their_input_and_report_milliseconds() {
        let mut micros: Vec<u64> = (1..=1000).map(|i| i * 1000).collect();
        micros.reverse();
        let p = Percentiles::of_micros(micros);
        assert_eq!(p.samples, 1000);
        assert_eq!((p.p50, p.p95, p.p99, p.max), (500.0, 950.0, 990.0, 1000.0));
        assert_eq!(Percentiles::of_micros(Vec::new()).max, 0.0);
    }

    #[test]
    fn tally_counts_retries_only_for_responses_that_retried() {
        let mut tally = Tally::default();
        let done = |status, attempts| Outcome::Done { status, attempts };
        tally.record(&done(ActionStatus::Committed, Some(1)), Duration::from_millis(1));
        tally.record(&done(ActionStatus::Committed, Some(3)), Duration::from_millis(2));
        tally.record(&done(ActionStatus::GaveUp, Some(8)), Duration::from_millis(3));
        tally.record(&Outcome::Failed("Unavailable".into()), Duration::from_millis(4));
        let mut other = Tally::default();
        other.record(&done(ActionStatus::Duplicate, Some(0)), Duration::from_millis(5));
        tally.merge(other);
        assert_eq!(tally.completed(), 4);
        assert_eq!(tally.count(ActionStatus::Committed), 2);
        assert_eq!(tally.count(ActionStatus::GaveUp), 1);
        assert_eq!((tally.retries, tally.retried_responses), (2 + 7, 2));
        assert_eq!(tally.errors.get("Unavailable"), Some(&1));
        assert_eq!(tally.latencies_us.len(), 4);
    }
}
