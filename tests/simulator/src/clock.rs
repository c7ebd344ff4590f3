//! The simulated wall clock shared by every platform.
//!
//! All timestamps the simulator hands out (webhook `timestamp` fields, the
//! "received at" time of recorded messages) and every time-based rule (the
//! WhatsApp 24-hour customer-service window) read this clock. It is the
//! system clock plus an offset that tests can move forward, so a window can be
//! made to expire without waiting a day.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// System time plus an adjustable offset in seconds.
#[derive(Debug, Default)]
pub struct Clock {
    offset_secs: AtomicI64,
}

impl Clock {
    /// A clock that starts at the system time (offset zero).
    pub fn new() -> Self {
        Self::default()
    }

    /// Current simulated time in Unix milliseconds.
    pub fn now_unix_ms(&self) -> i64 {
        let system_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            .unwrap_or(0);
        system_ms.saturating_add(self.offset_secs().saturating_mul(1000))
    }

    /// Current simulated time in Unix seconds.
    pub fn now_unix(&self) -> i64 {
        self.now_unix_ms().div_euclid(1000)
    }

    /// The offset from the system clock, in seconds.
    pub fn offset_secs(&self) -> i64 {
        self.offset_secs.load(Ordering::Relaxed)
    }

    /// Moves the clock forward (or back, if negative) by `secs` seconds.
    pub fn advance(&self, secs: i64) {
        self.offset_secs.fetch_add(secs, Ordering::Relaxed);
    }

    /// Sets the offset from the system clock to exactly `secs` seconds.
    pub fn set_offset(&self, secs: i64) {
        self.offset_secs.store(secs, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advance_moves_time_forward() {
        let clock = Clock::new();
        let before = clock.now_unix();
        clock.advance(86_400);
        let after = clock.now_unix();
        assert!(after - before >= 86_400 && after - before <= 86_401);
        clock.set_offset(0);
        assert_eq!(clock.offset_secs(), 0);
    }
}
