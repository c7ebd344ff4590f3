//! Switchboard: the open host that delivers CDP audiences to messaging apps
//! through sandboxed WebAssembly channel adapters.
//!
//! This crate assembles the host from the crates that do the work and puts
//! the `switchboard` command on top:
//!
//! - [`config`]: the operator's `switchboard.toml`;
//! - [`host`]: the assembled host — configuration, store, loaded adapters,
//!   delivery — that every command and the server use;
//! - [`cli`]: the command line;
//! - [`adapter_commands`]: `switchboard adapter keygen|pack|verify|install`.
//!
//! The work itself lives in `switchboard-contract` (the versioned adapter
//! contract and the neutral model), `switchboard-runtime` (the sandbox),
//! `switchboard-core` (campaigns, ingest, consent, policy),
//! `switchboard-store` (durable state), `switchboard-delivery` (the outbox
//! engine) and `switchboard-server` (webhooks and the admin API).

pub mod adapter_commands;
pub mod cli;
pub mod config;
pub mod host;

pub use host::Host;
