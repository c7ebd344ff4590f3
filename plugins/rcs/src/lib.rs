//! Switchboard channel adapter for Google RCS Business Messaging (RBM).
//!
//! This file is the thin layer that talks to the host (configuration, HTTP,
//! the token cache, the clock, logging). The platform knowledge lives in
//! plain functions that are tested natively:
//!
//! - [`ids`]: the `messageId` UUID derived from the host's idempotency key;
//! - [`jwt`]: the RS256 service-account assertion and the token exchange;
//! - [`payload`]: URLs and `AgentMessage` bodies;
//! - [`errors`]: Google API errors classified into send-error classes;
//! - [`webhook`]: the setup handshake, `X-Goog-Signature` and event parsing.

#![warn(missing_docs)]

pub mod errors;
pub mod ids;
pub mod jwt;
pub mod payload;
pub mod webhook;

use switchboard_sdk::prelude::*;
use switchboard_sdk::webhook::now_ms;

use crate::payload::AgentMessage;

/// Setting: the RBM API base URL (a simulator in tests).
pub const SETTING_BASE_URL: &str = "base_url";
/// Setting: the OAuth token endpoint (a simulator in tests).
pub const SETTING_TOKEN_URL: &str = "token_url";
/// Setting: the RBM agent id sent as `agentId` (required).
pub const SETTING_AGENT_ID: &str = "agent_id";
/// Setting: the service account's email, the assertion's issuer (required).
pub const SETTING_CLIENT_EMAIL: &str = "client_email";
/// Setting: a default TTL in seconds for messages that carry none.
pub const SETTING_TTL_SECONDS: &str = "ttl_seconds";
/// Setting: `true` to check the recipient's RCS capability before each send.
pub const SETTING_CHECK_CAPABILITY: &str = "check_capability";
/// Secret: the service account's RSA private key, PKCS#8 PEM.
pub const SECRET_PRIVATE_KEY_PEM: &str = "private_key_pem";
/// Secret: the webhook client token (handshake and HMAC-SHA512 key).
pub const SECRET_CLIENT_TOKEN: &str = "client_token";

/// Default for [`SETTING_BASE_URL`].
pub const DEFAULT_BASE_URL: &str = "https://rcsbusinessmessaging.googleapis.com";
/// Default for [`SETTING_TOKEN_URL`].
pub const DEFAULT_TOKEN_URL: &str = "https://oauth2.googleapis.com/token";

/// Tokens are renewed this many seconds before they expire, so a send never
/// starts with a token about to lapse.
pub const TOKEN_REFRESH_MARGIN_SECS: u32 = 300;

/// The RBM adapter.
pub struct Rcs;

/// What the adapter declares about RBM (see `describe`).
pub fn channel_info() -> ChannelInfo {
    ChannelInfo {
        free_form: FreeFormRule::Always,
        template_purposes: Vec::new(),
        quiet_hours: Vec::new(),
        limits: Limits {
            max_text_length: payload::MAX_TEXT_CHARS as u32,
            text_unit: TextUnit::UnicodeScalarValues,
            // RBM has no templates.
            template_parameters: ParameterRules::none(),
            // One HTTPS request per message (RBM has no multicast). 20 keep a
            // call at a few seconds even at slow API latencies, well inside
            // the host's call timeout, with room for a token fetch.
            max_batch_size: 20,
            // RBM's API quota is not published in the docs we have; 20/s is
            // a cautious default. RESOURCE_EXHAUSTED (429) slows the sender,
            // so an operator override that is too high degrades gracefully.
            messages_per_second: 20,
        },
        egress_hosts: vec![
            "rcsbusinessmessaging.googleapis.com".into(),
            "oauth2.googleapis.com".into(),
        ],
        secrets: vec![SECRET_PRIVATE_KEY_PEM.into(), SECRET_CLIENT_TOKEN.into()],
        settings: vec![
            SETTING_BASE_URL.into(),
            SETTING_TOKEN_URL.into(),
            SETTING_AGENT_ID.into(),
            SETTING_CLIENT_EMAIL.into(),
            SETTING_TTL_SECONDS.into(),
            SETTING_CHECK_CAPABILITY.into(),
        ],
        // RBM ignores a reused messageId, and ours is derived from the
        // host's idempotency key.
        deduplicates: true,
        ..ChannelInfo::new(
            "rcs",
            "Google RCS Business Messaging",
            AddressKind::PhoneNumber,
        )
    }
}

/// A setting, or `default` when it is unset or blank.
fn setting_or(key: &str, default: &str) -> String {
    config::get(key)
        .filter(|value| !value.trim().is_empty())
        .unwrap_or_else(|| default.to_owned())
}

