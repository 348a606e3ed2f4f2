//! The conflict retry policy: bounded attempts with full-jitter exponential backoff.

use std::time::Duration;

/// How often and how patiently a version conflict is retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Reduce-and-commit attempts before giving up (at least 1).
    pub max_attempts: u32,
    /// Backoff ceiling after the first conflict, in milliseconds.
    pub backoff_base_ms: u64,
    /// Largest backoff ceiling, in milliseconds.
    pub backoff_cap_ms: u64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            backoff_base_ms: 10,
            backoff_cap_ms: 250,
        }
    }
}

impl RetryPolicy {
    /// The upper bound of the wait after the `conflicts`-th conflict (1-based):
    /// `min(cap, base * 2^(conflicts-1))`.
    pub fn ceiling_ms(&self, conflicts: u32) -> u64 {
        let exponent = conflicts.saturating_sub(1).min(32);
        self.backoff_base_ms
            .saturating_mul(1u64 << exponent)
            .min(self.backoff_cap_ms)
    }

    /// Full jitter: a wait drawn uniformly from `[0, ceiling]`. `unit` is a random number in
    /// `[0, 1)` supplied by the caller, which keeps this function pure.
    pub fn backoff(&self, conflicts: u32, unit: f64) -> Duration {
        let ceiling = self.ceiling_ms(conflicts) as f64;
        let unit = unit.clamp(0.0, 1.0);
        Duration::from_micros((ceiling * unit * 1000.0) as u64)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn ceiling_doubles_up_to_the_cap() {
        let policy = RetryPolicy::default();
        assert_eq!(policy.ceiling_ms(1), 10);
        assert_eq!(policy.ceiling_ms(2), 20);
        assert_eq!(policy.ceiling_ms(5), 160);
        assert_eq!(policy.ceiling_ms(6), 250);
        assert_eq!(policy.ceiling_ms(1000), 250);
    }

    proptest! {
        #[test]
        fn backoff_stays_within_zero_and_the_ceiling(
            base in 0u64..1000, cap in 0u64..10_000, conflicts in 0u32..100, unit in 0.0f64..1.0,
        ) {
            let policy = RetryPolicy { max_attempts: 3, backoff_base_ms: base, backoff_cap_ms: cap };
            let wait = policy.backoff(conflicts, unit);
            prop_assert!(wait <= Duration::from_millis(policy.ceiling_ms(conflicts)));
            prop_assert!(policy.ceiling_ms(conflicts) <= cap);
        }
    }
}
