//! Reading the Graph API's replies: the receipt on success, and the
//! classification of Graph errors into the contract's send-error classes.
//!
//! The table follows Meta's error-code table
//! (<https://developers.facebook.com/documentation/business-messaging/whatsapp/support/error-codes/>). The host
//! acts on the class only; the code and Meta's words travel in the failure
//! for operators.

use serde::Deserialize;
use switchboard_sdk::types::{Failure, RateLimitScope, Receipt, SendError};

/// The body of a successful send:
/// `{"messaging_product":"whatsapp","contacts":[…],"messages":[{"id":"wamid.…"}]}`.
#[derive(Debug, Deserialize)]
pub struct SendResponse {
    /// The accepted messages; one per request.
    #[serde(default)]
    pub messages: Vec<SentMessage>,
}

/// One accepted message.
#[derive(Debug, Deserialize)]
pub struct SentMessage {
    /// The `wamid`, echoed in status webhooks.
    #[serde(default)]
    pub id: String,
}

/// The body of a failed call: `{"error":{…}}`.
#[derive(Debug, Deserialize)]
pub struct GraphErrorBody {
    /// The error.
    pub error: GraphError,
}

/// A Graph API error.
#[derive(Debug, Default, Deserialize)]
pub struct GraphError {
    /// Meta's error code, e.g. `131047`.
    #[serde(default)]
    pub code: Option<i64>,
    /// Meta's description.
    #[serde(default)]
    pub message: String,
    /// A finer code some errors carry.
    #[serde(default)]
    pub error_subcode: Option<i64>,
    /// Extra detail.
    #[serde(default)]
    pub error_data: Option<ErrorData>,
    /// Meta's trace id, useful when asking Meta support.
    #[serde(default)]
    pub fbtrace_id: Option<String>,
}

/// `error.error_data`.
#[derive(Debug, Default, Deserialize)]
pub struct ErrorData {
    /// A longer explanation, often naming the offending parameter.
    #[serde(default)]
    pub details: Option<String>,
}

/// What the host should do about an error, before it is dressed as a
/// [`SendError`]. Kept separate so that the code table can be tested and
/// read on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Slow the whole sender down (throughput, app or WABA call rate).
    RateLimitedSender,
    /// Delay only messages to this recipient (pair rate limit).
    RateLimitedRecipient,
    /// Stop sending until the limit is lifted (spam / quality limit).
    RateLimitedQuota,
    /// Retry with backoff.
    Transient,
    /// Never retry this message.
    Permanent,
    /// Outside the 24-hour window: send a template instead.
    WindowClosed,
    /// Not reachable on WhatsApp: try the next channel.
    RecipientUnreachable,
    /// The user stopped marketing messages on WhatsApp.
    OptedOut,
    /// Fix the access token or its permissions.
    AuthFailed,
    /// Fix the content or the template.
    InvalidContent,
}

