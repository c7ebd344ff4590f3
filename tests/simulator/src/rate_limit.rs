//! Token-bucket throughput limits.
//!
//! Each platform keeps one bucket per sender (for WhatsApp: per business phone
//! number). The bucket refills at `per_second` tokens a second and holds at
//! most one second's worth, so a client may burst up to `per_second` requests
//! and then sustain `per_second` a second. A rate of zero means unlimited.

use std::sync::Mutex;
use std::time::Instant;

#[derive(Debug)]
struct BucketState {
    per_second: u32,
    tokens: f64,
    last_refill: Instant,
}

/// A thread-safe token bucket.
#[derive(Debug)]
pub struct TokenBucket {
    state: Mutex<BucketState>,
}

impl TokenBucket {
    /// A full bucket refilling at `per_second` tokens a second (0 = unlimited).
    pub fn new(per_second: u32) -> Self {
        Self {
            state: Mutex::new(BucketState {
                per_second,
                tokens: f64::from(per_second),
                last_refill: Instant::now(),
            }),
        }
    }

    /// The configured rate (0 = unlimited).
    pub fn rate(&self) -> u32 {
        self.lock().per_second
    }

    /// Changes the rate and refills the bucket to its new capacity.
    pub fn set_rate(&self, per_second: u32) {
        let mut state = self.lock();
        state.per_second = per_second;
        state.tokens = f64::from(per_second);
        state.last_refill = Instant::now();
    }

    /// Takes one token if available. Returns `false` when the caller is over
    /// the limit.
    pub fn try_acquire(&self) -> bool {
        self.try_acquire_at(Instant::now())
    }

    /// [`TokenBucket::try_acquire`] with an explicit "now", for tests.
    pub fn try_acquire_at(&self, now: Instant) -> bool {
        let mut state = self.lock();
        if state.per_second == 0 {
            return true;
        }
        let capacity = f64::from(state.per_second);
        let elapsed = now.saturating_duration_since(state.last_refill);
        state.tokens = (state.tokens + elapsed.as_secs_f64() * capacity).min(capacity);
        if now > state.last_refill {
            state.last_refill = now;
        }
        if state.tokens >= 1.0 {
            state.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BucketState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn burst_then_refill() {
        let bucket = TokenBucket::new(10);
        let start = Instant::now();
        for _ in 0..10 {
            assert!(bucket.try_acquire_at(start));
        }
        assert!(!bucket.try_acquire_at(start));
        // 100 ms later one token has come back.
        let later = start + Duration::from_millis(100);
        assert!(bucket.try_acquire_at(later));
        assert!(!bucket.try_acquire_at(later));
        // A long pause refills only up to capacity.
        let much_later = later + Duration::from_secs(60);
        let granted = (0..100)
            .filter(|_| bucket.try_acquire_at(much_later))
            .count();
        assert_eq!(granted, 10);
    }

    #[test]
    fn zero_is_unlimited_and_rate_can_change() {
        let bucket = TokenBucket::new(0);
        assert!((0..10_000).all(|_| bucket.try_acquire()));
        bucket.set_rate(2);
        assert_eq!(bucket.rate(), 2);
        let now = Instant::now();
        assert!(bucket.try_acquire_at(now));
        assert!(bucket.try_acquire_at(now));
        assert!(!bucket.try_acquire_at(now));
    }
}
