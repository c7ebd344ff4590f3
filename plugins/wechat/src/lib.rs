//! Switchboard channel adapter for WeChat Official Accounts (服务号).
//!
//! This file is the thin layer that talks to the host (configuration, HTTP,
//! token cache, logging). The platform knowledge lives in plain functions
//! that are tested natively:
//!
//! - [`payload`]: URLs and bodies of `stable_token`, customer-service and
//!   template sends;
//! - [`errors`]: receipts, tokens, and `errcode`s classified into send-error classes;
//! - [`token`]: the shared `access_token` and the one retry after WeChat refuses it;
//! - [`webhook`], [`crypto`], [`xml`]: pushes, their SHA-1 signatures,
//!   safe-mode AES-256-CBC and the flat XML.

#![warn(missing_docs)]

pub mod crypto;
pub mod errors;
pub mod payload;
pub mod token;
pub mod webhook;
pub mod xml;

#[cfg(test)]
mod fixtures;

use switchboard_sdk::prelude::*;
use switchboard_sdk::token_cache;
use switchboard_sdk::webhook::now_ms;

use crate::errors::Rejection;
use crate::payload::{MessageRequest, StableTokenRequest, paths};
use crate::token::{TokenStore, Tokens};

/// Setting: the API base URL (a simulator in tests).
pub const SETTING_BASE_URL: &str = "base_url";
/// Setting: the Official Account's AppID (required).
pub const SETTING_APP_ID: &str = "app_id";
/// Secret: the AppSecret, exchanged for access tokens.
pub const SECRET_APP_SECRET: &str = "app_secret";
/// Secret: the Token configured for the server URL; signs every push.
pub const SECRET_TOKEN: &str = "token";
/// Secret: the 43-character EncodingAESKey of safe mode.
pub const SECRET_ENCODING_AES_KEY: &str = "encoding_aes_key";

/// Default for [`SETTING_BASE_URL`].
pub const DEFAULT_BASE_URL: &str = "https://api.weixin.qq.com";

/// The window a user's message opens: 48 hours, at most 5 customer-service
/// messages (the official table for service accounts,
/// <https://developers.weixin.qq.com/doc/offiaccount/Customer_Service/Customer_Service_Messages.html>).
pub const MESSAGE_WINDOW_SECONDS: u32 = 48 * 60 * 60;
/// Customer-service messages allowed in the window a user's message opens.
pub const MESSAGE_WINDOW_MAX_MESSAGES: u32 = 5;
/// The window a follow, a menu tap or a QR scan opens: one minute.
pub const ACTION_WINDOW_SECONDS: u32 = 60;
/// Customer-service messages allowed in the window a follow, a menu tap or
/// a QR scan opens.
pub const ACTION_WINDOW_MAX_MESSAGES: u32 = 3;
/// The window a payment opens: 48 hours, with no documented cap.
pub const PAYMENT_WINDOW_SECONDS: u32 = 48 * 60 * 60;
/// Messages per `send` call (one API request each; WeChat has no multicast
/// for customer-service or template messages).
pub const MAX_BATCH_SIZE: u32 = 20;
/// Default sending rate, messages per second (see the README: WeChat
/// publishes only daily quotas).
pub const MESSAGES_PER_SECOND: u32 = 20;

/// The WeChat Official Accounts adapter.
pub struct WeChat;

/// What the adapter declares about WeChat (see `describe`).
pub fn channel_info() -> ChannelInfo {
    ChannelInfo {
        free_form: FreeFormRule::WithinWindow(window_rules()),
        // Template messages must not carry marketing or advertising.
        template_purposes: vec![Purpose::Utility],
        quiet_hours: Vec::new(),
        limits: Limits {
            // The adapter's limit is in bytes (see `payload::MAX_TEXT_BYTES`),
            // so the host counts the same way.
            max_text_length: payload::MAX_TEXT_BYTES as u32,
            text_unit: TextUnit::Utf8Bytes,
            // WeChat documents no rules for template `data` values.
            template_parameters: ParameterRules::none(),
            max_batch_size: MAX_BATCH_SIZE,
            messages_per_second: MESSAGES_PER_SECOND,
        },
        egress_hosts: vec!["api.weixin.qq.com".into()],
        secrets: vec![
            SECRET_APP_SECRET.into(),
            SECRET_TOKEN.into(),
            SECRET_ENCODING_AES_KEY.into(),
        ],
        settings: vec![SETTING_BASE_URL.into(), SETTING_APP_ID.into()],
        // Neither customer-service nor template sends take an idempotency key.
        deduplicates: false,
        ..ChannelInfo::new(
            "wechat",
            "WeChat Official Accounts",
            AddressKind::PlatformUserId,
        )
    }
}