/// Where and as whom to send, read once per batch.
struct Settings {
    base_url: String,
    token_url: String,
    agent_id: String,
    client_email: String,
    default_ttl_seconds: Option<u32>,
    check_capability: bool,
}

impl Settings {
    fn load() -> Result<Self, SendError> {
        let agent_id = config::require(SETTING_AGENT_ID)?.trim().to_owned();
        let client_email = config::require(SETTING_CLIENT_EMAIL)?.trim().to_owned();
        let default_ttl_seconds = match config::get(SETTING_TTL_SECONDS)
            .map(|value| value.trim().to_owned())
            .filter(|value| !value.is_empty())
        {
            None => None,
            Some(value) => Some(value.parse::<u32>().map_err(|_| {
                SendError::Permanent(Failure::new(
                    "",
                    format!(
                        "setting `{SETTING_TTL_SECONDS}` is `{value}`, not a number of seconds"
                    ),
                ))
            })?),
        };
        let check_capability = match config::get(SETTING_CHECK_CAPABILITY)
            .map(|value| value.trim().to_ascii_lowercase())
            .as_deref()
        {
            None | Some("" | "false") => false,
            Some("true") => true,
            Some(other) => {
                return Err(SendError::Permanent(Failure::new(
                    "",
                    format!(
                        "setting `{SETTING_CHECK_CAPABILITY}` is `{other}`, not `true` or `false`"
                    ),
                )));
            }
        };
        Ok(Self {
            base_url: setting_or(SETTING_BASE_URL, DEFAULT_BASE_URL),
            token_url: setting_or(SETTING_TOKEN_URL, DEFAULT_TOKEN_URL),
            agent_id,
            client_email,
            default_ttl_seconds,
            check_capability,
        })
    }

    /// The token cache key: tokens belong to one service account and endpoint.
    fn cache_key(&self) -> String {
        format!("rbm-access-token:{}:{}", self.client_email, self.token_url)
    }
}

/// One batch's access to the API: the settings and the current token. A
/// token that cannot be had fails every remaining message of the batch the
/// same way, without asking the token endpoint again.
struct Session {
    settings: Settings,
    token: Option<Result<String, SendError>>,
}

impl Session {
    fn token(&mut self) -> Result<String, SendError> {
        if let Some(token) = &self.token {
            return token.clone();
        }
        let token = token_cache::get_or_fetch(
            &self.settings.cache_key(),
            TOKEN_REFRESH_MARGIN_SECS,
            || fetch_token(&self.settings),
        );
        self.token = Some(token.clone());
        token
    }

    /// Forget `rejected` (if it is still the cached one: another call may
    /// have refreshed it already) and get a fresh token.
    fn refresh(&mut self, rejected: &str) -> Result<String, SendError> {
        let key = self.settings.cache_key();
        if token_cache::get(&key).is_none_or(|cached| cached == rejected) {
            token_cache::invalidate(&key);
        }
        self.token = None;
        self.token()
    }

    /// Send the request `build` makes with a bearer token; on 401 refresh
    /// the token once and send it again.
    fn call(&mut self, build: impl Fn() -> Request) -> Result<Response, SendError> {
        let token = self.token()?;
        let response = build()
            .bearer(&token)
            .send()
            .map_err(errors::transport_error)?;
        if response.status != 401 {
            return Ok(response);
        }
        log::info("RBM rejected the access token (401); fetching a new one and retrying once");
        let token = self.refresh(&token)?;
        build()
            .bearer(&token)
            .send()
            .map_err(errors::transport_error)
    }

    fn send_one(&mut self, message: &OutboundMessage) -> Result<Receipt, SendError> {
        // Content and address are checked first: they are wrong whatever
        // the platform says.
        let body = AgentMessage::for_message(message, self.settings.default_ttl_seconds)?;
        let phone = payload::recipient(&message.to)?.to_owned();
        let message_id = ids::message_id(&message.idempotency_key);
        if self.settings.check_capability {
            let request_id = ids::capability_request_id(&message.idempotency_key, message.attempt);
            let url = payload::capability_url(
                &self.settings.base_url,
                &phone,
                &request_id,
                &self.settings.agent_id,
            );
            // A capability check cannot deliver anything: it is not tagged
            // with the message, so the host does not count it as the
            // message's request having left.
            let response = self.call(|| Request::get(&url).for_messages(&[]))?;
            errors::interpret_capability(
                response.status,
                response.header("retry-after"),
                &response.body,
            )?;
        }
        let url = payload::send_url(
            &self.settings.base_url,
            &phone,
            &message_id,
            &self.settings.agent_id,
        );
        let response = self.call(|| Request::post(&url).json(&body))?;
        errors::interpret_send(
            response.status,
            response.header("retry-after"),
            &response.body,
            &message_id,
        )
    }
}

