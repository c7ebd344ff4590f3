//! Reading NHN Cloud's replies: receipts per recipient, and NHN / Kakao
//! result codes classified into the contract's send-error classes.
//!
//! Every send answers `{"header":{"resultCode","resultMessage","isSuccessful"},
//! "message":{"requestId","sendResults":[{"recipientSeq","recipientNo","resultCode","resultMessage"}]}}`.
//! Request-level problems (credentials, unknown template, a duplicate
//! idempotency key) come in `header`; per-recipient ones in `sendResults`.
//! The table follows NHN's error-code page (`en/error-code.md` of
//! <https://github.com/TOAST-DOCS/Alimtalk>). The host acts on the class
//! only; the code and NHN's words travel in the failure.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use switchboard_sdk::types::{Deferral, Failure, RateLimitScope, Receipt, SendError};

/// Minutes after midnight (KST) when NHN's advertising window opens (08:00).
pub const AD_WINDOW_OPENS_MINUTE: u32 = 8 * 60;
/// Korea Standard Time's offset from UTC, in milliseconds (no daylight
/// saving since 1988).
pub const KST_OFFSET_MS: i64 = 9 * 60 * 60 * 1000;
const DAY_MS: i64 = 24 * 60 * 60 * 1000;

/// A send reply: `header` and, when NHN took the request, `message`.
#[derive(Debug, Deserialize)]
pub struct ApiResponse {
    /// The request-level result.
    pub header: Header,
    /// The per-recipient results, when the request was processed.
    #[serde(default)]
    pub message: Option<MessageBody>,
}

/// `header`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Header {
    /// 0 on success, a negative NHN code otherwise.
    #[serde(default, deserialize_with = "lenient_code")]
    pub result_code: i64,
    /// NHN's words.
    #[serde(default)]
    pub result_message: String,
    /// Whether the request succeeded.
    #[serde(default)]
    pub is_successful: bool,
}

/// `message`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageBody {
    /// NHN's id of the request; with `recipientSeq` it names one message.
    #[serde(default)]
    pub request_id: Option<String>,
    /// One result per recipient.
    #[serde(default, deserialize_with = "lenient_list")]
    pub send_results: Vec<SendResult>,
}

/// One entry of `sendResults`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SendResult {
    /// The recipient's position in `recipientList`, from 1.
    #[serde(deserialize_with = "lenient_code")]
    pub recipient_seq: i64,
    /// The national number, as sent.
    #[serde(default)]
    pub recipient_no: Option<String>,
    /// 0 (or 1000) when accepted, otherwise an NHN or Kakao code.
    #[serde(default, deserialize_with = "lenient_code")]
    pub result_code: i64,
    /// NHN's words.
    #[serde(default)]
    pub result_message: String,
}

/// What the host should do about a code. Kept apart from [`SendError`] so
/// the table can be read and tested on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Accepted (0) or delivered (1000).
    Success,
    /// -1005: the same `X-NC-API-IDEMPOTENCY-KEY` was accepted in the last
    /// 10 minutes; nothing new was sent.
    Duplicate,
    /// 3022: Brand Messages may only be sent 08:00–20:50 KST. Deferred
    /// until 08:00 KST (only this message waits), never failed.
    AdNightBan,
    /// A send quota is used up: stop the channel until it resets.
    Quota,
    /// Too fast for the sender (HTTP 429).
    RateLimitedSender,
    /// Retry with backoff.
    Transient,
    /// Kakao may have delivered it (3005): do not resend.
    Uncertain,
    /// Not reachable on KakaoTalk: try the next channel.
    RecipientUnreachable,
    /// The recipient opted out through the 080 number.
    OptedOut,
    /// Wrong app key or secret key.
    AuthFailed,
    /// Content or template problem: fix what is sent.
    InvalidContent,
    /// Account, channel or configuration problem: an operator must act.
    Permanent,
}

