//! Switchboard channel adapter for the WhatsApp Business Cloud API.
//!
//! This file is the thin layer that talks to the host (configuration, HTTP,
//! logging). The platform knowledge lives in plain functions that are tested
//! natively:
//!
//! - [`payload`]: request bodies for `POST /{version}/{phone-number-id}/messages`;
//! - [`errors`]: the receipt, and Graph errors classified into send-error classes;
//! - [`webhook`]: the verification handshake, `X-Hub-Signature-256` and
//!   notification parsing.

#![warn(missing_docs)]

pub mod errors;
pub mod payload;
pub mod webhook;

use switchboard_sdk::prelude::*;
use switchboard_sdk::webhook::now_ms;

use crate::payload::MessageRequest;

/// Setting: the Graph API base URL (a simulator in tests).
pub const SETTING_BASE_URL: &str = "base_url";
/// Setting: the Graph API version in the path.
pub const SETTING_API_VERSION: &str = "api_version";
/// Setting: the business phone number id messages are sent from (required).
pub const SETTING_PHONE_NUMBER_ID: &str = "phone_number_id";
/// Secret: the system-user access token, sent as a bearer token.
pub const SECRET_ACCESS_TOKEN: &str = "access_token";
/// Secret: the Meta app secret that signs webhooks.
pub const SECRET_APP_SECRET: &str = "app_secret";
/// Secret: the token Meta echoes in the webhook verification handshake.
pub const SECRET_VERIFY_TOKEN: &str = "verify_token";

/// Default for [`SETTING_BASE_URL`].
pub const DEFAULT_BASE_URL: &str = "https://graph.facebook.com";
/// Default for [`SETTING_API_VERSION`].
pub const DEFAULT_API_VERSION: &str = "v21.0";

/// The WhatsApp Business Cloud API adapter.
pub struct WhatsApp;

/// What the adapter declares about WhatsApp (see `describe`).
pub fn channel_info() -> ChannelInfo {
    ChannelInfo {
        // The customer-service window: 24 hours after the customer's last
        // message, uncapped. WhatsApp has no other opener.
        free_form: FreeFormRule::WithinWindow(vec![WindowRule {
            duration_seconds: 24 * 60 * 60,
            opened_by: vec![WindowOpener::InboundMessage],
            max_messages: None,
        }]),
        template_purposes: vec![
            Purpose::Marketing,
            Purpose::Utility,
            Purpose::Authentication,
        ],
        quiet_hours: Vec::new(),
        limits: Limits {
            max_text_length: payload::MAX_TEXT_CHARS as u32,
            text_unit: TextUnit::UnicodeScalarValues,
            template_parameters: template_parameter_rules(),
            // No multicast: the adapter loops, one recipient per API call.
            max_batch_size: 50,
            messages_per_second: 80,
        },
        egress_hosts: vec!["graph.facebook.com".into()],
        secrets: vec![
            SECRET_ACCESS_TOKEN.into(),
            SECRET_APP_SECRET.into(),
            SECRET_VERIFY_TOKEN.into(),
        ],
        settings: vec![
            SETTING_BASE_URL.into(),
            SETTING_API_VERSION.into(),
            SETTING_PHONE_NUMBER_ID.into(),
        ],
        // The Cloud API has no idempotency key: a retry after an uncertain
        // failure can deliver twice. The host's key is still sent, as
        // `biz_opaque_callback_data`, so status webhooks can be correlated.
        deduplicates: false,
        ..ChannelInfo::new(
            "whatsapp",
            "WhatsApp Business Cloud API",
            AddressKind::PhoneNumber,
        )
    }
}

/// What a template body parameter may contain. Meta refuses parameter text
/// with new-line or tab characters or more than 4 consecutive spaces
/// (<https://developers.facebook.com/docs/whatsapp/message-templates/creation>).
/// Meta documents no length limit for one parameter of its own (only the
/// rendered template, which the host cannot see), so none is declared.
pub fn template_parameter_rules() -> ParameterRules {
    ParameterRules {
        max_length: None,
        allow_newlines: false,
        allow_tabs: false,
        max_consecutive_spaces: Some(4),
    }
}

/// Where and how to send, read once per batch.
struct Endpoint {
    url: String,
    access_token: String,
}

impl Endpoint {
    fn load() -> Result<Self, SendError> {
        let phone_number_id = config::require(SETTING_PHONE_NUMBER_ID)?;
        let access_token = config::require_secret(SECRET_ACCESS_TOKEN)?;
        let url = payload::messages_url(
            &setting_or(SETTING_BASE_URL, DEFAULT_BASE_URL),
            &setting_or(SETTING_API_VERSION, DEFAULT_API_VERSION),
            &phone_number_id,
        );
        Ok(Self { url, access_token })
    }

    /// The request that sends `body`.
    fn request(&self, body: &MessageRequest<'_>) -> Request {
        Request::post(&self.url)
            .bearer(&self.access_token)
            .json(body)
    }
}

