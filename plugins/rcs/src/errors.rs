//! Reading RBM's replies: the receipt on success, and Google API errors
//! (`{"error":{"code":404,"message":"…","status":"NOT_FOUND"}}`) classified
//! into the contract's send-error classes, following Google's API error
//! model (<https://developers.google.com/business-communications/rcs-business-messaging/guides/build/messages/send>).
//!
//! The host acts on the class only; the canonical status (`NOT_FOUND`, ...)
//! travels as the failure's code and Google's words as its message.

use serde::Deserialize;
use switchboard_sdk::http::HttpError;
use switchboard_sdk::types::{Failure, RateLimitScope, Receipt, SendError};

use crate::jwt::snippet;

/// The body of a failed call: `{"error":{…}}`.
#[derive(Debug, Deserialize)]
struct ErrorBody {
    error: GoogleError,
}

/// A Google API error.
#[derive(Debug, Default, Clone, PartialEq, Eq, Deserialize)]
pub struct GoogleError {
    /// The HTTP status as a number.
    #[serde(default)]
    pub code: Option<u16>,
    /// Google's description.
    #[serde(default)]
    pub message: String,
    /// The canonical status, e.g. `NOT_FOUND`, `RESOURCE_EXHAUSTED`.
    #[serde(default)]
    pub status: String,
}

/// What the host should do about an error, before it becomes a [`SendError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// The platform already has a message with this `messageId`: nothing new was sent.
    Duplicate,
    /// Slow the sender down.
    RateLimitedSender,
    /// Retry with backoff.
    Transient,
    /// Never retry this message.
    Permanent,
    /// Not reachable over RCS (no RCS, carrier not launched): try the next channel.
    RecipientUnreachable,
    /// Fix the service account, its key or its permissions.
    AuthFailed,
    /// Fix the content.
    InvalidContent,
}

