//! Per-recipient throttling of the simulated Cloud API: the pair rate and the
//! messaging limit (tier). Both are off unless configured.
//!
//! - **Pair rate**: Meta refuses a message to a user who was sent one a
//!   moment ago with 131056 "(Business Account, Consumer Account) pair rate
//!   limit hit"; other recipients are unaffected. Meta gives no exact figure
//!   (about one message every 6 seconds per user is commonly observed), so
//!   the simulator takes a minimum interval in milliseconds between two
//!   accepted messages to the same `wa_id`.
//!   <https://developers.facebook.com/documentation/business-messaging/whatsapp/throughput>
//! - **Messaging limit**: the number of unique users a business may reach
//!   *outside* a customer-service window per moving 24 hours (250, 2,000,
//!   10,000, 100,000, unlimited). Only business-initiated messages count,
//!   i.e. templates to users whose window is closed; users already reached
//!   in the last 24 hours and replies inside a window do not.
//!   <https://developers.facebook.com/documentation/business-messaging/whatsapp/messaging-limits>
//!
//! Times are Unix milliseconds of the simulator's [`Clock`](crate::Clock),
//! so tests move them with `/_sim/clock/advance`.

use std::collections::{BTreeSet, HashMap};

use super::WINDOW_SECS;

/// The moving window of the messaging limit, in milliseconds (24 hours).
pub(super) const MESSAGING_LIMIT_WINDOW_MS: i64 = WINDOW_SECS * 1000;

/// Why a message was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Refusal {
    /// The recipient was sent a message less than the pair interval ago.
    PairRate,
    /// A business-initiated message to a new recipient beyond the messaging
    /// limit (the limit is carried for the error text).
    MessagingLimit(u64),
}

/// The throttling settings and what they remember.
#[derive(Debug, Default)]
pub(super) struct Throttle {
    pair_interval_ms: Option<u64>,
    daily_unique_recipients: Option<u64>,
    /// wa_id → when the last message to it was accepted.
    last_sent_ms: HashMap<String, i64>,
    /// wa_id → when a business-initiated message last reached it, for
    /// recipients reached in the last 24 hours.
    reached_ms: HashMap<String, i64>,
    /// The same entries, oldest first, to expire them cheaply.
    reached_by_time: BTreeSet<(i64, String)>,
}

impl Throttle {
    pub(super) fn new(pair_interval_ms: Option<u64>, daily_unique_recipients: Option<u64>) -> Self {
        Self {
            pair_interval_ms,
            daily_unique_recipients,
            ..Self::default()
        }
    }

    pub(super) fn pair_interval_ms(&self) -> Option<u64> {
        self.pair_interval_ms
    }

    pub(super) fn set_pair_interval_ms(&mut self, interval_ms: Option<u64>) {
        self.pair_interval_ms = interval_ms;
    }

    pub(super) fn daily_unique_recipients(&self) -> Option<u64> {
        self.daily_unique_recipients
    }

    pub(super) fn set_daily_unique_recipients(&mut self, limit: Option<u64>) {
        self.daily_unique_recipients = limit;
    }

    /// Checks a message to `wa_id` at `now_ms` against both limits and, if
    /// it passes, records it as sent. `business_initiated`: a template to a
    /// user whose customer-service window is closed (it counts toward the
    /// messaging limit). The caller must accept the message when this
    /// returns `Ok`.
    pub(super) fn admit(
        &mut self,
        wa_id: &str,
        business_initiated: bool,
        now_ms: i64,
    ) -> Result<(), Refusal> {
        if let (Some(interval), Some(&last)) = (self.pair_interval_ms, self.last_sent_ms.get(wa_id))
        {
            let interval = i64::try_from(interval).unwrap_or(i64::MAX);
            if now_ms.saturating_sub(last) < interval {
                return Err(Refusal::PairRate);
            }
        }
        if business_initiated {
            self.expire(now_ms);
            if let Some(limit) = self.daily_unique_recipients {
                let reached = u64::try_from(self.reached_ms.len()).unwrap_or(u64::MAX);
                if !self.reached_ms.contains_key(wa_id) && reached >= limit {
                    return Err(Refusal::MessagingLimit(limit));
                }
            }
            if let Some(previous) = self.reached_ms.insert(wa_id.to_owned(), now_ms) {
                self.reached_by_time.remove(&(previous, wa_id.to_owned()));
            }
            self.reached_by_time.insert((now_ms, wa_id.to_owned()));
        }
        self.last_sent_ms.insert(wa_id.to_owned(), now_ms);
        Ok(())
    }

