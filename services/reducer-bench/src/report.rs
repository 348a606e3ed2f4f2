//! The results of one run: a human-readable block, and one JSON object per run appended to a
//! file for plotting.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use purereducer_api::v1::ActionStatus;
use serde::Serialize;

use crate::cli::Plan;
use crate::lag::LagResult;
use crate::machine::Memory;
use crate::stats::{Percentiles, Tally};

/// The statuses every report lists, zero or not, in this order.
const STATUSES: [&str; 4] = ["COMMITTED", "DUPLICATE", "REJECTED", "GAVE_UP"];

/// What a run measured, gathered before it is summarised.
#[derive(Debug)]
pub struct Measured {
    /// Everything the callers recorded inside the window.
    pub tally: Tally,
    /// Length of the measured window.
    pub window: Duration,
    /// Open-loop slots that fell due inside the run but were never sent.
    pub schedule_missed: Option<u64>,
    /// The Subscribe stream's findings, with --lag subscribe.
    pub lag: Option<LagResult>,
    /// The server's memory before the first action, with --server-pid.
    pub memory_at_start: Option<Memory>,
    /// The server's memory at the end, with --server-pid.
    pub memory: Option<Result<Memory, String>>,
    /// The baseline's actions per second, with --pg-url.
    pub pg_limit: Option<Result<f64, String>>,
    /// Whether Ctrl-C cut the run short.
    pub interrupted: bool,
}

/// One run, as the JSON record carries it.
#[derive(Debug, Serialize)]
pub struct Report<'a> {
    /// `--label`.
    pub label: &'a str,
    /// When the run ended, seconds since the Unix epoch.
    pub unix_time: u64,
    /// Every parameter of the run.
    pub params: &'a Plan,
    /// Ctrl-C cut the run short.
    pub interrupted: bool,
    /// Seconds of the measured window.
    pub window_s: f64,
    /// Actions that got a status back inside the window.
    pub completed: u64,
    /// Completed actions per second.
    pub throughput: f64,
    /// COMMITTED actions per second.
    pub committed_per_s: f64,
    /// Completed actions by status.
    pub statuses: BTreeMap<String, u64>,
    /// GAVE_UP as a share of completed actions (0-1).
    pub gave_up_share: f64,
    /// Failed RPCs by gRPC code ("timeout" for the bench's own deadline).
    pub errors: BTreeMap<String, u64>,
    /// Latency of completed actions (open loop: from the scheduled send time).
    pub latency_ms: Percentiles,
    /// Conflict retries: sum of attempts - 1 over HandleAction responses.
    pub retries: u64,
    /// HandleAction responses that took more than one attempt.
    pub retried_responses: u64,
    /// Open-loop slots never sent because every caller was busy until the end.
    pub schedule_missed: Option<u64>,
    /// Commit-to-projection lag, with --lag subscribe.
    pub lag_ms: Option<Percentiles>,
    /// Times the lag subscriber was dropped for falling behind.
    pub lag_resubscribed: Option<u64>,
    /// Why the lag stream ended early.
    pub lag_error: Option<String>,
    /// Server resident memory before the first action, in MB.
    pub rss_start_mb: Option<f64>,
    /// Server resident memory at the end, in MB.
    pub rss_mb: Option<f64>,
    /// Server peak resident memory, in MB.
    pub peak_rss_mb: Option<f64>,
    /// Why the memory could not be read.
    pub rss_error: Option<String>,
    /// The machine's PostgreSQL limit measured after the run, actions per second.
    pub pg_limit_tps: Option<f64>,
    /// Why the baseline could not be measured.
    pub pg_limit_error: Option<String>,
    /// throughput / pg_limit_tps.
    pub throughput_ratio: Option<f64>,
    /// committed_per_s / pg_limit_tps.
    pub committed_ratio: Option<f64>,
}

