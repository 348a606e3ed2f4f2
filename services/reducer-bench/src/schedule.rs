//! The open-loop send schedule: slot n is due at `start + n / rate`, whatever happened to the
//! slots before it. A caller that picks up a slot late still measures latency from the slot's
//! due time, so a slow server cannot hide its queueing delay (no coordinated omission).

use std::time::Duration;

use tokio::time::Instant;

/// Fixed-interval send times shared by every caller of an open-loop run.
#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    /// When slot 0 is due.
    start: Instant,
    /// Slots per second over all callers.
    rate: f64,
}

impl Schedule {
    /// Slots every `1 / rate` seconds from `start`.
    pub fn new(start: Instant, rate: f64) -> Self {
        Self { start, rate }
    }

    /// When slot `n` is due. Computed from `n` directly, so rounding does not drift.
    pub fn due(&self, n: u64) -> Instant {
        self.start + Duration::from_secs_f64(n as f64 / self.rate)
    }

    /// How many slots fall due before `at`.
    pub fn due_before(&self, at: Instant) -> u64 {
        let elapsed = at.saturating_duration_since(self.start).as_secs_f64();
        (elapsed * self.rate).ceil() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_spaced_by_the_inverse_rate_without_drift() {
        let start = Instant::now();
        let schedule = Schedule::new(start, 100.0);
        assert_eq!(schedule.due(0), start);
        assert_eq!(schedule.due(1) - start, Duration::from_millis(10));
        assert_eq!(schedule.due(100) - start, Duration::from_secs(1));
        // A rate whose interval is not a whole number of nanoseconds still lands on the second.
        let third = Schedule::new(start, 3.0);
        let late = third.due(3_000_000) - start;
        assert!(late.abs_diff(Duration::from_secs(1_000_000)) < Duration::from_micros(1));
    }

    #[test]
    fn counts_the_slots_due_in_a_window() {
        let start = Instant::now();
        let schedule = Schedule::new(start, 50.0);
        assert_eq!(schedule.due_before(start), 0);
        assert_eq!(schedule.due_before(start + Duration::from_secs(10)), 500);
        // Slot 0 at the start and slot 1 at 20 ms are both due before 21 ms.
        assert_eq!(schedule.due_before(start + Duration::from_millis(21)), 2);
        assert_eq!(schedule.due_before(start + Duration::from_millis(20)), 1);
    }

    #[test]
    fn a_late_caller_measures_from_the_due_time() {
        let start = Instant::now();
        let schedule = Schedule::new(start, 10.0);
        // Every caller was busy for 1.5 s: slot 5 was due at 0.5 s and is sent at 1.5 s.
        let sent = start + Duration::from_millis(1500);
        let completed = sent + Duration::from_millis(20);
        let latency = completed - schedule.due(5);
        assert_eq!(latency, Duration::from_millis(1020));
        // Meanwhile the schedule kept going: 15 slots were due by the time of the send.
        assert_eq!(schedule.due_before(sent), 15);
    }
}
