//! Reading WeChat's replies: receipts, access tokens, and the global
//! return codes (`errcode`) classified into the contract's send-error
//! classes (WeChat's global return-code table,
//! <https://developers.weixin.qq.com/doc/offiaccount/Getting_Started/Global_Return_Code.html>).
//!
//! WeChat answers HTTP 200 with `{"errcode":N,"errmsg":"…"}`; `errcode` 0
//! is success. Codes the table does not know are classified by the HTTP
//! status: 5xx transient, 429 rate-limited, 401/403 auth-failed, anything
//! else (including an unknown code on HTTP 200) permanent.

use serde::Deserialize;
use switchboard_sdk::types::{Failure, RateLimitScope, Receipt, SendError};

use crate::payload::Api;

/// Return codes the adapter knows (WeChat's global return-code table).
pub mod codes {
    /// System busy: retry later.
    pub const SYSTEM_BUSY: i64 = -1;
    /// Invalid credential: a wrong AppSecret at the token endpoint, or an
    /// access token that is invalid or not the latest.
    pub const INVALID_CREDENTIAL: i64 = 40001;
    /// Invalid OpenID (malformed, or not a follower of this account).
    pub const INVALID_OPENID: i64 = 40003;
    /// Invalid message type.
    pub const INVALID_MESSAGE_TYPE: i64 = 40008;
    /// Invalid AppID.
    pub const INVALID_APPID: i64 = 40013;
    /// Invalid access token.
    pub const INVALID_ACCESS_TOKEN: i64 = 40014;
    /// Invalid `template_id`.
    pub const INVALID_TEMPLATE_ID: i64 = 40037;
    /// Invalid AppSecret (token endpoints).
    pub const INVALID_APPSECRET: i64 = 40125;
    /// The caller's IP is not in the account's whitelist (token endpoints).
    pub const IP_NOT_WHITELISTED: i64 = 40164;
    /// `access_token` missing from the query.
    pub const ACCESS_TOKEN_MISSING: i64 = 41001;
    /// The access token expired.
    pub const ACCESS_TOKEN_EXPIRED: i64 = 42001;
    /// The recipient must follow the account.
    pub const REQUIRE_SUBSCRIBE: i64 = 43004;
    /// The recipient is on the account's blacklist.
    pub const USER_IN_BLACKLIST: i64 = 43019;
    /// The user refused to accept messages from the account.
    pub const USER_REFUSED: i64 = 43101;
    /// Empty text content.
    pub const EMPTY_CONTENT: i64 = 44004;
    /// Content too long.
    pub const CONTENT_TOO_LONG: i64 = 45002;
    /// Daily API quota reached.
    pub const QUOTA_REACHED: i64 = 45009;
    /// Customer-service message outside the window (or the user unfollowed).
    pub const OUT_OF_TIME_LIMIT: i64 = 45015;
    /// The window's customer-service message allowance is used up.
    pub const OUT_OF_RESPONSE_COUNT: i64 = 45047;
    /// The JSON is malformed.
    pub const DATA_FORMAT_ERROR: i64 = 47001;
    /// An argument is invalid (e.g. template `data`).
    pub const ARGUMENT_INVALID: i64 = 47003;
    /// The account is not authorised for this API.
    pub const API_UNAUTHORIZED: i64 = 48001;
}

/// What to do about a reply, before it is dressed as a [`SendError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// The access token was refused: refresh it and retry the message once.
    TokenRejected,
    /// Retry with backoff.
    Transient,
    /// Never retry this message.
    Permanent,
    /// Outside the window or past its allowance: send a template instead.
    WindowClosed,
    /// The OpenID cannot be reached: try the next channel.
    RecipientUnreachable,
    /// The user refused this account's messages.
    OptedOut,
    /// Fix the AppID, AppSecret or IP whitelist.
    AuthFailed,
    /// Fix the content or the template.
    InvalidContent,
    /// Slow the sender down.
    RateLimitedSender,
    /// A daily quota is used up: stop until it resets.
    RateLimitedQuota,
}

