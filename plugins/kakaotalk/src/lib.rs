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
//! - [`errors`]: per-recipient receipts and the classification of NHN and
//!   Kakao result codes;
//! - [`webhook`]: `X-Toast-Webhook-Signature` and `MESSAGE_RESULT_UPDATE`.

#![warn(missing_docs)]

pub mod address;
pub mod errors;
pub mod payload;
pub mod webhook;

use switchboard_sdk::prelude::*;
use switchboard_sdk::webhook::now_ms;

use crate::errors::Reply;
use crate::payload::{Options, PlannedRequest};

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

/// Default sending rate. NHN publishes no throughput for Bizmessage
/// (platforms.md §3.2: unconfirmed); 100 messages a second is one full
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
    fn post(&self, request: &PlannedRequest) -> Result<Reply, HttpError> {
        let response = Request::post(&request.api.url(&self.base_url, &self.app_key))
            .header(SECRET_KEY_HEADER, &self.secret_key)
            .header(IDEMPOTENCY_HEADER, &request.idempotency_key)
            .json(&request.body)
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
    fn send(&self, request: &PlannedRequest) -> Vec<Result<Receipt, SendError>> {
        let n = request.recipients.len();
        let lost = match self.post(request) {
            Ok(Reply::Lost(why)) => why,
            Ok(reply) => return reply.into_results(n),
            Err(error @ (HttpError::Timeout(_) | HttpError::InvalidJson(_))) => error.to_string(),
            // Never reached NHN (or never could): nothing was sent.
            Err(error) => return vec![Err(SendError::from(error)); n],
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
        errors::after_resend(&lost, resend, n)
    }
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
        // Content and addresses are checked first: they are wrong whatever
        // the configuration.
        let plan = payload::plan(&batch, &options);
        let endpoint = sender_key.and_then(|_| Endpoint::load());
        let mut results: Vec<Option<Result<Receipt, SendError>>> = vec![None; batch.len()];
        for (index, error) in plan.refused {
            results[index] = Some(Err(error));
        }
        for request in &plan.requests {
            let outcomes = match &endpoint {
                Ok(endpoint) => endpoint.send(request),
                Err(error) => vec![Err(error.clone()); request.members.len()],
            };
            for (&index, outcome) in request.members.iter().zip(outcomes) {
                results[index] = Some(outcome);
            }
        }
        results
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
