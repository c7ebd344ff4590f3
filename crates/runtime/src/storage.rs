//! Durable per-channel storage behind the contract's `storage` import.
//!
//! Adapters keep values here that a retry must find again after the host
//! restarts (LINE multicast retry keys, NHN request keys). The runtime
//! checks sizes and time limits; a [`StorageBackend`] (the host's
//! database, or [`MemoryStorage`] when there is none) keeps the values.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;
use switchboard_contract::model::StorageError;

/// Limits on what one channel may keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StorageLimits {
    /// Longest key, in bytes.
    pub max_key_bytes: usize,
    /// Longest value, in bytes.
    pub max_value_bytes: usize,
    /// Most entries per channel.
    pub max_entries: u64,
    /// Most bytes (keys and values) per channel.
    pub max_bytes: u64,
    /// Longest a value is kept, in seconds (also for values stored without a TTL).
    pub max_ttl_seconds: u32,
}

impl Default for StorageLimits {
    fn default() -> Self {
        Self {
            max_key_bytes: 256,
            max_value_bytes: 64 * 1024,
            max_entries: 5_000_000,
            max_bytes: 1 << 30,
            max_ttl_seconds: 30 * 24 * 3600,
        }
    }
}

/// A write to a backend: the key, value and absolute expiry.
#[derive(Debug, Clone, Copy)]
pub struct StorageWrite<'a> {
    /// The channel whose space it is.
    pub channel: &'a str,
    /// The key.
    pub key: &'a str,
    /// The value.
    pub value: &'a str,
    /// When it expires, ms since the Unix epoch.
    pub expires_ms: i64,
    /// The most entries the channel may hold.
    pub max_entries: u64,
    /// The most bytes the channel may hold.
    pub max_bytes: u64,
}

/// Where adapters' durable values live. Implementations must make
/// `put_if_absent` atomic across every host sharing the backend.
pub trait StorageBackend: Send + Sync + 'static {
    /// The live value under `key`, if any.
    fn get<'a>(
        &'a self,
        channel: &'a str,
        key: &'a str,
        now_ms: i64,
    ) -> BoxFuture<'a, Result<Option<String>, StorageError>>;
    /// Store `write.value`, replacing any value.
    fn put<'a>(
        &'a self,
        write: StorageWrite<'a>,
        now_ms: i64,
    ) -> BoxFuture<'a, Result<(), StorageError>>;
    /// Store `write.value` unless a live value exists; return the value stored afterwards.
    fn put_if_absent<'a>(
        &'a self,
        write: StorageWrite<'a>,
        now_ms: i64,
    ) -> BoxFuture<'a, Result<String, StorageError>>;
    /// Remove `key`.
    fn delete<'a>(
        &'a self,
        channel: &'a str,
        key: &'a str,
    ) -> BoxFuture<'a, Result<(), StorageError>>;
}

/// Values kept in memory: for tests and tools that run without a database.
/// They do not survive the process.
#[derive(Debug, Default)]
pub struct MemoryStorage {
    entries: Mutex<HashMap<(String, String), (String, i64)>>,
}

impl MemoryStorage {
    fn with<R>(&self, f: impl FnOnce(&mut HashMap<(String, String), (String, i64)>) -> R) -> R {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut entries)
    }

    fn live_count(
        entries: &HashMap<(String, String), (String, i64)>,
        channel: &str,
        now: i64,
    ) -> u64 {
        entries
            .iter()
            .filter(|((c, _), (_, expires))| c == channel && *expires > now)
            .count() as u64
    }
}

impl StorageBackend for MemoryStorage {
    fn get<'a>(
        &'a self,
        channel: &'a str,
        key: &'a str,
        now_ms: i64,
    ) -> BoxFuture<'a, Result<Option<String>, StorageError>> {
        let value = self.with(|entries| {
            entries
                .get(&(channel.to_owned(), key.to_owned()))
                .filter(|(_, expires)| *expires > now_ms)
                .map(|(value, _)| value.clone())
        });
        Box::pin(async move { Ok(value) })
    }

    fn put<'a>(
        &'a self,
        write: StorageWrite<'a>,
        now_ms: i64,
    ) -> BoxFuture<'a, Result<(), StorageError>> {
        let result = self.with(|entries| {
            let id = (write.channel.to_owned(), write.key.to_owned());
            let exists = entries.get(&id).is_some_and(|(_, e)| *e > now_ms);
            if !exists && Self::live_count(entries, write.channel, now_ms) >= write.max_entries {
                return Err(quota(write.max_entries, write.max_bytes));
            }
            entries.insert(id, (write.value.to_owned(), write.expires_ms));
            Ok(())
        });
        Box::pin(async move { result })
    }

    fn put_if_absent<'a>(
        &'a self,
        write: StorageWrite<'a>,
        now_ms: i64,
    ) -> BoxFuture<'a, Result<String, StorageError>> {
        let result = self.with(|entries| {
            let id = (write.channel.to_owned(), write.key.to_owned());
            if let Some((value, expires)) = entries.get(&id)
                && *expires > now_ms
            {
                return Ok(value.clone());
            }
            if Self::live_count(entries, write.channel, now_ms) >= write.max_entries {
                return Err(quota(write.max_entries, write.max_bytes));
            }
            entries.insert(id, (write.value.to_owned(), write.expires_ms));
            Ok(write.value.to_owned())
        });
        Box::pin(async move { result })
    }

    fn delete<'a>(
        &'a self,
        channel: &'a str,
        key: &'a str,
    ) -> BoxFuture<'a, Result<(), StorageError>> {
        self.with(|entries| entries.remove(&(channel.to_owned(), key.to_owned())));
        Box::pin(async { Ok(()) })
    }
}