/// The customer-service windows, one per kind of user action, as WeChat's
/// table for service accounts has them: a message opens 48 hours with at
/// most 5 messages; a follow, a menu tap or a QR scan opens 1 minute with at
/// most 3; a payment opens 48 hours (no cap is documented).
pub fn window_rules() -> Vec<WindowRule> {
    vec![
        WindowRule {
            duration_seconds: MESSAGE_WINDOW_SECONDS,
            opened_by: vec![WindowOpener::InboundMessage],
            max_messages: Some(MESSAGE_WINDOW_MAX_MESSAGES),
        },
        WindowRule {
            duration_seconds: ACTION_WINDOW_SECONDS,
            opened_by: vec![WindowOpener::Follow, WindowOpener::Interaction],
            max_messages: Some(ACTION_WINDOW_MAX_MESSAGES),
        },
        WindowRule {
            duration_seconds: PAYMENT_WINDOW_SECONDS,
            opened_by: vec![WindowOpener::Payment],
            max_messages: None,
        },
    ]
}

/// Where and as whom to send, read once per call.
struct Account {
    base_url: String,
    app_id: String,
    app_secret: String,
}

impl Account {
    fn load() -> Result<Self, SendError> {
        Ok(Self {
            app_id: config::require(SETTING_APP_ID)?,
            app_secret: config::require_secret(SECRET_APP_SECRET)?,
            base_url: setting_or(SETTING_BASE_URL, DEFAULT_BASE_URL),
        })
    }

    /// `POST /cgi-bin/stable_token`.
    fn fetch_token(&self, force_refresh: bool) -> Result<(String, u32), SendError> {
        log::info(&format!(
            "fetching an access token for {} (force_refresh: {force_refresh})",
            self.app_id
        ));
        // The token request carries no message: untagged, even when it is
        // made while a message is being sent.
        let response = Request::post(&payload::url(&self.base_url, paths::STABLE_TOKEN))
            .for_messages(&[])
            .json(&StableTokenRequest::new(
                &self.app_id,
                &self.app_secret,
                force_refresh,
            ))
            .send()
            // No message was sent, so a lost reply is only transient.
            .map_err(|error| match SendError::from(error) {
                SendError::Uncertain(failure) => SendError::Transient(failure),
                other => other,
            })?;
        let (token, expires_in) = errors::interpret_token(response.status, &response.body)?;
        Ok((token, errors::cache_ttl(expires_in)))
    }

    fn post(&self, request: &MessageRequest, token: &str) -> Result<Receipt, Rejection> {
        let url = payload::url_with_token(&self.base_url, request.api.path(), token);
        let response = Request::post(&url)
            .body(request.body.clone().into_bytes(), "application/json")
            .send()
            .map_err(|error| Rejection::Error(error.into()))?;
        errors::interpret_send(request.api, response.status, &response.body)
    }
}

/// The host's token cache, under a key per AppID.
struct HostTokens {
    key: String,
}

impl TokenStore for HostTokens {
    fn get(&mut self) -> Option<String> {
        token_cache::get(&self.key)
    }

    fn get_or_fetch(
        &mut self,
        fetch: &mut dyn FnMut() -> Result<(String, u32), SendError>,
    ) -> Result<String, SendError> {
        // `fetch` already returns the time to cache it for.
        token_cache::get_or_fetch(&self.key, 0, fetch)
    }

    fn invalidate(&mut self) {
        token_cache::invalidate(&self.key);
    }
}

/// A setting, or `default` when it is unset or blank.
fn setting_or(key: &str, default: &str) -> String {
    config::get(key)
        .filter(|value| !value.trim().is_empty())
        .unwrap_or_else(|| default.to_owned())
}

