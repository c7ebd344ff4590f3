//! Switchboard channel adapter for the LINE Messaging API.
//!
//! This file is the thin layer that talks to the host (configuration,
//! token cache, HTTP, logging). The platform knowledge lives in plain
//! functions that are tested natively:
//!
//! - [`payload`]: checks, retry keys, and the plan that groups identical
//!   texts into multicasts and sends personalised ones by push;
//! - [`groups`]: the durable memory of multicast retry groups, so that a
//!   retried member resends its whole group under the same retry key;
//! - [`errors`]: receipts (including `409` replays) and the classification
//!   of LINE's errors into send-error classes;
//! - [`webhook`]: `x-line-signature` and event parsing.

#![warn(missing_docs)]

pub mod errors;
pub mod groups;
pub mod payload;
pub mod webhook;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use switchboard_sdk::prelude::*;
use switchboard_sdk::storage::StorageError;
use switchboard_sdk::webhook::now_ms;

use crate::payload::{Candidate, Planned};

/// Setting: the Messaging API base URL (a simulator in tests).
pub const SETTING_BASE_URL: &str = "base_url";
/// Setting: how long one `send` call may keep starting requests, in
/// milliseconds, before it hands the rest back as `transient`.
pub const SETTING_SEND_BUDGET_MS: &str = "send_budget_ms";
/// Secret: the channel access token, sent as a bearer token.
pub const SECRET_CHANNEL_ACCESS_TOKEN: &str = "channel_access_token";
/// Secret: the channel secret that signs webhooks.
pub const SECRET_CHANNEL_SECRET: &str = "channel_secret";

/// Default for [`SETTING_BASE_URL`].
pub const DEFAULT_BASE_URL: &str = "https://api.line.me";
/// Default for [`SETTING_SEND_BUDGET_MS`]: half the host's default 30 s
/// call timeout, leaving room for the last request's own 10 s timeout.
pub const DEFAULT_SEND_BUDGET_MS: u64 = 15_000;
/// How long a multicast's membership is remembered for its retries: as
/// long as LINE keeps a retry key.
pub const RETRY_KEY_TTL_SECONDS: u32 = groups::TTL_SECONDS;

/// The LINE Messaging API adapter.
pub struct Line;

/// What the adapter declares about LINE (see `describe`).
pub fn channel_info() -> ChannelInfo {
    ChannelInfo {
        // No reply window for push: friends can be messaged at any time.
        free_form: FreeFormRule::Always,
        template_purposes: Vec::new(),
        quiet_hours: Vec::new(),
        limits: Limits {
            // LINE counts UTF-16 code units: an emoji outside the BMP is two.
            max_text_length: payload::MAX_TEXT_UTF16_UNITS as u32,
            text_unit: TextUnit::Utf16CodeUnits,
            // LINE has no templates.
            template_parameters: ParameterRules::none(),
            // One multicast carries up to 500 recipients.
            max_batch_size: payload::MAX_MULTICAST_RECIPIENTS as u32,
            // Push: 2,000 requests/s per channel (one message each).
            messages_per_second: 2_000,
        },
        egress_hosts: vec!["api.line.me".into()],
        secrets: vec![
            SECRET_CHANNEL_ACCESS_TOKEN.into(),
            SECRET_CHANNEL_SECRET.into(),
        ],
        settings: vec![SETTING_BASE_URL.into(), SETTING_SEND_BUDGET_MS.into()],
        // Every request carries an `X-Line-Retry-Key` derived from the
        // host's keys; LINE answers a replay with 409 instead of resending.
        deduplicates: true,
        ..ChannelInfo::new("line", "LINE Messaging API", AddressKind::PlatformUserId)
    }
}

/// Where and how to send, read once per batch.
struct Api {
    base_url: String,
    access_token: String,
}

impl Api {
    fn load() -> Result<Self, SendError> {
        let access_token = config::require_secret(SECRET_CHANNEL_ACCESS_TOKEN)?;
        Ok(Self {
            base_url: setting_or(SETTING_BASE_URL, DEFAULT_BASE_URL),
            access_token,
        })
    }

