//! What the cross-crate tests know about each platform: how to configure
//! its adapter against the simulator, and how the contract suite
//! (`tests/contract.rs`) exercises it. Adding an adapter means adding a
//! module here and its [`Platform`] to [`ALL`]; the suite then runs it.

pub mod kakaotalk;
pub mod line;
pub mod rcs;
pub mod telegram;
pub mod wechat;
pub mod whatsapp;

use futures::future::BoxFuture;
use switchboard_contract::model::{Receipt, SendError};
use switchboard_simulator::SimulatorHandle;

use crate::Harness;

/// Drives one platform's outcome cases; see [`Platform::outcome_classes`].
pub type OutcomeCases = for<'a> fn(&'a Harness) -> BoxFuture<'a, Vec<(&'static str, String)>>;

/// Builds a handshake request and the body expected back; see [`Platform::handshake`].
pub type Handshake = fn(&Harness, &str) -> (reqwest::RequestBuilder, String);

/// How the contract suite drives one adapter.
pub struct Platform {
    /// The channel name.
    pub channel: &'static str,
    /// The `[channels.<channel>]` table pointing the adapter at `simulator`.
    pub config_section: fn(&SimulatorHandle) -> String,
    /// Drive the simulator and the adapter so that each outcome class the
    /// platform can produce appears; returns `(expected class, observed
    /// class)` pairs (see [`class_of`]). Runs on a harness of its own.
    pub outcome_classes: OutcomeCases,
    /// A webhook request with a forged or missing signature, sent to the
    /// host at `base_url`; the suite expects a 4xx and no events recorded.
    pub forged_webhook: fn(&Harness, &str) -> reqwest::RequestBuilder,
    /// A verification handshake sent to the host at `base_url`, and the body
    /// the platform expects back; `None` where the platform has none.
    pub handshake: Option<Handshake>,
}

/// Every platform the suite runs.
pub fn all() -> Vec<Platform> {
    vec![
        whatsapp::platform(),
        line::platform(),
        wechat::platform(),
        rcs::platform(),
        kakaotalk::platform(),
        telegram::platform(),
    ]
}

/// `[channels.*]` tables for every platform the simulator serves, with its
/// credentials; WhatsApp's comes last.
pub fn config_sections(simulator: &SimulatorHandle) -> String {
    switchboard_simulator::host_config::all_sections(simulator, whatsapp::VERIFY_TOKEN)
}

/// The contract's name for a send result's class: `receipt`, `duplicate`,
/// `rate-limited`, `transient`, `permanent`, `window-closed`,
/// `recipient-unreachable`, `opted-out`, `auth-failed`, `invalid-content`,
/// `uncertain`, `deferred`.
pub fn class_of(result: &Result<Receipt, SendError>) -> String {
    match result {
        Ok(receipt) if receipt.duplicate => "duplicate",
        Ok(_) => "receipt",
        Err(SendError::RateLimited(_)) => "rate-limited",
        Err(SendError::Transient(_)) => "transient",
        Err(SendError::Permanent(_)) => "permanent",
        Err(SendError::WindowClosed(_)) => "window-closed",
        Err(SendError::RecipientUnreachable(_)) => "recipient-unreachable",
        Err(SendError::OptedOut(_)) => "opted-out",
        Err(SendError::AuthFailed(_)) => "auth-failed",
        Err(SendError::InvalidContent(_)) => "invalid-content",
        Err(SendError::Uncertain(_)) => "uncertain",
        Err(SendError::Deferred(_)) => "deferred",
    }
    .to_owned()
}
