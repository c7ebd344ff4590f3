//! Write a Switchboard channel adapter.
//!
//! An adapter teaches the Switchboard host one messaging platform. You
//! implement [`Adapter`] with plain Rust types, export it with
//! [`export_adapter!`], and build for `wasm32-wasip2`. The SDK gives you:
//!
//! - the contract's types ([`types`]), with small constructors;
//! - a blocking HTTP client that hands requests to the host, with JSON
//!   helpers ([`http`]);
//! - the operator's settings and secrets ([`config`]);
//! - a token cache shared by every call, with single-flight refresh ([`token_cache`]);
//! - durable storage that survives host restarts ([`storage`]);
//! - per-message outcomes reported as they are known, and requests tagged
//!   with the messages they carry ([`outcomes`]);
//! - logging into the host's log ([`log`]);
//! - webhook helpers: headers, query strings, replies and constant-time
//!   signature checks ([`webhook`], [`signature`]).
//!
//! The host owns policy and state; an adapter never decides consent and keeps
//! no state of its own: each call runs in a fresh instance.
//!
//! ```no_run
//! use switchboard_sdk::prelude::*;
//!
//! struct Echo;
//!
//! impl Adapter for Echo {
//!     fn describe() -> ChannelInfo {
//!         ChannelInfo::new("echo", "Echo", AddressKind::PlatformUserId)
//!     }
//!
//!     fn send(batch: Vec<OutboundMessage>) -> Vec<Result<Receipt, SendError>> {
//!         batch
//!             .into_iter()
//!             .map(|message| Ok(Receipt::new(message.idempotency_key)))
//!             .collect()
//!     }
//!
//!     fn handle_webhook(_request: HttpRequest) -> WebhookResult {
//!         WebhookResult::reply(HttpResponse::text(200, "ok"))
//!     }
//! }
//!
//! switchboard_sdk::export_adapter!(Echo);
//! ```

extern crate self as switchboard_sdk;

pub mod bindings;
pub mod config;
pub mod http;
pub mod log;
pub mod outcomes;
pub mod signature;
pub mod storage;
pub mod token_cache;
pub mod types;
pub mod webhook;

#[doc(hidden)]
pub use wit_bindgen::rt as __wit_bindgen_rt;

/// Report panics on stderr (which the host shows in the call's error)
/// without the standard hook, which reads `RUST_BACKTRACE` from the
/// environment that adapters are not allowed to touch.
#[doc(hidden)]
pub fn __install_panic_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        std::panic::set_hook(Box::new(|info| {
            let message = info
                .payload()
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| info.payload().downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "non-string panic payload".to_owned());
            let location = info
                .location()
                .map(|l| format!(" at {}:{}", l.file(), l.line()))
                .unwrap_or_default();
            eprintln!("adapter panicked{location}: {message}");
        }));
    });
}

/// The contract version this SDK implements (the folder `wit/<version>/` its
/// bindings are generated from). The host reads the version from the
/// component's exports; [`export_adapter!`] also writes it into a custom
/// section, which must agree.
pub const CONTRACT_VERSION: &str = "1.2.0";

/// [`CONTRACT_VERSION`] as the bytes of the custom section.
#[doc(hidden)]
pub const __CONTRACT_SECTION: [u8; CONTRACT_VERSION.len()] = {
    let bytes = CONTRACT_VERSION.as_bytes();
    let mut out = [0u8; CONTRACT_VERSION.len()];
    let mut i = 0;
    while i < bytes.len() {
        out[i] = bytes[i];
        i += 1;
    }
    out
};

/// Everything an adapter usually needs, in one import.
pub mod prelude {
    pub use crate::Adapter;
    pub use crate::http::{HttpError, Request, Response, send_all};
    pub use crate::types::*;
    pub use crate::{config, log, outcomes, signature, storage, token_cache, webhook};
}

/// What a channel adapter implements: the three exports of the contract.
///
/// Each call runs in a fresh instance, so implementations keep no state
/// between calls; use [`token_cache`] for what must be shared.
pub trait Adapter {
    /// Declare the platform's rules: address kind, window, templates, quiet
    /// hours, limits, egress hosts, secrets and settings.
    fn describe() -> types::ChannelInfo;

    /// Send a batch of messages and return one result per message, in order.
    fn send(batch: Vec<types::OutboundMessage>) -> Vec<Result<types::Receipt, types::SendError>>;

    /// Verify a webhook request and turn it into normalised events, answering
    /// verification handshakes. Reject a bad signature with a 401 reply.
    fn handle_webhook(request: types::HttpRequest) -> types::WebhookResult;
}

/// Export an [`Adapter`] implementation as the component's `adapter` interface.
///
/// Also writes the contract version into a custom section of the module
/// (`switchboard:contract-version`), which the host reads before loading so
/// that a mislabelled manifest cannot pick the wrong bindings.
#[macro_export]
macro_rules! export_adapter {
    ($adapter:ty) => {
        const _: () = {
            #[used]
            #[unsafe(link_section = "switchboard:contract-version")]
            static CONTRACT_VERSION: [u8; $crate::CONTRACT_VERSION.len()] =
                $crate::__CONTRACT_SECTION;

            struct Exports;

            impl $crate::bindings::exports::switchboard::channel::adapter::Guest for Exports {
                fn describe() -> $crate::types::ChannelInfo {
                    $crate::__install_panic_hook();
                    <$adapter as $crate::Adapter>::describe()
                }

                fn send(
                    batch: ::std::vec::Vec<$crate::types::OutboundMessage>,
                ) -> ::std::vec::Vec<
                    ::core::result::Result<$crate::types::Receipt, $crate::types::SendError>,
                > {
                    $crate::__install_panic_hook();
                    <$adapter as $crate::Adapter>::send(batch)
                }

                fn handle_webhook(
                    request: $crate::types::HttpRequest,
                ) -> $crate::types::WebhookResult {
                    $crate::__install_panic_hook();
                    <$adapter as $crate::Adapter>::handle_webhook(request)
                }
            }

            // Keeps the adapter "used" in native builds, where the exports below
            // are compiled out.
            #[allow(dead_code)]
            fn __adapter_is_exported() {
                let _ = <$adapter as $crate::Adapter>::describe;
                let _ = <$adapter as $crate::Adapter>::send;
                let _ = <$adapter as $crate::Adapter>::handle_webhook;
            }

            // The component exports only exist on wasm32: a native build (unit
            // tests, clippy) cannot link their `:`-qualified symbol names.
            #[cfg(target_arch = "wasm32")]
    $crate::bindings::__export_adapter_world!(Exports with_types_in $crate::bindings);
        };
    };
}

#[cfg(test)]
mod tests {
    /// The bindings are generated from `wit/<CONTRACT_VERSION>/`, whose
    /// package line must name the same version.
    #[test]
    fn contract_version_matches_the_wit_folder() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../wit/");
        let text =
            std::fs::read_to_string(format!("{path}{}/channel.wit", super::CONTRACT_VERSION))
                .expect("the WIT folder of CONTRACT_VERSION exists");
        assert!(
            text.contains(&format!(
                "package switchboard:channel@{};",
                super::CONTRACT_VERSION
            )),
            "package line names {}",
            super::CONTRACT_VERSION
        );
        let bindings = include_str!("bindings.rs");
        assert!(
            bindings.contains(&format!("\"../wit/{}\"", super::CONTRACT_VERSION)),
            "bindings.rs generates from wit/{}",
            super::CONTRACT_VERSION
        );
    }
}
