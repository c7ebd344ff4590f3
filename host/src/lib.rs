//! Switchboard: the open host that delivers CDP audiences to messaging apps
//! through sandboxed WebAssembly channel adapters.
//!
//! Modules, one per concept:
//! - [`runtime`]: loads adapters and runs them in a sandbox.

pub mod runtime;
