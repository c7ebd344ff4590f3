//! Switchboard's durable state.
//!
//! - the outbox of sends, keyed by idempotency key;
//! - delivery events from status webhooks, matched to sends by platform id
//!   or by the correlation key the platform echoes back;
//! - inbound messages and the conversation windows they open, per opener;
//! - the append-only consent ledger;
//! - per-recipient decisions, for "why did this person get nothing?";
//! - adapters' durable key-value storage (contract 1.1.0 `storage`).
//!
//! [`sqlite`] is the embedded default (WAL).

pub mod sqlite;

pub use sqlite::*;
