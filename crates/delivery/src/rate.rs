//! A channel's sending rate: a token bucket whose rate adapts to the
//! platform (additive-increase, multiplicative-decrease).
//!
//! The bucket starts at the channel's configured rate (its ceiling). A
//! sender-scope rate-limit answer lowers the rate to what the platform
//! actually accepted over the last second (measured as sends settle), but
//! at least by a fifth and at most to a quarter, at most once per half
//! second so that one burst of refusals counts once; and it pauses the
//! bucket for the platform's retry-after, capped. Every second without a
//! refusal raises the rate by 10 % of itself, back up to the ceiling.
//! Against a platform that admits fewer messages than the ceiling, the rate
//! settles just above what the platform takes. The bucket holds at most a
//! quarter second's worth, so a channel starts (or resumes) in small steps.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::sync::Mutex;
use tokio::time::Instant;

/// The lowest rate the controller decreases to, messages per second.
const FLOOR: f64 = 1.0;
/// Multiplicative decrease on a refusal, at least.
const DECREASE: f64 = 0.8;
/// The deepest one refusal cuts the rate to, as a share of what it was.
const DEEPEST: f64 = 0.25;
/// How far back accepted messages are counted.
const MEASURE: Duration = Duration::from_secs(1);
/// The most the bucket holds, in seconds' worth.
const BURST: f64 = 0.25;
/// Refusals closer together than this count as one.
const DECREASE_SPACING: Duration = Duration::from_millis(500);
/// Additive increase per quiet second, as a share of the current rate.
const INCREASE: f64 = 0.1;
/// How much of a second's worth of tokens a caller waits to gather, so
/// that a slow channel still sends in batches.
const GATHER: f64 = 0.1;

/// The rate controller of one channel.
#[derive(Debug)]
pub struct RateController {
    ceiling: f64,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    rate: f64,
    tokens: f64,
    refilled: Instant,
    paused_until: Option<Instant>,
    last_decrease: Option<Instant>,
    last_increase: Instant,
    started: Instant,
    accepted: VecDeque<(Instant, u32)>,
}

impl RateController {
    /// A controller starting at (and never above) `per_second`.
    pub fn new(per_second: u32) -> Self {
        let ceiling = f64::from(per_second.max(1));
        let now = Instant::now();
        Self {
            ceiling,
            state: Mutex::new(State {
                rate: ceiling,
                tokens: ceiling.min(1.0_f64.max(ceiling * GATHER)),
                refilled: now,
                paused_until: None,
                last_decrease: None,
                last_increase: now,
                started: now,
                accepted: VecDeque::new(),
            }),
        }
    }

    /// The rate now, messages per second.
    pub async fn rate(&self) -> f64 {
        self.state.lock().await.rate
    }

    /// Wait until at least a batch's worth of permits (up to `max`, and at
    /// least one) is available, take them and return how many.
    pub async fn acquire(&self, max: u32) -> u32 {
        let max = f64::from(max.max(1));
        loop {
            let wait = {
                let mut state = self.state.lock().await;
                let now = Instant::now();
                if let Some(until) = state.paused_until {
                    if until > now {
                        Some(until - now)
                    } else {
                        state.paused_until = None;
                        state.refilled = now;
                        continue;
                    }
                } else {
                    self.refill(&mut state, now);
                    let wanted = max.min(1.0_f64.max(state.rate * GATHER)).max(1.0);
                    // A batch larger than the bucket holds still goes, once
                    // the bucket is full.
                    let wanted = wanted.min((state.rate * BURST).max(1.0));
                    if state.tokens >= wanted {
                        let taken = state.tokens.min(max).floor();
                        state.tokens -= taken;
                        return taken as u32;
                    }
                    Some(Duration::from_secs_f64(
                        ((wanted - state.tokens) / state.rate).max(0.001),
                    ))
                }
            };
            if let Some(wait) = wait {
                tokio::time::sleep(wait).await;
            }
        }
    }

    /// Give back permits taken but not used.
    pub async fn refund(&self, count: u32) {
        if count == 0 {
            return;
        }
        let mut state = self.state.lock().await;
        state.tokens += f64::from(count);
    }

    /// The platform accepted `count` messages.
    pub async fn accepted(&self, count: u32) {
        if count == 0 {
            return;
        }
        let mut state = self.state.lock().await;
        let now = Instant::now();
        state.accepted.push_back((now, count));
        while state
            .accepted
            .front()
            .is_some_and(|(at, _)| now.duration_since(*at) > MEASURE)
        {
            state.accepted.pop_front();
        }
    }

