//! The runbook's SLA figures from this process's own metrics, since it started: commit
//! latency p95, projection lag p95, conflict rate, success rate and event timeout rate.

use prometheus::proto::{MetricFamily, MetricType};
use serde_json::{Value, json};

fn family<'a>(families: &'a [MetricFamily], name: &str) -> Option<&'a MetricFamily> {
    families.iter().find(|f| f.name() == name)
}

/// The sum of a counter over every label set (0 when it was never exported).
fn total(families: &[MetricFamily], name: &str) -> f64 {
    family(families, name)
        .filter(|f| f.get_field_type() == MetricType::COUNTER)
        .map_or(0.0, |f| {
            f.get_metric().iter().map(|m| m.get_counter().get_value()).sum()
        })
}

/// The `q` quantile of a histogram over every label set, as the upper bound of the bucket
/// that holds it (`None` before the first observation).
fn quantile(families: &[MetricFamily], name: &str, q: f64) -> Option<f64> {
    let family = family(families, name).filter(|f| f.get_field_type() == MetricType::HISTOGRAM)?;
    let mut buckets: Vec<(f64, u64)> = Vec::new();
    let mut count = 0;
    for metric in family.get_metric() {
        let histogram = metric.get_histogram();
        count += histogram.get_sample_count();
        for bucket in histogram.get_bucket() {
            match buckets.iter_mut().find(|(bound, _)| *bound == bucket.upper_bound()) {
                Some((_, n)) => *n += bucket.cumulative_count(),
                None => buckets.push((bucket.upper_bound(), bucket.cumulative_count())),
            }
        }
    }
    if count == 0 {
        return None;
    }
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    let rank = (q * count as f64).ceil() as u64;
    Some(
        buckets
            .iter()
            .find(|(_, n)| *n >= rank)
            .map_or(f64::INFINITY, |(bound, _)| *bound),
    )
}

fn ratio(part: f64, whole: f64) -> Option<f64> {
    (whole > 0.0).then(|| 100.0 * part / whole)
}

fn row(name: &str, value: Option<f64>, unit: &str, target: &str, ok: impl Fn(f64) -> bool) -> Value {
    json!({
        "name": name,
        "value": value.filter(|v| v.is_finite()).map(|v| (v * 100.0).round() / 100.0),
        "unit": unit,
        "target": target,
        "ok": value.is_none_or(ok),
    })
}

/// The SLA table: each figure with its runbook target and whether it meets it (a figure
/// with no data yet meets it).
pub fn sla(registry: &prometheus::Registry) -> Vec<Value> {
    let families = registry.gather();
    let commits = total(&families, "canonical_store_state_commits_total");
    let conflicts = total(&families, "canonical_store_state_conflicts_total");
    let succeeded = total(&families, "reducer_successful_actions_total");
    let failed = total(&families, "reducer_failed_actions_total");
    let consumed = total(&families, "event_bus_consumed_total");
    let timeouts = total(&families, "event_bus_timeout_total");
    vec![
        row(
            "Commit latency (p95)",
            quantile(&families, "canonical_store_commit_latency_ms", 0.95),
            "ms",
            "< 10",
            |v| v < 10.0,
        ),
        row(
            "Projection lag (p95)",
            quantile(&families, "projection_materializer_lag_ms", 0.95),
            "ms",
            "< 100",
            |v| v < 100.0,
        ),
        row(
            "Conflict rate",
            ratio(conflicts, commits + conflicts),
            "%",
            "< 5",
            |v| v < 5.0,
        ),
        row("Success rate", ratio(succeeded, succeeded + failed), "%", "> 95", |v| {
            v > 95.0
        }),
        row(
            "Event timeout rate",
            ratio(timeouts, consumed + timeouts),
            "%",
            "< 1",
            |v| v < 1.0,
        ),
    ]
}
