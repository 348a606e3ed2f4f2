//! The operator-facing metrics, named exactly as the operations runbook queries them.
//!
//! Instruments come from OpenTelemetry's global meter provider; `reducerd` installs one that
//! feeds the Prometheus endpoint (and OTLP when configured), see [`crate::telemetry`]. Until
//! a provider is installed (library use, tests) every instrument is a no-op.
//!
//! Labels are bounded: `workflow_type` (declared in configuration), `namespace`,
//! `event_type` and an outcome. A workflow key never becomes a label.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter, Histogram, Meter, ObservableGauge};

/// Latency buckets in ms; 10 and 50 answer the commit SLA (target and critical).
const LATENCY_BUCKETS_MS: &[f64] = &[1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0];
/// Lag buckets in ms; 100 and 500 answer the projection-lag SLA.
const LAG_BUCKETS_MS: &[f64] = &[
    5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0, 30000.0,
];
/// Backoff buckets in ms, around the default 10..250 ms range.
const BACKOFF_BUCKETS_MS: &[f64] = &[1.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0];
/// Wait buckets in ms, up to the longest configurable wait.
const WAIT_BUCKETS_MS: &[f64] = &[
    1.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0, 30000.0, 60000.0,
];
/// The window `projection_materializer_events_processed_per_second` averages over.
const RATE_WINDOW: Duration = Duration::from_secs(10);

/// Every instrument `reducerd` records.
pub struct Metrics {
    /// `canonical_store_state_commits_total`
    pub state_commits: Counter<u64>,
    /// `canonical_store_state_conflicts_total`
    pub state_conflicts: Counter<u64>,
    /// `canonical_store_commit_latency_ms`
    pub commit_latency_ms: Histogram<f64>,
    /// `canonical_store_get_state_total`
    pub get_state: Counter<u64>,
    /// `canonical_store_get_state_errors`
    pub get_state_errors: Counter<u64>,

    /// `reducer_successful_actions_total`
    pub successful_actions: Counter<u64>,
    /// `reducer_failed_actions_total`
    pub failed_actions: Counter<u64>,
    /// `reducer_conflict_attempts_total`
    pub conflict_attempts: Counter<u64>,
    /// `reducer_backoff_ms`
    pub backoff_ms: Histogram<f64>,
    /// `reducer_gave_up_total`
    pub gave_up: Counter<u64>,

    /// `projection_materializer_projections_materialized_total`
    pub projections_materialized: Counter<u64>,
    /// `projection_materializer_projections_failed_total`
    pub projections_failed: Counter<u64>,
    /// `outbox_events_dead_lettered_total`: outbox rows the broker refuses every time.
    pub events_dead_lettered: Counter<u64>,
    /// `projection_materializer_wm_regressions_total`
    pub wm_regressions: Counter<u64>,
    /// `projection_materializer_duplicate_events_skipped`
    pub duplicate_events_skipped: Counter<u64>,
    /// `projection_materializer_lag_ms`: commit-to-apply time as a histogram.
    pub lag_ms: Histogram<f64>,
    lag: Arc<LagState>,

    /// `action_dedup_checks_total`
    pub dedup_checks: Counter<u64>,
    /// `action_dedup_hits_total`
    pub dedup_hits: Counter<u64>,
    /// `action_dedup_records_total`
    pub dedup_records: Counter<u64>,
    /// `action_dedup_cleanup_deleted_total`
    pub dedup_cleanup_deleted: Counter<u64>,

    /// `event_bus_published_total`
    pub published: Counter<u64>,
    /// `event_bus_consumed_total`
    pub consumed: Counter<u64>,
    /// `event_bus_timeout_total`
    pub timeouts: Counter<u64>,
    /// `event_bus_wait_time_ms`
    pub wait_time_ms: Histogram<f64>,

