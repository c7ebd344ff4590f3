//! Switchboard channel adapter for KakaoTalk Bizmessage through the NHN
//! Cloud dealer API: AlimTalk for approved informational templates, Brand
//! Message for free-form text (the marketing channel).
//!
//! This file is the thin layer that talks to the host (configuration, HTTP,
//! clock, logging). The platform knowledge lives in plain functions that
//! are tested natively:
//!
//! - [`address`]: E.164 ↔ the national numbers NHN wants;
//! - [`payload`]: splitting a batch into AlimTalk / Brand Message requests,
//!   the `(광고)` label and the request idempotency key;
//! - [`memory`]: the durable record of sent requests, so that a retry
//!   reuses the idempotency key of the request its message went out in;
//! - [`errors`]: per-recipient receipts and the classification of NHN and
//!   Kakao result codes;
//! - [`webhook`]: `X-Toast-Webhook-Signature` and `MESSAGE_RESULT_UPDATE`.

#![warn(missing_docs)]

pub mod address;
pub mod errors;
pub mod memory;
pub mod payload;
pub mod webhook;

use switchboard_sdk::prelude::*;
use switchboard_sdk::storage::StorageError;
use switchboard_sdk::webhook::now_ms;

use crate::errors::Reply;
use crate::memory::Recall;
use crate::payload::{Mode, Options, Outgoing};

/// Setting: the NHN Cloud API base URL (a simulator in tests).
pub const SETTING_BASE_URL: &str = "base_url";
/// Setting: the KakaoTalk Bizmessage app key (in every path; required).
pub const SETTING_APP_KEY: &str = "app_key";
/// Setting: the KakaoTalk channel's 40-character sender key (required).
pub const SETTING_SENDER_KEY: &str = "sender_key";
/// Setting: SMS fallback sender number for AlimTalk (optional).
pub const SETTING_RESEND_SEND_NO: &str = "resend_send_no";
/// Setting: 080 opt-out number printed in Brand Messages (optional).
pub const SETTING_UNSUBSCRIBE_NO: &str = "unsubscribe_no";
/// Secret: the console's secret key, sent as `X-Secret-Key`.
pub const SECRET_SECRET_KEY: &str = "secret_key";
/// Secret: the string configured as the webhook's signature.
pub const SECRET_WEBHOOK_SIGNATURE: &str = "webhook_signature";

/// Default for [`SETTING_BASE_URL`].
pub const DEFAULT_BASE_URL: &str = "https://kakaotalk-bizmessage.api.nhncloudservice.com";
/// The API host the manifest allows.
pub const API_HOST: &str = "kakaotalk-bizmessage.api.nhncloudservice.com";
/// Header carrying the secret key.
pub const SECRET_KEY_HEADER: &str = "X-Secret-Key";
/// Header carrying the request idempotency key.
pub const IDEMPOTENCY_HEADER: &str = "X-NC-API-IDEMPOTENCY-KEY";

/// Default sending rate. NHN publishes no throughput for Bizmessage; 100
/// messages a second is one full
/// 1,000-recipient request every 10 seconds, 360,000 an hour, which stays
/// well clear of a dealer limit nobody has stated. Operators with a
/// confirmed quota raise it with `messages_per_second`.
pub const DEFAULT_MESSAGES_PER_SECOND: u32 = 100;

/// The KakaoTalk (NHN Cloud) adapter.
pub struct KakaoTalk;

/// The night-time advertising restriction, as the host applies it.
pub fn quiet_hours() -> QuietHours {
    QuietHours {
        time_zone: "Asia/Seoul".into(),
        start_minute: 20 * 60 + 50,
        end_minute: 8 * 60,
        purposes: vec![Purpose::Marketing],
        reason: "Korean night-time advertising ban: 정보통신망법 §50(3) requires separate prior consent for advertising 21:00–08:00, and NHN Cloud blocks Brand Messages from 20:50 (result 3022)".into(),
    }
}

