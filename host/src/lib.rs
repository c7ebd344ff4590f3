//! Switchboard: the open host that delivers CDP audiences to messaging apps
//! through sandboxed WebAssembly channel adapters.
//!
//! Modules, one per concept:
//! - [`runtime`]: loads adapters and runs them in a sandbox.

pub mod activation;
pub mod campaign;
pub mod cli;
pub mod config;
pub mod consent;
pub mod dispatch;
pub mod ingest;
pub mod policy;
pub mod runtime;
pub mod server;
pub mod store;
pub mod template;
