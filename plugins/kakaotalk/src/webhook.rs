//! NHN Cloud webhooks: the `X-Toast-Webhook-Signature` check and the
//! parsing of `MESSAGE_RESULT_UPDATE` into status events.
//!
//! NHN's "signature" is not an HMAC: it is the static string the operator
//! typed when configuring the webhook, sent verbatim in every request. It is
//! compared in constant time. There is no verification handshake.
//!
//! Everything here is pure; the adapter layer reads the secret.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use switchboard_sdk::signature;
use switchboard_sdk::types::{
    DeliveryState, EventKind, Failure, HttpRequest, HttpResponse, StatusUpdate, WebhookEvent,
    WebhookResult,
};

use crate::address;
use crate::errors::{KST_OFFSET_MS, describe};

/// The header carrying the configured signature string.
pub const SIGNATURE_HEADER: &str = "x-toast-webhook-signature";
/// The event carrying delivery results.
pub const MESSAGE_RESULT_UPDATE: &str = "MESSAGE_RESULT_UPDATE";

/// Whether `header` equals the configured signature string, in constant
/// time. A missing header or an empty configured string never verifies.
pub fn signature_valid(expected: &str, header: Option<&str>) -> bool {
    match header {
        Some(given) if !expected.is_empty() => {
            signature::constant_time_eq(given.trim().as_bytes(), expected.as_bytes())
        }
        _ => false,
    }
}

/// Why a webhook body could not be read.
#[derive(Debug)]
pub struct ParseError(serde_json::Error);

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "webhook body is not an NHN Cloud webhook: {}", self.0)
    }
}

impl std::error::Error for ParseError {}

/// Handle a webhook `POST`: 401 and no events unless the signature header
/// equals `expected`, 400 if the body is not a JSON object, otherwise
/// `200 ok` with the events (none for events other than
/// `MESSAGE_RESULT_UPDATE`, e.g. template reviews).
pub fn handle(request: &HttpRequest, expected: &str, received_at_ms: u64) -> WebhookResult {
    if !signature_valid(expected, request.header(SIGNATURE_HEADER)) {
        return WebhookResult::reply(HttpResponse::unauthorized("invalid signature"));
    }
    match parse_events(&request.body, received_at_ms) {
        Ok(events) => WebhookResult::accepted(events),
        Err(error) => WebhookResult::reply(HttpResponse::text(400, error.to_string())),
    }
}

/// The status events of a webhook body, in the order of `hooks`.
///
/// Each hook of a `MESSAGE_RESULT_UPDATE` becomes a status for
/// `{requestId}:{recipientSeq}` (the receipt's id), with the hook's
/// `recipientGroupingKey` (the host's idempotency key, which the adapter
/// sends there) as its correlation key: result 1000 → delivered; 3005
/// (sent, not confirmed) → sent; 4161 (still being processed) → nothing;
/// any other code → failed with the code. The event id is the hook's
/// `hookId`. A hook with neither a request id and sequence nor a grouping
/// key is skipped; other events give no events. The body must be a JSON
/// object.
pub fn parse_events(body: &[u8], received_at_ms: u64) -> Result<Vec<WebhookEvent>, ParseError> {
    let envelope: Envelope = serde_json::from_slice(body).map_err(ParseError)?;
    if envelope.event != MESSAGE_RESULT_UPDATE {
        return Ok(Vec::new());
    }
    Ok(envelope
        .hooks
        .iter()
        .filter_map(|hook| hook.event(received_at_ms))
        .collect())
}

/// `{hooksId, webhookConfigId, productName, appKey, event, hooks:[…]}`.
#[derive(Debug, Deserialize)]
struct Envelope {
    #[serde(default)]
    event: String,
    #[serde(default, deserialize_with = "lenient_list")]
    hooks: Vec<ResultHook>,
}