/// The class of a Graph error `code` returned with HTTP `status`.
///
/// Known codes decide; unknown ones (or a reply without a Graph error) fall
/// back on the status: 5xx transient, 429 rate-limited sender, 401/403
/// auth-failed, anything else permanent.
pub fn class_of(code: Option<i64>, status: u16) -> Class {
    match code {
        // Free-form text outside the customer-service window.
        Some(131_047) => Class::WindowClosed,
        // Throughput (per number), app call rate, WABA call rate.
        Some(130_429 | 4 | 80_007) => Class::RateLimitedSender,
        // (business, consumer) pair rate: other recipients are unaffected.
        Some(131_056) => Class::RateLimitedRecipient,
        // Spam rate limit: Meta throttles a number whose messages users
        // block or report. Retrying message by message makes the quality
        // worse, so this is a quota: the host stops the channel until an
        // operator (or the limit's reset) lets it go on. `permanent` would
        // fail just this message and let the campaign keep hammering.
        Some(131_048) => Class::RateLimitedQuota,
        // Not on WhatsApp, old client, terms not accepted...
        Some(131_026) => Class::RecipientUnreachable,
        // The user pressed "Stop promotions" for this business.
        Some(131_050) => Class::OptedOut,
        // Per-user marketing frequency cap ("healthy ecosystem engagement").
        // The cap runs over a rolling period Meta does not publish and it
        // advises against resending soon, so a host backoff measured in
        // seconds or minutes would only burn attempts: the message is
        // permanent. It is not recipient-unreachable (the person is on
        // WhatsApp and other purposes still reach them) nor opted-out
        // (consent is unchanged), so later campaigns reach them as usual.
        Some(131_049) => Class::Permanent,
        // Expired or invalid token, missing permission.
        Some(0 | 190 | 10 | 200..=299 | 131_005) => Class::AuthFailed,
        // The request's content is at fault: bad parameters, unsupported
        // type, media upload, template missing / mismatched / paused /
        // disabled. All are fixed by changing what is sent, so all are
        // invalid-content; `permanent` is kept for account problems.
        Some(
            100 | 131_008 | 131_009 | 131_051 | 131_053 | 132_000 | 132_001 | 132_005 | 132_007
            | 132_012 | 132_015 | 132_016,
        ) => Class::InvalidContent,
        // Unknown / temporary service errors and maintenance.
        Some(1 | 2 | 131_000 | 131_016 | 131_057 | 133_004) => Class::Transient,
        // Payment problem, account restricted or locked. Every message will
        // fail until an operator acts on the WhatsApp Business Account.
        Some(131_042 | 368 | 131_031) => Class::Permanent,
        _ => match status {
            500..=599 => Class::Transient,
            429 => Class::RateLimitedSender,
            401 | 403 => Class::AuthFailed,
            _ => Class::Permanent,
        },
    }
}

impl Class {
    /// The contract's error for this class. `retry_after_ms` is used by the
    /// rate-limited classes only.
    pub fn into_error(self, failure: Failure, retry_after_ms: Option<u32>) -> SendError {
        match self {
            Class::RateLimitedSender => {
                SendError::rate_limited(RateLimitScope::Sender, retry_after_ms, failure)
            }
            Class::RateLimitedRecipient => {
                SendError::rate_limited(RateLimitScope::Recipient, retry_after_ms, failure)
            }
            Class::RateLimitedQuota => {
                SendError::rate_limited(RateLimitScope::Quota, retry_after_ms, failure)
            }
            Class::Transient => SendError::Transient(failure),
            Class::Permanent => SendError::Permanent(failure),
            Class::WindowClosed => SendError::WindowClosed(failure),
            Class::RecipientUnreachable => SendError::RecipientUnreachable(failure),
            Class::OptedOut => SendError::OptedOut(failure),
            Class::AuthFailed => SendError::AuthFailed(failure),
            Class::InvalidContent => SendError::InvalidContent(failure),
        }
    }
}

/// The contract's name for an error's class, for logs (`rate-limited/sender`,
/// `window-closed`, ...).
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
/// HTTP dates are not supported (they read as none).
pub fn retry_after_ms(value: &str) -> Option<u32> {
    let seconds: u64 = value.trim().parse().ok()?;
    Some(u32::try_from(seconds.saturating_mul(1_000)).unwrap_or(u32::MAX))
}

/// The failure an operator sees for a Graph error: the code as a string and
/// Meta's message, with the details and trace id when present.
pub fn failure_of(error: &GraphError) -> Failure {
    let mut message = if error.message.is_empty() {
        "WhatsApp returned an error without a message".to_owned()
    } else {
        error.message.clone()
    };
    if let Some(details) = error
        .error_data
        .as_ref()
        .and_then(|data| data.details.as_deref())
        .filter(|details| !details.is_empty() && *details != error.message)
    {
        message.push_str(": ");
        message.push_str(details);
    }
    if let Some(subcode) = error.error_subcode {
        message.push_str(&format!(" (subcode {subcode})"));
    }
    if let Some(trace) = error.fbtrace_id.as_deref().filter(|t| !t.is_empty()) {
        message.push_str(&format!(" [fbtrace_id {trace}]"));
    }
    let code = error.code.map(|code| code.to_string()).unwrap_or_default();
    Failure::new(code, message)
}

