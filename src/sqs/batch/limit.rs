//! How many `SendMessageBatch` calls may be in flight: adapted to what SQS takes, between
//! 1 and `BRIDGE_BATCH_CONCURRENCY` (AIMD, as Vector's adaptive request concurrency, on
//! the batch calls themselves).
//!
//! - **Grow** while calls leave full and their latency stays near its baseline (the
//!   bridge is limited by its own concurrency, not by SQS): doubling per round trip until
//!   SQS first pushes back (slow start, as TCP's), then by about one call per round trip.
//! - **Shrink** multiplicatively when SQS throttles a call (or an entry), answers a 5xx,
//!   or a call takes well over its baseline; at most once per round trip, so one burst of
//!   answers to calls sent together counts once.
//! - The baseline is a slow moving average of the latency of calls SQS answered
//!   normally: a sudden jump stands out against it, and a region that became slower for
//!   good is followed. (A minimum instead made the bridge's own CPU contention, on a
//!   busy machine, read as SQS slowing down.)

use std::time::{Duration, Instant};

use crate::telemetry::metric;

/// A throttled or failing SQS: 15% less, and at least one call less. Gentler than
/// halving, which at 80 ms per call kept the bridge well below the queue's quota (its
/// sawtooth averaged about three quarters of it: docs/BENCHMARKS.md).
const BACKOFF: f64 = 0.85;
/// A slow SQS: a tenth less.
const SLOWDOWN: f64 = 0.9;
/// A call slower than this many baselines counts as SQS slowing down.
const SLOW: f64 = 2.5;
/// How much of each normal call's latency goes into the baseline.
const ALPHA: f64 = 0.05;
/// Calls this near their baseline may grow the limit.
const NEAR: f64 = 1.5;

/// What a call's answer says about SQS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Signal {
    /// Answered normally, the batch full (10 entries, or its bytes).
    Full,
    /// Answered normally, the batch partial: says nothing about room for more.
    Partial,
    /// Throttled (the call or an entry), or a 5xx.
    Congested,
}

#[derive(Debug)]
pub(super) struct Limit {
    max: usize,
    /// Calls allowed in flight, with the fraction growth adds between whole calls.
    current: f64,
    /// Seconds.
    baseline: Option<f64>,
    last_decrease: Option<Instant>,
    /// No push-back from SQS yet: grow fast.
    slow_start: bool,
    pub in_flight: usize,
}

impl Limit {
    pub fn new(max: usize) -> Self {
        let limit = Self {
            max: max.max(1),
            // Today's default fixed concurrency, a safe start for a fresh SQS.
            current: if max > 1 { 2.0 } else { 1.0 },
            baseline: None,
            last_decrease: None,
            slow_start: true,
            in_flight: 0,
        };
        limit.publish();
        limit
    }

    /// Calls that may be in flight now.
    pub fn allowed(&self) -> usize {
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // 1..=max
        let allowed = self.current.floor() as usize;
        allowed.clamp(1, self.max)
    }

    /// One call ended after `rtt`; `limited`: when it started, the calls in flight
    /// (itself included) had reached the limit, so the limit was what held the bridge back.
    pub fn record(&mut self, rtt: Duration, signal: Signal, limited: bool) {
        let rtt = rtt.as_secs_f64();
        let now = Instant::now();
        if signal == Signal::Congested {
            metrics::counter!(metric::SQS_THROTTLED).increment(1);
            self.decrease(BACKOFF, now);
            self.publish();
            return;
        }
        let baseline = self.baseline.unwrap_or(rtt);
        self.baseline = Some(baseline + (rtt - baseline) * ALPHA);
        if rtt > baseline * SLOW {
            self.decrease(SLOWDOWN, now);
        } else if signal == Signal::Full && rtt <= baseline * NEAR && limited {
            // `allowed` calls end per round trip: one more per call doubles the limit per
            // round trip, 1/limit per call adds about one.
            #[allow(clippy::cast_precision_loss)] // at most 256
            let max = self.max as f64;
            let step = if self.slow_start {
                1.0
            } else {
                1.0 / self.current
            };
            self.current = (self.current + step).min(max);
        }
        self.publish();
    }

    fn decrease(&mut self, factor: f64, now: Instant) {
        let round_trip = Duration::from_secs_f64(self.baseline.unwrap_or(0.0));
        if self
            .last_decrease
            .is_some_and(|at| now.duration_since(at) < round_trip)
        {
            return;
        }
        self.current = (self.current * factor).min(self.current - 1.0).max(1.0);
        self.last_decrease = Some(now);
        self.slow_start = false;
    }

    fn publish(&self) {
        #[allow(clippy::cast_precision_loss)] // at most 256
        metrics::gauge!(metric::SQS_CONCURRENCY_LIMIT).set(self.allowed() as f64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RTT: Duration = Duration::from_millis(20);

    fn saturate(limit: &mut Limit, rounds: usize) {
        for _ in 0..rounds {
            for _ in 0..limit.allowed() {
                limit.record(RTT, Signal::Full, true);
            }
        }
    }

    #[test]
    fn full_calls_near_the_baseline_double_it_per_round_trip_then_add_about_one() {
        let mut limit = Limit::new(64);
        assert_eq!(limit.allowed(), 2);
        saturate(&mut limit, 3);
        assert_eq!(limit.allowed(), 16, "slow start: doubling per round trip");
        limit.record(Duration::from_millis(1), Signal::Congested, true);
        assert_eq!(limit.allowed(), 13);
        std::thread::sleep(RTT);
        saturate(&mut limit, 4);
        assert!((15..=17).contains(&limit.allowed()), "{}", limit.allowed());
        saturate(&mut limit, 200);
        assert_eq!(limit.allowed(), 64);
    }

    #[test]
    fn partial_calls_do_not_grow_it() {
        let mut limit = Limit::new(32);
        for _ in 0..100 {
            limit.record(RTT, Signal::Partial, true);
        }
        assert_eq!(limit.allowed(), 2);
    }

    #[test]
    fn throttling_shrinks_it_once_per_round_trip() {
        let mut limit = Limit::new(32);
        saturate(&mut limit, 100);
        for _ in 0..10 {
            limit.record(Duration::from_millis(1), Signal::Congested, true);
        }
        assert_eq!(
            limit.allowed(),
            27,
            "ten answers to calls sent together count once"
        );
        std::thread::sleep(RTT);
        limit.record(Duration::from_millis(1), Signal::Congested, true);
        assert_eq!(limit.allowed(), 23);
    }

    #[test]
    fn a_latency_jump_shrinks_it_and_it_grows_back() {
        let mut limit = Limit::new(32);
        saturate(&mut limit, 100);
        for _ in 0..20 {
            limit.record(RTT * 5, Signal::Full, true);
            std::thread::sleep(RTT);
        }
        // It shrank while the jump stood out against the baseline, until the baseline
        // followed it.
        let shrunk = limit.allowed();
        assert!(shrunk <= 26, "{shrunk}");
        saturate(&mut limit, 200);
        assert_eq!(limit.allowed(), 32);
    }
}
