//! Reading the Messaging API's replies: the receipt on success (and on a
//! `409` replay of an accepted retry key), and the classification of errors
//! into the contract's send-error classes.
//!
//! The table follows LINE's API reference
//! (<https://developers.line.biz/en/reference/messaging-api/#send-push-message>)
//! and its retry guide
//! (<https://developers.line.biz/en/docs/messaging-api/retrying-api-request>).
//! LINE has no error codes, so a failure's `code` is the HTTP status; its
//! message is LINE's `message` plus every `details[]` entry
//! (`property: message`).

use serde::Deserialize;
use switchboard_sdk::http::HttpError;
use switchboard_sdk::types::{Failure, RateLimitScope, Receipt, SendError};

/// The `message` of the 429 LINE answers when the monthly message quota is
/// used up (as opposed to a request-rate limit).
pub const MONTHLY_LIMIT_MESSAGE: &str = "You have reached your monthly limit.";

/// The body of an error reply: `{"message":"…","details":[{"message","property"}]}`.
#[derive(Debug, Default, Deserialize)]
pub struct ErrorBody {
    /// What went wrong.
    #[serde(default)]
    pub message: String,
    /// Per-property problems, for 400s.
    #[serde(default)]
    pub details: Vec<Detail>,
}

/// One entry of `details[]`.
#[derive(Debug, Default, Deserialize)]
pub struct Detail {
    /// What is wrong with the property.
    #[serde(default)]
    pub message: String,
    /// The property, e.g. `messages[0].text`.
    #[serde(default)]
    pub property: String,
}

/// The body of a push reply (and of a push's `409`):
/// `{"sentMessages":[{"id":"…","quoteToken":"…"}]}`. Multicast replies `{}`.
#[derive(Debug, Default, Deserialize)]
pub struct SentBody {
    /// The messages sent, one per message object.
    #[serde(default, rename = "sentMessages")]
    pub sent_messages: Vec<SentMessage>,
}

/// One entry of `sentMessages`.
#[derive(Debug, Default, Deserialize)]
pub struct SentMessage {
    /// LINE's message id.
    #[serde(default)]
    pub id: String,
}

/// The parts of a reply that decide the outcome.
#[derive(Debug, Clone, Copy)]
pub struct Reply<'a> {
    /// HTTP status.
    pub status: u16,
    /// The `X-Line-Request-Id` header.
    pub request_id: Option<&'a str>,
    /// The `X-Line-Accepted-Request-Id` header (on a `409`).
    pub accepted_request_id: Option<&'a str>,
    /// The body.
    pub body: &'a [u8],
}

/// Interpret a push or multicast reply for the request sent with
/// `retry_key`.
///
/// - 2xx: a receipt. Its id is the first `sentMessages[].id` (push), else
///   the `X-Line-Request-Id` (multicast: LINE has no per-message id), else
///   the retry key.
/// - 409: LINE had already accepted this retry key; a duplicate receipt
///   with the same choice of id, the request id being
///   `X-Line-Accepted-Request-Id`. Nothing new was sent.
/// - anything else: the classified error (see [`class_of`]).
pub fn interpret(reply: Reply<'_>, retry_key: &str) -> Result<Receipt, SendError> {
    let sent_id = || {
        serde_json::from_slice::<SentBody>(reply.body)
            .ok()
            .and_then(|body| body.sent_messages.into_iter().next())
            .map(|message| message.id)
            .filter(|id| !id.is_empty())
    };
    match reply.status {
        200..=299 => Ok(Receipt::new(
            sent_id()
                .or_else(|| nonempty(reply.request_id).map(str::to_owned))
                .unwrap_or_else(|| retry_key.to_owned()),
        )),
        409 => Ok(Receipt::duplicate(
            sent_id()
                .or_else(|| nonempty(reply.accepted_request_id).map(str::to_owned))
                .unwrap_or_else(|| retry_key.to_owned()),
        )),
        status => {
            let body = serde_json::from_slice::<ErrorBody>(reply.body).ok();
            let message = body.as_ref().map_or("", |b| b.message.as_str());
            let failure = failure_of(status, body.as_ref(), reply.body, reply.request_id);
            Err(class_of(status, message).into_error(failure))
        }
    }
}