/// The class of return code `errcode` on a message API, answered with HTTP `status`.
pub fn class_of(errcode: Option<i64>, status: u16) -> Class {
    use codes::*;
    match errcode {
        Some(SYSTEM_BUSY) => Class::Transient,
        Some(INVALID_CREDENTIAL | INVALID_ACCESS_TOKEN | ACCESS_TOKEN_EXPIRED) => {
            Class::TokenRejected
        }
        Some(ACCESS_TOKEN_MISSING | INVALID_APPID | INVALID_APPSECRET | IP_NOT_WHITELISTED) => {
            Class::AuthFailed
        }
        Some(QUOTA_REACHED) => Class::RateLimitedQuota,
        Some(OUT_OF_TIME_LIMIT | OUT_OF_RESPONSE_COUNT) => Class::WindowClosed,
        Some(INVALID_OPENID | REQUIRE_SUBSCRIBE) => Class::RecipientUnreachable,
        Some(USER_REFUSED) => Class::OptedOut,
        Some(
            INVALID_TEMPLATE_ID | ARGUMENT_INVALID | EMPTY_CONTENT | CONTENT_TOO_LONG
            | INVALID_MESSAGE_TYPE | DATA_FORMAT_ERROR,
        ) => Class::InvalidContent,
        Some(API_UNAUTHORIZED | USER_IN_BLACKLIST) => Class::Permanent,
        _ => match status {
            500..=599 => Class::Transient,
            429 => Class::RateLimitedSender,
            401 | 403 => Class::AuthFailed,
            _ => Class::Permanent,
        },
    }
}

/// The class of return code `errcode` from the token endpoint. There,
/// 40001 means a wrong AppSecret, not a stale token, so every credential
/// error is `auth-failed`.
pub fn token_class_of(errcode: Option<i64>, status: u16) -> Class {
    match class_of(errcode, status) {
        Class::TokenRejected => Class::AuthFailed,
        // Nothing was sent, so a garbled or unknown answer may be retried.
        Class::Permanent if errcode != Some(codes::API_UNAUTHORIZED) => {
            if (200..300).contains(&status) || status >= 500 {
                Class::Transient
            } else {
                Class::Permanent
            }
        }
        other => other,
    }
}