impl<'a> Report<'a> {
    /// Summarises `measured` for `plan`.
    pub fn new(plan: &'a Plan, measured: Measured) -> Self {
        let Measured {
            tally,
            window,
            schedule_missed,
            lag,
            memory_at_start,
            memory,
            pg_limit,
            interrupted,
        } = measured;
        let seconds = window.as_secs_f64();
        let per_second = |n: u64| if seconds > 0.0 { n as f64 / seconds } else { 0.0 };
        let completed = tally.completed();
        let throughput = per_second(completed);
        let committed_per_s = per_second(tally.count(ActionStatus::Committed));
        let gave_up = tally.count(ActionStatus::GaveUp);
        let mut statuses = tally.statuses.clone();
        for status in STATUSES {
            statuses.entry(status.to_owned()).or_default();
        }
        let pg_limit_tps = pg_limit.as_ref().and_then(|r| r.as_ref().ok().copied());
        let ratio = |value: f64| pg_limit_tps.filter(|&tps| tps > 0.0).map(|tps| value / tps);
        let (lag_ms, lag_resubscribed, lag_error) = match lag {
            Some(lag) => (
                Some(Percentiles::of_micros(lag.samples_us)),
                Some(lag.resubscribed),
                lag.error,
            ),
            None => (None, None, None),
        };
        Self {
            label: &plan.label,
            unix_time: SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()),
            params: plan,
            interrupted,
            window_s: seconds,
            completed,
            throughput,
            committed_per_s,
            statuses,
            gave_up_share: if completed > 0 {
                gave_up as f64 / completed as f64
            } else {
                0.0
            },
            errors: tally.errors,
            latency_ms: Percentiles::of_micros(tally.latencies_us),
            retries: tally.retries,
            retried_responses: tally.retried_responses,
            schedule_missed,
            lag_ms,
            lag_resubscribed,
            lag_error,
            rss_start_mb: memory_at_start.map(|m| m.rss_mb),
            rss_mb: memory.as_ref().and_then(|m| m.as_ref().ok()).map(|m| m.rss_mb),
            peak_rss_mb: memory.as_ref().and_then(|m| m.as_ref().ok()).map(|m| m.peak_mb),
            rss_error: memory.and_then(Result::err),
            pg_limit_tps,
            pg_limit_error: pg_limit.and_then(Result::err),
            throughput_ratio: ratio(throughput),
            committed_ratio: ratio(committed_per_s),
        }
    }

    /// The human-readable block.
    pub fn text(&self) -> String {
        let plan = self.params;
        let mut out = String::new();
        let loop_kind = match plan.rate {
            Some(rate) => format!("open loop at {rate:.0}/s"),
            None => "closed loop".to_owned(),
        };
        let keys = match plan.dist {
            crate::cli::Dist::Zipf => format!("zipf s={} over {} keys", plan.zipf_s, plan.keys),
            dist => format!("{} over {} keys", format!("{dist:?}").to_lowercase(), plan.keys),
        };
        let _ = writeln!(
            out,
            "reducer-bench{} {} via {} | {} clients on {} channels | {keys} | {loop_kind}",
            if plan.label.is_empty() {
                String::new()
            } else {
                format!(" [{}]", plan.label)
            },
            format!("{:?}", plan.mode).to_lowercase(),
            plan.target,
            plan.clients,
            plan.channels,
        );
        let _ = writeln!(
            out,
            "  window          {:.1} s after {:.1} s warm-up, keys {}-*{}",
            self.window_s,
            plan.warmup_s,
            plan.key_prefix,
            if self.interrupted { " (interrupted)" } else { "" }
        );
        let vs_limit = |ratio: Option<f64>| match (ratio, self.pg_limit_tps) {
            (Some(ratio), Some(tps)) => format!("  = {ratio:.2} x pg-limit {tps:.1}"),
            _ => String::new(),
        };
        let _ = writeln!(
            out,
            "  throughput      {:.1} actions/s{}",
            self.throughput,
            vs_limit(self.throughput_ratio)
        );
        let _ = writeln!(
            out,
            "  committed       {:.1} /s{}",
            self.committed_per_s,
            vs_limit(self.committed_ratio)
        );
        let statuses: Vec<String> = STATUSES
            .iter()
            .map(|s| format!("{s} {}", self.statuses.get(*s).copied().unwrap_or(0)))
            .collect();
        let _ = writeln!(
            out,
            "  statuses        {}  (GAVE_UP {:.2}%)",
            statuses.join("  "),
            self.gave_up_share * 100.0
        );
        let errors: Vec<String> = self.errors.iter().map(|(code, n)| format!("{code} {n}")).collect();
        let _ = writeln!(
            out,
            "  errors          {}",
            if errors.is_empty() {
                "none".to_owned()
            } else {
                errors.join("  ")
            }
        );
        let _ = writeln!(out, "  latency ms      {}", percentiles(&self.latency_ms));
        if plan.mode == crate::cli::Mode::Handle {
            let _ = writeln!(
                out,
                "  conflicts       {} retries over {} responses with attempts > 1",
                self.retries, self.retried_responses
            );
        }
        if let Some(missed) = self.schedule_missed {
            let _ = writeln!(
                out,
                "  schedule        {missed} due sends never started (all callers busy)"
            );
        }
        if let Some(lag) = &self.lag_ms {
            let _ = writeln!(out, "  commit->proj ms {}", percentiles(lag));
        }
        if let Some(error) = &self.lag_error {
            let _ = writeln!(out, "  lag stream      {error}");
        }
        match (self.rss_mb, self.peak_rss_mb, &self.rss_error) {
            (Some(rss), Some(peak), _) => {
                let start = self
                    .rss_start_mb
                    .map_or(String::new(), |mb| format!(", {mb:.1} MB at start"));
                let _ = writeln!(out, "  server RSS      {rss:.1} MB (peak {peak:.1} MB{start})");
            }
            (_, _, Some(error)) => {
                let _ = writeln!(out, "  server RSS      {error}");
            }
            _ => {}
        }
        if let Some(pg) = &plan.pg_limit {
            let found = match (self.pg_limit_tps, &self.pg_limit_error) {
                (Some(tps), _) => format!("{tps:.1} tps"),
                (None, Some(error)) => error.clone(),
                (None, None) => "not run".to_owned(),
            };
            let _ = writeln!(
                out,
                "  pg-limit        {found} ({} clients, {} keys, {} s)",
                pg.clients, pg.keys, pg.seconds
            );
        }
        out
    }

    /// Appends this run as one JSON line to `path`.
    pub fn append_json(&self, path: &Path) -> anyhow::Result<()> {
        let mut line = serde_json::to_string(self)?;
        line.push('\n');
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .and_then(|mut file| file.write_all(line.as_bytes()))
            .with_context(|| format!("cannot append to {}", path.display()))
    }
}

fn percentiles(p: &Percentiles) -> String {
    format!(
        "p50 {:.2}  p95 {:.2}  p99 {:.2}  max {:.2}  ({} samples)",
        p.p50, p.p95, p.p99, p.max, p.samples
    )
}
