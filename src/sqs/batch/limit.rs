//! How many `SendMessageBatch` calls may be in flight: adapted to what SQS takes, between
//! 1 and `BRIDGE_BATCH_CONCURRENCY` (additive increase, multiplicative decrease, as
//! Vector's adaptive request concurrency, on the batch calls themselves; and, when SQS
//! throttles, a decrease to what its quota takes, as BBR sizes a window from the
//! delivery rate and the round trip).
//!
//! - **Grow** while calls leave full and their latency stays near its baseline (the
//!   bridge is limited by its own concurrency, not by SQS): doubling per round trip until
//!   SQS first pushes back (slow start, as TCP's); then about one call per round trip
//!   back up to just below where SQS last pushed back; beyond it, one call per
//!   [`PROBE`] at most, so a quota is probed a few times a second whatever the latency,
//!   not every round trip (which at 20 ms per call meant a throttled call in every
//!   dozen); after [`CALM`] without push-back, one per round trip again.
//! - **Throttled** (a call or an entry) **or a 5xx**: down to the calls in flight that
//!   the rate SQS took over the last round trips needs (rate × round trip: the quota's
//!   worth of calls, not a fixed fraction below it), at least one call less and at most
//!   half; at most once per round trip, so one burst of answers to calls sent together
//!   counts once.
//! - **A call well over its baseline** (SQS slowing down): a tenth less.
//! - The baseline is a slow moving average of the latency of calls SQS answered
//!   normally: a sudden jump stands out against it, and a region that became slower for
//!   good is followed. (A minimum instead made the bridge's own CPU contention, on a
//!   busy machine, read as SQS slowing down.)

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::telemetry::metric;

/// Growth beyond where SQS last pushed back: at most one call per this long.
const PROBE: Duration = Duration::from_millis(250);
/// No push-back for this long: SQS is calm, and growth beyond the ceiling need not probe.
const CALM: Duration = Duration::from_secs(2);
/// A slow SQS: a tenth less.
const SLOWDOWN: f64 = 0.9;
/// A call slower than this many baselines counts as SQS slowing down.
const SLOW: f64 = 2.5;
/// How much of each normal call's latency goes into the baseline.
const ALPHA: f64 = 0.05;
/// Calls this near their baseline may grow the limit.
const NEAR: f64 = 1.5;
/// SQS's rate is measured over this many round trips (and at least [`RATE_WINDOW`]).
const RATE_ROUND_TRIPS: f64 = 4.0;
const RATE_WINDOW: Duration = Duration::from_millis(100);

/// What a call's answer says about SQS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Signal {
    /// Answered normally, the batch full (10 entries, or its bytes).
    Full,
    /// Answered normally, the batch partial: says nothing about room for more.
    Partial,
    /// Throttled (the call or an entry), or a 5xx.
    Congested,
    /// No answer, or one that says nothing about SQS's load: ignored.
    Failed,
}

#[derive(Debug)]
pub(super) struct Limit {
    max: usize,
    /// Calls allowed in flight, with the fraction growth adds between whole calls.
    current: f64,
    /// Seconds.
    baseline: Option<f64>,
    last_decrease: Option<Instant>,
    /// Just below where SQS last pushed back; `None`: it has not yet (slow start).
    ceiling: Option<f64>,
    /// When recent calls SQS took ended, for its rate.
    answered: VecDeque<Instant>,
    /// When the first call ended: the rate's window is no longer than the time measured.
    first_answer: Option<Instant>,
    pub in_flight: usize,
}