impl Class {
    /// The contract's error for this class. A rejected token that is not
    /// retried is `auth-failed`.
    pub fn into_error(self, failure: Failure) -> SendError {
        match self {
            Class::TokenRejected | Class::AuthFailed => SendError::AuthFailed(failure),
            Class::Transient => SendError::Transient(failure),
            Class::Permanent => SendError::Permanent(failure),
            Class::WindowClosed => SendError::WindowClosed(failure),
            Class::RecipientUnreachable => SendError::RecipientUnreachable(failure),
            Class::OptedOut => SendError::OptedOut(failure),
            Class::InvalidContent => SendError::InvalidContent(failure),
            Class::RateLimitedSender => {
                SendError::rate_limited(RateLimitScope::Sender, None, failure)
            }
            // WeChat does not say when a daily quota resets (nor can it be
            // cleared from here); the host defers by its own default.
            Class::RateLimitedQuota => {
                SendError::rate_limited(RateLimitScope::Quota, None, failure)
            }
        }
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

/// What an operator should know beyond WeChat's `errmsg`.
fn hint(errcode: i64) -> Option<&'static str> {
    use codes::*;
    Some(match errcode {
        SYSTEM_BUSY => "WeChat is busy; retry later",
        INVALID_CREDENTIAL | INVALID_ACCESS_TOKEN | ACCESS_TOKEN_EXPIRED => {
            "the access token was refused"
        }
        INVALID_APPID => "check the `app_id` setting",
        INVALID_APPSECRET => "check the `app_secret` secret",
        IP_NOT_WHITELISTED => "add this server's IP to the account's IP whitelist",
        QUOTA_REACHED => "the account's daily quota for this API is used up",
        OUT_OF_TIME_LIMIT => {
            "no open customer-service window (no message from the user in the last 48 hours, no follow, menu tap or scan in the last minute, no payment in the last 48 hours), or the user unfollowed"
        }
        OUT_OF_RESPONSE_COUNT => {
            "the customer-service window's message allowance is used up (5 in the 48 hours after a message, 3 in the minute after a follow, menu tap or scan)"
        }
        INVALID_OPENID => "the OpenID is invalid or does not belong to this account",
        REQUIRE_SUBSCRIBE => "the user does not follow the account",
        USER_REFUSED => "the user refused messages from this account",
        USER_IN_BLACKLIST => "the user is on the account's blacklist",
        INVALID_TEMPLATE_ID => "the template_id is not one of the account's templates",
        ARGUMENT_INVALID => "a template data field is invalid",
        API_UNAUTHORIZED => {
            "the account is not authorised for this API (template messages need a verified service account)"
        }
        _ => return None,
    })
}

/// The failure for an `errcode`/`errmsg` pair: the code as a string and
/// WeChat's message, with a hint for known codes.
pub fn failure_of(errcode: i64, errmsg: &str) -> Failure {
    let errmsg = errmsg.trim();
    let message = match (hint(errcode), errmsg.is_empty()) {
        (Some(hint), false) => format!("{errmsg} ({hint})"),
        (Some(hint), true) => hint.to_owned(),
        (None, false) => errmsg.to_owned(),
        (None, true) => "WeChat returned an error without a message".to_owned(),
    };
    Failure::new(errcode.to_string(), message)
}

/// A WeChat reply body: an error code and message, and whatever else the
/// API returns.
#[derive(Debug, Default, Deserialize)]
pub struct Reply {
    /// `errcode`, 0 or absent on success.
    #[serde(default)]
    pub errcode: Option<i64>,
    /// `errmsg`.
    #[serde(default)]
    pub errmsg: String,
    /// `msgid` of a template message (a number; tolerated as a string).
    #[serde(default)]
    pub msgid: Option<serde_json::Value>,
    /// `access_token` from the token endpoint.
    #[serde(default)]
    pub access_token: Option<String>,
    /// `expires_in` from the token endpoint, in seconds.
    #[serde(default)]
    pub expires_in: Option<u64>,
}

/// Why a message was not accepted.
#[derive(Debug, Clone)]
pub enum Rejection {
    /// The access token was refused (40001, 40014, 42001): refresh and retry.
    TokenRejected(Failure),
    /// Anything else, classified.
    Error(SendError),
}

/// Interpret a reply of the message API `api`.
///
/// `errcode` 0 is a receipt: a template's carries its `msgid` (echoed by
/// `TEMPLATESENDJOBFINISH`); customer-service sends return no id, so their
/// receipt has none (as has a template success that lacks its `msgid`):
/// no status webhook could match an invented one. A 2xx reply that is not
/// a WeChat reply at all is `uncertain`: WeChat may have sent the message.
pub fn interpret_send(api: Api, status: u16, body: &[u8]) -> Result<Receipt, Rejection> {
    let reply = serde_json::from_slice::<Reply>(body).ok();
    let success_status = (200..300).contains(&status);
    match reply {
        Some(reply) if success_status && reply.errcode.unwrap_or(0) == 0 => {
            if reply.errcode.is_none() && reply.msgid.is_none() {
                return Err(Rejection::Error(SendError::Uncertain(Failure::new(
                    "",
                    format!(
                        "HTTP {status} without errcode or msgid: `{}`",
                        snippet(body)
                    ),
                ))));
            }
            let id = match api {
                Api::Template => reply.msgid.as_ref().and_then(msgid_text),
                Api::Custom => None,
            };
            Ok(id.map_or_else(Receipt::without_id, Receipt::new))
        }
        Some(Reply {
            errcode: Some(code),
            errmsg,
            ..
        }) => {
            let failure = failure_of(code, &errmsg);
            match class_of(Some(code), status) {
                Class::TokenRejected => Err(Rejection::TokenRejected(failure)),
                class => Err(Rejection::Error(class.into_error(failure))),
            }
        }
        _ if success_status => Err(Rejection::Error(SendError::Uncertain(Failure::new(
            "",
            format!("HTTP {status} with an unreadable body: `{}`", snippet(body)),
        )))),
        _ => Err(Rejection::Error(class_of(None, status).into_error(
            Failure::new("", format!("HTTP {status}: `{}`", snippet(body))),
        ))),
    }
}

fn msgid_text(value: &serde_json::Value) -> Option<String> {
    match value {
        serde_json::Value::Number(n) => Some(n.to_string()),
        serde_json::Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
        _ => None,
    }
}

/// Interpret a `stable_token` reply: the token and its lifetime in seconds.
pub fn interpret_token(status: u16, body: &[u8]) -> Result<(String, u64), SendError> {
    let reply = serde_json::from_slice::<Reply>(body).ok();
    match reply {
        Some(Reply {
            errcode: None | Some(0),
            access_token: Some(token),
            expires_in,
            ..
        }) if (200..300).contains(&status) && !token.trim().is_empty() => {
            // WeChat documents 7,200 s; a reply without a lifetime gets a
            // conservative five minutes.
            Ok((token.trim().to_owned(), expires_in.unwrap_or(300)))
        }
        Some(Reply {
            errcode: Some(code),
            errmsg,
            ..
        }) if code != 0 => Err(token_class_of(Some(code), status)
            .into_error(failure_of(code, &format!("stable_token: {errmsg}")))),
        _ => Err(token_class_of(None, status).into_error(Failure::new(
            "",
            format!(
                "stable_token answered HTTP {status} without an access token: `{}`",
                snippet(body)
            ),
        ))),
    }
}

/// How long to cache a token WeChat said lives `expires_in` seconds: until
/// five minutes before it expires (when the stable-token endpoint starts
/// handing out its successor), or half its life when that is shorter.
pub fn cache_ttl(expires_in: u64) -> u32 {
    const MARGIN: u64 = 300;
    let ttl = if expires_in > 2 * MARGIN {
        expires_in - MARGIN
    } else {
        expires_in / 2
    };
    u32::try_from(ttl.max(1)).unwrap_or(u32::MAX)
}

/// The first 200 characters of a body, for messages.
fn snippet(body: &[u8]) -> String {
    String::from_utf8_lossy(body).chars().take(200).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(code: i64, msg: &str) -> Vec<u8> {
        serde_json::json!({"errcode": code, "errmsg": msg})
            .to_string()
            .into_bytes()
    }

    #[test]
    fn every_listed_code_has_its_class() {
        use Class::*;
        let table: &[(i64, Class)] = &[
            (-1, Transient),
            (40001, TokenRejected),
            (40014, TokenRejected),
            (42001, TokenRejected),
            (41001, AuthFailed),
            (40013, AuthFailed),
            (40125, AuthFailed),
            (40164, AuthFailed),
            (45009, RateLimitedQuota),
            (45015, WindowClosed),
            (45047, WindowClosed),
            (40003, RecipientUnreachable),
            (43004, RecipientUnreachable),
            (43101, OptedOut),
            (40037, InvalidContent),
            (47003, InvalidContent),
            (44004, InvalidContent),
            (45002, InvalidContent),
            (40008, InvalidContent),
            (47001, InvalidContent),
            (48001, Permanent),
            (43019, Permanent),
            // Unknown codes: WeChat answers them with HTTP 200.
            (99999, Permanent),
        ];
        for &(code, expected) in table {
            assert_eq!(class_of(Some(code), 200), expected, "errcode {code}");
        }
        assert_eq!(class_of(Some(99999), 502), Transient);
        assert_eq!(class_of(None, 503), Transient);
        assert_eq!(class_of(None, 429), RateLimitedSender);
        assert_eq!(class_of(None, 401), AuthFailed);
        assert_eq!(class_of(None, 403), AuthFailed);
        assert_eq!(class_of(None, 404), Permanent);
    }

    #[test]
    fn token_endpoint_credentials_are_auth_failures_and_garble_is_transient() {
        assert_eq!(token_class_of(Some(40001), 200), Class::AuthFailed);
        assert_eq!(token_class_of(Some(40125), 200), Class::AuthFailed);
        assert_eq!(token_class_of(Some(-1), 200), Class::Transient);
        assert_eq!(token_class_of(Some(45009), 200), Class::RateLimitedQuota);
        assert_eq!(token_class_of(None, 200), Class::Transient);
        assert_eq!(token_class_of(None, 502), Class::Transient);
        assert_eq!(token_class_of(None, 404), Class::Permanent);
        assert_eq!(token_class_of(Some(48001), 200), Class::Permanent);
    }

    #[test]
    fn template_success_gives_the_msgid() {
        let body = br#"{"errcode":0,"errmsg":"ok","msgid":200228332}"#;
        let receipt = interpret_send(Api::Template, 200, body).expect("receipt");
        assert_eq!(receipt.platform_message_id.as_deref(), Some("200228332"));
        assert!(!receipt.duplicate);
        let body = br#"{"errcode":0,"errmsg":"ok","msgid":"200228333"}"#;
        assert_eq!(
            interpret_send(Api::Template, 200, body)
                .expect("receipt")
                .platform_message_id
                .as_deref(),
            Some("200228333")
        );
    }

    #[test]
    fn customer_service_success_has_no_id() {
        let receipt =
            interpret_send(Api::Custom, 200, br#"{"errcode":0,"errmsg":"ok"}"#).expect("ok");
        assert_eq!(receipt.platform_message_id, None);
        assert!(!receipt.duplicate);
        // A template success without its msgid gets none either.
        let receipt =
            interpret_send(Api::Template, 200, br#"{"errcode":0,"errmsg":"ok"}"#).expect("ok");
        assert_eq!(receipt.platform_message_id, None);
    }

    #[test]
    fn unreadable_success_is_uncertain() {
        for body in [&b"{}"[..], b"<html>ok</html>", b""] {
            match interpret_send(Api::Custom, 200, body) {
                Err(Rejection::Error(SendError::Uncertain(failure))) => {
                    assert!(failure.message.contains("HTTP 200"), "{failure:?}");
                }
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn token_errors_ask_for_a_refresh() {
        for code in [40001, 40014, 42001] {
            match interpret_send(
                Api::Custom,
                200,
                &reply(code, "access_token expired rid: 6578"),
            ) {
                Err(Rejection::TokenRejected(failure)) => {
                    assert_eq!(failure.code, code.to_string());
                    assert!(failure.message.contains("rid: 6578"));
                }
                other => panic!("{code}: {other:?}"),
            }
        }
    }

    #[test]
    fn errors_carry_code_message_and_hint() {
        match interpret_send(
            Api::Custom,
            200,
            &reply(45047, "out of response count limit rid: 64f8"),
        ) {
            Err(Rejection::Error(SendError::WindowClosed(failure))) => {
                assert_eq!(failure.code, "45047");
                assert_eq!(
                    failure.message,
                    "out of response count limit rid: 64f8 (the customer-service window's message allowance is used up (5 in the 48 hours after a message, 3 in the minute after a follow, menu tap or scan))"
                );
            }
            other => panic!("{other:?}"),
        }
        match interpret_send(Api::Template, 200, &reply(45009, "")) {
            Err(Rejection::Error(SendError::RateLimited(limited))) => {
                assert_eq!(limited.scope, RateLimitScope::Quota);
                assert_eq!(limited.retry_after_ms, None);
                assert!(limited.failure.message.contains("daily quota"));
            }
            other => panic!("{other:?}"),
        }
        match interpret_send(
            Api::Template,
            200,
            &reply(43101, "user refuse to accept the msg"),
        ) {
            Err(Rejection::Error(SendError::OptedOut(failure))) => {
                assert_eq!(failure.code, "43101");
            }
            other => panic!("{other:?}"),
        }
        match interpret_send(Api::Template, 200, &reply(12345, "")) {
            Err(Rejection::Error(SendError::Permanent(failure))) => {
                assert_eq!(failure.code, "12345");
                assert_eq!(
                    failure.message,
                    "WeChat returned an error without a message"
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn non_wechat_errors_classify_by_status() {
        assert!(matches!(
            interpret_send(Api::Custom, 502, b"<html>Bad Gateway</html>"),
            Err(Rejection::Error(SendError::Transient(_)))
        ));
        assert!(matches!(
            interpret_send(Api::Custom, 404, b""),
            Err(Rejection::Error(SendError::Permanent(_)))
        ));
        assert!(matches!(
            interpret_send(Api::Custom, 429, b"slow down"),
            Err(Rejection::Error(SendError::RateLimited(_)))
        ));
    }

    #[test]
    fn reads_tokens() {
        assert_eq!(
            interpret_token(200, br#"{"access_token":"ACCESS_TOKEN","expires_in":7200}"#).ok(),
            Some(("ACCESS_TOKEN".to_owned(), 7200))
        );
        assert_eq!(
            interpret_token(200, br#"{"access_token":"T"}"#).ok(),
            Some(("T".to_owned(), 300))
        );
        match interpret_token(200, &reply(40125, "invalid appsecret rid: 66b5")) {
            Err(SendError::AuthFailed(failure)) => {
                assert_eq!(failure.code, "40125");
                assert!(failure.message.contains("stable_token: invalid appsecret"));
                assert!(failure.message.contains("`app_secret`"));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            interpret_token(200, &reply(40001, "invalid credential")),
            Err(SendError::AuthFailed(_))
        ));
        assert!(matches!(
            interpret_token(200, &reply(-1, "system error")),
            Err(SendError::Transient(_))
        ));
        match interpret_token(200, br#"{"access_token":""}"#) {
            Err(SendError::Transient(failure)) => {
                assert!(failure.message.contains("without an access token"))
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            interpret_token(500, b"oops"),
            Err(SendError::Transient(_))
        ));
    }

    #[test]
    fn tokens_are_cached_until_five_minutes_before_expiry() {
        assert_eq!(cache_ttl(7200), 6900);
        assert_eq!(cache_ttl(601), 301);
        assert_eq!(cache_ttl(600), 300);
        assert_eq!(cache_ttl(100), 50);
        assert_eq!(cache_ttl(1), 1);
        assert_eq!(cache_ttl(0), 1);
        assert_eq!(cache_ttl(u64::MAX), u32::MAX);
    }
}