    fn send(&self, request: &Planned) -> Result<Receipt, SendError> {
        let response = Request::post(&payload::endpoint_url(
            &self.base_url,
            request.endpoint.path(),
        ))
        .for_messages(&indices(&request.members))
        .bearer(&self.access_token)
        .header("x-line-retry-key", &request.retry_key)
        .json(&request.body())
        .send()
        .map_err(errors::transport_error)?;
        errors::interpret(
            errors::Reply {
                status: response.status,
                request_id: response.header("x-line-request-id"),
                accepted_request_id: response.header("x-line-accepted-request-id"),
                body: &response.body,
            },
            &request.retry_key,
        )
    }
}

/// A setting, or `default` when it is unset or blank.
fn setting_or(key: &str, default: &str) -> String {
    config::get(key)
        .filter(|value| !value.trim().is_empty())
        .unwrap_or_else(|| default.to_owned())
}

/// The send budget from [`SETTING_SEND_BUDGET_MS`], or the default when
/// unset or not a positive number.
fn send_budget() -> Duration {
    let ms = config::get(SETTING_SEND_BUDGET_MS)
        .and_then(|value| value.trim().parse::<u64>().ok())
        .filter(|ms| *ms > 0)
        .unwrap_or(DEFAULT_SEND_BUDGET_MS);
    Duration::from_millis(ms)
}

/// The host's durable storage, as the group memory uses it.
struct HostStorage;

impl groups::Store for HostStorage {
    fn put_if_absent(&mut self, key: &str, value: &str) -> Result<String, String> {
        storage::put_if_absent(key, value, Some(RETRY_KEY_TTL_SECONDS))
            .map_err(|error| describe_storage_error(&error))
    }

    fn delete(&mut self, key: &str) {
        storage::delete(key);
    }
}

/// A storage error in words, for the failure of the messages it stopped.
fn describe_storage_error(error: &StorageError) -> String {
    match error {
        StorageError::TooLarge(limit) => format!("too large: {limit}"),
        StorageError::QuotaExceeded(limit) => format!("quota exceeded: {limit}"),
        StorageError::Unavailable(why) => format!("unavailable: {why}"),
    }
}

/// Batch indices as the contract numbers them.
fn indices(members: &[usize]) -> Vec<u32> {
    members
        .iter()
        .map(|&member| u32::try_from(member).unwrap_or(u32::MAX))
        .collect()
}

/// The results of one `send` call, reported to the host as each is known.
struct Results(Vec<Option<Result<Receipt, SendError>>>);

impl Results {
    fn settle(&mut self, index: usize, outcome: Result<Receipt, SendError>) {
        outcomes::report(u32::try_from(index).unwrap_or(u32::MAX), &outcome);
        if let Some(slot) = self.0.get_mut(index) {
            *slot = Some(outcome);
        }
    }

    fn into_results(self) -> Vec<Result<Receipt, SendError>> {
        self.0
            .into_iter()
            .map(|result| {
                result.unwrap_or_else(|| {
                    Err(SendError::Permanent(Failure::new(
                        "",
                        "internal error: the LINE adapter planned no request for this message",
                    )))
                })
            })
            .collect()
    }
}

impl Adapter for Line {
    fn describe() -> ChannelInfo {
        channel_info()
    }