/// Sign an assertion and exchange it for an access token.
fn fetch_token(settings: &Settings) -> Result<(String, u32), SendError> {
    let pem = config::require_secret(SECRET_PRIVATE_KEY_PEM)?;
    let key = jwt::ServiceAccountKey::from_pem(&pem)?;
    let claims = jwt::Claims::new(&settings.client_email, &settings.token_url, now_secs());
    let assertion = jwt::assertion(&key, &claims)?;
    // The token request carries no message: untagged, even when it is made
    // while a message is being sent.
    let response = Request::post(&settings.token_url)
        .for_messages(&[])
        .body(
            jwt::token_request_body(&assertion).into_bytes(),
            "application/x-www-form-urlencoded",
        )
        .send()
        // Nothing was sent to anyone yet: any transport failure is transient.
        .map_err(|error| match SendError::from(error) {
            SendError::Uncertain(failure) => SendError::Transient(failure),
            other => other,
        })?;
    let result = jwt::interpret_token_response(
        response.status,
        response
            .header("retry-after")
            .and_then(errors::retry_after_ms),
        &response.body,
    );
    match &result {
        Ok((_, lifetime)) => log::info(&format!(
            "fetched an RBM access token for {} (valid {lifetime} s)",
            settings.client_email
        )),
        Err(error) => log::error(&format!(
            "could not fetch an RBM access token: {}",
            error.failure().message
        )),
    }
    result
}

fn now_secs() -> u64 {
    now_ms() / 1000
}

impl Adapter for Rcs {
    fn describe() -> ChannelInfo {
        channel_info()
    }

    fn send(batch: Vec<OutboundMessage>) -> Vec<Result<Receipt, SendError>> {
        let mut session = Settings::load().map(|settings| Session {
            settings,
            token: None,
        });
        // One send request per message, tagged with its index; each
        // outcome is reported as soon as it is known.
        outcomes::send_each(batch, |message| {
            let result = match &mut session {
                Ok(session) => session.send_one(message),
                Err(error) => Err(error.clone()),
            };
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

    fn handle_webhook(request: HttpRequest) -> WebhookResult {
        if !request.method.eq_ignore_ascii_case("POST") {
            return WebhookResult::reply(HttpResponse::method_not_allowed("POST"));
        }
        let client_token = config::secret(SECRET_CLIENT_TOKEN).filter(|token| !token.is_empty());
        if client_token.is_none() {
            log::error("webhook refused: secret `client_token` is not configured");
        }
        let agent_id = config::get(SETTING_AGENT_ID).map(|id| id.trim().to_owned());
        let result = webhook::handle(
            &request,
            client_token.as_deref(),
            agent_id.as_deref(),
            now_ms(),
        );
        switchboard_sdk::webhook::log_refusal(result)
    }
}

switchboard_sdk::export_adapter!(Rcs);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describes_rcs() {
        let info = channel_info();
        assert_eq!(info.name, "rcs");
        assert_eq!(info.display_name, "Google RCS Business Messaging");
        assert_eq!(info.address_kind, AddressKind::PhoneNumber);
        assert!(matches!(info.free_form, FreeFormRule::Always));
        assert!(info.template_purposes.is_empty());
        assert!(info.quiet_hours.is_empty());
        assert_eq!(info.limits.max_text_length, 3_072);
        assert_eq!(info.limits.text_unit, TextUnit::UnicodeScalarValues);
        assert_eq!(info.limits.max_batch_size, 20);
        assert_eq!(info.limits.messages_per_second, 20);
        assert_eq!(
            info.egress_hosts,
            vec![
                "rcsbusinessmessaging.googleapis.com",
                "oauth2.googleapis.com"
            ]
        );
        assert_eq!(info.secrets, vec!["private_key_pem", "client_token"]);
        assert_eq!(
            info.settings,
            vec![
                "base_url",
                "token_url",
                "agent_id",
                "client_email",
                "ttl_seconds",
                "check_capability"
            ]
        );
        assert!(info.deduplicates);
    }

    #[test]
    fn manifest_matches_describe() {
        let manifest = include_str!("../manifest.toml");
        assert!(manifest.contains(r#"name = "rcs""#));
        assert!(manifest.contains(r#"component = "switchboard_adapter_rcs.wasm""#));
        assert!(manifest.contains(
            r#"hosts = ["rcsbusinessmessaging.googleapis.com", "oauth2.googleapis.com"]"#
        ));
        assert!(manifest.contains(
            r#"settings = ["base_url", "token_url", "agent_id", "client_email", "ttl_seconds", "check_capability"]"#
        ));
        assert!(manifest.contains(r#"secrets = ["private_key_pem", "client_token"]"#));
    }
}