    /// Unique recipients reached by business-initiated messages in the 24
    /// hours before `now_ms`.
    pub(super) fn unique_recipients(&mut self, now_ms: i64) -> u64 {
        self.expire(now_ms);
        u64::try_from(self.reached_ms.len()).unwrap_or(u64::MAX)
    }

    /// Forgets every send (the settings are kept).
    pub(super) fn clear(&mut self) {
        self.last_sent_ms.clear();
        self.reached_ms.clear();
        self.reached_by_time.clear();
    }

    /// Drops recipients last reached 24 hours or more before `now_ms`.
    fn expire(&mut self, now_ms: i64) {
        let cutoff = now_ms.saturating_sub(MESSAGING_LIMIT_WINDOW_MS);
        while let Some((at, _)) = self.reached_by_time.first() {
            if *at > cutoff {
                break;
            }
            if let Some((_, wa_id)) = self.reached_by_time.pop_first() {
                self.reached_ms.remove(&wa_id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_700_000_000_000;

    #[test]
    fn off_by_default() {
        let mut throttle = Throttle::default();
        for i in 0..100 {
            assert_eq!(throttle.admit("491", true, T0), Ok(()));
            assert_eq!(throttle.admit(&format!("48{i}"), true, T0), Ok(()));
        }
        assert_eq!(throttle.unique_recipients(T0), 101);
    }

    #[test]
    fn pair_rate_is_per_recipient() {
        let mut throttle = Throttle::new(Some(6_000), None);
        assert_eq!(throttle.admit("491", false, T0), Ok(()));
        assert_eq!(
            throttle.admit("491", false, T0 + 5_999),
            Err(Refusal::PairRate)
        );
        // Another user is not affected.
        assert_eq!(throttle.admit("492", false, T0 + 1), Ok(()));
        // A refused message does not restart the interval.
        assert_eq!(throttle.admit("491", false, T0 + 6_000), Ok(()));
        assert_eq!(
            throttle.admit("491", true, T0 + 6_001),
            Err(Refusal::PairRate)
        );
        throttle.set_pair_interval_ms(None);
        assert_eq!(throttle.admit("491", false, T0 + 6_001), Ok(()));
    }

    #[test]
    fn messaging_limit_counts_unique_business_initiated_recipients() {
        let mut throttle = Throttle::new(None, Some(2));
        assert_eq!(throttle.admit("491", true, T0), Ok(()));
        assert_eq!(throttle.admit("492", true, T0 + 1), Ok(()));
        assert_eq!(
            throttle.admit("493", true, T0 + 2),
            Err(Refusal::MessagingLimit(2))
        );
        // Already reached: does not count again.
        assert_eq!(throttle.admit("491", true, T0 + 3), Ok(()));
        // Inside the user's window (not business-initiated): not counted.
        assert_eq!(throttle.admit("493", false, T0 + 4), Ok(()));
        assert_eq!(throttle.unique_recipients(T0 + 4), 2);

        // "492" was last reached at T0 + 1: 24 h later it drops out, while
        // "491" (reached again at T0 + 3) still counts.
        let later = T0 + 1 + MESSAGING_LIMIT_WINDOW_MS;
        assert_eq!(throttle.unique_recipients(later), 1);
        assert_eq!(throttle.admit("493", true, later), Ok(()));
        assert_eq!(
            throttle.admit("494", true, later),
            Err(Refusal::MessagingLimit(2))
        );

        throttle.set_daily_unique_recipients(None);
        assert_eq!(throttle.admit("494", true, later), Ok(()));
        throttle.clear();
        assert_eq!(throttle.unique_recipients(later), 0);
        assert_eq!(throttle.daily_unique_recipients(), None);
    }
}
