//! Webhooks from RBM: the setup handshake, the `X-Goog-Signature` check,
//! and the parsing of Pub/Sub-style push messages into normalised events.
//!
//! - Handshake: RBM POSTs `{"clientToken":"…","secret":"…"}`; when the
//!   client token is ours, the reply is 200 with the `secret` as a plain body.
//! - Messages: `{"message":{"data":"<base64 JSON>","messageId","publishTime"},"subscription"}`
//!   with `X-Goog-Signature: base64(HMAC-SHA512(clientToken, base64-decoded data))`.
//!
//! Everything here is pure; the adapter layer reads the secrets and passes
//! them in.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha512;
use switchboard_sdk::signature::constant_time_eq;
use switchboard_sdk::types::{
    ConsentChange, DeliveryState, EventKind, Failure, HttpRequest, HttpResponse, InboundMessage,
    Purpose, StatusUpdate, WebhookEvent, WebhookResult,
};

/// The header carrying the signature.
pub const SIGNATURE_HEADER: &str = "x-goog-signature";

/// HMAC-SHA512 of `message` under `key`.
pub fn hmac_sha512(key: &[u8], message: &[u8]) -> [u8; 64] {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = <Hmac<Sha512> as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    mac.update(message);
    mac.finalize().into_bytes().into()
}

/// Whether `header` is the base64 HMAC-SHA512 of `data` (the decoded
/// `message.data`) under `client_token`, compared in constant time. A
/// missing header, bad base64 or an empty token fail.
pub fn signature_valid(client_token: &str, data: &[u8], header: Option<&str>) -> bool {
    if client_token.is_empty() {
        return false;
    }
    let Some(given) = header.and_then(|h| decode_base64(h.trim())) else {
        return false;
    };
    constant_time_eq(&hmac_sha512(client_token.as_bytes(), data), &given)
}

fn decode_base64(text: &str) -> Option<Vec<u8>> {
    STANDARD
        .decode(text)
        .or_else(|_| STANDARD_NO_PAD.decode(text))
        .ok()
}

/// The setup handshake body.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Handshake {
    client_token: String,
    secret: String,
}

/// Answer the setup handshake if `body` is one: 200 with the `secret` as a
/// plain body when `clientToken` equals `expected_token` (constant time),
/// 403 otherwise. `None` when the body is not a handshake.
pub fn handshake(body: &[u8], expected_token: Option<&str>) -> Option<HttpResponse> {
    let request = serde_json::from_slice::<Handshake>(body).ok()?;
    let expected = expected_token.filter(|token| !token.is_empty());
    Some(match expected {
        Some(expected)
            if constant_time_eq(request.client_token.as_bytes(), expected.as_bytes()) =>
        {
            HttpResponse::text(200, request.secret)
        }
        _ => HttpResponse::text(403, "client token does not match"),
    })
}

/// The push envelope: `{"message":{…},"subscription":"…"}`.
#[derive(Debug, Deserialize)]
struct Envelope {
    message: PushMessage,
}

/// `envelope.message`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PushMessage {
    data: String,
    #[serde(default)]
    message_id: Option<String>,
    #[serde(default)]
    publish_time: Option<String>,
}