impl Limit {
    pub fn new(max: usize) -> Self {
        let limit = Self {
            max: max.max(1),
            // The old fixed default, a safe start for a fresh SQS.
            current: if max > 1 { 2.0 } else { 1.0 },
            baseline: None,
            last_decrease: None,
            ceiling: None,
            answered: VecDeque::new(),
            first_answer: None,
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
        self.record_at(Instant::now(), rtt, signal, limited);
    }

    fn record_at(&mut self, now: Instant, rtt: Duration, signal: Signal, limited: bool) {
        let rtt = rtt.as_secs_f64();
        if signal == Signal::Failed {
            return;
        }
        self.first_answer.get_or_insert(now);
        if signal == Signal::Congested {
            metrics::counter!(metric::SQS_THROTTLED).increment(1);
            self.back_off(now);
            self.publish();
            return;
        }
        self.answered.push_back(now);
        self.trim(now);
        let baseline = self.baseline.unwrap_or(rtt);
        self.baseline = Some(baseline + (rtt - baseline) * ALPHA);
        if rtt > baseline * SLOW {
            self.decrease_to(self.current * SLOWDOWN, now);
        } else if signal == Signal::Full && rtt <= baseline * NEAR && limited {
            self.grow(baseline, now);
        }
        self.publish();
    }

    /// `allowed` calls end per round trip: one more per call doubles the limit per round
    /// trip, 1/limit per call adds about one, and that times round trip / [`PROBE`] adds
    /// one per [`PROBE`]. Probing only while SQS pushed back lately ([`CALM`]): after a
    /// passing fault left the ceiling low, a calm SQS is regained a call per round trip.
    fn grow(&mut self, baseline: f64, now: Instant) {
        #[allow(clippy::cast_precision_loss)] // at most 256
        let max = self.max as f64;
        let calm = self
            .last_decrease
            .is_none_or(|at| now.duration_since(at) >= CALM);
        let step = match self.ceiling {
            None => 1.0,
            Some(ceiling) if calm || self.current + 1.0 <= ceiling => 1.0 / self.current,
            Some(_) => (baseline / PROBE.as_secs_f64()).min(1.0) / self.current,
        };
        self.current = (self.current + step).min(max);
    }

    /// SQS pushed back: to the calls its recent rate needs, one less at least, half at
    /// most; and just below here is where growth slows to probing.
    fn back_off(&mut self, now: Instant) {
        let before = self.current;
        let fits = self.rate(now) * self.baseline.unwrap_or(0.0);
        if self.decrease_to(fits.min(before - 1.0).max(before * 0.5), now) {
            self.ceiling = Some((before - 1.0).max(1.0));
        }
    }

    /// How far back SQS's rate is measured.
    fn window(&self) -> Duration {
        Duration::from_secs_f64(self.baseline.unwrap_or(0.0) * RATE_ROUND_TRIPS).max(RATE_WINDOW)
    }

    fn trim(&mut self, now: Instant) {
        let window = self.window();
        while self
            .answered
            .front()
            .is_some_and(|at| now.duration_since(*at) > window)
        {
            self.answered.pop_front();
        }
    }

    /// Calls per second SQS took over the last few round trips.
    fn rate(&mut self, now: Instant) -> f64 {
        self.trim(now);
        let window = self.window();
        let measured = self
            .first_answer
            .map_or(window, |first| now.duration_since(first).min(window));
        #[allow(clippy::cast_precision_loss)] // a few thousand at most
        let answered = self.answered.len() as f64;
        answered / measured.as_secs_f64().max(1e-3)
    }

    /// Lowers the limit to `to` (at least 1), unless it was lowered within the last
    /// round trip. Whether it was lowered.
    fn decrease_to(&mut self, to: f64, now: Instant) -> bool {
        let round_trip = Duration::from_secs_f64(self.baseline.unwrap_or(0.0));
        if self
            .last_decrease
            .is_some_and(|at| now.duration_since(at) < round_trip)
        {
            return false;
        }
        self.current = to.min(self.current).max(1.0);
        self.last_decrease = Some(now);
        true
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

    /// A clock the tests move by hand.
    struct Run {
        limit: Limit,
        now: Instant,
    }

    impl Run {
        fn new(max: usize) -> Self {
            Self {
                limit: Limit::new(max),
                now: Instant::now(),
            }
        }

        /// One round trip of `calls` calls ending, spread over it, each with `rtt`.
        fn round(&mut self, calls: usize, rtt: Duration, signal: Signal) {
            let gap = RTT / u32::try_from(calls.max(1)).unwrap();
            for _ in 0..calls {
                self.now += gap;
                self.limit.record_at(self.now, rtt, signal, true);
            }
        }

        /// Round trips in which the limit's worth of full calls end.
        fn saturate(&mut self, rounds: usize) {
            for _ in 0..rounds {
                self.round(self.limit.allowed(), RTT, Signal::Full);
            }
        }

        fn throttled(&mut self) {
            self.now += Duration::from_millis(1);
            self.limit
                .record_at(self.now, Duration::from_millis(1), Signal::Congested, true);
        }
    }

    #[test]
    fn full_calls_near_the_baseline_double_it_per_round_trip() {
        let mut run = Run::new(64);
        assert_eq!(run.limit.allowed(), 2);
        run.saturate(3);
        assert_eq!(
            run.limit.allowed(),
            16,
            "slow start: doubling per round trip"
        );
        run.saturate(3);
        assert_eq!(run.limit.allowed(), 64);
    }

    #[test]
    fn throttling_brings_it_to_what_the_rate_sqs_took_needs() {
        let mut run = Run::new(32);
        run.saturate(3); // 16
        // SQS takes 6 calls per 20 ms (300/s) while 16 are allowed.
        for _ in 0..10 {
            run.round(6, RTT, Signal::Partial);
        }
        run.throttled();
        assert_eq!(run.limit.allowed(), 8, "at most half");
        run.now += RTT;
        for _ in 0..10 {
            run.round(6, RTT, Signal::Partial);
        }
        run.throttled();
        assert_eq!(run.limit.allowed(), 6, "300 calls/s × 20 ms");
        for _ in 0..9 {
            run.throttled();
        }
        assert_eq!(
            run.limit.allowed(),
            6,
            "answers within one round trip count once"
        );
    }

    #[test]
    fn beyond_where_sqs_pushed_back_it_grows_one_call_per_probe_interval() {
        let mut run = Run::new(32);
        run.saturate(3); // 16
        for _ in 0..10 {
            run.round(16, RTT, Signal::Partial);
        }
        run.throttled();
        // 16 calls per round trip were taken: one call less, and probing beyond 15.
        assert_eq!(run.limit.allowed(), 15);
        run.saturate(50); // one second
        let grown = run.limit.allowed();
        assert!((18..=20).contains(&grown), "about 4 per second: {grown}");
    }

    #[test]
    fn below_where_sqs_pushed_back_it_regains_about_one_call_per_round_trip() {
        let mut run = Run::new(32);
        run.saturate(3);
        for _ in 0..10 {
            run.round(16, RTT, Signal::Partial);
        }
        run.throttled(); // 15, probing beyond 15
        // SQS slows down for a while: a tenth less each round trip.
        for _ in 0..5 {
            run.round(1, RTT * 5, Signal::Full);
        }
        let shrunk = run.limit.allowed();
        assert!(shrunk <= 12, "{shrunk}");
        // Probing would add one call in 250 ms; below 15 it is one per round trip.
        run.saturate(3);
        assert!(run.limit.allowed() >= shrunk + 2, "{}", run.limit.allowed());
    }

    #[test]
    fn after_a_passing_fault_left_it_at_one_a_calm_sqs_is_regained_per_round_trip() {
        let mut run = Run::new(32);
        run.throttled(); // 2 → 1, and growth beyond 1 probes
        assert_eq!(run.limit.allowed(), 1);
        run.saturate(50); // one second: probing, about 4 calls
        let probed = run.limit.allowed();
        assert!(probed <= 6, "{probed}");
        run.saturate(100); // past CALM: a call per round trip
        assert!(
            run.limit.allowed() >= probed + 15,
            "{}",
            run.limit.allowed()
        );
    }

    #[test]
    fn failed_calls_tell_it_nothing() {
        let mut run = Run::new(32);
        run.saturate(2);
        let before = (run.limit.allowed(), run.limit.baseline);
        for _ in 0..10 {
            run.now += Duration::from_secs(2);
            run.limit
                .record_at(run.now, Duration::from_secs(2), Signal::Failed, true);
        }
        assert_eq!((run.limit.allowed(), run.limit.baseline), before);
    }

    #[test]
    fn partial_calls_do_not_grow_it() {
        let mut run = Run::new(32);
        for _ in 0..100 {
            run.round(1, RTT, Signal::Partial);
        }
        assert_eq!(run.limit.allowed(), 2);
    }

    #[test]
    fn a_latency_jump_shrinks_it_and_it_grows_back() {
        let mut run = Run::new(32);
        run.saturate(100);
        for _ in 0..20 {
            run.round(1, RTT * 5, Signal::Full);
        }
        // It shrank while the jump stood out against the baseline, until the baseline
        // followed it.
        let shrunk = run.limit.allowed();
        assert!(shrunk <= 26, "{shrunk}");
        run.saturate(200);
        assert_eq!(run.limit.allowed(), 32);
    }

    /// SQS's quota as a token bucket a tenth of a second deep, calls lasting `rtt`, a
    /// throttled call answered in a millisecond, and always a full batch waiting: over the
    /// last `seconds` / 2, the calls SQS took per second, and the share throttled.
    fn against_a_quota(rtt: Duration, quota: f64, seconds: u64) -> (f64, f64) {
        let mut limit = Limit::new(32);
        let start = Instant::now();
        let mut tokens = quota / 10.0;
        let mut ending: Vec<(Instant, Instant, bool, bool)> = Vec::new();
        let (mut taken, mut throttled) = (0u32, 0u32);
        let step = Duration::from_millis(1);
        let steps = u32::try_from(seconds * 1000).unwrap();
        for n in 0..steps {
            let now = start + step * n;
            tokens = (tokens + quota / 1000.0).min(quota / 10.0);
            ending.retain(|&(end, began, ok, limited)| {
                if end > now {
                    return true;
                }
                limit.in_flight -= 1;
                let signal = if ok { Signal::Full } else { Signal::Congested };
                limit.record_at(end, end - began, signal, limited);
                false
            });
            while limit.in_flight < limit.allowed() {
                limit.in_flight += 1;
                let limited = limit.in_flight >= limit.allowed();
                let ok = tokens >= 1.0;
                if ok {
                    tokens -= 1.0;
                }
                if n >= steps / 2 {
                    if ok {
                        taken += 1;
                    } else {
                        throttled += 1;
                    }
                }
                ending.push((now + if ok { rtt } else { step }, now, ok, limited));
            }
        }
        #[allow(clippy::cast_precision_loss)]
        let rate = f64::from(taken) / (seconds as f64 / 2.0);
        (rate, f64::from(throttled) / f64::from(taken + throttled))
    }

    #[test]
    fn against_a_quota_it_converges_near_it_and_is_seldom_throttled() {
        for rtt in [20, 80] {
            let (rate, throttled) = against_a_quota(Duration::from_millis(rtt), 300.0, 20);
            assert!(rate >= 285.0, "{rtt} ms: {rate:.0} calls/s of 300");
            assert!(
                throttled <= 0.05,
                "{rtt} ms: {:.1}% throttled",
                throttled * 100.0
            );
        }
    }

    #[test]
    fn a_limit_of_one_stays_one() {
        let mut run = Run::new(1);
        run.saturate(10);
        run.throttled();
        assert_eq!(run.limit.allowed(), 1);
    }
}