fn send_batch(batch: Vec<OutboundMessage>) -> Vec<Result<Receipt, SendError>> {
    let account = Account::load();
    let mut tokens = account.as_ref().ok().map(|account| {
        Tokens::new(
            HostTokens {
                key: format!("stable_token:{}", account.app_id),
            },
            |force| account.fetch_token(force),
        )
    });
    // One request per message (two when WeChat refuses the token), tagged
    // with its index; each outcome is reported as soon as it is known.
    outcomes::send_each(batch, |message| {
        // Content is checked first: it is wrong whatever the configuration.
        let result = MessageRequest::for_message(message).and_then(|request| {
            let account = account.as_ref().map_err(Clone::clone)?;
            let Some(tokens) = tokens.as_mut() else {
                return Err(SendError::Permanent(Failure::new(
                    "",
                    "the adapter is not configured",
                )));
            };
            token::send_with_refresh(tokens, |token| account.post(&request, token))
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
}

impl Adapter for WeChat {
    fn describe() -> ChannelInfo {
        channel_info()
    }

    fn send(batch: Vec<OutboundMessage>) -> Vec<Result<Receipt, SendError>> {
        send_batch(batch)
    }

    fn handle_webhook(request: HttpRequest) -> WebhookResult {
        let token = config::secret(SECRET_TOKEN).filter(|t| !t.is_empty());
        if token.is_none() {
            log::error("webhook refused: secret `token` is not configured");
        }
        match request.method.to_ascii_uppercase().as_str() {
            "GET" => {
                let response = webhook::handshake(&request, token.as_deref());
                if response.status != 200 {
                    log::warn("webhook URL verification refused: wrong signature or no echostr");
                }
                WebhookResult::reply(response)
            }
            "POST" => {
                let aes_key = config::secret(SECRET_ENCODING_AES_KEY);
                let app_id = config::get(SETTING_APP_ID);
                let secrets = webhook::Secrets {
                    token: token.as_deref(),
                    encoding_aes_key: aes_key.as_deref(),
                    app_id: app_id.as_deref(),
                };
                let verified = webhook::read_push(&request, secrets).and_then(|fields| {
                    webhook::check_fresh(&request, now_ms())?;
                    first_sighting(&webhook::replay_key(&request))?;
                    Ok(fields)
                });
                match verified {
                    Ok(fields) => WebhookResult {
                        response: HttpResponse::text(200, webhook::REPLY),
                        events: webhook::event_of(&fields, now_ms()).into_iter().collect(),
                    },
                    Err(refusal) => {
                        log::warn(&format!("webhook refused: {}", refusal.reason()));
                        WebhookResult::reply(refusal.response())
                    }
                }
            }
            _ => WebhookResult::reply(HttpResponse::method_not_allowed("GET, POST")),
        }
    }
}

/// Record a push's nonce; refuse it if it was seen within the freshness
/// window (a replay of a captured push).
fn first_sighting(key: &str) -> Result<(), webhook::Refusal> {
    use std::hash::BuildHasher;
    let marker = format!(
        "{:016x}",
        std::collections::hash_map::RandomState::new().hash_one(now_ms())
    );
    let ttl = u32::try_from(2 * webhook::FRESHNESS_SECONDS).unwrap_or(u32::MAX);
    match switchboard_sdk::storage::put_if_absent(key, &marker, Some(ttl)) {
        Ok(stored) if stored == marker => Ok(()),
        Ok(_) => Err(webhook::Refusal::Unauthorized(
            "replayed push: this timestamp and nonce were already used".into(),
        )),
        Err(error) => Err(webhook::Refusal::Unavailable(format!(
            "cannot check the push against replays now: {error:?}"
        ))),
    }
}

switchboard_sdk::export_adapter!(WeChat);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describes_wechat() {
        let info = channel_info();
        assert_eq!(info.name, "wechat");
        assert_eq!(info.display_name, "WeChat Official Accounts");
        assert_eq!(info.address_kind, AddressKind::PlatformUserId);
        match &info.free_form {
            FreeFormRule::WithinWindow(rules) => {
                let rules: Vec<(u32, Vec<WindowOpener>, Option<u32>)> = rules
                    .iter()
                    .map(|r| (r.duration_seconds, r.opened_by.clone(), r.max_messages))
                    .collect();
                assert_eq!(
                    rules,
                    vec![
                        // A customer's message: 48 h, 5 messages.
                        (172_800, vec![WindowOpener::InboundMessage], Some(5)),
                        // A follow, a menu tap or a QR scan: 1 minute, 3 messages.
                        (
                            60,
                            vec![WindowOpener::Follow, WindowOpener::Interaction],
                            Some(3)
                        ),
                        // A payment: 48 h, no documented cap.
                        (172_800, vec![WindowOpener::Payment], None),
                    ]
                );
            }
            other => panic!("unexpected free-form rule {other:?}"),
        }
        assert_eq!(info.template_purposes, vec![Purpose::Utility]);
        assert!(info.quiet_hours.is_empty());
        assert_eq!(info.limits.max_text_length, 2_048);
        assert_eq!(info.limits.text_unit, TextUnit::Utf8Bytes);
        assert_eq!(info.limits.template_parameters.max_length, None);
        assert_eq!(info.limits.max_batch_size, 20);
        assert_eq!(info.limits.messages_per_second, 20);
        assert_eq!(info.egress_hosts, vec!["api.weixin.qq.com"]);
        assert_eq!(
            info.secrets,
            vec!["app_secret", "token", "encoding_aes_key"]
        );
        assert_eq!(info.settings, vec!["base_url", "app_id"]);
        assert!(!info.deduplicates);
    }

    #[test]
    fn manifest_matches_describe() {
        let manifest = include_str!("../manifest.toml");
        assert!(manifest.contains(r#"name = "wechat""#));
        assert!(manifest.contains(r#"component = "switchboard_adapter_wechat.wasm""#));
        assert!(manifest.contains(r#"hosts = ["api.weixin.qq.com"]"#));
        assert!(manifest.contains(r#"settings = ["base_url", "app_id"]"#));
        assert!(manifest.contains(r#"secrets = ["app_secret", "token", "encoding_aes_key"]"#));
    }
}