/// What the adapter declares about KakaoTalk (see `describe`).
pub fn channel_info() -> ChannelInfo {
    ChannelInfo {
        // Free-form text is a Brand Message to channel friends: allowed at
        // any time of day outside the night ban (declared as quiet hours).
        free_form: FreeFormRule::Always,
        // AlimTalk is informational only: Kakao's review rejects
        // advertising templates.
        template_purposes: vec![Purpose::Utility, Purpose::Authentication],
        quiet_hours: vec![quiet_hours()],
        limits: Limits {
            // Free-form text is a Brand Message TEXT (1,300 characters,
            // label included). AlimTalk's 1,000 applies to the rendered
            // template, which NHN checks (3014).
            max_text_length: payload::MAX_BRAND_TEXT_CHARS as u32,
            text_unit: TextUnit::UnicodeScalarValues,
            // A single value may not exceed a whole AlimTalk message; NHN
            // documents no other rule for `templateParameter` values.
            template_parameters: ParameterRules {
                max_length: Some(payload::MAX_ALIMTALK_CHARS as u32),
                ..ParameterRules::none()
            },
            max_batch_size: payload::MAX_RECIPIENTS as u32,
            messages_per_second: DEFAULT_MESSAGES_PER_SECOND,
        },
        egress_hosts: vec![API_HOST.into()],
        secrets: vec![SECRET_SECRET_KEY.into(), SECRET_WEBHOOK_SIGNATURE.into()],
        settings: vec![
            SETTING_BASE_URL.into(),
            SETTING_APP_KEY.into(),
            SETTING_SENDER_KEY.into(),
            SETTING_RESEND_SEND_NO.into(),
            SETTING_UNSUBSCRIBE_NO.into(),
        ],
        // X-NC-API-IDEMPOTENCY-KEY: the same request within 10 minutes
        // fails with -1005 instead of delivering again.
        deduplicates: true,
        ..ChannelInfo::new(
            "kakaotalk",
            "KakaoTalk Bizmessage (NHN Cloud)",
            AddressKind::PhoneNumber,
        )
    }
}

/// Where and how to send, read once per batch.
struct Endpoint {
    base_url: String,
    app_key: String,
    secret_key: String,
}

impl Endpoint {
    fn load() -> Result<Self, SendError> {
        Ok(Self {
            base_url: setting_or(SETTING_BASE_URL, DEFAULT_BASE_URL),
            app_key: config::require(SETTING_APP_KEY)?,
            secret_key: config::require_secret(SECRET_SECRET_KEY)?,
        })
    }

    /// One attempt: a reply, or a transport error.
    fn post(&self, request: &Outgoing) -> Result<Reply, HttpError> {
        let response = Request::post(&request.api.url(&self.base_url, &self.app_key))
            .for_messages(&request.indices())
            .header(SECRET_KEY_HEADER, &self.secret_key)
            .header(IDEMPOTENCY_HEADER, &request.idempotency_key)
            .body(request.body.clone().into_bytes(), "application/json")
            .send()?;
        Ok(errors::interpret(
            response.status,
            response.header("retry-after"),
            &response.body,
            &request.recipients,
            &request.idempotency_key,
            now_ms(),
        ))
    }

    /// Send one request, resending it once with the same idempotency key
    /// when the reply is lost (NHN deduplicates, so the resend is safe).
    fn send(&self, request: &Outgoing) -> Sent {
        let n = request.recipients.len();
        let lost = match self.post(request) {
            Ok(Reply::Lost(why)) => why,
            Ok(reply) => return Sent::from_reply(reply, n),
            Err(error @ (HttpError::Timeout(_) | HttpError::InvalidJson(_))) => error.to_string(),
            // Never reached NHN (or never could): nothing was sent.
            Err(error) => {
                return Sent {
                    results: vec![Err(SendError::from(error)); n],
                    processed: false,
                };
            }
        };
        log::warn(&format!(
            "{} request {}: reply lost ({lost}); resending it with the same idempotency key",
            request.api.name(),
            request.idempotency_key
        ));
        let resend = match self.post(request) {
            Ok(reply) => reply,
            Err(error) => Reply::Lost(error.to_string()),
        };
        let processed = matches!(resend, Reply::Recipients(_));
        Sent {
            results: errors::after_resend(&lost, resend, n),
            processed,
        }
    }
}

/// The results of a request, one per recipient in `recipientList` order,
/// and whether NHN processed it (rather than refusing it as a whole or not
/// answering).
struct Sent {
    results: Vec<Result<Receipt, SendError>>,
    processed: bool,
}

impl Sent {
    fn from_reply(reply: Reply, n: usize) -> Self {
        let processed = matches!(reply, Reply::Recipients(_));
        Self {
            results: reply.into_results(n),
            processed,
        }
    }
}

/// The host's durable storage, as the request memory uses it.
struct HostStorage;

impl memory::Store for HostStorage {
    fn get(&mut self, key: &str) -> Option<String> {
        storage::get(key)
    }

    fn put_if_absent(&mut self, key: &str, value: &str) -> Result<String, String> {
        storage::put_if_absent(key, value, Some(memory::TTL_SECONDS))
            .map_err(|error| describe_storage_error(&error))
    }

