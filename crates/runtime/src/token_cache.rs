//! The host-side token cache behind the `token-cache` import.
//!
//! One cache per channel, shared by every call and every loaded version of
//! that channel's adapter. A per-key refresh lock makes concurrent calls
//! share one token fetch: the first caller to miss takes the lock and
//! fetches; the others wait on the lock and then read what it stored.
//!
//! The cache is bounded per channel ([`TokenLimits`]): a value larger than
//! the byte budget is refused (the call fails), and when the entries or
//! bytes would pass their budget the expired entries and then those expiring
//! soonest are evicted.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::OwnedMutexGuard;

/// Bounds on one channel's token cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenLimits {
    /// Most keys held.
    pub max_entries: usize,
    /// Most bytes held, keys and values together.
    pub max_bytes: usize,
}

impl Default for TokenLimits {
    fn default() -> Self {
        Self {
            max_entries: 1_000,
            max_bytes: 1024 * 1024,
        }
    }
}

/// A value the cache would not take.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "token cache: a value of {bytes} bytes under `{key}` exceeds the channel's budget of {limit} bytes (`token_cache_bytes`)"
)]
pub struct TokenTooLarge {
    /// The key (at most its first 64 characters).
    pub key: String,
    /// Key and value size.
    pub bytes: usize,
    /// The budget.
    pub limit: usize,
}

/// Cached values with expiry, and their refresh locks.
#[derive(Debug, Default)]
pub struct TokenCache {
    limits: TokenLimits,
    entries: Mutex<Entries>,
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

#[derive(Debug, Default)]
struct Entries {
    values: HashMap<String, (String, Instant)>,
    bytes: usize,
}

impl Entries {
    fn remove(&mut self, key: &str) {
        if let Some((value, _)) = self.values.remove(key) {
            self.bytes -= key.len() + value.len();
        }
    }

    /// Evict until `incoming` more bytes and one more key fit. Once it has
    /// to evict, it evicts down to an eighth below the budget, so that a
    /// run of inserts past the budget sorts the entries once per eighth of
    /// them, not on every insert (an adapter storing many tokens would
    /// otherwise pay a scan and a sort of the whole cache per token).
    fn make_room(&mut self, incoming: usize, limits: TokenLimits) {
        let below = |e: &Self, slack_entries: usize, slack_bytes: usize| {
            e.values.len() + 1 + slack_entries <= limits.max_entries
                && e.bytes + incoming + slack_bytes <= limits.max_bytes
        };
        if below(self, 0, 0) {
            return;
        }
        let (slack_entries, slack_bytes) = (limits.max_entries / 8, limits.max_bytes / 8);
        let now = Instant::now();
        let expired: Vec<String> = self
            .values
            .iter()
            .filter(|(_, (_, expires))| *expires <= now)
            .map(|(key, _)| key.clone())
            .collect();
        for key in expired {
            self.remove(&key);
        }
        if below(self, slack_entries, slack_bytes) {
            return;
        }
        let mut by_expiry: Vec<(Instant, String)> = self
            .values
            .iter()
            .map(|(key, (_, expires))| (*expires, key.clone()))
            .collect();
        by_expiry.sort();
        for (_, key) in by_expiry {
            if below(self, slack_entries, slack_bytes) {
                break;
            }
            self.remove(&key);
        }
    }
}

/// A held refresh lock; dropping it lets the next waiter in.
pub type RefreshGuard = OwnedMutexGuard<()>;

impl TokenCache {
    /// An empty cache bounded by `limits`.
    pub fn new(limits: TokenLimits) -> Self {
        Self {
            limits,
            ..Self::default()
        }
    }

    /// Keys and bytes held now.
    pub fn usage(&self) -> (usize, usize) {
        self.entries
            .lock()
            .map(|e| (e.values.len(), e.bytes))
            .unwrap_or_default()
    }

    /// The value under `key`, if present and not expired.
    pub fn get(&self, key: &str) -> Option<String> {
        let entries = self.entries.lock().ok()?;
        entries
            .values
            .get(key)
            .filter(|(_, expires)| *expires > Instant::now())
            .map(|(value, _)| value.clone())
    }

    /// Wait for the refresh lock of `key`; returns it with the value a
    /// previous holder stored, if any.
    pub async fn lock(&self, key: &str) -> (RefreshGuard, Option<String>) {
        let lock = {
            let mut locks = match self.locks.lock() {
                Ok(locks) => locks,
                Err(poisoned) => poisoned.into_inner(),
            };
            if locks.len() >= self.limits.max_entries {
                // Locks nobody holds or waits on are only memory.
                locks.retain(|_, lock| Arc::strong_count(lock) > 1);
            }
            Arc::clone(locks.entry(key.to_owned()).or_default())
        };
        let guard = lock.lock_owned().await;
        (guard, self.get(key))
    }