/// Handle a POST from RBM: the handshake if it is one; otherwise 401 and no
/// events unless the signature verifies, 400 if the body is not a push
/// message with a JSON event inside, else `200 ok` with its events.
///
/// `agent_id`, when set, drops events for other agents (a partner-level
/// webhook receives every agent's). `received_at_ms` stands in for events
/// that carry no usable time.
pub fn handle(
    request: &HttpRequest,
    client_token: Option<&str>,
    agent_id: Option<&str>,
    received_at_ms: u64,
) -> WebhookResult {
    if let Some(response) = handshake(&request.body, client_token) {
        return WebhookResult::reply(response);
    }
    let Some(client_token) = client_token.filter(|token| !token.is_empty()) else {
        return WebhookResult::reply(HttpResponse::unauthorized("invalid signature"));
    };
    let Some(header) = request.header(SIGNATURE_HEADER) else {
        return WebhookResult::reply(HttpResponse::unauthorized("missing X-Goog-Signature"));
    };
    let envelope = match serde_json::from_slice::<Envelope>(&request.body) {
        Ok(envelope) => envelope,
        Err(error) => {
            return WebhookResult::reply(HttpResponse::text(
                400,
                format!("body is not an RBM push message: {error}"),
            ));
        }
    };
    let Some(data) = decode_base64(envelope.message.data.trim()) else {
        return WebhookResult::reply(HttpResponse::text(400, "message.data is not base64"));
    };
    if !signature_valid(client_token, &data, Some(header)) {
        return WebhookResult::reply(HttpResponse::unauthorized("invalid signature"));
    }
    let fallback_ms = envelope
        .message
        .publish_time
        .as_deref()
        .and_then(parse_rfc3339_ms)
        .unwrap_or(received_at_ms);
    match parse_event(
        &data,
        envelope.message.message_id.as_deref(),
        agent_id,
        fallback_ms,
    ) {
        Ok(event) => WebhookResult::accepted(event.into_iter().collect()),
        Err(error) => WebhookResult::reply(HttpResponse::text(400, error.to_string())),
    }
}

/// Why decoded `message.data` could not be read.
#[derive(Debug)]
pub struct ParseError(serde_json::Error);

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "message.data is not an RBM event: {}", self.0)
    }
}

impl std::error::Error for ParseError {}

/// What RBM puts in `message.data`: a user event, a server event or a user
/// message; the fields tell them apart.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Data {
    #[serde(default)]
    sender_phone_number: Option<String>,
    #[serde(default)]
    phone_number: Option<String>,
    #[serde(default)]
    event_type: Option<String>,
    #[serde(default)]
    event_id: Option<String>,
    #[serde(default)]
    message_id: Option<String>,
    #[serde(default)]
    agent_id: Option<String>,
    #[serde(default)]
    send_time: Option<String>,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    suggestion_response: Option<SuggestionResponse>,
    #[serde(default)]
    location: Option<serde_json::Value>,
    #[serde(default)]
    user_file: Option<serde_json::Value>,
}

/// `suggestionResponse`: the user tapped a suggested reply or action.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SuggestionResponse {
    #[serde(default)]
    text: Option<String>,
}