    _gauges: Vec<ObservableGauge<f64>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

/// The materializer's lag gauges and processing rate, read at collection time.
#[derive(Debug, Default)]
struct LagState {
    last_ms: AtomicU64,
    max_ms: AtomicU64,
    applied: Mutex<VecDeque<(Instant, u64)>>,
}

impl LagState {
    fn rate(&self) -> f64 {
        let Ok(mut window) = self.applied.lock() else {
            return 0.0;
        };
        let now = Instant::now();
        while window
            .front()
            .is_some_and(|(at, _)| now.duration_since(*at) > RATE_WINDOW)
        {
            window.pop_front();
        }
        let events: u64 = window.iter().map(|(_, n)| n).sum();
        events as f64 / RATE_WINDOW.as_secs_f64()
    }
}

static METRICS: OnceLock<Metrics> = OnceLock::new();

/// Whether this process materializes projections; only then does it export the
/// materializer's gauges (a process that does not would report a lag of 0 for ever).
static MATERIALIZING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Marks this process as one that materializes projections (see [`MATERIALIZING`]).
pub fn set_materializing(materializing: bool) {
    MATERIALIZING.store(materializing, Ordering::Relaxed);
}

/// The process's instruments, created from the global meter provider on first use.
pub fn metrics() -> &'static Metrics {
    METRICS.get_or_init(|| Metrics::new(&opentelemetry::global::meter("purereducer")))
}

fn counter(meter: &Meter, name: &'static str, unit: &'static str, help: &'static str) -> Counter<u64> {
    meter.u64_counter(name).with_unit(unit).with_description(help).build()
}

fn histogram(meter: &Meter, name: &'static str, help: &'static str, buckets: &[f64]) -> Histogram<f64> {
    meter
        .f64_histogram(name)
        .with_unit("ms")
        .with_description(help)
        .with_boundaries(buckets.to_vec())
        .build()
}