/// One `MESSAGE_RESULT_UPDATE` hook.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ResultHook {
    #[serde(default)]
    request_id: String,
    #[serde(default)]
    recipient_seq: Option<Scalar>,
    #[serde(default)]
    recipient_no: Option<String>,
    #[serde(default)]
    result_code: Option<Scalar>,
    #[serde(default)]
    result_code_name: Option<String>,
    #[serde(default)]
    receive_date: Option<String>,
    #[serde(default)]
    create_date: Option<String>,
    #[serde(default)]
    hook_id: Option<String>,
    #[serde(default)]
    kakao_message_type: Option<String>,
    /// The host's idempotency key of the message, as the send passed it.
    #[serde(default)]
    recipient_grouping_key: Option<String>,
}

/// A value NHN sends as a number or a string (`recipientSeq`, `resultCode`).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum Scalar {
    Number(i64),
    Text(String),
}

impl Scalar {
    fn text(&self) -> String {
        match self {
            Scalar::Number(n) => n.to_string(),
            Scalar::Text(text) => text.trim().to_owned(),
        }
    }
}

impl ResultHook {
    fn event(&self, received_at_ms: u64) -> Option<WebhookEvent> {
        let request_id = self.request_id.trim();
        let seq = self
            .recipient_seq
            .as_ref()
            .map(Scalar::text)
            .unwrap_or_default();
        // "0001" and 1 name the same recipient.
        let seq = seq.parse::<i64>().map_or(seq, |n| n.to_string());
        let platform_message_id =
            (!request_id.is_empty() && !seq.is_empty()).then(|| format!("{request_id}:{seq}"));
        let correlation_key = self
            .recipient_grouping_key
            .as_deref()
            .map(str::trim)
            .filter(|key| !key.is_empty())
            .map(str::to_owned);
        // The status must name its message one way or the other.
        let subject = platform_message_id.clone().or(correlation_key.clone())?;
        let code = self
            .result_code
            .as_ref()
            .map(Scalar::text)
            .unwrap_or_default();
        let numeric = code.trim_start_matches("KKO_").parse::<i64>().ok();
        let (state, failure) = match numeric {
            Some(1000 | 0) => (DeliveryState::Delivered, None),
            Some(3005) => (DeliveryState::Sent, None),
            Some(4161) => return None,
            _ => (DeliveryState::Failed, Some(self.failure(&code, numeric))),
        };
        let id = self
            .hook_id
            .as_deref()
            .map(str::trim)
            .filter(|id| !id.is_empty())
            .map_or_else(|| format!("{subject}:{code}"), str::to_owned);
        let occurred_at_ms = [self.receive_date.as_deref(), self.create_date.as_deref()]
            .into_iter()
            .flatten()
            .find_map(kst_millis)
            .unwrap_or(received_at_ms);
        Some(WebhookEvent {
            id,
            occurred_at_ms,
            kind: EventKind::Status(StatusUpdate {
                platform_message_id,
                state,
                recipient: self
                    .recipient_no
                    .as_deref()
                    .map(str::trim)
                    .filter(|no| !no.is_empty())
                    .map(address::e164),
                failure,
                correlation_key,
            }),
        })
    }

    fn failure(&self, code: &str, numeric: Option<i64>) -> Failure {
        let meaning = self
            .result_code_name
            .as_deref()
            .map(str::trim)
            .filter(|name| !name.is_empty())
            .map(str::to_owned)
            .or_else(|| numeric.and_then(describe).map(str::to_owned));
        let kind = self
            .kakao_message_type
            .as_deref()
            .filter(|kind| !kind.is_empty())
            .map(|kind| format!(" ({kind})"))
            .unwrap_or_default();
        let message = match (meaning, code.is_empty()) {
            (Some(meaning), _) => format!("KakaoTalk delivery failed{kind}: {meaning}"),
            (None, false) => format!("KakaoTalk delivery failed{kind} with result code {code}"),
            (None, true) => format!("KakaoTalk delivery failed{kind} without a result code"),
        };
        Failure::new(code, message)
    }
}

