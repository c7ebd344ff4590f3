//! How the delivery engine sends: the operator's `[dispatch]` table and the
//! per-channel pacing in `[channels.<name>]`.

use std::collections::HashMap;
use std::time::Duration;
use switchboard_core::consent::ConsentPolicy;
use switchboard_core::policy::FrequencyCap;

use serde::Deserialize;

/// `[dispatch]`: retries, leases and the default lane size.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DispatchConfig {
    /// Adapter calls in flight at once, per channel (each channel has its
    /// own lane, so one slow or throttled channel never holds another's slots).
    pub concurrency: usize,
    /// Attempts per message before a transient failure becomes a dead letter.
    pub max_attempts: u32,
    /// First retry delay, ms; doubles each attempt, with jitter.
    pub retry_base_ms: u64,
    /// Longest retry delay, ms.
    pub retry_max_ms: u64,
    /// The longest a platform's "retry after" is waited out in the lane, ms;
    /// a longer one defers the message to its due time instead.
    pub max_retry_after_ms: u64,
    /// Rate-limit answers a message may get before it becomes a dead letter.
    pub max_rate_limited: u32,
    /// How long a claim holds a send before another engine may take it over,
    /// ms. Must exceed the sandbox's call timeout.
    pub lease_ms: u64,
}

impl Default for DispatchConfig {
    fn default() -> Self {
        Self {
            concurrency: 16,
            max_attempts: 5,
            retry_base_ms: 500,
            retry_max_ms: 30_000,
            max_retry_after_ms: 60_000,
            max_rate_limited: 50,
            lease_ms: 120_000,
        }
    }
}

impl DispatchConfig {
    /// Jittered exponential backoff for the `attempt`th retry (1-based).
    pub fn backoff(&self, attempt: u32) -> Duration {
        use rand::Rng;
        let base = self.retry_base_ms.max(1) as f64;
        let exponential = base * 2f64.powi(attempt.saturating_sub(1).min(16) as i32);
        let capped = exponential.min(self.retry_max_ms.max(1) as f64);
        let jitter = rand::rng().random_range(0.5..=1.0);
        Duration::from_millis((capped * jitter) as u64)
    }
}

/// Per-channel pacing the operator sets beside the channel's grant.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LaneConfig {
    /// Messages per second; overrides the adapter's declared default.
    pub messages_per_second: Option<u32>,
    /// Adapter calls in flight at once on this channel; overrides `[dispatch].concurrency`.
    pub concurrency: Option<usize>,
    /// The least time between two messages to one recipient, ms (WhatsApp's
    /// pair rate: about one message per 6 seconds to the same user).
    pub pair_interval_ms: Option<u64>,
    /// The most unique recipients reached with templates in a moving 24
    /// hours (WhatsApp's messaging tiers: 250, 1,000, 10,000, 100,000).
    pub daily_unique_recipients: Option<u64>,
    /// At most so many messages to one profile on this channel per moving
    /// day or week, across campaigns and triggers.
    pub frequency_caps: Vec<FrequencyCap>,
}

/// Everything the engine needs to know about pacing and retries.
#[derive(Debug, Clone, Default)]
pub struct DeliverySettings {
    /// The `[dispatch]` table.
    pub dispatch: DispatchConfig,
    /// Per-channel pacing, by channel name.
    pub lanes: HashMap<String, LaneConfig>,
    /// What platform consent events mean per channel, by channel name.
    pub consent: HashMap<String, ConsentPolicy>,
    /// Frequency caps of channels with no `lanes` entry of their own.
    pub frequency_caps: Vec<FrequencyCap>,
}

impl DeliverySettings {
    /// The consent policy of `channel` (the default where not configured).
    pub fn consent(&self, channel: &str) -> ConsentPolicy {
        self.consent.get(channel).cloned().unwrap_or_default()
    }

    /// The pacing of `channel`.
    pub fn lane(&self, channel: &str) -> LaneConfig {
        self.lanes
            .get(channel)
            .cloned()
            .unwrap_or_else(|| LaneConfig {
                frequency_caps: self.frequency_caps.clone(),
                ..LaneConfig::default()
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_up_to_the_cap() {
        let config = DispatchConfig {
            retry_base_ms: 100,
            retry_max_ms: 1_000,
            ..DispatchConfig::default()
        };
        for _ in 0..50 {
            let first = config.backoff(1).as_millis();
            assert!((50..=100).contains(&first), "{first}");
            let third = config.backoff(3).as_millis();
            assert!((200..=400).contains(&third), "{third}");
            let late = config.backoff(30).as_millis();
            assert!((500..=1_000).contains(&late), "{late}");
        }
    }
}