/// What the host should do about an error, before it is dressed as a
/// [`SendError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Too many requests per second: slow the channel down.
    RateLimitedSender,
    /// The monthly message quota is used up: stop until it resets.
    RateLimitedQuota,
    /// Retry with backoff (and the same retry key).
    Transient,
    /// Never retry.
    Permanent,
    /// Fix the channel access token.
    AuthFailed,
    /// Fix what is sent.
    InvalidContent,
}

/// The class of an error reply with HTTP `status` and LINE's `message`.
///
/// | HTTP | Class |
/// |---|---|
/// | 400 | invalid-content (the body names the property) |
/// | 401 | auth-failed |
/// | 403 | permanent (not allowed for this channel or plan) |
/// | 413 | invalid-content (body over 2 MB) |
/// | 429 `You have reached your monthly limit.` | rate-limited, quota |
/// | 429 anything else | rate-limited, sender |
/// | 5xx | transient: LINE deduplicates the retry on the retry key |
/// | other | permanent |
pub fn class_of(status: u16, message: &str) -> Class {
    match status {
        400 | 413 => Class::InvalidContent,
        401 => Class::AuthFailed,
        429 if is_monthly_limit(message) => Class::RateLimitedQuota,
        429 => Class::RateLimitedSender,
        500..=599 => Class::Transient,
        _ => Class::Permanent,
    }
}

/// Whether a 429's message is the monthly-quota one (compared without case
/// or the final full stop).
fn is_monthly_limit(message: &str) -> bool {
    let normalise = |text: &str| text.trim().trim_end_matches('.').to_ascii_lowercase();
    normalise(message) == normalise(MONTHLY_LIMIT_MESSAGE)
}

impl Class {
    /// The contract's error for this class. LINE sends no `Retry-After`.
    pub fn into_error(self, failure: Failure) -> SendError {
        match self {
            Class::RateLimitedSender => {
                SendError::rate_limited(RateLimitScope::Sender, None, failure)
            }
            Class::RateLimitedQuota => {
                SendError::rate_limited(RateLimitScope::Quota, None, failure)
            }
            Class::Transient => SendError::Transient(failure),
            Class::Permanent => SendError::Permanent(failure),
            Class::AuthFailed => SendError::AuthFailed(failure),
            Class::InvalidContent => SendError::InvalidContent(failure),
        }
    }
}

/// The failure an operator sees: the HTTP status as the code; LINE's
/// message, each `details[]` entry as `property: message`, and the request
/// id for LINE support. A body that is not LINE's JSON is quoted.
pub fn failure_of(
    status: u16,
    body: Option<&ErrorBody>,
    raw: &[u8],
    request_id: Option<&str>,
) -> Failure {
    let mut message = match body {
        Some(body) if !body.message.is_empty() => body.message.clone(),
        Some(_) | None if raw.is_empty() => format!("HTTP {status} with an empty body"),
        _ => format!("HTTP {status}: `{}`", snippet(raw)),
    };
    if let Some(body) = body {
        let details: Vec<String> = body
            .details
            .iter()
            .map(|d| match (d.property.is_empty(), d.message.is_empty()) {
                (false, false) => format!("{}: {}", d.property, d.message),
                (false, true) => d.property.clone(),
                (true, _) => d.message.clone(),
            })
            .filter(|d| !d.is_empty())
            .collect();
        if !details.is_empty() {
            message.push_str(" (");
            message.push_str(&details.join("; "));
            message.push(')');
        }
    }
    if let Some(id) = request_id.map(str::trim).filter(|id| !id.is_empty()) {
        message.push_str(&format!(" [x-line-request-id {id}]"));
    }
    Failure::new(status.to_string(), message)
}

/// A request that got no usable reply. LINE deduplicates on the retry key,
/// so a reply that never came (or came garbled) is safe to retry:
/// `transient`, where the SDK would say `uncertain`. A denied or malformed
/// URL stays `permanent`.
pub fn transport_error(error: HttpError) -> SendError {
    match error {
        HttpError::Timeout(_) | HttpError::InvalidJson(_) => {
            SendError::Transient(Failure::new("", error.to_string()))
        }
        other => SendError::from(other),
    }
}