    /// The platform refused for sending too fast: slow down, and stop for
    /// `pause` (the platform's retry-after, already capped).
    pub async fn refused(&self, pause: Option<Duration>) {
        let mut state = self.state.lock().await;
        let now = Instant::now();
        let spaced = state
            .last_decrease
            .is_none_or(|last| now.duration_since(last) >= DECREASE_SPACING);
        if spaced {
            // What the platform took per second lately: over the last
            // second, or since the start when that is shorter (but not
            // less than a quarter second, too short to measure).
            let window = now
                .duration_since(state.started)
                .clamp(MEASURE / 4, MEASURE)
                .as_secs_f64();
            let measured: u32 = state
                .accepted
                .iter()
                .filter(|(at, _)| now.duration_since(*at) <= MEASURE)
                .map(|(_, count)| count)
                .sum();
            let measured = f64::from(measured) / window;
            let target = (state.rate * DECREASE).min(measured.max(state.rate * DEEPEST));
            state.rate = target.max(FLOOR);
            state.last_decrease = Some(now);
            state.last_increase = now;
        }
        state.tokens = 0.0;
        state.refilled = now;
        if let Some(pause) = pause {
            let until = now + pause;
            if state.paused_until.is_none_or(|current| current < until) {
                state.paused_until = Some(until);
            }
        }
    }

    /// Stop handing out permits until `until` (a quota ran out).
    pub async fn pause_until(&self, until: Instant) {
        let mut state = self.state.lock().await;
        if state.paused_until.is_none_or(|current| current < until) {
            state.paused_until = Some(until);
        }
        state.tokens = 0.0;
    }

    fn refill(&self, state: &mut State, now: Instant) {
        while now.duration_since(state.last_increase) >= Duration::from_secs(1) {
            state.last_increase += Duration::from_secs(1);
            state.rate = (state.rate * (1.0 + INCREASE)).min(self.ceiling);
        }
        let elapsed = now.duration_since(state.refilled).as_secs_f64();
        let capacity = (state.rate * BURST).max(1.0);
        state.tokens = (state.tokens + elapsed * state.rate).min(capacity.max(state.tokens));
        state.refilled = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn paces_to_the_rate() {
        let rate = RateController::new(100);
        let start = Instant::now();
        let mut sent = 0;
        while sent < 300 {
            sent += rate.acquire(10).await;
        }
        let elapsed = start.elapsed();
        // About 10 up front, then 100 a second.
        assert!(
            elapsed >= Duration::from_millis(2_800) && elapsed <= Duration::from_millis(3_100),
            "{elapsed:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn gathers_a_batch_at_a_low_rate() {
        let rate = RateController::new(80);
        rate.acquire(8).await;
        // The next call waits for 8 permits rather than taking one at a time.
        assert_eq!(rate.acquire(50).await, 8);
    }

    #[tokio::test(start_paused = true)]
    async fn refusals_slow_it_down_and_quiet_seconds_bring_it_back() {
        let rate = RateController::new(1_000);
        // The platform took nearly everything: the rate drops by a fifth.
        tokio::time::advance(Duration::from_millis(250)).await;
        rate.accepted(240).await;
        rate.refused(None).await;
        assert_eq!(rate.rate().await, 800.0);
        rate.refused(None).await;
        assert_eq!(rate.rate().await, 800.0, "one burst counts once");
        tokio::time::advance(Duration::from_millis(600)).await;
        rate.accepted(1_000).await;
        rate.refused(None).await;
        assert_eq!(rate.rate().await, 640.0);
        tokio::time::advance(Duration::from_secs(3)).await;
        rate.acquire(1).await;
        let recovered = rate.rate().await;
        assert!((850.0..=852.0).contains(&recovered), "{recovered}");
        tokio::time::advance(Duration::from_secs(60)).await;
        rate.acquire(1).await;
        assert_eq!(rate.rate().await, 1_000.0, "never above the ceiling");
    }

    #[tokio::test(start_paused = true)]
    async fn a_refusal_drops_to_what_the_platform_accepted() {
        let rate = RateController::new(1_000);
        tokio::time::advance(Duration::from_millis(1_200)).await;
        rate.accepted(90).await;
        rate.accepted(10).await;
        rate.refused(None).await;
        assert_eq!(rate.rate().await, 250.0, "at most to a quarter at once");
        tokio::time::advance(Duration::from_millis(1_100)).await;
        rate.accepted(100).await;
        rate.refused(None).await;
        assert_eq!(rate.rate().await, 100.0, "then to what was accepted");
    }

    #[tokio::test(start_paused = true)]
    async fn a_pause_holds_every_permit_back() {
        let rate = RateController::new(100);
        rate.refused(Some(Duration::from_secs(3))).await;
        let start = Instant::now();
        rate.acquire(1).await;
        assert!(start.elapsed() >= Duration::from_secs(3));
        rate.pause_until(Instant::now() + Duration::from_secs(5))
            .await;
        let start = Instant::now();
        rate.acquire(1).await;
        assert!(start.elapsed() >= Duration::from_secs(5));
    }
}
