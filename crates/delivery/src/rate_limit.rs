//! A token bucket per channel, shaped by the adapter's declared rate (or
//! the operator's override), which pauses everyone when the platform says
//! we are too fast.

use std::time::Duration;

use tokio::sync::Mutex;
use tokio::time::Instant;

/// Hands out send permits at a steady rate with a burst of one second's worth.
#[derive(Debug)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    state: Mutex<BucketState>,
}

#[derive(Debug)]
struct BucketState {
    tokens: f64,
    refilled: Instant,
    paused_until: Option<Instant>,
}

impl TokenBucket {
    /// A bucket of `per_second` permits per second (at least 1).
    pub fn new(per_second: u32) -> Self {
        let rate = f64::from(per_second.max(1));
        Self {
            rate,
            burst: rate,
            state: Mutex::new(BucketState {
                tokens: rate,
                refilled: Instant::now(),
                paused_until: None,
            }),
        }
    }

    /// Wait until `count` permits are available and take them. Counts above
    /// the burst wait for the whole amount to accrue.
    pub async fn acquire(&self, count: u32) {
        let wanted = f64::from(count.max(1));
        loop {
            let wait = {
                let mut state = self.state.lock().await;
                let now = Instant::now();
                if let Some(until) = state.paused_until {
                    if until > now {
                        Some(until - now)
                    } else {
                        state.paused_until = None;
                        continue;
                    }
                } else {
                    let elapsed = now.duration_since(state.refilled).as_secs_f64();
                    state.tokens = (state.tokens + elapsed * self.rate).min(self.burst.max(wanted));
                    state.refilled = now;
                    if state.tokens >= wanted {
                        state.tokens -= wanted;
                        None
                    } else {
                        Some(Duration::from_secs_f64((wanted - state.tokens) / self.rate))
                    }
                }
            };
            match wait {
                None => return,
                Some(duration) => tokio::time::sleep(duration).await,
            }
        }
    }

    /// Stop handing out permits for `duration` (the platform rate-limited us).
    pub async fn pause(&self, duration: Duration) {
        let mut state = self.state.lock().await;
        let until = Instant::now() + duration;
        if state.paused_until.is_none_or(|current| current < until) {
            state.paused_until = Some(until);
        }
        state.tokens = 0.0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn paces_to_the_rate_after_the_burst() {
        let bucket = TokenBucket::new(10);
        let start = Instant::now();
        for _ in 0..30 {
            bucket.acquire(1).await;
        }
        // 10 from the burst, then 20 more at 10 per second.
        let elapsed = start.elapsed();
        assert!(
            elapsed >= Duration::from_millis(1_990) && elapsed <= Duration::from_millis(2_100),
            "{elapsed:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn pause_holds_everyone_back() {
        let bucket = TokenBucket::new(100);
        bucket.pause(Duration::from_secs(3)).await;
        let start = Instant::now();
        bucket.acquire(1).await;
        assert!(start.elapsed() >= Duration::from_secs(3));
    }
}