/// The contract's name for an error's class, for logs.
pub fn class_name(error: &SendError) -> &'static str {
    match error {
        SendError::RateLimited(limited) => match limited.scope {
            RateLimitScope::Sender => "rate-limited/sender",
            RateLimitScope::Recipient => "rate-limited/recipient",
            RateLimitScope::Quota => "rate-limited/quota",
        },
        SendError::Transient(_) => "transient",
        SendError::Permanent(_) => "permanent",
        SendError::WindowClosed(_) => "window-closed",
        SendError::RecipientUnreachable(_) => "recipient-unreachable",
        SendError::OptedOut(_) => "opted-out",
        SendError::AuthFailed(_) => "auth-failed",
        SendError::InvalidContent(_) => "invalid-content",
        SendError::Uncertain(_) => "uncertain",
        SendError::Deferred(_) => "deferred",
    }
}

/// Whether the host may retry after this result, so that a multicast's
/// membership must be remembered for the retry to resend it whole.
pub fn may_retry(result: &Result<Receipt, SendError>) -> bool {
    matches!(
        result,
        Err(SendError::Transient(_) | SendError::RateLimited(_) | SendError::Uncertain(_))
    )
}

/// A header value, trimmed, unless it is missing or blank.
fn nonempty(value: Option<&str>) -> Option<&str> {
    value.map(str::trim).filter(|v| !v.is_empty())
}