impl Metrics {
    fn new(meter: &Meter) -> Self {
        let lag = Arc::new(LagState::default());
        let gauges = vec![
            {
                let lag = lag.clone();
                meter
                    .f64_observable_gauge("projection_materializer_wm_lag_ms")
                    .with_unit("ms")
                    .with_description("Commit-to-apply time of the most recently applied event; 0 once caught up")
                    .with_callback(move |observer| {
                        if MATERIALIZING.load(Ordering::Relaxed) {
                            observer.observe(lag.last_ms.load(Ordering::Relaxed) as f64, &[])
                        }
                    })
                    .build()
            },
            {
                let lag = lag.clone();
                meter
                    .f64_observable_gauge("projection_materializer_max_lag_ms")
                    .with_unit("ms")
                    .with_description("Largest commit-to-apply time since start")
                    .with_callback(move |observer| {
                        if MATERIALIZING.load(Ordering::Relaxed) {
                            observer.observe(lag.max_ms.load(Ordering::Relaxed) as f64, &[])
                        }
                    })
                    .build()
            },
            {
                let lag = lag.clone();
                meter
                    .f64_observable_gauge("projection_materializer_events_processed_per_second")
                    .with_unit("{event}/s")
                    .with_description("Events applied to projections per second, over the last 10 s")
                    .with_callback(move |observer| {
                        if MATERIALIZING.load(Ordering::Relaxed) {
                            observer.observe(lag.rate(), &[])
                        }
                    })
                    .build()
            },
        ];
        Self {
            state_commits: counter(
                meter,
                "canonical_store_state_commits_total",
                "{commit}",
                "State versions committed",
            ),
            state_conflicts: counter(
                meter,
                "canonical_store_state_conflicts_total",
                "{conflict}",
                "Commits refused because the expected version was stale",
            ),
            commit_latency_ms: histogram(
                meter,
                "canonical_store_commit_latency_ms",
                "Time of one atomic commit (state, dedup record, outbox)",
                LATENCY_BUCKETS_MS,
            ),
            get_state: counter(
                meter,
                "canonical_store_get_state_total",
                "{read}",
                "Canonical state reads",
            ),
            get_state_errors: counter(
                meter,
                "canonical_store_get_state_errors",
                "{error}",
                "Canonical state reads that failed in storage",
            ),
            successful_actions: counter(
                meter,
                "reducer_successful_actions_total",
                "{action}",
                "Actions applied (committed or rejected by the reducer)",
            ),
            failed_actions: counter(
                meter,
                "reducer_failed_actions_total",
                "{action}",
                "Actions that did not apply: retries exhausted or an error",
            ),
            conflict_attempts: counter(
                meter,
                "reducer_conflict_attempts_total",
                "{attempt}",
                "Attempts that hit a version conflict and were retried or given up",
            ),
            backoff_ms: histogram(
                meter,
                "reducer_backoff_ms",
                "Backoff slept before a retry",
                BACKOFF_BUCKETS_MS,
            ),
            gave_up: counter(
                meter,
                "reducer_gave_up_total",
                "{action}",
                "Actions given up after max_attempts version conflicts",
            ),
            projections_materialized: counter(
                meter,
                "projection_materializer_projections_materialized_total",
                "{projection}",
                "Projection rows written",
            ),
            projections_failed: counter(
                meter,
                "projection_materializer_projections_failed_total",
                "{event}",
                "Events that could not be applied and went to the dead-letter topic",
            ),
            events_dead_lettered: counter(
                meter,
                "outbox_events_dead_lettered_total",
                "{event}",
                "Outbox events the broker refused every time, recorded on the dead-letter topic and skipped",
            ),
            wm_regressions: counter(
                meter,
                "projection_materializer_wm_regressions_total",
                "{event}",
                "Events older than their partition's watermark",
            ),
            duplicate_events_skipped: counter(
                meter,
                "projection_materializer_duplicate_events_skipped",
                "{event}",
                "Events skipped because the projection already had them",
            ),
            lag_ms: histogram(
                meter,
                "projection_materializer_lag_ms",
                "Commit-to-apply time of applied events",
                LAG_BUCKETS_MS,
            ),
            lag,
            dedup_checks: counter(meter, "action_dedup_checks_total", "{check}", "Dedup lookups"),
            dedup_hits: counter(
                meter,
                "action_dedup_hits_total",
                "{check}",
                "Dedup lookups that found the action already processed",
            ),
            dedup_records: counter(meter, "action_dedup_records_total", "{record}", "Dedup records written"),
            dedup_cleanup_deleted: counter(
                meter,
                "action_dedup_cleanup_deleted_total",
                "{record}",
                "Expired dedup records deleted",
            ),
            published: counter(meter, "event_bus_published_total", "{event}", "Events published"),
            consumed: counter(
                meter,
                "event_bus_consumed_total",
                "{event}",
                "Completion events delivered to WaitForCompletion callers",
            ),
            timeouts: counter(
                meter,
                "event_bus_timeout_total",
                "{wait}",
                "Waits that ended without their event",
            ),
            wait_time_ms: histogram(
                meter,
                "event_bus_wait_time_ms",
                "Time WaitForCompletion and GetProjection(min_version) waited",
                WAIT_BUCKETS_MS,
            ),
            _gauges: gauges,
        }
    }

    /// Creates every labelless series at zero so rates and alerts see them before the
    /// first event (the usual Prometheus practice for counters).
    pub fn initialise(&self) {
        for counter in [
            &self.get_state,
            &self.get_state_errors,
            &self.wm_regressions,
            &self.duplicate_events_skipped,
            &self.projections_failed,
            &self.events_dead_lettered,
            &self.dedup_cleanup_deleted,
            &self.projections_materialized,
        ] {
            counter.add(0, &[]);
        }
    }

