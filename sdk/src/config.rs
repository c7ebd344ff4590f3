//! The operator's settings and secrets for this adapter.
//!
//! Only keys declared in the adapter's manifest are visible; anything else
//! reads as unset. Secret values are never logged by the host.

use crate::bindings::switchboard::channel::config as host;
use crate::types::{Failure, SendError};

/// A declared setting, if the operator set it.
pub fn get(key: &str) -> Option<String> {
    host::get(key)
}

/// A declared setting, or `default` when unset.
pub fn get_or(key: &str, default: &str) -> String {
    host::get(key).unwrap_or_else(|| default.to_owned())
}

/// A declared secret, if the operator set it.
pub fn secret(key: &str) -> Option<String> {
    host::secret(key)
}

/// A secret the adapter cannot work without: missing means `auth-failed`.
pub fn require_secret(key: &str) -> Result<String, SendError> {
    host::secret(key)
        .filter(|value| !value.is_empty())
        .ok_or_else(|| {
            SendError::AuthFailed(Failure::new(
                "",
                format!("secret `{key}` is not configured for this adapter"),
            ))
        })
}

/// A setting the adapter cannot work without: missing means `permanent`.
pub fn require(key: &str) -> Result<String, SendError> {
    host::get(key)
        .filter(|value| !value.is_empty())
        .ok_or_else(|| {
            SendError::Permanent(Failure::new(
                "",
                format!("setting `{key}` is not configured for this adapter"),
            ))
        })
}