/// Interpret a `/messages` reply: a receipt carrying the `wamid` on 2xx,
/// otherwise the classified error.
///
/// A 2xx reply without a message id is `uncertain`: WhatsApp may have
/// accepted the message, and without an idempotency key a resend could
/// deliver it twice.
pub fn interpret_response(
    status: u16,
    retry_after: Option<&str>,
    body: &[u8],
) -> Result<Receipt, SendError> {
    if (200..300).contains(&status) {
        let id = serde_json::from_slice::<SendResponse>(body)
            .ok()
            .and_then(|reply| reply.messages.into_iter().next())
            .map(|message| message.id)
            .filter(|id| !id.is_empty());
        return id.map(Receipt::new).ok_or_else(|| {
            SendError::Uncertain(Failure::new(
                "",
                format!("HTTP {status} without a message id: `{}`", snippet(body)),
            ))
        });
    }
    let retry_after_ms = retry_after.and_then(retry_after_ms);
    let error = match serde_json::from_slice::<GraphErrorBody>(body) {
        Ok(GraphErrorBody { error }) => {
            class_of(error.code, status).into_error(failure_of(&error), retry_after_ms)
        }
        Err(_) => class_of(None, status).into_error(
            Failure::new("", format!("HTTP {status}: `{}`", snippet(body))),
            retry_after_ms,
        ),
    };
    Err(error)
}

