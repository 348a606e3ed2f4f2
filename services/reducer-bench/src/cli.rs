//! Command-line flags, validated into a [`Plan`] once at start-up.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::ensure;
use clap::{Parser, ValueEnum};
use serde::Serialize;

/// Where the machine-limit script lives unless `--pg-limit` or `PG_LIMIT` says otherwise:
/// `../shared/bench/pg-limit` beside the repository this binary was built from.
const DEFAULT_PG_LIMIT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/bench/pg-limit");

/// Measured seconds when neither --duration nor --actions is given.
const DEFAULT_DURATION_S: f64 = 10.0;

/// The most pgbench clients the baseline uses unless told otherwise.
const PG_LIMIT_MAX_CLIENTS: usize = 32;

/// Drives a running reducerd over gRPC as users would, and reports throughput, latency,
/// conflicts and projection lag, optionally beside this machine's PostgreSQL limit.
#[derive(Debug, Parser)]
#[command(name = "reducer-bench", version)]
pub struct Cli {
    /// gRPC address of the reducerd under test.
    #[arg(long, default_value = "http://127.0.0.1:50051")]
    pub target: String,
    /// Concurrent callers, each its own task.
    #[arg(long, default_value_t = 16)]
    pub clients: usize,
    /// Callers sharing one HTTP/2 connection.
    #[arg(long, default_value_t = 8)]
    pub clients_per_channel: usize,
    /// Measured seconds after the warm-up [default: 10, or no limit with --actions].
    #[arg(long)]
    pub duration: Option<f64>,
    /// Seconds at the start whose results are left out of the figures.
    #[arg(long, default_value_t = 1.0)]
    pub warmup: f64,
    /// Stop after sending this many actions in total, warm-up included (and after --duration
    /// if that is given too).
    #[arg(long)]
    pub actions: Option<u64>,
    /// Which workflow key each action goes to.
    #[arg(long, value_enum, default_value_t = Dist::Uniform)]
    pub dist: Dist,
    /// Number of distinct workflow keys.
    #[arg(long, default_value_t = 10_000)]
    pub keys: u64,
    /// Exponent of the Zipf distribution (0 is uniform; larger is more skewed).
    #[arg(long, default_value_t = 1.0)]
    pub zipf_s: f64,
    /// Prefix of every workflow key; a fresh run id by default, so runs never share keys.
    #[arg(long)]
    pub key_prefix: Option<String>,
    /// Which entry point the actions go through.
    #[arg(long, value_enum, default_value_t = Mode::Handle)]
    pub mode: Mode,
    /// Open loop: send this many actions per second in total on a fixed schedule; latency
    /// counts from the scheduled send time, and sends still due when every caller was busy
    /// until the end are reported as never started. Closed loop when absent.
    #[arg(long)]
    pub rate: Option<f64>,
    /// How to measure the commit-to-projection lag.
    #[arg(long, value_enum, default_value_t = Lag::None)]
    pub lag: Lag,
    /// Longest wait for one RPC before it counts as a timeout.
    #[arg(long, default_value_t = 10_000)]
    pub timeout_ms: u64,
    /// Seed of the key choice, for repeatable key sequences.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Process id of the reducerd under test, to read its resident memory at the end.
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// PostgreSQL URL for the machine-limit baseline run after the measurement.
    #[arg(long)]
    pub pg_url: Option<String>,
    /// The machine-limit script.
    #[arg(long, env = "PG_LIMIT", default_value = DEFAULT_PG_LIMIT)]
    pub pg_limit: PathBuf,
    /// pgbench clients of the baseline (default: --clients, at most 32).
    #[arg(long)]
    pub pg_limit_clients: Option<usize>,
    /// Keys of the baseline (default: --keys, or 1 with --dist hot).
    #[arg(long)]
    pub pg_limit_keys: Option<u64>,
    /// Seconds of the baseline (default: --duration, at least 1).
    #[arg(long)]
    pub pg_limit_seconds: Option<u64>,
    /// Append one JSON object with every parameter and result to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Free text stored with the JSON record, for example "before" or a commit id.
    #[arg(long, default_value = "")]
    pub label: String,
}

/// How workflow keys are chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Dist {
    /// Every key equally likely.
    Uniform,
    /// Key of rank k with weight 1/k^s.
    Zipf,
    /// Every action on one key.
    Hot,
    /// Each action on the next key, round-robin over all keys.
    Sequential,
}

/// Which RPCs carry an action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// `ReducerService/HandleAction`.
    Handle,
    /// `EventBusService/PublishAction`, then `WaitForCompletion`.
    Publish,
}

/// How the commit-to-projection lag is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Lag {
    /// Not measured.
    None,
    /// `EventBusService/Subscribe`: receive time minus the event's `committed_at`.
    Subscribe,
}

/// The machine-limit run that follows the measurement.
#[derive(Debug, Clone, Serialize)]
pub struct PgLimitPlan {
    /// PostgreSQL URL the script runs against.
    #[serde(skip)]
    pub url: String,
    /// The script.
    pub script: PathBuf,
    /// pgbench clients.
    pub clients: usize,
    /// Keys the baseline spreads its actions over.
    pub keys: u64,
    /// Seconds of pgbench.
    pub seconds: u64,
}

