//! The host-side token cache behind the `token-cache` import.
//!
//! One cache per channel, shared by every call and every loaded version of
//! that channel's adapter. A per-key refresh lock makes concurrent calls
//! share one token fetch: the first caller to miss takes the lock and
//! fetches; the others wait on the lock and then read what it stored.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::OwnedMutexGuard;

/// Cached values with expiry, and their refresh locks.
#[derive(Debug, Default)]
pub struct TokenCache {
    entries: Mutex<HashMap<String, (String, Instant)>>,
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

/// A held refresh lock; dropping it lets the next waiter in.
pub type RefreshGuard = OwnedMutexGuard<()>;

impl TokenCache {
    /// The value under `key`, if present and not expired.
    pub fn get(&self, key: &str) -> Option<String> {
        let entries = self.entries.lock().ok()?;
        entries
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
            Arc::clone(locks.entry(key.to_owned()).or_default())
        };
        let guard = lock.lock_owned().await;
        (guard, self.get(key))
    }

    /// Store `value` under `key` for `ttl`.
    pub fn set(&self, key: &str, value: &str, ttl: Duration) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.insert(key.to_owned(), (value.to_owned(), Instant::now() + ttl));
        }
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
        cache.set("t", "abc", Duration::from_millis(30));
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
        cache.set("t", "fresh", Duration::from_secs(60));
        drop(guard);
        assert_eq!(waiter.await.unwrap().as_deref(), Some("fresh"));
    }
}
