//! The Switchboard channel contract on the host side.
//!
//! This crate owns the versioned WIT contract in `wit/<version>/` (at the
//! workspace root, where adapter authors find it) and is the only place,
//! with the plugin runtime, that sees code generated from it:
//!
//! - [`model`]: the neutral host model — channel info, outbound messages,
//!   receipts, send errors, webhook events — that the rest of the host
//!   speaks, whatever contract version an adapter implements;
//! - [`ContractVersion`]: the versions this host serves and how a
//!   component's version is read from its export names;
//! - with the `host` feature: one generated binding module per version
//!   ([`v1_0`], [`v1_1`], [`v1_2`]) with the shim converting it to and from the model,
//!   [`Imports`] (the host side of every version's imports, written once),
//!   and [`AdapterPre`] / [`AdapterInstance`] to call any version through
//!   the model.
//!
//! Released contract folders never change; `wit/RELEASED` lists each one
//! with the SHA-256 of its text, and a test here fails when a folder and
//! its hash disagree. See `wit/README.md` for the versioning rule.

#![warn(missing_docs)]

pub mod model;
mod versions;

#[cfg(feature = "host")]
mod instance;
#[cfg(feature = "host")]
pub mod v1_0;
#[cfg(feature = "host")]
pub mod v1_1;
#[cfg(feature = "host")]
pub mod v1_2;

#[cfg(feature = "host")]
pub use instance::{AdapterInstance, AdapterPre, Imports, add_to_linker};
pub use versions::{ContractVersion, UnknownVersion};
