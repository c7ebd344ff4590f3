//! Durable storage kept by the host for this channel: it survives host
//! restarts and is shared by every host working the same database.
//!
//! Use it for what a retry must find again after a crash — the retry key a
//! platform deduplicates a multi-recipient request on, for example. Each
//! call runs in a fresh instance, so nothing else persists. The host bounds
//! key and value sizes and the number of entries.
//!
//! ```no_run
//! use switchboard_sdk::storage;
//!
//! // The first call for this group stores its retry key; a retry after a
//! // crash gets the same one back.
//! let key = storage::put_if_absent("group:abc", "9f1c…", Some(24 * 3600))?;
//! # Ok::<(), switchboard_sdk::storage::StorageError>(())
//! ```

use crate::bindings::switchboard::channel::storage as host;

pub use host::StorageError;

/// The value under `key`, if present and not expired.
pub fn get(key: &str) -> Option<String> {
    host::get(key)
}

/// Store `value` under `key` for `ttl_seconds` (none: as long as the host
/// keeps anything), replacing any value.
pub fn put(key: &str, value: &str, ttl_seconds: Option<u32>) -> Result<(), StorageError> {
    host::put(key, value, ttl_seconds)
}

/// Store `value` under `key` unless a live value is there, and return the
/// value stored afterwards. Atomic across calls and hosts.
pub fn put_if_absent(
    key: &str,
    value: &str,
    ttl_seconds: Option<u32>,
) -> Result<String, StorageError> {
    host::put_if_absent(key, value, ttl_seconds)
}

/// Remove `key`.
pub fn delete(key: &str) {
    host::delete(key);
}