/// Everything a run does, checked: what the JSON record carries as parameters.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    /// gRPC address.
    pub target: String,
    /// Concurrent callers.
    pub clients: usize,
    /// HTTP/2 connections the callers share.
    pub channels: usize,
    /// Measured seconds (None: until the action count is sent).
    pub duration_s: Option<f64>,
    /// Seconds left out at the start.
    pub warmup_s: f64,
    /// Total actions to send (None: until the duration ends).
    pub actions: Option<u64>,
    /// Key distribution.
    pub dist: Dist,
    /// Distinct keys.
    pub keys: u64,
    /// Zipf exponent (meaningful with `dist = zipf`).
    pub zipf_s: f64,
    /// Prefix of every key of this run.
    pub key_prefix: String,
    /// Entry point.
    pub mode: Mode,
    /// Open-loop rate in actions per second; None for closed loop.
    pub rate: Option<f64>,
    /// Lag measurement.
    pub lag: Lag,
    /// Per-RPC timeout.
    #[serde(rename = "timeout_ms", serialize_with = "as_millis")]
    pub timeout: Duration,
    /// Seed of the key choice.
    pub seed: Option<u64>,
    /// Server process whose memory is read at the end.
    pub server_pid: Option<u32>,
    /// Baseline run, when a PostgreSQL URL was given.
    pub pg_limit: Option<PgLimitPlan>,
    /// File the JSON record is appended to.
    #[serde(skip)]
    pub json: Option<PathBuf>,
    /// Free text for the JSON record (at its top level).
    #[serde(skip)]
    pub label: String,
}

fn as_millis<S: serde::Serializer>(value: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_u64(u64::try_from(value.as_millis()).unwrap_or(u64::MAX))
}

impl Cli {
    /// Checks the flags and fills in the defaults that depend on other flags.
    pub fn plan(self) -> anyhow::Result<Plan> {
        ensure!(self.clients > 0, "--clients must be at least 1");
        ensure!(self.clients_per_channel > 0, "--clients-per-channel must be at least 1");
        ensure!(self.keys > 0, "--keys must be at least 1");
        ensure!(self.timeout_ms > 0, "--timeout-ms must be at least 1");
        ensure!(
            self.warmup >= 0.0 && self.warmup.is_finite(),
            "--warmup must be 0 or more seconds"
        );
        ensure!(
            self.zipf_s >= 0.0 && self.zipf_s.is_finite(),
            "--zipf-s must be 0 or more"
        );
        if let Some(rate) = self.rate {
            ensure!(
                rate > 0.0 && rate.is_finite(),
                "--rate must be a positive number of actions per second"
            );
        }
        ensure!(self.actions != Some(0), "--actions must be at least 1");
        let duration_s = match (self.duration, self.actions) {
            (Some(seconds), _) => {
                ensure!(seconds > 0.0 && seconds.is_finite(), "--duration must be positive");
                Some(seconds)
            }
            (None, None) => Some(DEFAULT_DURATION_S),
            (None, Some(_)) => None,
        };
        let keys = if self.dist == Dist::Hot { 1 } else { self.keys };
        let key_prefix = match self.key_prefix {
            Some(prefix) => prefix,
            None => format!("bench-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]),
        };
        ensure!(
            !key_prefix.is_empty()
                && key_prefix
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._:/@-".contains(c)),
            "--key-prefix may use only [A-Za-z0-9._:/@-]"
        );
        let pg_limit = self.pg_url.map(|url| PgLimitPlan {
            url,
            script: self.pg_limit,
            clients: self.pg_limit_clients.unwrap_or(self.clients.min(PG_LIMIT_MAX_CLIENTS)),
            keys: self.pg_limit_keys.unwrap_or(keys),
            seconds: self
                .pg_limit_seconds
                .unwrap_or_else(|| duration_s.unwrap_or(DEFAULT_DURATION_S).round().max(1.0) as u64),
        });
        Ok(Plan {
            target: self.target,
            clients: self.clients,
            channels: self.clients.div_ceil(self.clients_per_channel),
            duration_s,
            warmup_s: self.warmup,
            actions: self.actions,
            dist: self.dist,
            keys,
            zipf_s: self.zipf_s,
            key_prefix,
            mode: self.mode,
            rate: self.rate,
            lag: self.lag,
            timeout: Duration::from_millis(self.timeout_ms),
            seed: self.seed,
            server_pid: self.server_pid,
            pg_limit,
            json: self.json,
            label: self.label,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(args: &[&str]) -> anyhow::Result<Plan> {
        Cli::try_parse_from(std::iter::once("reducer-bench").chain(args.iter().copied()))?.plan()
    }

    #[test]
    fn hot_key_means_one_key_for_the_run_and_the_baseline() {
        let plan = plan(&["--dist", "hot", "--keys", "500", "--pg-url", "postgres://x"]).unwrap();
        assert_eq!(plan.keys, 1);
        assert_eq!(plan.pg_limit.unwrap().keys, 1);
    }

    #[test]
    fn baseline_clients_default_to_the_callers_capped_at_32() {
        let plan = plan(&["--clients", "64", "--pg-url", "postgres://x"]).unwrap();
        assert_eq!(plan.pg_limit.unwrap().clients, 32);
        assert_eq!(plan.channels, 8);
    }

    #[test]
    fn bad_prefix_and_zero_counts_are_refused() {
        assert!(plan(&["--key-prefix", "no spaces"]).is_err());
        assert!(plan(&["--clients", "0"]).is_err());
        assert!(plan(&["--actions", "0"]).is_err());
        assert!(plan(&["--rate", "0"]).is_err());
    }

    #[test]
    fn an_action_count_alone_runs_until_it_is_sent() {
        assert_eq!(plan(&[]).unwrap().duration_s, Some(10.0));
        let counted = plan(&["--actions", "100"]).unwrap();
        assert_eq!((counted.actions, counted.duration_s), (Some(100), None));
        let capped = plan(&["--actions", "100", "--duration", "3"]).unwrap();
        assert_eq!((capped.actions, capped.duration_s), (Some(100), Some(3.0)));
    }
}