    /// Creates the labelled counters at zero for every declared workflow type in every
    /// namespace with a label of its own, and the event bus counters for every event type,
    /// so the runbook's rates read 0 instead of "no data" before the first action.
    pub fn initialise_labelled(&self, workflow_types: &[&str], namespaces: &[String]) {
        for workflow_type in workflow_types {
            for namespace in namespaces {
                let labels = workflow_labels(workflow_type, namespace);
                for counter in [
                    &self.state_commits,
                    &self.state_conflicts,
                    &self.successful_actions,
                    &self.failed_actions,
                    &self.conflict_attempts,
                    &self.gave_up,
                    &self.dedup_checks,
                    &self.dedup_hits,
                    &self.dedup_records,
                ] {
                    counter.add(0, &labels);
                }
            }
        }
        for event_type in ["StateCommitted", "ReducerGaveUp", "IntentEmitted"] {
            self.published.add(0, &event_labels(event_type));
        }
        let completion = event_labels(COMPLETION_EVENT);
        self.consumed.add(0, &completion);
        self.timeouts.add(0, &completion);
        if let Ok(mut zero) = ZERO_HISTOGRAMS.lock() {
            let pairs: Vec<Vec<(&'static str, String)>> = workflow_types
                .iter()
                .flat_map(|t| {
                    namespaces
                        .iter()
                        .map(move |n| vec![("namespace", namespace_label(n)), ("workflow_type", (*t).to_owned())])
                })
                .collect();
            *zero = vec![
                ZeroHistogram::new("canonical_store_commit_latency_ms", LATENCY_BUCKETS_MS, pairs.clone()),
                ZeroHistogram::new("reducer_backoff_ms", BACKOFF_BUCKETS_MS, pairs),
                ZeroHistogram::new(
                    "event_bus_wait_time_ms",
                    WAIT_BUCKETS_MS,
                    vec![vec![("event_type", COMPLETION_EVENT.to_owned())]],
                ),
                ZeroHistogram::new("projection_materializer_lag_ms", LAG_BUCKETS_MS, vec![Vec::new()]),
            ];
        }
    }

    /// The materializer found nothing waiting: the watermark lag is 0 until it applies
    /// something again (the gauge would otherwise keep the last batch's lag while idle).
    pub fn materializer_idle(&self) {
        self.lag.last_ms.store(0, Ordering::Relaxed);
    }

    /// Records events applied to projections, with the commit time each carried.
    pub fn record_applied(&self, commit_times_ms: &[i64]) {
        if commit_times_ms.is_empty() {
            return;
        }
        let now = crate::convert::now_ms();
        for committed in commit_times_ms {
            let lag = (now - committed).max(0) as u64;
            self.lag_ms.record(lag as f64, &[]);
            self.lag.last_ms.store(lag, Ordering::Relaxed);
            self.lag.max_ms.fetch_max(lag, Ordering::Relaxed);
        }
        self.projections_materialized.add(commit_times_ms.len() as u64, &[]);
        if let Ok(mut window) = self.lag.applied.lock() {
            window.push_back((Instant::now(), commit_times_ms.len() as u64));
        }
    }
}

/// The event type label of a WaitForCompletion outcome.
pub const COMPLETION_EVENT: &str = "ActionCompleted";

/// A histogram exported at zero until it has observations of its own: OpenTelemetry exports
/// a histogram only once something was recorded, but the runbook's quantiles and the
/// dashboard need its series from the start.
#[derive(Debug, Clone)]
pub struct ZeroHistogram {
    name: &'static str,
    buckets: &'static [f64],
    label_sets: Vec<Vec<(&'static str, String)>>,
}

impl ZeroHistogram {
    fn new(name: &'static str, buckets: &'static [f64], label_sets: Vec<Vec<(&'static str, String)>>) -> Self {
        Self {
            name,
            buckets,
            label_sets,
        }
    }
}

static ZERO_HISTOGRAMS: Mutex<Vec<ZeroHistogram>> = Mutex::new(Vec::new());

/// Adds to `families` a zero series for each label set of the known histograms that has
/// none yet (see [`ZeroHistogram`]).
pub fn add_zero_histograms(families: &mut Vec<prometheus::proto::MetricFamily>) {
    use prometheus::proto::{Bucket, Histogram, LabelPair, Metric, MetricFamily, MetricType};
    let Ok(zero) = ZERO_HISTOGRAMS.lock() else {
        return;
    };
    for histogram in zero.iter() {
        let index = match families.iter().position(|f| f.name() == histogram.name) {
            Some(index) => index,
            None => {
                let mut family = MetricFamily::default();
                family.set_name(histogram.name.to_owned());
                family.set_help(format!("{} (no observations yet)", histogram.name));
                family.set_field_type(MetricType::HISTOGRAM);
                families.push(family);
                families.len() - 1
            }
        };
        let family = &mut families[index];
        for labels in &histogram.label_sets {
            let present = family.get_metric().iter().any(|metric| {
                labels.iter().all(|(name, value)| {
                    metric
                        .get_label()
                        .iter()
                        .any(|pair| pair.name() == *name && pair.value() == value)
                })
            });
            if present {
                continue;
            }
            let mut metric = Metric::default();
            metric.set_label(
                labels
                    .iter()
                    .map(|(name, value)| {
                        let mut pair = LabelPair::default();
                        pair.set_name((*name).to_owned());
                        pair.set_value(value.clone());
                        pair
                    })
                    .collect(),
            );
            let mut zeroes = Histogram::default();
            zeroes.set_bucket(
                histogram
                    .buckets
                    .iter()
                    .map(|bound| {
                        let mut bucket = Bucket::default();
                        bucket.set_upper_bound(*bound);
                        bucket
                    })
                    .collect(),
            );
            metric.set_histogram(zeroes);
            family.mut_metric().push(metric);
        }
    }
}

/// Which namespaces get a `namespace` label of their own (see [`limit_namespace_labels`]).
#[derive(Debug)]
struct NamespaceLabels {
    configured: std::collections::BTreeSet<String>,
    seen: std::collections::BTreeSet<String>,
    max_seen: usize,
}

static NAMESPACE_LABELS: Mutex<Option<NamespaceLabels>> = Mutex::new(None);

/// The label value of namespaces beyond the limit.
pub const OTHER_NAMESPACE: &str = "other";

/// Gives `configured` namespaces their own label, and the first `max_seen` others that show
/// up; every later one is counted as [`OTHER_NAMESPACE`]. Until this is called the limits
/// are the defaults (`default`, and 50 others).
pub fn limit_namespace_labels(configured: &[String], max_seen: usize) {
    let mut labels = NAMESPACE_LABELS.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    *labels = Some(NamespaceLabels {
        configured: configured.iter().cloned().collect(),
        seen: std::collections::BTreeSet::new(),
        max_seen,
    });
}

/// The `namespace` label value for `namespace`.
pub fn namespace_label(namespace: &str) -> String {
    let mut labels = NAMESPACE_LABELS.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let labels = labels.get_or_insert_with(|| NamespaceLabels {
        configured: std::iter::once("default".to_owned()).collect(),
        seen: std::collections::BTreeSet::new(),
        max_seen: 50,
    });
    if labels.configured.contains(namespace) || labels.seen.contains(namespace) {
        return namespace.to_owned();
    }
    if labels.seen.len() < labels.max_seen {
        labels.seen.insert(namespace.to_owned());
        return namespace.to_owned();
    }
    OTHER_NAMESPACE.to_owned()
}

/// `workflow_type` and `namespace` labels.
pub fn workflow_labels(workflow_type: &str, namespace: &str) -> [KeyValue; 2] {
    [
        KeyValue::new("workflow_type", workflow_type.to_owned()),
        KeyValue::new("namespace", namespace_label(namespace)),
    ]
}

/// The `event_type` label.
pub fn event_labels(event_type: &str) -> [KeyValue; 1] {
    [KeyValue::new("event_type", event_type.to_owned())]
}

/// Milliseconds since `start`, as a histogram value.
pub fn elapsed_ms(start: Instant) -> f64 {
    start.elapsed().as_secs_f64() * 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespaces_beyond_the_limit_share_one_label() {
        limit_namespace_labels(&["default".to_owned(), "billing".to_owned()], 2);
        assert_eq!(namespace_label("default"), "default");
        assert_eq!(namespace_label("a"), "a");
        assert_eq!(namespace_label("b"), "b");
        assert_eq!(namespace_label("c"), OTHER_NAMESPACE);
        assert_eq!(namespace_label("a"), "a", "a namespace keeps the label it got");
        assert_eq!(
            namespace_label("billing"),
            "billing",
            "configured ones are never folded"
        );
        let many: std::collections::BTreeSet<String> =
            (0..10_000).map(|i| namespace_label(&format!("tenant-{i}"))).collect();
        assert_eq!(many, std::iter::once(OTHER_NAMESPACE.to_owned()).collect());
    }
}