/// The quota error, naming the limits.
pub fn quota(max_entries: u64, max_bytes: u64) -> StorageError {
    StorageError::QuotaExceeded(format!(
        "the channel's storage is full: the host allows {max_entries} entries and {max_bytes} bytes"
    ))
}

/// One channel's view of the backend, with the host's limits applied.
#[derive(Clone)]
pub struct ChannelStorage {
    channel: Arc<str>,
    backend: Arc<dyn StorageBackend>,
    limits: StorageLimits,
}

impl ChannelStorage {
    /// `channel`'s space in `backend`.
    pub fn new(channel: Arc<str>, backend: Arc<dyn StorageBackend>, limits: StorageLimits) -> Self {
        Self {
            channel,
            backend,
            limits,
        }
    }

    fn check(&self, key: &str, value: &str, ttl: Option<u32>) -> Result<i64, StorageError> {
        if key.len() > self.limits.max_key_bytes {
            return Err(StorageError::TooLarge(format!(
                "key of {} bytes; the host allows {}",
                key.len(),
                self.limits.max_key_bytes
            )));
        }
        if value.len() > self.limits.max_value_bytes {
            return Err(StorageError::TooLarge(format!(
                "value of {} bytes; the host allows {}",
                value.len(),
                self.limits.max_value_bytes
            )));
        }
        let ttl = ttl
            .unwrap_or(self.limits.max_ttl_seconds)
            .min(self.limits.max_ttl_seconds);
        Ok(now_ms() + i64::from(ttl) * 1000)
    }

    fn write<'a>(&'a self, key: &'a str, value: &'a str, expires_ms: i64) -> StorageWrite<'a> {
        StorageWrite {
            channel: &self.channel,
            key,
            value,
            expires_ms,
            max_entries: self.limits.max_entries,
            max_bytes: self.limits.max_bytes,
        }
    }

    /// `storage.get`; a backend failure reads as absent (and is logged).
    pub async fn get(&self, key: &str) -> Option<String> {
        if key.len() > self.limits.max_key_bytes {
            return None;
        }
        match self.backend.get(&self.channel, key, now_ms()).await {
            Ok(value) => value,
            Err(error) => {
                tracing::error!(adapter = &*self.channel, %error, "adapter storage read failed");
                None
            }
        }
    }

    /// `storage.put`.
    pub async fn put(&self, key: &str, value: &str, ttl: Option<u32>) -> Result<(), StorageError> {
        let expires = self.check(key, value, ttl)?;
        self.backend
            .put(self.write(key, value, expires), now_ms())
            .await
    }

    /// `storage.put-if-absent`.
    pub async fn put_if_absent(
        &self,
        key: &str,
        value: &str,
        ttl: Option<u32>,
    ) -> Result<String, StorageError> {
        let expires = self.check(key, value, ttl)?;
        self.backend
            .put_if_absent(self.write(key, value, expires), now_ms())
            .await
    }

    /// `storage.delete`.
    pub async fn delete(&self, key: &str) {
        if let Err(error) = self.backend.delete(&self.channel, key).await {
            tracing::error!(adapter = &*self.channel, %error, "adapter storage delete failed");
        }
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn storage(limits: StorageLimits) -> ChannelStorage {
        ChannelStorage::new(
            Arc::from("line"),
            Arc::new(MemoryStorage::default()),
            limits,
        )
    }

    #[tokio::test]
    async fn put_if_absent_keeps_the_first_value() {
        let storage = storage(StorageLimits::default());
        assert_eq!(
            storage.put_if_absent("group", "a", None).await.unwrap(),
            "a"
        );
        assert_eq!(
            storage.put_if_absent("group", "b", None).await.unwrap(),
            "a"
        );
        storage.delete("group").await;
        assert_eq!(storage.get("group").await, None);
    }

    #[tokio::test]
    async fn sizes_and_quota_are_enforced() {
        let storage = storage(StorageLimits {
            max_key_bytes: 4,
            max_value_bytes: 4,
            max_entries: 1,
            max_bytes: 1 << 20,
            max_ttl_seconds: 60,
        });
        assert!(matches!(
            storage.put("toolong", "v", None).await,
            Err(StorageError::TooLarge(_))
        ));
        assert!(matches!(
            storage.put("k", "toolong", None).await,
            Err(StorageError::TooLarge(_))
        ));
        storage.put("k", "v", None).await.unwrap();
        storage.put("k", "w", None).await.unwrap();
        let error = storage.put("k2", "v", None).await.unwrap_err();
        assert!(error.to_string().contains("1 entries"), "{error}");
        assert!(error.to_string().contains("storage is full"), "{error}");
    }

    #[tokio::test]
    async fn channels_have_separate_spaces() {
        let backend: Arc<dyn StorageBackend> = Arc::new(MemoryStorage::default());
        let line = ChannelStorage::new(
            Arc::from("line"),
            Arc::clone(&backend),
            StorageLimits::default(),
        );
        let other = ChannelStorage::new(Arc::from("other"), backend, StorageLimits::default());
        line.put("k", "secret", None).await.unwrap();
        assert_eq!(other.get("k").await, None);
    }
}