/// The event in decoded `message.data`, if it is one the host cares about.
///
/// | data | event |
/// |---|---|
/// | user event `DELIVERED` / `READ` | status delivered / read of `messageId` |
/// | user event `UNSUBSCRIBE` / `SUBSCRIBE` | opt-out / opt-in for marketing ("non-essential messages") |
/// | server event `TTL_EXPIRATION_REVOKED` | status expired: not delivered before its TTL, and withdrawn |
/// | user message `text` / `suggestionResponse` / `location` / `userFile` | inbound |
///
/// `IS_TYPING`, `TTL_EXPIRATION_REVOKE_FAILED` (delivery may still happen),
/// agent launch events, events for another agent and unknown shapes give
/// none. `data` must be a JSON object.
pub fn parse_event(
    data: &[u8],
    push_message_id: Option<&str>,
    agent_id: Option<&str>,
    fallback_ms: u64,
) -> Result<Option<WebhookEvent>, ParseError> {
    let data: Data = serde_json::from_slice(data).map_err(ParseError)?;
    let nonempty = |value: &Option<String>| value.clone().filter(|v| !v.trim().is_empty());
    if let (Some(ours), Some(theirs)) = (
        agent_id.filter(|id| !id.is_empty()),
        nonempty(&data.agent_id),
    ) && ours != theirs
    {
        return Ok(None);
    }
    let occurred_at_ms = data
        .send_time
        .as_deref()
        .and_then(parse_rfc3339_ms)
        .unwrap_or(fallback_ms);
    let event_type = nonempty(&data.event_type);
    let message_id = nonempty(&data.message_id);
    let event_id = |kind: &str, subject: Option<&String>| {
        nonempty(&data.event_id)
            .or_else(|| subject.map(|s| format!("{s}:{kind}")))
            .or_else(|| push_message_id.map(|id| format!("push:{id}")))
    };

    // Server events name the user `phoneNumber`.
    if let Some(phone) = nonempty(&data.phone_number)
        && data.sender_phone_number.is_none()
    {
        return Ok(match (event_type.as_deref(), &message_id) {
            (Some(kind @ "TTL_EXPIRATION_REVOKED"), Some(id)) => {
                event_id(kind, Some(id)).map(|event| WebhookEvent {
                    id: event,
                    occurred_at_ms,
                    // Withdrawn, so it can never arrive: another channel
                    // (SMS) may carry it.
                    kind: EventKind::Status(StatusUpdate {
                        platform_message_id: Some(id.clone()),
                        state: DeliveryState::Expired,
                        recipient: Some(e164(&phone)),
                        failure: Some(Failure::new(
                            "TTL_EXPIRATION_REVOKED",
                            "RBM revoked the message: it was not delivered before its TTL expired",
                        )),
                        correlation_key: None,
                    }),
                })
            }
            _ => None,
        });
    }

    let Some(sender) = nonempty(&data.sender_phone_number).map(|s| e164(&s)) else {
        return Ok(None);
    };
    if let Some(kind) = event_type {
        let status = |state| {
            message_id.as_ref().and_then(|id| {
                event_id(&kind, Some(id)).map(|event| WebhookEvent {
                    id: event,
                    occurred_at_ms,
                    kind: EventKind::Status(StatusUpdate {
                        platform_message_id: Some(id.clone()),
                        state,
                        recipient: Some(sender.clone()),
                        failure: None,
                        correlation_key: None,
                    }),
                })
            })
        };
        let consent = |opted_in: bool| {
            event_id(&kind, Some(&sender)).map(|event| {
                let change = ConsentChange {
                    address: sender.clone(),
                    purpose: Some(Purpose::Marketing),
                };
                WebhookEvent {
                    id: event,
                    occurred_at_ms,
                    kind: if opted_in {
                        EventKind::OptIn(change)
                    } else {
                        EventKind::OptOut(change)
                    },
                }
            })
        };
        return Ok(match kind.as_str() {
            "DELIVERED" => status(DeliveryState::Delivered),
            "READ" => status(DeliveryState::Read),
            "UNSUBSCRIBE" => consent(false),
            "SUBSCRIBE" => consent(true),
            _ => None,
        });
    }

    let (kind, text) = if let Some(text) = nonempty(&data.text) {
        ("text", Some(text))
    } else if let Some(response) = &data.suggestion_response {
        ("suggestionResponse", nonempty(&response.text))
    } else if data.location.is_some() {
        ("location", None)
    } else if data.user_file.is_some() {
        ("userFile", None)
    } else {
        return Ok(None);
    };
    Ok(event_id(kind, message_id.as_ref()).map(|id| WebhookEvent {
        id: nonempty(&data.message_id).unwrap_or(id),
        occurred_at_ms,
        kind: EventKind::Inbound(InboundMessage {
            sender,
            text,
            kind: kind.to_owned(),
        }),
    }))
}

/// A phone number with its leading `+`.
fn e164(phone: &str) -> String {
    let phone = phone.trim();
    if phone.starts_with('+') {
        phone.to_owned()
    } else {
        format!("+{phone}")
    }
}