/// The class of an NHN (negative, 0, 4) or Kakao (1000–9999) result code,
/// or `None` for a code this table does not know.
pub fn class_of(code: i64) -> Option<Class> {
    Some(match code {
        0 | 1000 => Class::Success,
        -1005 => Class::Duplicate,
        3022 => Class::AdNightBan,
        // "Maximum number of deliveries exceeded".
        4156 => Class::Quota,
        // Invalid / unknown / disabled app key, invalid secret key.
        -1000 | -1001 | -4004 | -4005 => Class::AuthFailed,
        // Unexpected errors, Kakao communication failures, system errors,
        // vendor API failures, "message request failed", expired request.
        -9999
        | -7000
        | 2001
        | 2005
        | 3000
        | 3006
        | 3010
        | 3012
        | 4137
        | 4139..=4143
        | 9998
        | 9999 => Class::Transient,
        // Sent, not confirmed; may still arrive within 3 days.
        3005 => Class::Uncertain,
        // Phone number error, inactive / SIM mismatch / sanctioned user, not
        // a KakaoTalk user, AlimTalk blocked, client too old; invalid
        // recipient numbers; channel not added (test server).
        3008 | 3018 | 3019 | 3020 | 3021 | 1020 | 2003 | -5000 | -4019 => {
            Class::RecipientUnreachable
        }
        // Recipient opted out through the 080 number.
        -3301 => Class::OptedOut,
        // Account, channel and configuration problems: sender profile
        // invalid / deleted / blocked / inactive, channel blocked / closed /
        // deleted / sanctioned, contract or business number, identity
        // verification, M/N targeting not approved, SMS fallback settings,
        // 080 number unknown or malformed, the retired FriendTalk API.
        1002
        | 1003
        | 1006
        | 1007
        | 1011
        | 1013
        | 1014
        | 1016
        | 1021..=1027
        | 4103
        | 4104
        | -1002
        | -1003
        | -1006
        | -1014
        | -1019
        | -1024
        | -1027
        | -1030
        | -2017
        | -2502
        | -3300
        | -3340
        | -3341
        | -4029
        | -9992 => Class::Permanent,
        // Per-user brand message limit (Kakao caps how many a user gets):
        // like a frequency cap, retrying soon is pointless, but the person
        // is reachable and consent is unchanged.
        4138 => Class::Permanent,
        // Content and template problems: parameter checks, field lengths,
        // template missing / not approved / mismatched, buttons, banned
        // words, missing authentication words, body too large. (Arms above
        // take precedence over these ranges: -3300, -3301, -3340, -3341.)
        4
        | -1028
        | -2005..=-2000
        | -2018
        | -2019
        | -2024..=-2023
        | -2037..=-2030
        | -2505..=-2504
        | -3058..=-3000
        | -3103..=-3101
        | -3349..=-3200
        | -4000
        | -4200
        | -8006
        | -8008
        | -9996..=-9993
        | 1001
        | 1004
        | 1012
        | 1028
        | 1030
        | 1033
        | 3011
        | 3013..=3016
        | 3023..=3058
        | 4102
        | 4110
        | 4120
        | 4132..=4134
        | 4144 => Class::InvalidContent,
        _ => return None,
    })
}

/// The class of a code NHN answered with HTTP `status`: known codes decide,
/// unknown ones fall back on the status (5xx transient, 429 rate-limited,
/// 401/403 auth-failed, anything else permanent).
pub fn class_with_status(code: Option<i64>, status: u16) -> Class {
    if status == 429 {
        return Class::RateLimitedSender;
    }
    match code.and_then(class_of) {
        Some(class) => class,
        None => match status {
            500..=599 => Class::Transient,
            401 | 403 => Class::AuthFailed,
            _ => Class::Permanent,
        },
    }
}

/// Milliseconds from `now_ms` (Unix) to the next 08:00 in Korea, when
/// NHN's Brand Message window opens again (at least 1).
pub fn ms_until_ad_window(now_ms: u64) -> u32 {
    let kst = i64::try_from(now_ms).unwrap_or(i64::MAX / 2) + KST_OFFSET_MS;
    let into_day = kst.rem_euclid(DAY_MS);
    let opens = i64::from(AD_WINDOW_OPENS_MINUTE) * 60_000;
    let wait = if into_day < opens {
        opens - into_day
    } else {
        DAY_MS - into_day + opens
    };
    u32::try_from(wait.max(1)).unwrap_or(u32::MAX)
}

