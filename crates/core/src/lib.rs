//! Switchboard's domain rules, free of I/O: what a campaign is, how an
//! audience is read, who has consented to what, and what may be sent to
//! whom, when and with which content.
//!
//! - [`campaign`]: campaign files and idempotency keys.
//! - [`template`]: `{{column}}` placeholders.
//! - [`attributes`]: a profile's fields by column name, compactly.
//! - [`ingest`]: audience CSV files into profiles, row by row.
//! - [`consent`]: the consent rules — the audience baseline, the ledger,
//!   and which platform events and send errors change consent.
//! - [`events`]: what a normalised webhook event means for the host's state
//!   (delivery status, inbound messages, windows, consent).
//! - [`policy`]: the gate deciding, per recipient and channel, send / defer
//!   / skip and with which content.
//!
//! Everything here is a pure function of its inputs, tested without a
//! database, an async runtime or a wasm engine.

pub mod attributes;
pub mod campaign;
pub mod consent;
pub mod events;
pub mod ingest;
mod phone_parse;
mod phone_patterns;
mod phone_validity;
pub mod policy;
mod seen_ids;
pub mod template;
