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
//! - [`status_report`]: what `switchboard status` prints;
//! - [`adapter_commands`]: `switchboard adapter new|test|keygen|pack|verify|install`;
//! - [`conformance`]: the contract checks `adapter test` runs;
//! - [`scaffold`], [`scaffold_js`]: the projects `adapter new` writes.
//!
//! The work itself lives in `switchboard-contract` (the versioned adapter
//! contract and the neutral model), `switchboard-runtime` (the sandbox),
//! `switchboard-core` (campaigns, ingest, consent, policy),
//! `switchboard-store` (durable state), `switchboard-delivery` (the outbox
//! engine) and `switchboard-server` (webhooks and the admin API).

pub mod adapter_commands;
pub mod cli;
pub mod config;
pub mod conformance;
pub mod host;
pub mod scaffold;
pub mod scaffold_js;
pub mod status_report;

pub use host::Host;