/// Milliseconds since the Unix epoch of an RFC 3339 timestamp such as
/// `2026-01-02T03:04:05.123456Z` or `2026-01-02T04:04:05+01:00` (Google's
/// `Timestamp` JSON form). `None` for anything else or times before 1970.
pub fn parse_rfc3339_ms(text: &str) -> Option<u64> {
    let text = text.trim();
    let (date, rest) = text.split_once(['T', 't', ' '])?;
    let mut date_parts = date.splitn(3, '-');
    let year: i64 = digits(date_parts.next()?, 4)?;
    let month: i64 = digits(date_parts.next()?, 2)?;
    let day: i64 = digits(date_parts.next()?, 2)?;
    let offset_at = rest.find(['Z', 'z', '+', '-'])?;
    let (time, zone) = rest.split_at(offset_at);
    let (clock, fraction) = time.split_once('.').unwrap_or((time, ""));
    let mut clock_parts = clock.splitn(3, ':');
    let hour: i64 = digits(clock_parts.next()?, 2)?;
    let minute: i64 = digits(clock_parts.next()?, 2)?;
    let second: i64 = digits(clock_parts.next()?, 2)?;
    if !(1..=12).contains(&month)
        || !(1..=days_in_month(year, month)).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
        || !fraction.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let millis: i64 = format!("{fraction:0<3}")[..3].parse().ok()?;
    let offset_minutes = match zone {
        "Z" | "z" => 0,
        _ => {
            let sign = if zone.starts_with('-') { -1 } else { 1 };
            let (hours, minutes) = zone[1..].split_once(':')?;
            let (hours, minutes): (i64, i64) = (digits(hours, 2)?, digits(minutes, 2)?);
            if hours > 23 || minutes > 59 {
                return None;
            }
            sign * (hours * 60 + minutes)
        }
    };
    let days = days_from_civil(year, month, day);
    let seconds = days * 86_400 + hour * 3_600 + minute * 60 + second - offset_minutes * 60;
    u64::try_from(seconds * 1_000 + millis).ok()
}