    fn send(batch: Vec<OutboundMessage>) -> Vec<Result<Receipt, SendError>> {
        let started = Instant::now();
        let budget = send_budget();
        let mut store = HostStorage;
        let mut results = Results(vec![None; batch.len()]);
        let mut candidates = Vec::with_capacity(batch.len());
        for (index, message) in batch.iter().enumerate() {
            // Content is checked first: it is wrong whatever the configuration.
            match payload::check_message(message) {
                Ok(text) => candidates.push(Candidate {
                    index,
                    key: &message.idempotency_key,
                    to: &message.to,
                    text,
                    attempt: message.attempt,
                }),
                Err(error) => results.settle(index, Err(error)),
            }
        }
        let api = match Api::load() {
            Ok(api) => api,
            Err(error) => {
                for candidate in &candidates {
                    results.settle(candidate.index, Err(error.clone()));
                }
                return results.into_results();
            }
        };
        // Retries look up the multicast their earlier attempt was part of;
        // one whose lookup fails is not sent (it might be pushed under a
        // new key while its group was delivered).
        let mut remembered = HashMap::new();
        candidates.retain(|candidate| {
            if candidate.attempt <= 1 {
                return true;
            }
            match groups::recall(&mut store, candidate.key) {
                Ok(group) => {
                    if let Some(group) = group {
                        remembered.insert(candidate.key, group);
                    }
                    true
                }
                Err(error) => {
                    results.settle(candidate.index, Err(error));
                    false
                }
            }
        });
        let plan = payload::plan(&candidates, |key| remembered.get(key).cloned());
        let key_of = |member: usize| batch[member].idempotency_key.as_str();
        let mut made = 0usize;
        for request in plan {
            if started.elapsed() >= budget {
                let error = SendError::Transient(Failure::new(
                    "",
                    format!(
                        "not sent: this call's {} ms budget ran out after {made} requests; it is sent on the retry",
                        budget.as_millis()
                    ),
                ));
                for &member in &request.members {
                    results.settle(member, Err(error.clone()));
                }
                continue;
            }
            // A fresh multicast is recorded before it is sent, so that a
            // retry of any member resends it whole under the same key.
            let retry_key = request.retry_key.clone();
            let fixed = groups::fix(&mut store, request, key_of);
            if let Some((_, error)) = fixed.refused.first() {
                log::warn(&format!(
                    "multicast {retry_key}: {} message(s) not sent: {}",
                    fixed.refused.len(),
                    error.failure().message
                ));
            }
            for (member, error) in fixed.refused {
                results.settle(member, Err(error));
            }
            let Some(request) = fixed.request else {
                continue;
            };
            made += 1;
            let outcome = api.send(&request);
            match &outcome {
                Ok(receipt) if receipt.duplicate => log::info(&format!(
                    "{} with retry key {} was already accepted (409): {} message(s) settled as sent",
                    request.endpoint.name(),
                    request.retry_key,
                    request.members.len()
                )),
                Ok(_) => {}
                Err(error) => {
                    let failure = error.failure();
                    log::warn(&format!(
                        "{} to {} recipient(s) with retry key {} failed: {} code `{}`: {}",
                        request.endpoint.name(),
                        request.recipients.len(),
                        request.retry_key,
                        errors::class_name(error),
                        failure.code,
                        failure.message
                    ));
                }
            }
            // The records stay until they expire (24 h, as long as LINE
            // keeps the retry key): the host records these outcomes only
            // after the call returns, and if it stops first, a retry must
            // resend the same group under the same key.
            for &member in &request.members {
                results.settle(member, outcome.clone());
            }
        }
        results.into_results()
    }

    fn handle_webhook(request: HttpRequest) -> WebhookResult {
        if !request.method.eq_ignore_ascii_case("POST") {
            return WebhookResult::reply(HttpResponse::method_not_allowed("POST"));
        }
        let channel_secret = match switchboard_sdk::webhook::require_secret(SECRET_CHANNEL_SECRET) {
            Ok(secret) => secret,
            Err(reply) => return reply,
        };
        let result = webhook::handle(&request, &channel_secret, now_ms());
        switchboard_sdk::webhook::log_refusal(result)
    }
}

switchboard_sdk::export_adapter!(Line);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describes_line() {
        let info = channel_info();
        assert_eq!(info.name, "line");
        assert_eq!(info.display_name, "LINE Messaging API");
        assert_eq!(info.address_kind, AddressKind::PlatformUserId);
        assert!(matches!(info.free_form, FreeFormRule::Always));
        assert!(info.template_purposes.is_empty());
        assert!(info.quiet_hours.is_empty());
        assert_eq!(info.limits.max_text_length, 5_000);
        assert_eq!(info.limits.text_unit, TextUnit::Utf16CodeUnits);
        assert_eq!(info.limits.template_parameters.max_length, None);
        assert_eq!(info.limits.max_batch_size, 500);
        assert_eq!(info.limits.messages_per_second, 2_000);
        assert_eq!(info.egress_hosts, vec!["api.line.me"]);
        assert_eq!(info.secrets, vec!["channel_access_token", "channel_secret"]);
        assert_eq!(info.settings, vec!["base_url", "send_budget_ms"]);
        assert!(info.deduplicates);
    }

    #[test]
    fn manifest_matches_describe() {
        let manifest = include_str!("../manifest.toml");
        assert!(manifest.contains(r#"name = "line""#));
        assert!(manifest.contains(r#"component = "switchboard_adapter_line.wasm""#));
        assert!(manifest.contains(r#"hosts = ["api.line.me"]"#));
        assert!(manifest.contains(r#"settings = ["base_url", "send_budget_ms"]"#));
        assert!(manifest.contains(r#"secrets = ["channel_access_token", "channel_secret"]"#));
    }
}