/// The first 200 characters of a body, for messages.
fn snippet(body: &[u8]) -> String {
    String::from_utf8_lossy(body).chars().take(200).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const RETRY_KEY: &str = "123e4567-e89b-42d3-a456-426614174000";

    fn reply(status: u16, body: &str) -> Reply<'_> {
        Reply {
            status,
            request_id: Some("8e0e8a7d-1f0b-4c1d-9e2e-3f4a5b6c7d8e"),
            accepted_request_id: None,
            body: body.as_bytes(),
        }
    }

    #[test]
    fn every_status_has_its_class() {
        use Class::*;
        let table: &[(u16, &str, Class)] = &[
            (400, "The request body has 1 error(s)", InvalidContent),
            (401, "Authentication failed", AuthFailed),
            (
                403,
                "Access to this API is not available for your account",
                Permanent,
            ),
            (404, "Not found", Permanent),
            (413, "Request Entity Too Large", InvalidContent),
            (429, "Too Many Requests", RateLimitedSender),
            (
                429,
                "You have reached your monthly limit.",
                RateLimitedQuota,
            ),
            (429, "you have reached your monthly limit", RateLimitedQuota),
            (429, "", RateLimitedSender),
            (500, "Internal server error", Transient),
            (502, "", Transient),
            (503, "", Transient),
            (418, "", Permanent),
        ];
        for &(status, message, expected) in table {
            assert_eq!(
                class_of(status, message),
                expected,
                "HTTP {status} {message}"
            );
        }
    }

    #[test]
    fn push_success_gives_the_sent_message_id() {
        let receipt = interpret(
            reply(
                200,
                r#"{"sentMessages":[{"id":"461230966842064897","quoteToken":"IStG5h1Tz7b..."}]}"#,
            ),
            RETRY_KEY,
        )
        .expect("receipt");
        assert_eq!(receipt.id(), "461230966842064897");
        assert!(!receipt.duplicate);
    }

    #[test]
    fn multicast_success_gives_the_request_id() {
        let receipt = interpret(reply(200, "{}"), RETRY_KEY).expect("receipt");
        assert_eq!(receipt.id(), "8e0e8a7d-1f0b-4c1d-9e2e-3f4a5b6c7d8e");
        let bare = Reply {
            request_id: None,
            ..reply(200, "")
        };
        assert_eq!(interpret(bare, RETRY_KEY).expect("receipt").id(), RETRY_KEY);
    }

    #[test]
    fn a_409_is_a_duplicate_receipt_not_a_failure() {
        let replay = Reply {
            accepted_request_id: Some("a1b2c3d4-0000-4000-8000-000000000001"),
            ..reply(409, r#"{"message":"The retry key is already accepted"}"#)
        };
        let receipt = interpret(replay, RETRY_KEY).expect("duplicate receipt");
        assert!(receipt.duplicate);
        assert_eq!(receipt.id(), "a1b2c3d4-0000-4000-8000-000000000001");
        // A push's 409 repeats sentMessages: the id matches the first receipt's.
        let push_replay = Reply {
            accepted_request_id: Some("a1b2c3d4-0000-4000-8000-000000000001"),
            ..reply(
                409,
                r#"{"message":"The retry key is already accepted","sentMessages":[{"id":"461230966842064897"}]}"#,
            )
        };
        let receipt = interpret(push_replay, RETRY_KEY).expect("duplicate receipt");
        assert!(receipt.duplicate);
        assert_eq!(receipt.id(), "461230966842064897");
    }

    #[test]
    fn a_400_names_every_property() {
        let body = r#"{"message":"The request body has 2 error(s)","details":[{"message":"May not be empty","property":"messages[0].text"},{"message":"Size must be between 1 and 500","property":"to"}]}"#;
        match interpret(reply(400, body), RETRY_KEY) {
            Err(SendError::InvalidContent(failure)) => {
                assert_eq!(failure.code, "400");
                assert_eq!(
                    failure.message,
                    "The request body has 2 error(s) (messages[0].text: May not be empty; to: Size must be between 1 and 500) [x-line-request-id 8e0e8a7d-1f0b-4c1d-9e2e-3f4a5b6c7d8e]"
                );
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn rate_limit_and_quota_are_told_apart_by_message() {
        match interpret(reply(429, r#"{"message":"Too Many Requests"}"#), RETRY_KEY) {
            Err(SendError::RateLimited(limited)) => {
                assert_eq!(limited.scope, RateLimitScope::Sender);
                assert_eq!(limited.retry_after_ms, None);
                assert_eq!(limited.failure.code, "429");
                assert!(limited.failure.message.starts_with("Too Many Requests"));
            }
            other => panic!("unexpected {other:?}"),
        }
        match interpret(
            reply(429, r#"{"message":"You have reached your monthly limit."}"#),
            RETRY_KEY,
        ) {
            Err(SendError::RateLimited(limited)) => {
                assert_eq!(limited.scope, RateLimitScope::Quota);
                assert!(
                    limited
                        .failure
                        .message
                        .starts_with("You have reached your monthly limit.")
                );
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn auth_and_server_errors() {
        match interpret(
            reply(
                401,
                r#"{"message":"Authentication failed. Confirm that the access token in the authorization header is valid."}"#,
            ),
            RETRY_KEY,
        ) {
            Err(SendError::AuthFailed(failure)) => {
                assert!(failure.message.starts_with("Authentication failed."));
                assert_eq!(failure.code, "401");
            }
            other => panic!("unexpected {other:?}"),
        }
        match interpret(reply(502, "<html>Bad Gateway</html>"), RETRY_KEY) {
            Err(SendError::Transient(failure)) => assert!(
                failure
                    .message
                    .starts_with("HTTP 502: `<html>Bad Gateway</html>`"),
                "{failure:?}"
            ),
            other => panic!("unexpected {other:?}"),
        }
        match interpret(reply(403, ""), RETRY_KEY) {
            Err(SendError::Permanent(failure)) => {
                assert!(failure.message.starts_with("HTTP 403 with an empty body"))
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn lost_replies_are_transient_because_line_deduplicates() {
        assert!(matches!(
            transport_error(HttpError::Timeout("first byte".into())),
            SendError::Transient(_)
        ));
        assert!(matches!(
            transport_error(HttpError::Connection("reset".into())),
            SendError::Transient(_)
        ));
        assert!(matches!(
            transport_error(HttpError::Denied("api.line.me".into())),
            SendError::Permanent(_)
        ));
        let error = transport_error(HttpError::Timeout("first byte".into()));
        assert_eq!(
            error.failure().message,
            "timed out waiting for the reply: first byte"
        );
    }

    #[test]
    fn only_retryable_results_keep_a_multicast_remembered() {
        assert!(!may_retry(&Ok(Receipt::new("x"))));
        assert!(may_retry(&Err(SendError::Transient(Failure::new("", "")))));
        assert!(may_retry(&Err(SendError::rate_limited(
            RateLimitScope::Sender,
            None,
            Failure::new("", "")
        ))));
        assert!(!may_retry(&Err(SendError::InvalidContent(Failure::new(
            "", ""
        )))));
    }
}