    /// Store `value` under `key` for `ttl`, evicting others if the
    /// channel's budget needs it.
    pub fn set(&self, key: &str, value: &str, ttl: Duration) -> Result<(), TokenTooLarge> {
        let bytes = key.len() + value.len();
        if bytes > self.limits.max_bytes {
            return Err(TokenTooLarge {
                key: key.chars().take(64).collect(),
                bytes,
                limit: self.limits.max_bytes,
            });
        }
        if let Ok(mut entries) = self.entries.lock() {
            entries.remove(key);
            entries.make_room(bytes, self.limits);
            let expires = Instant::now()
                .checked_add(ttl)
                .unwrap_or_else(|| Instant::now() + Duration::from_secs(365 * 86_400));
            entries
                .values
                .insert(key.to_owned(), (value.to_owned(), expires));
            entries.bytes += bytes;
        }
        Ok(())
    }

    /// Forget `key`.
    pub fn invalidate(&self, key: &str) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn expires_values() {
        let cache = TokenCache::default();
        cache.set("t", "abc", Duration::from_millis(30)).unwrap();
        assert_eq!(cache.get("t").as_deref(), Some("abc"));
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(cache.get("t"), None);
    }

    #[tokio::test]
    async fn waiters_see_the_value_the_lock_holder_stored() {
        let cache = Arc::new(TokenCache::default());
        let (guard, before) = cache.lock("t").await;
        assert_eq!(before, None);
        let waiter = {
            let cache = Arc::clone(&cache);
            tokio::spawn(async move { cache.lock("t").await.1 })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(
            !waiter.is_finished(),
            "the second caller must wait for the first"
        );
        cache.set("t", "fresh", Duration::from_secs(60)).unwrap();
        drop(guard);
        assert_eq!(waiter.await.unwrap().as_deref(), Some("fresh"));
    }

    #[test]
    fn the_cache_stays_within_its_budget_evicting_the_soonest_expiring() {
        let cache = TokenCache::new(TokenLimits {
            max_entries: 3,
            max_bytes: 100,
        });
        cache.set("a", "1", Duration::from_secs(10)).unwrap();
        cache.set("b", "2", Duration::from_secs(30)).unwrap();
        cache.set("c", "3", Duration::from_secs(20)).unwrap();
        cache.set("d", "4", Duration::from_secs(40)).unwrap();
        assert_eq!(cache.get("a"), None, "the soonest to expire goes first");
        assert_eq!(cache.usage(), (3, 6));
        cache
            .set("big", &"x".repeat(90), Duration::from_secs(50))
            .unwrap();
        let (entries, bytes) = cache.usage();
        assert!(
            entries <= 3 && bytes <= 100,
            "{entries} keys, {bytes} bytes"
        );
        assert_eq!(cache.get("big").map(|v| v.len()), Some(90));
        // Replacing a key does not count it twice.
        cache
            .set("big", &"y".repeat(90), Duration::from_secs(50))
            .unwrap();
        assert!(cache.usage().1 <= 100);
    }

    #[test]
    fn inserts_past_the_budget_evict_an_eighth_at_a_time() {
        let cache = TokenCache::new(TokenLimits {
            max_entries: 80,
            max_bytes: 1 << 20,
        });
        for i in 0..80 {
            cache
                .set(&format!("k{i:02}"), "v", Duration::from_secs(100 + i))
                .unwrap();
        }
        assert_eq!(cache.usage().0, 80);
        // The 81st evicts the eleven soonest to expire (down to an eighth,
        // ten entries, below the budget with it) and leaves room for ten more.
        cache.set("new", "v", Duration::from_secs(1_000)).unwrap();
        assert_eq!(cache.usage().0, 70);
        assert_eq!(cache.get("k10"), None);
        assert_eq!(cache.get("k11").as_deref(), Some("v"));
        for i in 0..10 {
            cache
                .set(&format!("more{i}"), "v", Duration::from_secs(1_000))
                .unwrap();
        }
        assert_eq!(
            cache.usage().0,
            80,
            "no eviction until the budget is reached again"
        );
        assert_eq!(cache.get("k11").as_deref(), Some("v"));
    }

    #[test]
    fn a_value_larger_than_the_budget_is_refused_naming_the_setting() {
        let cache = TokenCache::new(TokenLimits {
            max_entries: 10,
            max_bytes: 100,
        });
        let error = cache
            .set("k", &"x".repeat(200), Duration::from_secs(1))
            .unwrap_err();
        assert_eq!(error.bytes, 201);
        assert!(error.to_string().contains("token_cache_bytes"), "{error}");
        assert_eq!(cache.usage(), (0, 0));
    }

    #[tokio::test]
    async fn refresh_locks_nobody_holds_are_dropped() {
        let cache = TokenCache::new(TokenLimits {
            max_entries: 4,
            max_bytes: 100,
        });
        for i in 0..100 {
            let (guard, _) = cache.lock(&format!("key-{i}")).await;
            drop(guard);
        }
        assert!(cache.locks.lock().unwrap().len() <= 5);
    }
}