/// The receipt, or the classified Graph error, in a reply to a send.
fn receipt_from(response: &Response) -> Result<Receipt, SendError> {
    errors::interpret_response(
        response.status,
        response.header("retry-after"),
        &response.body,
    )
}

/// A setting, or `default` when it is unset or blank.
fn setting_or(key: &str, default: &str) -> String {
    config::get(key)
        .filter(|value| !value.trim().is_empty())
        .unwrap_or_else(|| default.to_owned())
}

impl Adapter for WhatsApp {
    fn describe() -> ChannelInfo {
        channel_info()
    }

    fn send(batch: Vec<OutboundMessage>) -> Vec<Result<Receipt, SendError>> {
        let endpoint = Endpoint::load();
        // One request per message, tagged with its index, the batch's
        // requests in flight together; each outcome is reported as soon as
        // it is known.
        let outcomes = outcomes::send_each_concurrently(
            &batch,
            |message| {
                // Content is checked first: it is wrong whatever the configuration.
                let body = MessageRequest::for_message(message)?;
                let endpoint = endpoint.as_ref().map_err(Clone::clone)?;
                Ok(endpoint.request(&body))
            },
            |_, response| receipt_from(&response),
        );
        for (message, outcome) in batch.iter().zip(&outcomes) {
            if let Err(error) = outcome {
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
        }
        outcomes
    }

    fn handle_webhook(request: HttpRequest) -> WebhookResult {
        match request.method.to_ascii_uppercase().as_str() {
            "GET" => {
                let expected = config::secret(SECRET_VERIFY_TOKEN);
                if expected.as_deref().is_none_or(str::is_empty) {
                    log::error(
                        "webhook handshake refused: secret `verify_token` is not configured",
                    );
                }
                let response = webhook::handshake(&request, expected.as_deref());
                if response.status != 200 {
                    log::warn("webhook handshake refused: wrong mode, token or challenge");
                }
                WebhookResult::reply(response)
            }
            "POST" => {
                let app_secret = match switchboard_sdk::webhook::require_secret(SECRET_APP_SECRET) {
                    Ok(secret) => secret,
                    Err(reply) => return reply,
                };
                let result = webhook::handle_notification(&request, &app_secret, now_ms());
                switchboard_sdk::webhook::log_refusal(result)
            }
            _ => WebhookResult::reply(HttpResponse::method_not_allowed("GET, POST")),
        }
    }
}

switchboard_sdk::export_adapter!(WhatsApp);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describes_whatsapp() {
        let info = channel_info();
        assert_eq!(info.name, "whatsapp");
        assert_eq!(info.display_name, "WhatsApp Business Cloud API");
        assert_eq!(info.address_kind, AddressKind::PhoneNumber);
        match &info.free_form {
            FreeFormRule::WithinWindow(rules) => {
                assert_eq!(rules.len(), 1, "{rules:?}");
                assert_eq!(rules[0].duration_seconds, 86_400);
                assert_eq!(rules[0].opened_by, vec![WindowOpener::InboundMessage]);
                assert_eq!(rules[0].max_messages, None);
            }
            other => panic!("unexpected free-form rule {other:?}"),
        }
        assert_eq!(
            info.template_purposes,
            vec![
                Purpose::Marketing,
                Purpose::Utility,
                Purpose::Authentication
            ]
        );
        assert!(info.quiet_hours.is_empty());
        assert_eq!(info.limits.max_text_length, 4_096);
        assert_eq!(info.limits.text_unit, TextUnit::UnicodeScalarValues);
        assert_eq!(info.limits.max_batch_size, 50);
        assert_eq!(info.limits.messages_per_second, 80);
        assert_eq!(info.egress_hosts, vec!["graph.facebook.com"]);
        assert_eq!(
            info.secrets,
            vec!["access_token", "app_secret", "verify_token"]
        );
        assert_eq!(
            info.settings,
            vec!["base_url", "api_version", "phone_number_id"]
        );
        assert!(!info.deduplicates);
    }

    #[test]
    fn template_parameters_follow_metas_body_parameter_rules() {
        let rules = channel_info().limits.template_parameters;
        // No documented length limit for one parameter.
        assert_eq!(rules.max_length, None);
        assert!(!rules.allow_newlines);
        assert!(!rules.allow_tabs);
        assert_eq!(rules.max_consecutive_spaces, Some(4));
    }

    #[test]
    fn manifest_matches_describe() {
        let manifest = include_str!("../manifest.toml");
        assert!(manifest.contains(r#"hosts = ["graph.facebook.com"]"#));
        assert!(manifest.contains(r#"settings = ["base_url", "api_version", "phone_number_id"]"#));
        assert!(manifest.contains(r#"secrets = ["access_token", "app_secret", "verify_token"]"#));
        assert!(manifest.contains(r#"name = "whatsapp""#));
    }
}
