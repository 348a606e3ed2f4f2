//! Limits that protect the server from its callers: a rate per namespace for writes, and a
//! bound on calls in flight beyond which new calls are shed at once instead of queueing for
//! database connections. Both answer RESOURCE_EXHAUSTED with a `google.rpc.RetryInfo`
//! telling the caller when to try again.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use serde::Deserialize;
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

/// `[limits]`
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Writes (HandleAction, PublishAction, TryCommit) per second per namespace; 0 is no limit.
    pub namespace_rps: u32,
    /// Writes a namespace may make at once after being idle; `namespace_rps` when 0.
    pub namespace_burst: u32,
    /// Calls being served at once; beyond it new calls are refused at once (0: no bound).
    pub max_in_flight: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            namespace_rps: 0,
            namespace_burst: 0,
            max_in_flight: 4096,
        }
    }
}

/// Namespaces tracked before idle ones are forgotten.
const TRACKED_NAMESPACES: usize = 10_000;

/// The per-namespace write rate.
#[derive(Debug, Clone)]
pub struct NamespaceRate {
    limiter: Option<Arc<DefaultKeyedRateLimiter<String>>>,
}

impl NamespaceRate {
    /// The rate `config` asks for (none when `namespace_rps` is 0).
    pub fn new(config: &LimitsConfig) -> Self {
        let limiter = NonZeroU32::new(config.namespace_rps).map(|rps| {
            let burst = NonZeroU32::new(config.namespace_burst).unwrap_or(rps);
            Arc::new(RateLimiter::keyed(Quota::per_second(rps).allow_burst(burst)))
        });
        Self { limiter }
    }

    /// RESOURCE_EXHAUSTED when `namespace` is over its rate.
    pub fn check(&self, namespace: &str) -> Result<(), Status> {
        let Some(limiter) = &self.limiter else {
            return Ok(());
        };
        if limiter.len() > TRACKED_NAMESPACES {
            limiter.retain_recent();
        }
        match limiter.check_key(&namespace.to_owned()) {
            Ok(()) => Ok(()),
            Err(not_until) => {
                let wait = not_until.wait_time_from(DefaultClock::default().now());
                Err(exhausted(
                    format!(
                        "namespace '{namespace}' is over its write rate (limits.namespace_rps); retry after the delay in RetryInfo"
                    ),
                    wait,
                ))
            }
        }
    }
}

/// RESOURCE_EXHAUSTED carrying a `RetryInfo` of `retry_after`.
pub fn exhausted(message: String, retry_after: Duration) -> Status {
    let mut details = ErrorDetails::new();
    details.set_retry_info(Some(retry_after.max(Duration::from_millis(1))));
    Status::with_error_details(Code::ResourceExhausted, message, details)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_namespace_over_its_rate_is_told_when_to_retry_and_others_are_not_affected() {
        let rate = NamespaceRate::new(&LimitsConfig {
            namespace_rps: 1,
            namespace_burst: 3,
            max_in_flight: 0,
        });
        for _ in 0..3 {
            rate.check("busy").expect("within the burst");
        }
        let refused = rate.check("busy").expect_err("over the rate");
        assert_eq!(refused.code(), Code::ResourceExhausted);
        let retry = refused.get_details_retry_info().expect("RetryInfo");
        let delay = retry.retry_delay.expect("a delay");
        assert!(delay > Duration::ZERO && delay <= Duration::from_secs(1), "{delay:?}");
        rate.check("quiet").expect("another namespace has its own budget");
        NamespaceRate::new(&LimitsConfig::default())
            .check("any")
            .expect("no limit by default");
    }
}