    fn put(&mut self, key: &str, value: &str) -> Result<(), String> {
        storage::put(key, value, Some(memory::TTL_SECONDS))
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

/// The results of one `send` call, reported to the host as each is known.
struct Results(Vec<Option<Result<Receipt, SendError>>>);

impl Results {
    fn settle(&mut self, index: usize, outcome: Result<Receipt, SendError>) {
        outcomes::report(u32::try_from(index).unwrap_or(u32::MAX), &outcome);
        if let Some(slot) = self.0.get_mut(index) {
            *slot = Some(outcome);
        }
    }
}

/// A recorded request some retried messages of the batch went out in.
struct Resend<'a> {
    /// Its `X-NC-API-IDEMPOTENCY-KEY`.
    key: String,
    /// Its recorded head.
    head: String,
    /// The retried messages: batch index and idempotency key.
    members: Vec<(usize, &'a str)>,
}

/// Look up the retried messages of `batch` in the request memory: how each
/// is planned, and the recorded requests to resend. Messages whose lookup
/// fails, or that a resend in another call settled, are settled here.
fn recall_retries(
    store: &mut HostStorage,
    batch: &[OutboundMessage],
    results: &mut Results,
) -> (Vec<Mode>, Vec<Outgoing>) {
    let mut modes = vec![Mode::Group; batch.len()];
    let mut resends: Vec<Resend<'_>> = Vec::new();
    for (index, message) in batch.iter().enumerate() {
        if message.attempt <= 1 {
            continue;
        }
        match memory::recall(store, &message.idempotency_key) {
            Ok(Recall::Fresh) => {}
            Ok(Recall::Alone) => modes[index] = Mode::Alone,
            Ok(Recall::Resend { key, head }) => {
                modes[index] = Mode::Skip;
                let member = (index, message.idempotency_key.as_str());
                match resends.iter_mut().find(|resend| resend.key == key) {
                    Some(resend) => resend.members.push(member),
                    None => resends.push(Resend {
                        key,
                        head,
                        members: vec![member],
                    }),
                }
            }
            Ok(Recall::Settled(outcome)) => {
                // The record stays until it expires: the host may stop
                // before it records this outcome, and the retry must find it.
                modes[index] = Mode::Skip;
                results.settle(index, outcome);
            }
            Err(error) => {
                modes[index] = Mode::Skip;
                results.settle(index, Err(error));
            }
        }
    }
    let mut requests = Vec::with_capacity(resends.len());
    for Resend { key, head, members } in resends {
        match memory::load(store, &key, &head, &members) {
            Ok(Some(request)) => requests.push(request),
            // The request does not carry them after all: they were not
            // sent in it, so they are grouped afresh.
            Ok(None) => {
                for (index, key) in members {
                    memory::forget(store, key);
                    modes[index] = Mode::Group;
                }
            }
            Err(error) => {
                for (index, _) in members {
                    results.settle(index, Err(error.clone()));
                }
            }
        }
    }
    (modes, requests)
}

/// A setting, or `default` when it is unset or blank.
fn setting_or(key: &str, default: &str) -> String {
    config::get(key)
        .filter(|value| !value.trim().is_empty())
        .unwrap_or_else(|| default.to_owned())
}

impl Adapter for KakaoTalk {
    fn describe() -> ChannelInfo {
        channel_info()
    }

    fn send(batch: Vec<OutboundMessage>) -> Vec<Result<Receipt, SendError>> {
        let sender_key = config::require(SETTING_SENDER_KEY);
        let options = Options {
            sender_key: sender_key.clone().unwrap_or_default(),
            resend_send_no: config::get(SETTING_RESEND_SEND_NO),
            unsubscribe_no: config::get(SETTING_UNSUBSCRIBE_NO),
        };
        let mut store = HostStorage;
        let mut results = Results(vec![None; batch.len()]);
        // Retries first find the request their message went out in.
        let (modes, resends) = recall_retries(&mut store, &batch, &mut results);
        // Content and addresses are checked next: they are wrong whatever
        // the configuration.
        let plan = payload::plan(&batch, &options, |index| modes[index]);
        let endpoint = sender_key.and_then(|_| Endpoint::load());
        for (index, error) in plan.refused {
            results.settle(index, Err(error));
        }
        let fresh = plan
            .requests
            .into_iter()
            .map(|request| Outgoing::fresh(request, &batch));
        for request in resends.into_iter().chain(fresh) {
            let endpoint = match &endpoint {
                Ok(endpoint) => endpoint,
                Err(error) => {
                    for &(index, _) in &request.members {
                        results.settle(index, Err(error.clone()));
                    }
                    continue;
                }
            };
            // A fresh request is recorded before it is sent, so that a
            // retry of any of its messages resends it under the same key.
            if !request.resend
                && let Err(error) = memory::fix(&mut store, &request)
            {
                log::warn(&format!(
                    "{} request {}: {} message(s) not sent: {}",
                    request.api.name(),
                    request.idempotency_key,
                    request.members.len(),
                    error.failure().message
                ));
                for &(index, _) in &request.members {
                    results.settle(index, Err(error.clone()));
                }
                continue;
            }
            if request.resend {
                log::info(&format!(
                    "{} request {}: resending it whole ({} recipients) under its recorded key for {} retried message(s)",
                    request.api.name(),
                    request.idempotency_key,
                    request.recipients.len(),
                    request.members.len()
                ));
            }
            let sent = endpoint.send(&request);
            for &(index, position) in &request.members {
                let outcome = sent.results.get(position).cloned().unwrap_or_else(|| {
                    Err(SendError::Uncertain(Failure::new(
                        "",
                        "the adapter produced no result for this message",
                    )))
                });
                results.settle(index, outcome);
            }
            // Reported first, then the records updated: a call that dies
            // in between leaves records that only expire.
            memory::settle(&mut store, &request, &sent.results, sent.processed);
        }
        results
            .0
            .into_iter()
            .zip(&batch)
            .map(|(result, message)| {
                let result = result.unwrap_or_else(|| {
                    Err(SendError::Uncertain(Failure::new(
                        "",
                        "the adapter produced no result for this message",
                    )))
                });
                if let Err(error) = &result {
                    let failure = error.failure();
                    log::warn(&format!(
                        "send {} (attempt {}) failed: {} code `{}`: {}",
                        message.idempotency_key,
                        message.attempt,
                        errors::class_name(error),
                        failure.code,
                        failure.message
                    ));
                }
                result
            })
            .collect()
    }

    fn handle_webhook(request: HttpRequest) -> WebhookResult {
        if !request.method.eq_ignore_ascii_case("POST") {
            return WebhookResult::reply(HttpResponse::method_not_allowed("POST"));
        }
        let expected = match switchboard_sdk::webhook::require_secret(SECRET_WEBHOOK_SIGNATURE) {
            Ok(secret) => secret,
            Err(reply) => return reply,
        };
        let result = webhook::handle(&request, &expected, now_ms());
        switchboard_sdk::webhook::log_refusal(result)
    }
}

switchboard_sdk::export_adapter!(KakaoTalk);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describes_kakaotalk() {
        let info = channel_info();
        assert_eq!(info.name, "kakaotalk");
        assert_eq!(info.display_name, "KakaoTalk Bizmessage (NHN Cloud)");
        assert_eq!(info.address_kind, AddressKind::PhoneNumber);
        assert!(matches!(info.free_form, FreeFormRule::Always));
        assert_eq!(
            info.template_purposes,
            vec![Purpose::Utility, Purpose::Authentication]
        );
        assert_eq!(info.quiet_hours.len(), 1);
        let quiet = &info.quiet_hours[0];
        assert_eq!(quiet.time_zone, "Asia/Seoul");
        assert_eq!((quiet.start_minute, quiet.end_minute), (1250, 480));
        assert_eq!(quiet.purposes, vec![Purpose::Marketing]);
        assert!(
            quiet.reason.contains("정보통신망법 §50(3)"),
            "{}",
            quiet.reason
        );
        assert!(quiet.reason.contains("21:00–08:00"));
        assert!(quiet.reason.contains("20:50"));
        assert_eq!(info.limits.max_text_length, 1_300);
        assert_eq!(info.limits.text_unit, TextUnit::UnicodeScalarValues);
        assert_eq!(info.limits.template_parameters.max_length, Some(1_000));
        assert!(info.limits.template_parameters.allow_newlines);
        assert_eq!(info.limits.max_batch_size, 1_000);
        assert_eq!(info.limits.messages_per_second, 100);
        assert_eq!(
            info.egress_hosts,
            vec!["kakaotalk-bizmessage.api.nhncloudservice.com"]
        );
        assert_eq!(info.secrets, vec!["secret_key", "webhook_signature"]);
        assert_eq!(
            info.settings,
            vec![
                "base_url",
                "app_key",
                "sender_key",
                "resend_send_no",
                "unsubscribe_no"
            ]
        );
        assert!(info.deduplicates);
    }

    #[test]
    fn manifest_matches_describe() {
        let manifest = include_str!("../manifest.toml");
        assert!(manifest.contains(r#"name = "kakaotalk""#));
        assert!(manifest.contains(r#"component = "switchboard_adapter_kakaotalk.wasm""#));
        assert!(manifest.contains(r#"hosts = ["kakaotalk-bizmessage.api.nhncloudservice.com"]"#));
        assert!(manifest.contains(
            r#"settings = ["base_url", "app_key", "sender_key", "resend_send_no", "unsubscribe_no"]"#
        ));
        assert!(manifest.contains(r#"secrets = ["secret_key", "webhook_signature"]"#));
    }
}