impl Class {
    /// The contract's error for this (non-success) class. `retry_after_ms`
    /// is used by the rate-limited classes; `now_ms` dates the night ban.
    pub fn into_error(
        self,
        failure: Failure,
        retry_after_ms: Option<u32>,
        now_ms: u64,
    ) -> SendError {
        match self {
            Class::AdNightBan => SendError::Deferred(Deferral {
                until_ms: now_ms.saturating_add(u64::from(ms_until_ad_window(now_ms))),
                failure,
            }),
            Class::Quota => SendError::rate_limited(RateLimitScope::Quota, retry_after_ms, failure),
            Class::RateLimitedSender => {
                SendError::rate_limited(RateLimitScope::Sender, retry_after_ms, failure)
            }
            Class::Transient => SendError::Transient(failure),
            Class::Uncertain => SendError::Uncertain(failure),
            Class::RecipientUnreachable => SendError::RecipientUnreachable(failure),
            Class::OptedOut => SendError::OptedOut(failure),
            Class::AuthFailed => SendError::AuthFailed(failure),
            Class::InvalidContent => SendError::InvalidContent(failure),
            // Success and duplicate are receipts; reaching here is a bug in
            // the caller, and permanent is the safe answer.
            Class::Permanent | Class::Success | Class::Duplicate => SendError::Permanent(failure),
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

/// What the platform's result code means, for codes whose NHN message may
/// be empty or terse.
pub fn describe(code: i64) -> Option<&'static str> {
    Some(match code {
        -1000 => "invalid appKey: check the `app_key` setting",
        -1001 => "invalid secretKey: check the `secret_key` secret",
        -1005 => "the same X-NC-API-IDEMPOTENCY-KEY was used within the last 10 minutes",
        -1031 => "every recipient of the request failed",
        -2017 => "no outgoing profile (KakaoTalk channel) for this sender key",
        -3003 => "the template does not exist",
        -3005 => "the template is not approved",
        -3010 => "the message does not match the registered template",
        -3301 => "the recipient opted out through the 080 number",
        -9992 => "the FriendTalk API is retired: Brand Message replaces it",
        3005 => "sent but not confirmed; it may still arrive within 3 days",
        3008 => "phone number error",
        3018 => "cannot be sent: inactive user, SIM and KakaoTalk numbers differ, or sanctioned",
        3019 => "not a KakaoTalk user",
        3020 => "the user blocked AlimTalk / this channel",
        3021 => "the user's KakaoTalk version is too old",
        3022 => "Brand Messages may only be sent 08:00–20:50 KST",
        _ => return None,
    })
}

/// A failure carrying `code` and NHN's message (or, when NHN gave none,
/// what the code means), plus `context` (e.g. the request id).
pub fn failure(code: i64, message: &str, context: &str) -> Failure {
    let mut text = match (message.trim(), describe(code)) {
        ("", Some(meaning)) => meaning.to_owned(),
        ("", None) => format!("NHN answered result code {code} without a message"),
        (message, Some(meaning)) if !message.to_lowercase().contains(&meaning.to_lowercase()) => {
            format!("{message} ({meaning})")
        }
        (message, _) => message.to_owned(),
    };
    if !context.is_empty() {
        text.push_str(" [");
        text.push_str(context);
        text.push(']');
    }
    Failure::new(code.to_string(), text)
}

/// How a reply reads.
#[derive(Debug, Clone)]
pub enum Reply {
    /// NHN processed the request: one result per recipient, in
    /// `recipientList` order (receipts, per-recipient errors, or the
    /// `duplicate` receipts of -1005).
    Recipients(Vec<Result<Receipt, SendError>>),
    /// NHN refused the request as a whole: the same error for everyone.
    Request(SendError),
    /// A 2xx reply whose body could not be read: NHN may have taken the
    /// request. The caller resends it with the same idempotency key.
    Lost(String),
}

impl Reply {
    /// One result per recipient (`n` of them); a lost reply is `uncertain`.
    pub fn into_results(self, n: usize) -> Vec<Result<Receipt, SendError>> {
        match self {
            Reply::Recipients(results) => results,
            Reply::Request(error) => vec![Err(error); n],
            Reply::Lost(why) => vec![Err(SendError::Uncertain(Failure::new("", why))); n],
        }
    }
}

/// The results of a request whose first reply was lost (`first`: why),
/// given the reply to resending it with the same idempotency key.
///
/// A resend NHN processed is authoritative: had the first request been
/// taken, the resend would have met -1005 (and reads as `duplicate`
/// receipts). A resend refused for a reason that says nothing about the
/// first request (transient, rate-limited, lost again) leaves every
/// recipient `uncertain`: the host must not send again. A resend refused
/// for a reason that would have refused the first too (credentials,
/// content) stands.
pub fn after_resend(first: &str, resend: Reply, n: usize) -> Vec<Result<Receipt, SendError>> {
    let uncertain = |why: String| {
        vec![
            Err(SendError::Uncertain(Failure::new(
                "",
                format!(
                    "the reply to the request was lost ({first}) and resending it did not settle it: {why}"
                ),
            )));
            n
        ]
    };
    match resend {
        Reply::Recipients(results) => results,
        Reply::Request(error) => match error {
            SendError::Transient(_) | SendError::RateLimited(_) | SendError::Uncertain(_) => {
                let failure = error.failure();
                uncertain(format!("({}) {}", failure.code, failure.message))
            }
            other => vec![Err(other); n],
        },
        Reply::Lost(why) => uncertain(why),
    }
}

/// Interpret a send reply for a request whose `recipientList` held
/// `recipients` (national numbers, in order) under `idempotency_key`.
///
/// - a readable body with per-recipient `sendResults` gives one result per
///   recipient: `{requestId}:{recipientSeq}` receipts for 0/1000, the
///   classified error otherwise (also when `header` reports failure, e.g.
///   -1031 "every recipient failed");
/// - -1005 gives `duplicate` receipts `{idempotency_key}:{n}` (NHN names no
///   request id; the key is the request's `senderGroupingKey`);
/// - any other request-level code applies to every recipient;
/// - an unreadable body is classified by the HTTP status, except a 2xx one,
///   which is [`Reply::Lost`].
pub fn interpret(
    status: u16,
    retry_after: Option<&str>,
    body: &[u8],
    recipients: &[String],
    idempotency_key: &str,
    now_ms: u64,
) -> Reply {
    let retry_after_ms = retry_after.and_then(retry_after_ms);
    let response: ApiResponse = match serde_json::from_slice(body) {
        Ok(response) => response,
        Err(_) if (200..300).contains(&status) => {
            return Reply::Lost(format!(
                "HTTP {status} with an unreadable body: `{}`",
                snippet(body)
            ));
        }
        Err(_) => {
            let class = class_with_status(None, status);
            let failure = Failure::new(
                format!("HTTP {status}"),
                format!("HTTP {status}: `{}`", snippet(body)),
            );
            return Reply::Request(class.into_error(failure, retry_after_ms, now_ms));
        }
    };
    let header = &response.header;
    if status == 429 {
        let failure = failure(
            header.result_code,
            &format!("HTTP 429 Too Many Requests: {}", header.result_message),
            "",
        );
        return Reply::Request(Class::RateLimitedSender.into_error(
            failure,
            retry_after_ms,
            now_ms,
        ));
    }
    let header_class = class_with_status(Some(header.result_code), status);
    if header_class == Class::Duplicate {
        return Reply::Recipients(
            (1..=recipients.len())
                .map(|seq| Ok(Receipt::duplicate(format!("{idempotency_key}:{seq}"))))
                .collect(),
        );
    }
    let results = response
        .message
        .as_ref()
        .map(|message| message.send_results.as_slice())
        .unwrap_or_default();
    let request_id = response
        .message
        .as_ref()
        .and_then(|message| message.request_id.as_deref())
        .map(str::trim)
        .filter(|id| !id.is_empty());
    if !results.is_empty() {
        return Reply::Recipients(per_recipient(
            results,
            recipients,
            request_id,
            retry_after_ms,
            now_ms,
        ));
    }
    if header.is_successful {
        return Reply::Request(SendError::Uncertain(failure(
            header.result_code,
            &format!(
                "NHN accepted the request but reported no per-recipient results: {}",
                header.result_message
            ),
            &request_id
                .map(|id| format!("request {id}"))
                .unwrap_or_default(),
        )));
    }
    let (class, context) = if header_class == Class::OptedOut && recipients.len() > 1 {
        (
            Class::Permanent,
            "a recipient of this request opted out through the 080 number; NHN does not say which: send them one by one",
        )
    } else {
        (header_class, "")
    };
    Reply::Request(class.into_error(
        failure(header.result_code, &header.result_message, context),
        retry_after_ms,
        now_ms,
    ))
}

/// Map `sendResults` back to the recipients: by position when NHN reports
/// one result per recipient (ordered by `recipientSeq`), otherwise by
/// number; a recipient NHN reported nothing for is `uncertain`.
fn per_recipient(
    results: &[SendResult],
    recipients: &[String],
    request_id: Option<&str>,
    retry_after_ms: Option<u32>,
    now_ms: u64,
) -> Vec<Result<Receipt, SendError>> {
    let mut ordered: Vec<&SendResult> = results.iter().collect();
    ordered.sort_by_key(|result| result.recipient_seq);
    let matched: Vec<Option<&SendResult>> = if ordered.len() == recipients.len() {
        ordered.into_iter().map(Some).collect()
    } else {
        let mut unused = ordered;
        recipients
            .iter()
            .map(|number| {
                let at = unused
                    .iter()
                    .position(|r| r.recipient_no.as_deref() == Some(number.as_str()))?;
                Some(unused.remove(at))
            })
            .collect()
    };
    matched
        .into_iter()
        .map(|result| {
            let Some(result) = result else {
                return Err(SendError::Uncertain(Failure::new(
                    "",
                    format!(
                        "NHN reported no result for this recipient (request {})",
                        request_id.unwrap_or("without id")
                    ),
                )));
            };
            let context = request_id
                .map(|id| format!("request {id}"))
                .unwrap_or_default();
            match class_of(result.result_code) {
                Some(Class::Success) => match request_id {
                    Some(id) => Ok(Receipt::new(format!("{id}:{}", result.recipient_seq))),
                    None => Err(SendError::Uncertain(failure(
                        result.result_code,
                        "NHN accepted the recipient but named no requestId",
                        "",
                    ))),
                },
                Some(Class::Duplicate) => Ok(Receipt::duplicate(format!(
                    "{}:{}",
                    request_id.unwrap_or("duplicate"),
                    result.recipient_seq
                ))),
                class => Err(class.unwrap_or(Class::Permanent).into_error(
                    failure(result.result_code, &result.result_message, &context),
                    retry_after_ms,
                    now_ms,
                )),
            }
        })
        .collect()
}

/// Milliseconds to wait from a `Retry-After` header in delta-seconds form.
pub fn retry_after_ms(value: &str) -> Option<u32> {
    let seconds: u64 = value.trim().parse().ok()?;
    Some(u32::try_from(seconds.saturating_mul(1_000)).unwrap_or(u32::MAX))
}

/// The first 200 characters of a body, for messages.
fn snippet(body: &[u8]) -> String {
    String::from_utf8_lossy(body).chars().take(200).collect()
}

/// A code sent as a number (`3019`) or a string (`"3019"`); anything else
/// reads as 0 only when absent, and fails otherwise.
fn lenient_code<'de, D>(deserializer: D) -> Result<i64, D::Error>
where
    D: Deserializer<'de>,
{
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Code {
        Number(i64),
        Text(String),
    }
    match Code::deserialize(deserializer)? {
        Code::Number(code) => Ok(code),
        Code::Text(text) => text
            .trim()
            .parse()
            .map_err(|_| serde::de::Error::custom(format!("result code `{text}` is not a number"))),
    }
}

/// A list whose odd items are skipped, reading as empty when not a list.
fn lenient_list<'de, D, T>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: DeserializeOwned,
{
    Ok(match serde_json::Value::deserialize(deserializer)? {
        serde_json::Value::Array(items) => items
            .into_iter()
            .filter_map(|item| T::deserialize(item).ok())
            .collect(),
        _ => Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "6f1c2a0e-9b7d-4c2a-8e6f-0b1d3c5a7e9f";
    /// 2026-11-10 12:00:00 UTC = 21:00 KST.
    const NINE_PM_KST_MS: u64 = 1_794_312_000_000;

    fn numbers(n: usize) -> Vec<String> {
        (1..=n).map(|i| format!("0101234000{i}")).collect()
    }

    fn body(value: serde_json::Value) -> Vec<u8> {
        value.to_string().into_bytes()
    }

    fn success(results: serde_json::Value) -> Vec<u8> {
        body(serde_json::json!({
            "header": {"resultCode": 0, "resultMessage": "SUCCESS", "isSuccessful": true},
            "message": {"requestId": "20261110120000abcdefghijk", "senderGroupingKey": KEY, "sendResults": results}
        }))
    }

    fn header_error(code: i64, message: &str) -> Vec<u8> {
        body(serde_json::json!({
            "header": {"resultCode": code, "resultMessage": message, "isSuccessful": false}
        }))
    }

    fn recipients(reply: Reply) -> Vec<Result<Receipt, SendError>> {
        match reply {
            Reply::Recipients(results) => results,
            other => panic!("expected per-recipient results, got {other:?}"),
        }
    }

    fn request(reply: Reply) -> SendError {
        match reply {
            Reply::Request(error) => error,
            other => panic!("expected a request-level error, got {other:?}"),
        }
    }

    #[test]
    fn every_listed_code_has_its_class() {
        use Class::*;
        let table: &[(i64, Class)] = &[
            (0, Success),
            (1000, Success),
            (-1005, Duplicate),
            (3022, AdNightBan),
            (4156, Quota),
            (-1000, AuthFailed),
            (-1001, AuthFailed),
            (-4004, AuthFailed),
            (2001, Transient),
            (3000, Transient),
            (3006, Transient),
            (3010, Transient),
            (3012, Transient),
            (-9999, Transient),
            (9999, Transient),
            (3005, Uncertain),
            (3008, RecipientUnreachable),
            (3018, RecipientUnreachable),
            (3019, RecipientUnreachable),
            (3020, RecipientUnreachable),
            (3021, RecipientUnreachable),
            (-5000, RecipientUnreachable),
            (-3301, OptedOut),
            (1003, Permanent),
            (1006, Permanent),
            (1007, Permanent),
            (1021, Permanent),
            (1024, Permanent),
            (1027, Permanent),
            (-9992, Permanent),
            (-2017, Permanent),
            (-3300, Permanent),
            (-3340, Permanent),
            (-4029, Permanent),
            (4138, Permanent),
            (4, InvalidContent),
            (-2000, InvalidContent),
            (-2004, InvalidContent),
            (-3003, InvalidContent),
            (-3005, InvalidContent),
            (-3010, InvalidContent),
            (-3049, InvalidContent),
            (-3298, InvalidContent),
            (-8006, InvalidContent),
            (1033, InvalidContent),
            (3013, InvalidContent),
            (3014, InvalidContent),
            (3015, InvalidContent),
            (3016, InvalidContent),
            (3023, InvalidContent),
            (3040, InvalidContent),
            (3058, InvalidContent),
            (4133, InvalidContent),
        ];
        for &(code, expected) in table {
            assert_eq!(class_of(code), Some(expected), "code {code}");
        }
        for unknown in [1, -1031, 5000, 3059, -2025] {
            assert_eq!(class_of(unknown), None, "code {unknown}");
        }
        assert_eq!(class_with_status(Some(123_456), 503), Transient);
        assert_eq!(class_with_status(Some(123_456), 200), Permanent);
        assert_eq!(class_with_status(None, 403), AuthFailed);
        assert_eq!(class_with_status(Some(-3003), 429), RateLimitedSender);
    }

    #[test]
    fn per_recipient_results_map_back_in_order() {
        let reply = interpret(
            200,
            None,
            &success(serde_json::json!([
                {"recipientSeq": 3, "recipientNo": "01012340003", "resultCode": 3019, "resultMessage": "not a KakaoTalk user"},
                {"recipientSeq": 1, "recipientNo": "01012340001", "resultCode": 0, "resultMessage": "SUCCESS"},
                {"recipientSeq": 2, "recipientNo": "01012340002", "resultCode": 1000, "resultMessage": "SUCCESS"}
            ])),
            &numbers(3),
            KEY,
            0,
        );
        let results = recipients(reply);
        assert_eq!(results.len(), 3);
        let receipt = results[0].as_ref().expect("receipt");
        assert_eq!(receipt.id(), "20261110120000abcdefghijk:1");
        assert!(!receipt.duplicate);
        assert_eq!(
            results[1].as_ref().expect("receipt").id(),
            "20261110120000abcdefghijk:2"
        );
        match &results[2] {
            Err(SendError::RecipientUnreachable(failure)) => {
                assert_eq!(failure.code, "3019");
                assert_eq!(
                    failure.message,
                    "not a KakaoTalk user [request 20261110120000abcdefghijk]"
                );
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn results_are_matched_by_number_when_counts_differ() {
        let mut recipients_sent = numbers(2);
        recipients_sent.push("01099990000".into());
        let reply = interpret(
            200,
            None,
            &success(serde_json::json!([
                {"recipientSeq": 2, "recipientNo": "01012340002", "resultCode": 0, "resultMessage": "SUCCESS"}
            ])),
            &recipients_sent,
            KEY,
            0,
        );
        let results = recipients(reply);
        assert!(
            matches!(&results[0], Err(SendError::Uncertain(f)) if f.message.contains("no result for this recipient"))
        );
        assert_eq!(
            results[1].as_ref().expect("receipt").id(),
            "20261110120000abcdefghijk:2"
        );
        assert!(matches!(results[2], Err(SendError::Uncertain(_))));
    }

    #[test]
    fn all_failed_header_still_reads_per_recipient_results() {
        let reply = interpret(
            200,
            None,
            &body(serde_json::json!({
                "header": {"resultCode": -1031, "resultMessage": "All of receivers are failed to send.", "isSuccessful": false},
                "message": {"requestId": "R1", "sendResults": [
                    {"recipientSeq": 1, "recipientNo": "01012340001", "resultCode": 3006, "resultMessage": "internal error"},
                    {"recipientSeq": 2, "recipientNo": "01012340002", "resultCode": -3010, "resultMessage": "The contents do not match the template."}
                ]}
            })),
            &numbers(2),
            KEY,
            0,
        );
        let results = recipients(reply);
        assert!(matches!(&results[0], Err(SendError::Transient(f)) if f.code == "3006"));
        match &results[1] {
            Err(SendError::InvalidContent(failure)) => {
                assert_eq!(failure.code, "-3010");
                assert_eq!(
                    failure.message,
                    "The contents do not match the template. (the message does not match the registered template) [request R1]"
                );
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn night_ban_defers_until_eight_in_korea() {
        let reply = interpret(
            200,
            None,
            &success(serde_json::json!([
                {"recipientSeq": 1, "recipientNo": "01012340001", "resultCode": 3022, "resultMessage": ""}
            ])),
            &numbers(1),
            KEY,
            NINE_PM_KST_MS,
        );
        match &recipients(reply)[0] {
            Err(SendError::Deferred(deferral)) => {
                // 21:00 → 08:00 is 11 hours.
                assert_eq!(deferral.until_ms, NINE_PM_KST_MS + 11 * 3_600_000);
                assert_eq!(deferral.failure.code, "3022");
                assert_eq!(
                    deferral.failure.message,
                    "Brand Messages may only be sent 08:00–20:50 KST [request 20261110120000abcdefghijk]"
                );
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn time_until_the_ad_window() {
        let hour = 3_600_000u64;
        // 21:00 KST → 11 h; 07:30 KST → 30 min; 08:00 KST → 24 h; 20:50 → 11 h 10 min.
        assert_eq!(ms_until_ad_window(NINE_PM_KST_MS), 11 * hour as u32);
        let half_past_seven = NINE_PM_KST_MS + 10 * hour + hour / 2;
        assert_eq!(ms_until_ad_window(half_past_seven), (hour / 2) as u32);
        let eight = NINE_PM_KST_MS + 11 * hour;
        assert_eq!(ms_until_ad_window(eight), 24 * hour as u32);
        let ten_to_nine = NINE_PM_KST_MS - 10 * 60_000;
        assert_eq!(
            ms_until_ad_window(ten_to_nine),
            (11 * hour + 600_000) as u32
        );
    }

    #[test]
    fn duplicate_key_gives_duplicate_receipts() {
        let reply = interpret(
            200,
            None,
            &header_error(
                -1005,
                "The same 'X-NC-API-IDEMPOTENCY-KEY' was used within the last 10 minute.",
            ),
            &numbers(2),
            KEY,
            0,
        );
        let results = recipients(reply);
        assert_eq!(results.len(), 2);
        for (i, result) in results.iter().enumerate() {
            let receipt = result.as_ref().expect("receipt");
            assert!(receipt.duplicate);
            assert_eq!(receipt.id(), format!("{KEY}:{}", i + 1));
        }
    }

    #[test]
    fn request_level_errors_apply_to_everyone() {
        match request(interpret(
            200,
            None,
            &header_error(-1001, "Invalid secretKey."),
            &numbers(2),
            KEY,
            0,
        )) {
            SendError::AuthFailed(failure) => {
                assert_eq!(failure.code, "-1001");
                assert_eq!(
                    failure.message,
                    "Invalid secretKey. (invalid secretKey: check the `secret_key` secret)"
                );
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(matches!(
            request(interpret(200, None, &header_error(-3003, "Template does not exist."), &numbers(1), KEY, 0)),
            SendError::InvalidContent(f) if f.code == "-3003"
        ));
        assert!(matches!(
            request(interpret(200, None, &header_error(-9992, ""), &numbers(1), KEY, 0)),
            SendError::Permanent(f) if f.message == "the FriendTalk API is retired: Brand Message replaces it"
        ));
        assert!(matches!(
            request(interpret(
                500,
                None,
                &header_error(-9999, "System error."),
                &numbers(1),
                KEY,
                0
            )),
            SendError::Transient(_)
        ));
        // An unknown code falls back on the status.
        assert!(matches!(
            request(interpret(
                502,
                None,
                &header_error(-123, "?"),
                &numbers(1),
                KEY,
                0
            )),
            SendError::Transient(_)
        ));
        assert!(matches!(
            request(interpret(
                200,
                None,
                &header_error(-123, "?"),
                &numbers(1),
                KEY,
                0
            )),
            SendError::Permanent(_)
        ));
        // -1031 without results.
        assert!(matches!(
            request(interpret(200, None, &header_error(-1031, ""), &numbers(1), KEY, 0)),
            SendError::Permanent(f) if f.message == "every recipient of the request failed"
        ));
    }

    #[test]
    fn opt_out_at_request_level_is_only_trusted_for_one_recipient() {
        let body = header_error(-3301, "The unsubscribed recipient are found.");
        assert!(matches!(
            request(interpret(200, None, &body, &numbers(1), KEY, 0)),
            SendError::OptedOut(_)
        ));
        match request(interpret(200, None, &body, &numbers(2), KEY, 0)) {
            SendError::Permanent(failure) => {
                assert!(
                    failure.message.contains("NHN does not say which"),
                    "{failure:?}"
                );
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn http_level_failures_classify_by_status() {
        match request(interpret(
            429,
            Some("3"),
            &header_error(-9997, "Too many requests"),
            &numbers(1),
            KEY,
            0,
        )) {
            SendError::RateLimited(limited) => {
                assert_eq!(limited.scope, RateLimitScope::Sender);
                assert_eq!(limited.retry_after_ms, Some(3_000));
                assert!(
                    limited
                        .failure
                        .message
                        .starts_with("HTTP 429 Too Many Requests")
                );
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(matches!(
            request(interpret(429, None, b"slow down", &numbers(1), KEY, 0)),
            SendError::RateLimited(_)
        ));
        assert!(matches!(
            request(interpret(503, None, b"<html>busy</html>", &numbers(1), KEY, 0)),
            SendError::Transient(f) if f.code == "HTTP 503" && f.message.contains("<html>busy</html>")
        ));
        assert!(matches!(
            request(interpret(401, None, b"", &numbers(1), KEY, 0)),
            SendError::AuthFailed(_)
        ));
        assert!(matches!(
            request(interpret(404, None, b"not found", &numbers(1), KEY, 0)),
            SendError::Permanent(_)
        ));
        assert!(matches!(
            interpret(200, None, b"<html>", &numbers(1), KEY, 0),
            Reply::Lost(why) if why.contains("unreadable body")
        ));
    }

    #[test]
    fn accepted_without_results_or_request_id_is_uncertain() {
        let reply = interpret(
            200,
            None,
            &body(
                serde_json::json!({"header": {"resultCode": 0, "resultMessage": "SUCCESS", "isSuccessful": true}}),
            ),
            &numbers(2),
            KEY,
            0,
        );
        assert!(matches!(request(reply), SendError::Uncertain(_)));
        let reply = interpret(
            200,
            None,
            &body(serde_json::json!({
                "header": {"resultCode": 0, "resultMessage": "SUCCESS", "isSuccessful": true},
                "message": {"sendResults": [{"recipientSeq": "1", "resultCode": "0", "resultMessage": "SUCCESS"}]}
            })),
            &numbers(1),
            KEY,
            0,
        );
        assert!(
            matches!(&recipients(reply)[0], Err(SendError::Uncertain(f)) if f.message.contains("named no requestId"))
        );
    }

    #[test]
    fn a_resend_after_a_lost_reply_is_trusted_only_when_it_says_something() {
        let first = "timed out waiting for the reply";
        // NHN took the first request: the resend meets -1005.
        let duplicate = interpret(200, None, &header_error(-1005, ""), &numbers(2), KEY, 0);
        let results = after_resend(first, duplicate, 2);
        assert!(
            results
                .iter()
                .all(|r| r.as_ref().is_ok_and(|receipt| receipt.duplicate))
        );
        // NHN never saw the first: the resend's own results stand.
        let fresh = interpret(
            200,
            None,
            &success(
                serde_json::json!([{"recipientSeq": 1, "recipientNo": "01012340001", "resultCode": 0, "resultMessage": "SUCCESS"}]),
            ),
            &numbers(1),
            KEY,
            0,
        );
        assert!(after_resend(first, fresh, 1)[0].is_ok());
        // The resend failed in passing: nobody knows about the first.
        let busy = interpret(
            500,
            None,
            &header_error(-9999, "System error."),
            &numbers(2),
            KEY,
            0,
        );
        let results = after_resend(first, busy, 2);
        assert_eq!(results.len(), 2);
        match &results[0] {
            Err(SendError::Uncertain(failure)) => assert_eq!(
                failure.message,
                "the reply to the request was lost (timed out waiting for the reply) and resending it did not settle it: (-9999) System error."
            ),
            other => panic!("unexpected {other:?}"),
        }
        let lost = after_resend(first, Reply::Lost("again".into()), 1);
        assert!(matches!(&lost[0], Err(SendError::Uncertain(f)) if f.message.ends_with("again")));
        // A refusal that would have refused the first too stands.
        let auth = interpret(200, None, &header_error(-1001, ""), &numbers(1), KEY, 0);
        assert!(matches!(
            after_resend(first, auth, 1)[0],
            Err(SendError::AuthFailed(_))
        ));
    }

    #[test]
    fn lenient_codes_and_retry_after() {
        let result: SendResult = serde_json::from_str(
            r#"{"recipientSeq":"2","recipientNo":"010","resultCode":" 3019 ","resultMessage":"x"}"#,
        )
        .expect("parses");
        assert_eq!((result.recipient_seq, result.result_code), (2, 3019));
        assert!(serde_json::from_str::<SendResult>(r#"{"recipientSeq":"two"}"#).is_err());
        assert_eq!(retry_after_ms(" 30 "), Some(30_000));
        assert_eq!(retry_after_ms("Wed, 21 Oct 2015 07:28:00 GMT"), None);
        assert_eq!(Reply::Lost("x".into()).into_results(2).len(), 2);
    }
}
