//! Switchboard's delivery engine.
//!
//! - [`activation`]: a campaign over an audience, recipient by recipient
//!   through the policy gate into the outbox, with one result per recipient.
//! - [`dispatch`]: sends claimed messages through the adapters under the
//!   channel's rate limit, retries, and settles each send.
//! - [`rate_limit`]: the per-channel token bucket.

pub mod activation;
pub mod dispatch;
pub mod rate_limit;