/// Unix milliseconds of an NHN timestamp in Korean time:
/// `yyyy-MM-dd HH:mm[:ss[.SSS]]` (or with `T`). A bare date or anything else
/// reads as none.
pub fn kst_millis(text: &str) -> Option<u64> {
    let text = text.trim();
    let (date, time) = text.split_once([' ', 'T'])?;
    let mut date_parts = date.splitn(3, '-');
    let year: i64 = date_parts.next()?.parse().ok()?;
    let month: u32 = date_parts.next()?.parse().ok()?;
    let day: u32 = date_parts.next()?.parse().ok()?;
    let (clock, fraction) = time.split_once('.').unwrap_or((time, ""));
    let mut clock_parts = clock.splitn(3, ':');
    let hour: i64 = clock_parts.next()?.parse().ok()?;
    let minute: i64 = clock_parts.next()?.parse().ok()?;
    let second: i64 = match clock_parts.next() {
        Some(second) => second.parse().ok()?,
        None => 0,
    };
    let millis: i64 = if fraction.is_empty() {
        0
    } else {
        let digits: String = fraction.chars().take(3).collect();
        if !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        format!("{digits:0<3}").parse().ok()?
    };
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || !(0..24).contains(&hour)
        || !(0..60).contains(&minute)
        || !(0..=60).contains(&second)
    {
        return None;
    }
    let days = days_from_civil(year, month, day);
    let local_ms = ((days * 24 + hour) * 60 + minute) * 60_000 + second * 1_000 + millis;
    u64::try_from(local_ms - KST_OFFSET_MS).ok()
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// `days_from_civil`).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month = i64::from(month);
    let day_of_year =
        (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
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

    const SIGNATURE: &str = "my-webhook-signature";
    const NOW_MS: u64 = 1_790_000_000_000;

    fn hook(code: serde_json::Value, extra: serde_json::Value) -> serde_json::Value {
        let mut hook = serde_json::json!({
            "kakaoMessageType": "ALIMTALK_NORMAL",
            "requestId": "20261110120000abcdefghijk",
            "recipientSeq": 1,
            "requestDate": "2026-11-10 21:00:00",
            "createDate": "2026-11-10 21:00:00",
            "receiveDate": "2026-11-10 21:00:03",
            "recipientNo": "01012340001",
            "resultCode": code,
            "senderGroupingKey": "6f1c2a0e-9b7d-4c2a-8e6f-0b1d3c5a7e9f",
            "recipientGroupingKey": "3f1c5a0e",
            "_links": {"self": {"href": "https://kakaotalk-bizmessage.api.nhncloudservice.com/alimtalk/v2.3/appkeys/AK/messages/20261110120000abcdefghijk/1"}},
            "hookId": "hook-1"
        });
        if let (Some(hook), Some(extra)) = (hook.as_object_mut(), extra.as_object()) {
            hook.extend(extra.clone());
        }
        hook
    }

    fn envelope(event: &str, hooks: Vec<serde_json::Value>) -> Vec<u8> {
        serde_json::json!({
            "hooksId": "202611102100031010sadasdavas",
            "webhookConfigId": "config-1",
            "productName": "KakaoTalk Bizmessage",
            "appKey": "AK",
            "event": event,
            "hooks": hooks
        })
        .to_string()
        .into_bytes()
    }

    fn request(body: Vec<u8>, signature: Option<&str>) -> HttpRequest {
        HttpRequest {
            method: "POST".into(),
            path_and_query: "/webhooks/kakaotalk".into(),
            headers: signature
                .map(|s| vec![(SIGNATURE_HEADER.to_owned(), s.to_owned())])
                .unwrap_or_default(),
            body,
        }
    }

    fn status(event: &WebhookEvent) -> &StatusUpdate {
        match &event.kind {
            EventKind::Status(update) => update,
            other => panic!("not a status: {other:?}"),
        }
    }

    #[test]
    fn signature_is_the_configured_string() {
        assert!(signature_valid(SIGNATURE, Some(SIGNATURE)));
        assert!(signature_valid(SIGNATURE, Some(" my-webhook-signature ")));
        assert!(!signature_valid(SIGNATURE, Some("my-webhook-signaturE")));
        assert!(!signature_valid(SIGNATURE, Some("my-webhook")));
        assert!(!signature_valid(SIGNATURE, None));
        assert!(!signature_valid("", Some("")));
    }

    #[test]
    fn missing_or_wrong_signature_gets_401_and_no_events() {
        let body = envelope(
            MESSAGE_RESULT_UPDATE,
            vec![hook(serde_json::json!("1000"), serde_json::json!({}))],
        );
        for signature in [None, Some("wrong"), Some("")] {
            let result = handle(&request(body.clone(), signature), SIGNATURE, NOW_MS);
            assert_eq!(result.response.status, 401);
            assert_eq!(result.response.body, b"invalid signature");
            assert!(result.events.is_empty());
        }
        // Nothing verifies when no signature is configured.
        let result = handle(&request(body, Some("")), "", NOW_MS);
        assert_eq!(result.response.status, 401);
    }

    #[test]
    fn delivered_result_becomes_a_status_event() {
        let body = envelope(
            MESSAGE_RESULT_UPDATE,
            vec![hook(serde_json::json!("1000"), serde_json::json!({}))],
        );
        let result = handle(&request(body, Some(SIGNATURE)), SIGNATURE, NOW_MS);
        assert_eq!(result.response.status, 200);
        assert_eq!(result.response.body, b"ok");
        assert_eq!(result.events.len(), 1);
        let event = &result.events[0];
        assert_eq!(event.id, "hook-1");
        // 2026-11-10 21:00:03 KST = 12:00:03 UTC.
        assert_eq!(event.occurred_at_ms, 1_794_312_003_000);
        let update = status(event);
        assert_eq!(
            update.platform_message_id.as_deref(),
            Some("20261110120000abcdefghijk:1")
        );
        assert_eq!(update.correlation_key.as_deref(), Some("3f1c5a0e"));
        assert_eq!(update.state, DeliveryState::Delivered);
        assert_eq!(update.recipient.as_deref(), Some("+821012340001"));
        assert!(update.failure.is_none());
    }

    #[test]
    fn failure_codes_become_failed_with_the_code() {
        let body = envelope(
            MESSAGE_RESULT_UPDATE,
            vec![
                hook(
                    serde_json::json!("3018"),
                    serde_json::json!({"hookId": "h1"}),
                ),
                hook(
                    serde_json::json!(3019),
                    serde_json::json!({"hookId": "h2", "recipientSeq": "2", "kakaoMessageType": "BRAND_MESSAGE_NORMAL"}),
                ),
                hook(
                    serde_json::json!("9123"),
                    serde_json::json!({"hookId": "h3", "recipientSeq": 3, "resultCodeName": "Odd failure"}),
                ),
            ],
        );
        let events = parse_events(&body, NOW_MS).expect("parses");
        assert_eq!(events.len(), 3);
        let first = status(&events[0]);
        assert_eq!(first.state, DeliveryState::Failed);
        let failure = first.failure.as_ref().expect("failure");
        assert_eq!(failure.code, "3018");
        assert_eq!(
            failure.message,
            "KakaoTalk delivery failed (ALIMTALK_NORMAL): cannot be sent: inactive user, SIM and KakaoTalk numbers differ, or sanctioned"
        );
        let second = status(&events[1]);
        assert_eq!(
            second.platform_message_id.as_deref(),
            Some("20261110120000abcdefghijk:2")
        );
        assert_eq!(
            second.failure.as_ref().expect("failure").message,
            "KakaoTalk delivery failed (BRAND_MESSAGE_NORMAL): not a KakaoTalk user"
        );
        let third = status(&events[2]).failure.as_ref().expect("failure");
        assert_eq!(third.code, "9123");
        assert_eq!(
            third.message,
            "KakaoTalk delivery failed (ALIMTALK_NORMAL): Odd failure"
        );
    }

    #[test]
    fn unconfirmed_and_in_progress_results() {
        let body = envelope(
            MESSAGE_RESULT_UPDATE,
            vec![
                hook(
                    serde_json::json!("3005"),
                    serde_json::json!({"hookId": "h1"}),
                ),
                hook(
                    serde_json::json!("4161"),
                    serde_json::json!({"hookId": "h2"}),
                ),
            ],
        );
        let events = parse_events(&body, NOW_MS).expect("parses");
        assert_eq!(events.len(), 1);
        assert_eq!(status(&events[0]).state, DeliveryState::Sent);
    }

    #[test]
    fn other_events_and_odd_hooks_give_nothing() {
        let template_review = serde_json::json!({
            "event": "TEMPLATE_STATUS_UPDATE",
            "hooks": [{"senderKey": "k", "templateCode": "ORDER_SHIPPED", "status": "TSC03", "hookId": "t1"}]
        })
        .to_string();
        let result = handle(
            &request(template_review.into_bytes(), Some(SIGNATURE)),
            SIGNATURE,
            NOW_MS,
        );
        assert_eq!(result.response.status, 200);
        assert!(result.events.is_empty());

        // A hook naming no message (no request id or sequence, no grouping
        // key), and a non-object, are skipped; the good hook without
        // hookId, dates or grouping key still counts.
        let body = envelope(
            MESSAGE_RESULT_UPDATE,
            vec![
                serde_json::json!({"resultCode": "1000"}),
                serde_json::json!({"requestId": "R", "resultCode": "1000", "recipientGroupingKey": " "}),
                serde_json::json!("nonsense"),
                serde_json::json!({"requestId": "R", "recipientSeq": "0002", "resultCode": "1000", "receiveDate": "2023-06-01"}),
            ],
        );
        let events = parse_events(&body, NOW_MS).expect("parses");
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].id, "R:2:1000");
        assert_eq!(events[0].occurred_at_ms, NOW_MS);
        assert_eq!(
            status(&events[0]).platform_message_id.as_deref(),
            Some("R:2")
        );
        assert_eq!(status(&events[0]).correlation_key, None);
        assert_eq!(status(&events[0]).recipient, None);
    }

    #[test]
    fn the_correlation_key_is_the_recipient_grouping_key() {
        let key = "3f1c5a0e9b7d4c2a8e6f0b1d3c5a7e9f1b3d5c7a9e0f2b4d6c8a0e2f4b6d8c0a";
        let body = envelope(
            MESSAGE_RESULT_UPDATE,
            vec![hook(
                serde_json::json!("3019"),
                serde_json::json!({"recipientGroupingKey": key}),
            )],
        );
        let events = parse_events(&body, NOW_MS).expect("parses");
        let update = status(&events[0]);
        assert_eq!(update.correlation_key.as_deref(), Some(key));
        assert_eq!(update.state, DeliveryState::Failed);
        // A hook with the key but no request id still names its message.
        let body = envelope(
            MESSAGE_RESULT_UPDATE,
            vec![serde_json::json!({"resultCode": 1000, "recipientGroupingKey": key})],
        );
        let events = parse_events(&body, NOW_MS).expect("parses");
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].id, format!("{key}:1000"));
        let update = status(&events[0]);
        assert_eq!(update.platform_message_id, None);
        assert_eq!(update.correlation_key.as_deref(), Some(key));
    }

    #[test]
    fn bodies_that_are_not_objects_get_400() {
        let result = handle(
            &request(b"not json".to_vec(), Some(SIGNATURE)),
            SIGNATURE,
            NOW_MS,
        );
        assert_eq!(result.response.status, 400);
        assert!(
            String::from_utf8_lossy(&result.response.body)
                .starts_with("webhook body is not an NHN Cloud webhook")
        );
        assert!(parse_events(b"[1]", NOW_MS).is_err());
        assert!(parse_events(b"{}", NOW_MS).expect("parses").is_empty());
    }

    #[test]
    fn reads_korean_timestamps() {
        // 1970-01-01 09:00 KST is the epoch.
        assert_eq!(kst_millis("1970-01-01 09:00:00"), Some(0));
        assert_eq!(kst_millis("2026-11-10 21:00:03"), Some(1_794_312_003_000));
        assert_eq!(kst_millis("2026-11-10T21:00:03.5"), Some(1_794_312_003_500));
        assert_eq!(kst_millis("2026-11-10 21:00"), Some(1_794_312_000_000));
        assert_eq!(
            kst_millis("2024-02-29 09:00:00.123"),
            Some(1_709_164_800_123)
        );
        for bad in [
            "2023-06-01",
            "",
            "2026-13-01 00:00:00",
            "2026-11-10 25:00",
            "1960-01-01 00:00:00",
            "x-y-z 1:2",
        ] {
            assert_eq!(kst_millis(bad), None, "{bad}");
        }
    }
}
