//! Access tokens shared by every call of this adapter, kept by the host.
//!
//! Each call runs in a fresh instance, so a token fetched in one call is lost
//! unless it is cached here. [`get_or_fetch`] makes concurrent calls share one
//! fetch: the first caller refreshes while the others wait for its result.

use crate::bindings::switchboard::channel::token_cache as host;

/// The cached token under `key`, fetching and caching a new one when absent.
///
/// `fetch` returns the token and its lifetime in seconds; the token is cached
/// for `lifetime - refresh_margin_seconds` so it is renewed shortly before it
/// expires.
pub fn get_or_fetch<E>(
    key: &str,
    refresh_margin_seconds: u32,
    fetch: impl FnOnce() -> Result<(String, u32), E>,
) -> Result<String, E> {
    if let Some(token) = host::get(key) {
        return Ok(token);
    }
    if let Some(token) = host::lock(key) {
        return Ok(token);
    }
    let (token, lifetime) = fetch()?;
    let ttl = lifetime.saturating_sub(refresh_margin_seconds).max(1);
    host::set(key, &token, ttl);
    Ok(token)
}

/// Forget the token under `key`, e.g. after the platform rejected it.
pub fn invalidate(key: &str) {
    host::invalidate(key);
}

/// Store a value directly.
pub fn set(key: &str, value: &str, ttl_seconds: u32) {
    host::set(key, value, ttl_seconds);
}

/// The cached value under `key`, if any.
pub fn get(key: &str) -> Option<String> {
    host::get(key)
}