fn digits(text: &str, len: usize) -> Option<i64> {
    (text.len() == len && text.bytes().all(|b| b.is_ascii_digit()))
        .then(|| text.parse().ok())
        .flatten()
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_index = (month + 9) % 12;
    let day_of_year = (153 * month_index + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "sim-rcs-client-token";
    const AGENT: &str = "sim-agent";
    const MESSAGE_ID: &str = "3f1c5a0e-9b7d-4c2a-8e6f-0b1d3c5a7e9f";
    const NOW_MS: u64 = 1_760_000_000_000;

    fn push(data: &serde_json::Value) -> (Vec<u8>, String) {
        let raw = data.to_string();
        let body = serde_json::json!({
            "message": {
                "data": STANDARD.encode(&raw),
                "messageId": "2070443601311540",
                "message_id": "2070443601311540",
                "publishTime": "2026-03-01T12:00:00.500Z",
                "publish_time": "2026-03-01T12:00:00.500Z"
            },
            "subscription": "projects/rbm-sim-agent/subscriptions/rbm-sim-agent-sub"
        })
        .to_string()
        .into_bytes();
        (
            body,
            STANDARD.encode(hmac_sha512(TOKEN.as_bytes(), raw.as_bytes())),
        )
    }

    fn request(body: Vec<u8>, signature: Option<String>) -> HttpRequest {
        HttpRequest {
            method: "POST".into(),
            path_and_query: "/webhooks/rcs".into(),
            headers: signature
                .map(|s| vec![(SIGNATURE_HEADER.to_owned(), s)])
                .unwrap_or_default(),
            body,
        }
    }

    fn only(result: WebhookResult) -> WebhookEvent {
        assert_eq!(
            result.response.status,
            200,
            "{:?}",
            String::from_utf8_lossy(&result.response.body)
        );
        assert_eq!(result.events.len(), 1, "{:?}", result.events);
        result.events.into_iter().next().expect("one event")
    }

    fn handled(data: serde_json::Value) -> WebhookResult {
        let (body, signature) = push(&data);
        handle(
            &request(body, Some(signature)),
            Some(TOKEN),
            Some(AGENT),
            NOW_MS,
        )
    }

    fn user_event(kind: &str) -> serde_json::Value {
        serde_json::json!({
            "senderPhoneNumber": "+12223334444",
            "eventType": kind,
            "eventId": format!("MxABC{kind}"),
            "messageId": MESSAGE_ID,
            "sendTime": "2026-03-01T11:59:59.250Z",
            "agentId": AGENT
        })
    }

    #[test]
    fn hmac_sha512_matches_rfc_4231() {
        // RFC 4231 test case 2.
        let mac = hmac_sha512(b"Jefe", b"what do ya want for nothing?");
        let hex: String = mac.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea2505549758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737"
        );
    }

    #[test]
    fn handshake_echoes_the_secret_only_for_our_token() {
        let body = br#"{"clientToken":"sim-rcs-client-token","secret":"1234567890"}"#;
        let response = handshake(body, Some(TOKEN)).expect("a handshake");
        assert_eq!(response.status, 200);
        assert_eq!(response.body, b"1234567890");
        assert!(
            response
                .headers
                .iter()
                .any(|(k, v)| k == "content-type" && v.starts_with("text/plain"))
        );
        let wrong = handshake(body, Some("other")).expect("a handshake");
        assert_eq!(wrong.status, 403);
        assert_eq!(handshake(body, None).expect("a handshake").status, 403);
        assert_eq!(handshake(body, Some("")).expect("a handshake").status, 403);
        assert!(handshake(br#"{"message":{}}"#, Some(TOKEN)).is_none());
        // Through `handle`, without any signature.
        let result = handle(&request(body.to_vec(), None), Some(TOKEN), None, NOW_MS);
        assert_eq!(result.response.status, 200);
        assert_eq!(result.response.body, b"1234567890");
        assert!(result.events.is_empty());
    }

    #[test]
    fn missing_or_wrong_signatures_are_401() {
        let (body, signature) = push(&user_event("DELIVERED"));
        for header in [
            None,
            Some("not base64!".to_owned()),
            Some(STANDARD.encode([0u8; 64])),
        ] {
            let result = handle(
                &request(body.clone(), header.clone()),
                Some(TOKEN),
                None,
                NOW_MS,
            );
            assert_eq!(result.response.status, 401, "{header:?}");
            assert!(result.events.is_empty());
        }
        // Signed with another token.
        let result = handle(
            &request(body.clone(), Some(signature.clone())),
            Some("other"),
            None,
            NOW_MS,
        );
        assert_eq!(result.response.status, 401);
        // No token configured: nothing verifies.
        let result = handle(&request(body, Some(signature)), None, None, NOW_MS);
        assert_eq!(result.response.status, 401);
        assert_eq!(result.response.body, b"invalid signature");
    }

    #[test]
    fn the_signature_covers_the_decoded_data_not_the_body() {
        let data = user_event("DELIVERED").to_string();
        let (body, _) = push(&user_event("DELIVERED"));
        let over_body = STANDARD.encode(hmac_sha512(TOKEN.as_bytes(), &body));
        let result = handle(
            &request(body.clone(), Some(over_body)),
            Some(TOKEN),
            None,
            NOW_MS,
        );
        assert_eq!(result.response.status, 401);
        assert!(signature_valid(
            TOKEN,
            data.as_bytes(),
            Some(&STANDARD.encode(hmac_sha512(TOKEN.as_bytes(), data.as_bytes())))
        ));
    }

    #[test]
    fn malformed_envelopes_are_400() {
        let sig = Some(STANDARD.encode([0u8; 64]));
        let result = handle(
            &request(b"[1]".to_vec(), sig.clone()),
            Some(TOKEN),
            None,
            NOW_MS,
        );
        assert_eq!(result.response.status, 400);
        assert!(String::from_utf8_lossy(&result.response.body).contains("not an RBM push message"));
        let body = br#"{"message":{"data":"%%%"}}"#.to_vec();
        let result = handle(&request(body, sig), Some(TOKEN), None, NOW_MS);
        assert_eq!(result.response.status, 400);
        // Signed, but the data is not a JSON object.
        let raw = b"not json";
        let body = serde_json::json!({"message": {"data": STANDARD.encode(raw)}}).to_string();
        let signature = STANDARD.encode(hmac_sha512(TOKEN.as_bytes(), raw));
        let result = handle(
            &request(body.into_bytes(), Some(signature)),
            Some(TOKEN),
            None,
            NOW_MS,
        );
        assert_eq!(result.response.status, 400);
        assert!(String::from_utf8_lossy(&result.response.body).contains("not an RBM event"));
    }

    #[test]
    fn delivered_and_read_are_statuses() {
        for (kind, state) in [
            ("DELIVERED", DeliveryState::Delivered),
            ("READ", DeliveryState::Read),
        ] {
            let event = only(handled(user_event(kind)));
            assert_eq!(event.id, format!("MxABC{kind}"));
            assert_eq!(event.occurred_at_ms, 1_772_366_399_250);
            match event.kind {
                EventKind::Status(update) => {
                    assert_eq!(update.platform_message_id.as_deref(), Some(MESSAGE_ID));
                    assert_eq!(update.state, state);
                    assert_eq!(update.recipient.as_deref(), Some("+12223334444"));
                    assert!(update.failure.is_none());
                }
                other => panic!("not a status: {other:?}"),
            }
        }
    }

    #[test]
    fn ttl_revocation_is_an_expired_status() {
        let event = only(handled(serde_json::json!({
            "phoneNumber": "+12223334444",
            "messageId": MESSAGE_ID,
            "agentId": AGENT,
            "eventType": "TTL_EXPIRATION_REVOKED",
            "eventId": "srv-1",
            "sendTime": "2026-03-01T12:00:00Z"
        })));
        assert_eq!(event.id, "srv-1");
        assert_eq!(event.occurred_at_ms, 1_772_366_400_000);
        match event.kind {
            EventKind::Status(update) => {
                assert_eq!(update.platform_message_id.as_deref(), Some(MESSAGE_ID));
                // Expired, not failed: the host may try another channel.
                assert_eq!(update.state, DeliveryState::Expired);
                assert_eq!(update.correlation_key, None);
                assert_eq!(update.recipient.as_deref(), Some("+12223334444"));
                let failure = update.failure.expect("failure");
                assert_eq!(failure.code, "TTL_EXPIRATION_REVOKED");
                assert!(failure.message.contains("TTL expired"));
            }
            other => panic!("not a status: {other:?}"),
        }
        // A failed revocation means it may still be delivered: no event.
        let result = handled(serde_json::json!({
            "phoneNumber": "+12223334444", "messageId": MESSAGE_ID, "agentId": AGENT,
            "eventType": "TTL_EXPIRATION_REVOKE_FAILED", "eventId": "srv-2"
        }));
        assert_eq!(result.response.status, 200);
        assert!(result.events.is_empty());
    }

    #[test]
    fn inbound_text_and_suggestion_responses() {
        let event = only(handled(serde_json::json!({
            "senderPhoneNumber": "+12223334444",
            "messageId": "MsUserText1",
            "sendTime": "2026-03-01T11:00:00Z",
            "agentId": AGENT,
            "text": "STOP"
        })));
        assert_eq!(event.id, "MsUserText1");
        match event.kind {
            EventKind::Inbound(message) => {
                assert_eq!(message.sender, "+12223334444");
                assert_eq!(message.kind, "text");
                assert_eq!(message.text.as_deref(), Some("STOP"));
            }
            other => panic!("not inbound: {other:?}"),
        }
        let event = only(handled(serde_json::json!({
            "senderPhoneNumber": "12223334444",
            "eventId": "EvSugg1",
            "agentId": AGENT,
            "suggestionResponse": {"postbackData": "track_1234", "text": "Track", "type": "REPLY"}
        })));
        assert_eq!(event.id, "EvSugg1");
        assert_eq!(
            event.occurred_at_ms, 1_772_366_400_500,
            "falls back on publishTime"
        );
        match event.kind {
            EventKind::Inbound(message) => {
                assert_eq!(message.sender, "+12223334444");
                assert_eq!(message.kind, "suggestionResponse");
                assert_eq!(message.text.as_deref(), Some("Track"));
            }
            other => panic!("not inbound: {other:?}"),
        }
        let event = only(handled(serde_json::json!({
            "senderPhoneNumber": "+12223334444", "messageId": "MsLoc", "agentId": AGENT,
            "location": {"latitude": 37.4, "longitude": -122.1}
        })));
        assert!(
            matches!(event.kind, EventKind::Inbound(ref m) if m.kind == "location" && m.text.is_none())
        );
    }

    #[test]
    fn unsubscribe_and_subscribe_change_marketing_consent() {
        let event = only(handled(serde_json::json!({
            "senderPhoneNumber": "+12223334444", "eventType": "UNSUBSCRIBE",
            "eventId": "EvUnsub", "agentId": AGENT
        })));
        assert_eq!(event.id, "EvUnsub");
        match event.kind {
            EventKind::OptOut(change) => {
                assert_eq!(change.address, "+12223334444");
                assert_eq!(change.purpose, Some(Purpose::Marketing));
            }
            other => panic!("not opt-out: {other:?}"),
        }
        let event = only(handled(serde_json::json!({
            "senderPhoneNumber": "+12223334444", "eventType": "SUBSCRIBE", "agentId": AGENT
        })));
        assert_eq!(event.id, "+12223334444:SUBSCRIBE");
        assert!(matches!(event.kind, EventKind::OptIn(_)));
    }

    #[test]
    fn ignores_typing_other_agents_and_unknown_shapes() {
        for data in [
            user_event("IS_TYPING"),
            serde_json::json!({"senderPhoneNumber": "+1222", "eventType": "DELIVERED", "agentId": AGENT}),
            serde_json::json!({"agentId": AGENT, "agentLaunchEvent": {"launchState": "LAUNCHED"}}),
            serde_json::json!({"senderPhoneNumber": "+12223334444", "messageId": "m", "agentId": "someone-else", "text": "hi"}),
            serde_json::json!({"senderPhoneNumber": "+12223334444", "messageId": "m", "agentId": AGENT}),
        ] {
            let result = handled(data.clone());
            assert_eq!(result.response.status, 200, "{data}");
            assert!(result.events.is_empty(), "{data}: {:?}", result.events);
        }
        // Without a configured agent, every agent's events are read.
        let (body, signature) = push(&serde_json::json!({
            "senderPhoneNumber": "+12223334444", "messageId": "m", "agentId": "someone-else", "text": "hi"
        }));
        let result = handle(&request(body, Some(signature)), Some(TOKEN), None, NOW_MS);
        assert_eq!(result.events.len(), 1);
    }

    #[test]
    fn parses_rfc3339() {
        assert_eq!(parse_rfc3339_ms("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_rfc3339_ms("2026-03-01T12:00:00Z"),
            Some(1_772_366_400_000)
        );
        assert_eq!(
            parse_rfc3339_ms("2026-03-01T12:00:00.5Z"),
            Some(1_772_366_400_500)
        );
        assert_eq!(
            parse_rfc3339_ms("2026-03-01T12:00:00.123456789Z"),
            Some(1_772_366_400_123)
        );
        assert_eq!(
            parse_rfc3339_ms("2026-03-01T13:30:00+01:30"),
            Some(1_772_366_400_000)
        );
        assert_eq!(
            parse_rfc3339_ms("2026-03-01T10:00:00-02:00"),
            Some(1_772_366_400_000)
        );
        assert_eq!(
            parse_rfc3339_ms("2024-02-29T00:00:00Z"),
            Some(1_709_164_800_000)
        );
        for bad in [
            "",
            "2026-03-01",
            "2026-03-01T12:00:00",
            "2026-13-01T12:00:00Z",
            "2025-02-29T00:00:00Z",
            "2026-03-01T24:00:00Z",
            "2026-03-01T12:00:00.x1Z",
            "1969-12-31T23:59:59Z",
            "26-03-01T12:00:00Z",
        ] {
            assert_eq!(parse_rfc3339_ms(bad), None, "{bad}");
        }
    }
}