/// The class of a Google error with canonical `status` returned with HTTP
/// `http_status`. The canonical status decides when it is known; otherwise
/// the HTTP status does.
///
/// - `NOT_FOUND` (404): the user has no RCS, the agent is not launched on
///   their carrier, or the carrier does not carry RCS: recipient-unreachable,
///   so the host routes to the next channel.
/// - `INVALID_ARGUMENT` (400): RBM refused the content (or the device does
///   not support it): invalid-content.
/// - `ALREADY_EXISTS` (409): the `messageId` was used before. Google does not
///   document the reply to a reused id; the simulator answers 409 and the
///   adapter reads it as a duplicate receipt.
/// - `RESOURCE_EXHAUSTED` (429): the sender's quota per second: rate-limited.
/// - `UNAUTHENTICATED` (401), `PERMISSION_DENIED` (403): auth-failed (a 401
///   is retried once with a fresh token before it gets here).
/// - `UNAVAILABLE`, `INTERNAL`, `DEADLINE_EXCEEDED`, `ABORTED`, any 5xx:
///   transient; retrying reuses the `messageId`, so it cannot duplicate.
/// - anything else: permanent.
pub fn class_of(status: &str, http_status: u16) -> Class {
    match status {
        "NOT_FOUND" => Class::RecipientUnreachable,
        "INVALID_ARGUMENT" | "OUT_OF_RANGE" => Class::InvalidContent,
        "ALREADY_EXISTS" => Class::Duplicate,
        "RESOURCE_EXHAUSTED" => Class::RateLimitedSender,
        "UNAUTHENTICATED" | "PERMISSION_DENIED" => Class::AuthFailed,
        "UNAVAILABLE" | "INTERNAL" | "DEADLINE_EXCEEDED" | "ABORTED" | "UNKNOWN" => {
            Class::Transient
        }
        "FAILED_PRECONDITION" | "UNIMPLEMENTED" | "CANCELLED" => Class::Permanent,
        _ => match http_status {
            404 => Class::RecipientUnreachable,
            400 => Class::InvalidContent,
            409 => Class::Duplicate,
            429 => Class::RateLimitedSender,
            401 | 403 => Class::AuthFailed,
            500..=599 => Class::Transient,
            _ => Class::Permanent,
        },
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

/// Milliseconds to wait from a `Retry-After` header in delta-seconds form.
pub fn retry_after_ms(value: &str) -> Option<u32> {
    let seconds: u64 = value.trim().parse().ok()?;
    Some(u32::try_from(seconds.saturating_mul(1_000)).unwrap_or(u32::MAX))
}

/// The Google error in `body`, or one made up from the HTTP status when the
/// body is not a Google error.
pub fn parse_error(http_status: u16, body: &[u8]) -> GoogleError {
    match serde_json::from_slice::<ErrorBody>(body) {
        Ok(ErrorBody { error }) => error,
        Err(_) => GoogleError {
            code: Some(http_status),
            message: format!("`{}`", snippet(body)),
            status: String::new(),
        },
    }
}

/// The failure an operator sees: the canonical status as the code (or the
/// HTTP status when there is none) and Google's message with the HTTP status.
pub fn failure_of(error: &GoogleError, http_status: u16) -> Failure {
    let code = if error.status.is_empty() {
        http_status.to_string()
    } else {
        error.status.clone()
    };
    let message = if error.message.is_empty() {
        format!("RBM answered HTTP {http_status} without a message")
    } else {
        format!("{} (HTTP {http_status})", error.message)
    };
    Failure::new(code, message)
}

/// An error reply as a send error; a `Duplicate` class (which is not an
/// error for sends) reads as `permanent` here, for replies where a reused id
/// makes no sense (capability checks).
fn error_of(http_status: u16, retry_after: Option<&str>, body: &[u8]) -> (Class, SendError) {
    let error = parse_error(http_status, body);
    let class = class_of(&error.status, http_status);
    let failure = failure_of(&error, http_status);
    let send_error = match class {
        Class::RateLimitedSender => SendError::rate_limited(
            RateLimitScope::Sender,
            retry_after.and_then(retry_after_ms),
            failure,
        ),
        Class::Transient => SendError::Transient(failure),
        Class::Duplicate | Class::Permanent => SendError::Permanent(failure),
        Class::RecipientUnreachable => SendError::RecipientUnreachable(with_hint(
            failure,
            "the number is not reachable over RCS (no RCS, or the agent is not launched on its carrier); try another channel",
        )),
        Class::AuthFailed => SendError::AuthFailed(with_hint(
            failure,
            "check the service account's RBM permissions and `agent_id`",
        )),
        Class::InvalidContent => SendError::InvalidContent(failure),
    };
    (class, send_error)
}

fn with_hint(mut failure: Failure, hint: &str) -> Failure {
    failure.message = format!("{}: {hint}", failure.message);
    failure
}

/// Interpret the reply to `POST …/agentMessages?messageId={message_id}`: a
/// receipt carrying the `messageId` (which RBM echoes in every event about
/// the message) on 2xx, a duplicate receipt on `ALREADY_EXISTS`, otherwise
/// the classified error.
///
/// A 2xx body is not read: the id is ours, so an odd body cannot leave the
/// outcome in doubt.
pub fn interpret_send(
    http_status: u16,
    retry_after: Option<&str>,
    body: &[u8],
    message_id: &str,
) -> Result<Receipt, SendError> {
    if (200..300).contains(&http_status) {
        return Ok(Receipt::new(message_id));
    }
    match error_of(http_status, retry_after, body) {
        (Class::Duplicate, _) => Ok(Receipt::duplicate(message_id)),
        (_, error) => Err(error),
    }
}

/// Interpret the reply to a capability check: `Ok` when the user is
/// reachable over RCS (2xx), otherwise the classified error (404 is
/// recipient-unreachable).
pub fn interpret_capability(
    http_status: u16,
    retry_after: Option<&str>,
    body: &[u8],
) -> Result<(), SendError> {
    if (200..300).contains(&http_status) {
        return Ok(());
    }
    Err(error_of(http_status, retry_after, body).1)
}

/// A request that got no reply. RBM deduplicates on `messageId`, so even a
/// request whose reply was lost (which the SDK calls `uncertain`) is safe to
/// retry: it is `transient`. Denied egress and bad URLs stay `permanent`.
pub fn transport_error(error: HttpError) -> SendError {
    match SendError::from(error) {
        SendError::Uncertain(failure) => SendError::Transient(failure),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "3f1c5a0e-9b7d-4c2a-8e6f-0b1d3c5a7e9f";

    fn google(code: u16, status: &str, message: &str) -> Vec<u8> {
        serde_json::json!({"error": {"code": code, "message": message, "status": status}})
            .to_string()
            .into_bytes()
    }

    #[test]
    fn every_listed_status_has_its_class() {
        use Class::*;
        let table: &[(&str, u16, Class)] = &[
            ("NOT_FOUND", 404, RecipientUnreachable),
            ("INVALID_ARGUMENT", 400, InvalidContent),
            ("OUT_OF_RANGE", 400, InvalidContent),
            ("ALREADY_EXISTS", 409, Duplicate),
            ("RESOURCE_EXHAUSTED", 429, RateLimitedSender),
            ("UNAUTHENTICATED", 401, AuthFailed),
            ("PERMISSION_DENIED", 403, AuthFailed),
            ("UNAVAILABLE", 503, Transient),
            ("INTERNAL", 500, Transient),
            ("DEADLINE_EXCEEDED", 504, Transient),
            ("ABORTED", 409, Transient),
            ("UNKNOWN", 500, Transient),
            ("FAILED_PRECONDITION", 400, Permanent),
            ("UNIMPLEMENTED", 501, Permanent),
            // Without a canonical status, the HTTP status decides.
            ("", 404, RecipientUnreachable),
            ("", 400, InvalidContent),
            ("", 409, Duplicate),
            ("", 429, RateLimitedSender),
            ("", 401, AuthFailed),
            ("", 403, AuthFailed),
            ("", 502, Transient),
            ("", 418, Permanent),
            ("SOMETHING_NEW", 500, Transient),
        ];
        for &(status, http, expected) in table {
            assert_eq!(class_of(status, http), expected, "{status} / HTTP {http}");
        }
    }

    #[test]
    fn success_gives_the_message_id() {
        let body =
            br#"{"name":"phones/+12223334444/agentMessages/x","sendTime":"2026-01-01T00:00:00Z"}"#;
        let receipt = interpret_send(200, None, body, ID).expect("receipt");
        assert_eq!(receipt.id(), ID);
        assert!(!receipt.duplicate);
        // The body does not matter.
        assert!(interpret_send(200, None, b"", ID).is_ok());
    }

    #[test]
    fn already_exists_is_a_duplicate_receipt() {
        let body = google(
            409,
            "ALREADY_EXISTS",
            "Message with this ID already exists.",
        );
        let receipt = interpret_send(409, None, &body, ID).expect("receipt");
        assert_eq!(receipt.id(), ID);
        assert!(receipt.duplicate);
    }

    #[test]
    fn not_found_is_unreachable_with_code_and_words() {
        let body = google(404, "NOT_FOUND", "Requested entity was not found.");
        match interpret_send(404, None, &body, ID) {
            Err(SendError::RecipientUnreachable(failure)) => {
                assert_eq!(failure.code, "NOT_FOUND");
                assert!(
                    failure
                        .message
                        .starts_with("Requested entity was not found. (HTTP 404): the number is not reachable over RCS"),
                    "{}",
                    failure.message
                );
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(matches!(
            interpret_capability(404, None, &body),
            Err(SendError::RecipientUnreachable(_))
        ));
        assert!(
            interpret_capability(200, None, br#"{"features":["RICHCARD_STANDALONE"]}"#).is_ok()
        );
    }

    #[test]
    fn rate_limits_carry_retry_after() {
        let body = google(429, "RESOURCE_EXHAUSTED", "Quota exceeded.");
        match interpret_send(429, Some("3"), &body, ID) {
            Err(SendError::RateLimited(limited)) => {
                assert_eq!(limited.scope, RateLimitScope::Sender);
                assert_eq!(limited.retry_after_ms, Some(3_000));
                assert_eq!(limited.failure.code, "RESOURCE_EXHAUSTED");
                assert_eq!(limited.failure.message, "Quota exceeded. (HTTP 429)");
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn auth_invalid_content_and_server_errors() {
        let body = google(
            403,
            "PERMISSION_DENIED",
            "The caller does not have permission",
        );
        match interpret_send(403, None, &body, ID) {
            Err(SendError::AuthFailed(failure)) => {
                assert_eq!(failure.code, "PERMISSION_DENIED");
                assert!(failure.message.contains("agent_id"), "{}", failure.message);
            }
            other => panic!("unexpected {other:?}"),
        }
        let body = google(400, "INVALID_ARGUMENT", "contentMessage.text is too long");
        match interpret_send(400, None, &body, ID) {
            Err(SendError::InvalidContent(failure)) => {
                assert_eq!(
                    failure.message,
                    "contentMessage.text is too long (HTTP 400)"
                );
            }
            other => panic!("unexpected {other:?}"),
        }
        match interpret_send(502, None, b"<html>Bad Gateway</html>", ID) {
            Err(SendError::Transient(failure)) => {
                assert_eq!(failure.code, "502");
                assert_eq!(failure.message, "`<html>Bad Gateway</html>` (HTTP 502)");
            }
            other => panic!("unexpected {other:?}"),
        }
        // A reused capability request id is not a receipt.
        let body = google(409, "ALREADY_EXISTS", "dup");
        assert!(matches!(
            interpret_capability(409, None, &body),
            Err(SendError::Permanent(_))
        ));
    }

    #[test]
    fn lost_replies_are_transient_since_rbm_deduplicates() {
        assert!(matches!(
            transport_error(HttpError::Timeout("HttpResponseTimeout".into())),
            SendError::Transient(_)
        ));
        assert!(matches!(
            transport_error(HttpError::Connection("reset".into())),
            SendError::Transient(_)
        ));
        match transport_error(HttpError::Denied("HttpRequestDenied".into())) {
            SendError::Permanent(failure) => assert!(failure.message.contains("egress denied")),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn parses_retry_after_seconds_only() {
        assert_eq!(retry_after_ms("2"), Some(2_000));
        assert_eq!(retry_after_ms("Wed, 21 Oct 2015 07:28:00 GMT"), None);
        assert_eq!(retry_after_ms("99999999999"), Some(u32::MAX));
    }
}