/// The first 200 characters of a body, for messages.
fn snippet(body: &[u8]) -> String {
    String::from_utf8_lossy(body).chars().take(200).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn graph_error(code: i64, message: &str, details: &str) -> Vec<u8> {
        serde_json::json!({
            "error": {
                "message": message,
                "type": "OAuthException",
                "code": code,
                "error_data": {"messaging_product": "whatsapp", "details": details},
                "fbtrace_id": "AazIa2XO3sY0n2bcq5xXy9_"
            }
        })
        .to_string()
        .into_bytes()
    }

    #[test]
    fn every_listed_code_has_its_class() {
        use Class::*;
        let table: &[(i64, u16, Class)] = &[
            (131_047, 400, WindowClosed),
            (130_429, 400, RateLimitedSender),
            (4, 400, RateLimitedSender),
            (80_007, 400, RateLimitedSender),
            (131_056, 400, RateLimitedRecipient),
            (131_048, 400, RateLimitedQuota),
            (131_026, 400, RecipientUnreachable),
            (131_050, 400, OptedOut),
            (131_049, 400, Permanent),
            (0, 401, AuthFailed),
            (190, 401, AuthFailed),
            (10, 403, AuthFailed),
            (200, 403, AuthFailed),
            (250, 403, AuthFailed),
            (299, 403, AuthFailed),
            (131_005, 403, AuthFailed),
            (100, 400, InvalidContent),
            (131_008, 400, InvalidContent),
            (131_009, 400, InvalidContent),
            (131_051, 400, InvalidContent),
            (131_053, 400, InvalidContent),
            (132_000, 400, InvalidContent),
            (132_001, 404, InvalidContent),
            (132_005, 400, InvalidContent),
            (132_007, 400, InvalidContent),
            (132_012, 400, InvalidContent),
            (132_015, 400, InvalidContent),
            (132_016, 400, InvalidContent),
            (1, 400, Transient),
            (2, 503, Transient),
            (131_000, 500, Transient),
            (131_016, 500, Transient),
            (131_057, 500, Transient),
            (133_004, 503, Transient),
            (131_042, 400, Permanent),
            (368, 403, Permanent),
            (131_031, 403, Permanent),
            // Unknown codes fall back on the status.
            (999_999, 500, Transient),
            (999_999, 502, Transient),
            (999_999, 400, Permanent),
            (999_999, 404, Permanent),
            (999_999, 429, RateLimitedSender),
            (999_999, 401, AuthFailed),
        ];
        for &(code, status, expected) in table {
            assert_eq!(
                class_of(Some(code), status),
                expected,
                "code {code}, HTTP {status}"
            );
        }
        assert_eq!(class_of(None, 503), Transient);
        assert_eq!(class_of(None, 400), Permanent);
    }

    #[test]
    fn success_gives_the_wamid() {
        let body = br#"{"messaging_product":"whatsapp","contacts":[{"input":"+16505551234","wa_id":"16505551234"}],"messages":[{"id":"wamid.HBgLMTY1MDUwNzY1MjAVAgARGBI5QTNDQTVCM0Q0Q0Q2RTY3RTcA","message_status":"accepted"}]}"#;
        let receipt = interpret_response(200, None, body).expect("receipt");
        assert_eq!(
            receipt.id(),
            "wamid.HBgLMTY1MDUwNzY1MjAVAgARGBI5QTNDQTVCM0Q0Q0Q2RTY3RTcA"
        );
        assert!(!receipt.duplicate);
    }

    #[test]
    fn success_without_an_id_is_uncertain() {
        for body in [&b"{}"[..], b"not json", br#"{"messages":[{"id":""}]}"#] {
            assert!(matches!(
                interpret_response(200, None, body),
                Err(SendError::Uncertain(_))
            ));
        }
    }

    #[test]
    fn window_closed_carries_code_message_and_details() {
        let body = graph_error(
            131_047,
            "Re-engagement message",
            "Message failed to send because more than 24 hours have passed since the customer last replied to this number.",
        );
        match interpret_response(400, None, &body) {
            Err(SendError::WindowClosed(failure)) => {
                assert_eq!(failure.code, "131047");
                assert!(failure.message.starts_with(
                    "Re-engagement message: Message failed to send because more than 24 hours"
                ));
                assert!(failure.message.contains("AazIa2XO3sY0n2bcq5xXy9_"));
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn rate_limits_carry_scope_and_retry_after() {
        let body = graph_error(
            130_429,
            "Rate limit hit",
            "Cloud API message throughput has been reached.",
        );
        match interpret_response(400, Some("7"), &body) {
            Err(SendError::RateLimited(limited)) => {
                assert!(matches!(limited.scope, RateLimitScope::Sender));
                assert_eq!(limited.retry_after_ms, Some(7_000));
                assert_eq!(limited.failure.code, "130429");
            }
            other => panic!("unexpected {other:?}"),
        }
        let body = graph_error(
            131_056,
            "(Business Account, Consumer Account) pair rate limit hit",
            "",
        );
        match interpret_response(400, None, &body) {
            Err(SendError::RateLimited(limited)) => {
                assert!(matches!(limited.scope, RateLimitScope::Recipient));
                assert_eq!(limited.retry_after_ms, None);
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn non_json_errors_classify_by_status() {
        assert!(matches!(
            interpret_response(502, None, b"<html>Bad Gateway</html>"),
            Err(SendError::Transient(_))
        ));
        assert!(matches!(
            interpret_response(404, None, b""),
            Err(SendError::Permanent(_))
        ));
    }

    #[test]
    fn parses_retry_after_seconds_only() {
        assert_eq!(retry_after_ms("0"), Some(0));
        assert_eq!(retry_after_ms(" 30 "), Some(30_000));
        assert_eq!(retry_after_ms("99999999999"), Some(u32::MAX));
        assert_eq!(retry_after_ms("Wed, 21 Oct 2015 07:28:00 GMT"), None);
        assert_eq!(retry_after_ms("-1"), None);
    }
}
