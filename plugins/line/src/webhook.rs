//! Webhooks from the LINE Platform: the `x-line-signature` check and the
//! parsing of `{"destination","events":[…]}` into normalised events.
//!
//! Everything here is pure; the adapter layer reads the channel secret and
//! passes it in.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use switchboard_sdk::signature;
use switchboard_sdk::types::{
    ConsentChange, EventKind, HttpRequest, HttpResponse, InboundMessage, WebhookEvent,
    WebhookResult,
};

/// The header carrying `base64(HMAC-SHA256(channel secret, raw body))`.
pub const SIGNATURE_HEADER: &str = "x-line-signature";

/// Whether `header` is the base64 HMAC-SHA256 of `body` under
/// `channel_secret`, compared in constant time. A missing header, bad
/// base64 or an empty secret fail.
pub fn signature_valid(channel_secret: &str, body: &[u8], header: Option<&str>) -> bool {
    match header {
        Some(signature) if !channel_secret.is_empty() => {
            signature::verify_hmac_sha256_base64(channel_secret.as_bytes(), body, signature)
        }
        _ => false,
    }
}

/// Why a webhook body could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError(String);

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "webhook body is not a LINE webhook: {}", self.0)
    }
}

impl std::error::Error for ParseError {}

/// Handle a signed `POST`: 401 and no events unless the signature
/// verifies, 400 if the body is not a JSON object, otherwise `200 ok` with
/// the events. An empty `events` array (LINE's "Verify" button and
/// connectivity checks) is a `200 ok` with no events.
///
/// `received_at_ms` stands in for events that carry no timestamp.
pub fn handle(request: &HttpRequest, channel_secret: &str, received_at_ms: u64) -> WebhookResult {
    if !signature_valid(
        channel_secret,
        &request.body,
        request.header(SIGNATURE_HEADER),
    ) {
        return WebhookResult::reply(HttpResponse::unauthorized("invalid signature"));
    }
    match parse_events(&request.body, received_at_ms) {
        Ok(events) => WebhookResult::accepted(events),
        Err(error) => WebhookResult::reply(HttpResponse::text(400, error.to_string())),
    }
}

/// The events in a webhook body, in the order LINE sent them.
///
/// Read: `follow` (opt-in, every purpose), `unfollow` (opt-out, every
/// purpose: the user blocked the account) and `message` (inbound; `kind` is
/// `message.type`, `text` for text messages), from one-to-one chats
/// (`source.type` `user`). Other event types, group and room sources, and
/// events without a user id are skipped, as are items that do not have the
/// expected shape. The body must be a JSON object.
///
/// The event id is `webhookEventId`, the same on a redelivery
/// (`deliveryContext.isRedelivery`), so the host drops repeats; an event
/// without one gets `{type}:{userId}:{timestamp}`.
pub fn parse_events(body: &[u8], received_at_ms: u64) -> Result<Vec<WebhookEvent>, ParseError> {
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|error| ParseError(error.to_string()))?;
    if !value.is_object() {
        return Err(ParseError("expected a JSON object".into()));
    }
    let envelope = Envelope::deserialize(value).map_err(|error| ParseError(error.to_string()))?;
    Ok(envelope
        .events
        .iter()
        .filter_map(|event| event.normalise(received_at_ms))
        .collect())
}

/// `{"destination":"U…","events":[…]}`.
#[derive(Debug, Deserialize)]
struct Envelope {
    #[serde(default, deserialize_with = "lenient_list")]
    events: Vec<Event>,
}

/// One webhook event.
#[derive(Debug, Deserialize)]
struct Event {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    timestamp: Option<u64>,
    #[serde(default)]
    source: Option<Source>,
    #[serde(default, rename = "webhookEventId")]
    webhook_event_id: Option<String>,
    #[serde(default)]
    message: Option<Message>,
}

/// `source`: `{"type":"user","userId":"U…"}` (or a group / room).
#[derive(Debug, Deserialize)]
struct Source {
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default, rename = "userId")]
    user_id: Option<String>,
}

/// `message`: `{"type":"text","id":"…","text":"…"}`.
#[derive(Debug, Deserialize)]
struct Message {
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    text: Option<String>,
}

impl Event {
    fn normalise(&self, received_at_ms: u64) -> Option<WebhookEvent> {
        let source = self.source.as_ref().filter(|s| s.kind == "user")?;
        let user_id = source.user_id.as_deref().filter(|id| !id.is_empty())?;
        let everything = || ConsentChange {
            address: user_id.to_owned(),
            purpose: None,
        };
        let kind = match self.kind.as_str() {
            "follow" => EventKind::OptIn(everything()),
            "unfollow" => EventKind::OptOut(everything()),
            "message" => {
                let message = self.message.as_ref()?;
                let text = match message.kind.as_str() {
                    "text" => message.text.clone(),
                    _ => None,
                };
                EventKind::Inbound(InboundMessage {
                    sender: user_id.to_owned(),
                    text,
                    kind: message.kind.clone(),
                })
            }
            _ => return None,
        };
        let id = match self.webhook_event_id.as_deref().filter(|id| !id.is_empty()) {
            Some(id) => id.to_owned(),
            None => format!(
                "{}:{user_id}:{}",
                self.kind,
                self.timestamp.map(|t| t.to_string()).unwrap_or_default()
            ),
        };
        Some(WebhookEvent {
            id,
            occurred_at_ms: self.timestamp.unwrap_or(received_at_ms),
            kind,
        })
    }
}

/// A list whose items that do not have the expected shape are skipped, and
/// which reads as empty when it is not a list at all, so that one odd item
/// cannot cost the events next to it.
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
    use base64::Engine as _;

    const SECRET: &str = "8c570fa6dd201bb328f1c1eac23a96d8";
    const USER: &str = "U4af4980629a1b2c3d4e5f60718293a4b";
    const NOW_MS: u64 = 1_760_000_000_000;

    fn sign(body: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD
            .encode(signature::hmac_sha256(SECRET.as_bytes(), body))
    }

    fn request(body: Vec<u8>, header: Option<String>) -> HttpRequest {
        HttpRequest {
            method: "POST".into(),
            path_and_query: "/webhooks/line".into(),
            headers: header
                .map(|h| vec![(SIGNATURE_HEADER.to_owned(), h)])
                .unwrap_or_default(),
            body,
        }
    }

    fn envelope(events: serde_json::Value) -> Vec<u8> {
        serde_json::json!({"destination": "Uaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "events": events})
            .to_string()
            .into_bytes()
    }

    fn event(kind: &str, id: &str, extra: serde_json::Value) -> serde_json::Value {
        let mut event = serde_json::json!({
            "type": kind,
            "mode": "active",
            "timestamp": 1_462_629_479_859u64,
            "source": {"type": "user", "userId": USER},
            "webhookEventId": id,
            "deliveryContext": {"isRedelivery": false}
        });
        if let (Some(event), Some(extra)) = (event.as_object_mut(), extra.as_object()) {
            event.extend(extra.clone());
        }
        event
    }

    fn only(events: Vec<WebhookEvent>) -> WebhookEvent {
        assert_eq!(events.len(), 1, "{events:?}");
        events.into_iter().next().expect("one event")
    }

    #[test]
    fn signature_accepts_the_right_hmac_only() {
        let body = envelope(serde_json::json!([]));
        let good = sign(&body);
        assert!(signature_valid(SECRET, &body, Some(&good)));
        assert!(signature_valid(SECRET, &body, Some(&format!(" {good} "))));
        assert!(!signature_valid(SECRET, &body, None));
        assert!(!signature_valid("other", &body, Some(&good)));
        assert!(!signature_valid("", &body, Some(&good)));
        assert!(!signature_valid(SECRET, &body, Some("not base64!")));
        let hex: String = signature::hmac_sha256(SECRET.as_bytes(), &body)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert!(
            !signature_valid(SECRET, &body, Some(&hex)),
            "hex is not base64"
        );
        let mut tampered = body.clone();
        tampered.push(b' ');
        assert!(!signature_valid(SECRET, &tampered, Some(&good)));
    }

    #[test]
    fn known_signature_vector() {
        // HMAC-SHA256("Jefe", "what do ya want for nothing?") from RFC 4231,
        // base64-encoded as LINE sends it.
        assert!(signature::verify_hmac_sha256_base64(
            b"Jefe",
            b"what do ya want for nothing?",
            "W9zBRr9gdU5qBCQmCJV1x1oAPwidJzmDnexYuWTsOEM="
        ));
        assert!(signature_valid(
            "Jefe",
            b"what do ya want for nothing?",
            Some("W9zBRr9gdU5qBCQmCJV1x1oAPwidJzmDnexYuWTsOEM=")
        ));
    }

    #[test]
    fn unsigned_or_badly_signed_posts_get_401_and_no_events() {
        let body = envelope(serde_json::json!([event(
            "unfollow",
            "01A",
            serde_json::json!({})
        )]));
        for header in [
            None,
            Some(String::new()),
            Some("AAAA".to_owned()),
            Some(sign(b"other")),
        ] {
            let result = handle(&request(body.clone(), header), SECRET, NOW_MS);
            assert_eq!(result.response.status, 401);
            assert_eq!(result.response.body, b"invalid signature");
            assert!(result.events.is_empty());
        }
        let signed = sign(&body);
        let result = handle(&request(body, Some(signed)), "", NOW_MS);
        assert_eq!(result.response.status, 401, "no secret never verifies");
    }

    #[test]
    fn the_verify_button_gets_200_and_no_events() {
        let body = envelope(serde_json::json!([]));
        let header = Some(sign(&body));
        let result = handle(&request(body, header), SECRET, NOW_MS);
        assert_eq!(result.response.status, 200);
        assert_eq!(result.response.body, b"ok");
        assert!(result.events.is_empty());
    }

    #[test]
    fn signed_non_json_gets_400() {
        let body = b"not json".to_vec();
        let header = Some(sign(&body));
        let result = handle(&request(body, header), SECRET, NOW_MS);
        assert_eq!(result.response.status, 400);
        assert!(
            String::from_utf8_lossy(&result.response.body)
                .starts_with("webhook body is not a LINE webhook:")
        );
        assert!(result.events.is_empty());
    }

    #[test]
    fn follow_is_an_opt_in_for_every_purpose() {
        let body = envelope(serde_json::json!([event(
            "follow",
            "01FZ74A0TDDPYRVKNK77XKC3ZR",
            serde_json::json!({"replyToken": "85cbe770fa8b4f45bbe077b1d4be4a36", "follow": {"isUnblocked": true}})
        )]));
        let event = only(parse_events(&body, NOW_MS).expect("parses"));
        assert_eq!(event.id, "01FZ74A0TDDPYRVKNK77XKC3ZR");
        assert_eq!(event.occurred_at_ms, 1_462_629_479_859);
        match event.kind {
            EventKind::OptIn(change) => {
                assert_eq!(change.address, USER);
                assert_eq!(change.purpose, None);
            }
            other => panic!("not an opt-in: {other:?}"),
        }
    }

    #[test]
    fn unfollow_is_an_opt_out_for_every_purpose() {
        let body = envelope(serde_json::json!([event(
            "unfollow",
            "01B",
            serde_json::json!({})
        )]));
        let header = Some(sign(&body));
        let result = handle(&request(body, header), SECRET, NOW_MS);
        assert_eq!(result.response.status, 200);
        match &only(result.events).kind {
            EventKind::OptOut(change) => {
                assert_eq!(change.address, USER);
                assert_eq!(change.purpose, None);
            }
            other => panic!("not an opt-out: {other:?}"),
        }
    }

    #[test]
    fn a_text_message_is_inbound_with_its_text() {
        let body = envelope(serde_json::json!([event(
            "message",
            "01C",
            serde_json::json!({
                "replyToken": "nHuyWiB7yP5Zw52FIkcQobQuGDXCTA",
                "message": {"type": "text", "id": "444573844083572737", "quoteToken": "q3Plxr4AgKd...", "text": "Is the sale still on?"}
            })
        )]));
        let event = only(parse_events(&body, NOW_MS).expect("parses"));
        assert_eq!(event.id, "01C");
        match event.kind {
            EventKind::Inbound(message) => {
                assert_eq!(message.sender, USER);
                assert_eq!(message.kind, "text");
                assert_eq!(message.text.as_deref(), Some("Is the sale still on?"));
            }
            other => panic!("not inbound: {other:?}"),
        }
    }

    #[test]
    fn a_sticker_is_inbound_without_text() {
        let body = envelope(serde_json::json!([event(
            "message",
            "01D",
            serde_json::json!({"message": {"type": "sticker", "id": "1", "packageId": "446", "stickerId": "1988"}})
        )]));
        match only(parse_events(&body, NOW_MS).expect("parses")).kind {
            EventKind::Inbound(message) => {
                assert_eq!(message.kind, "sticker");
                assert_eq!(message.text, None);
            }
            other => panic!("not inbound: {other:?}"),
        }
    }

    #[test]
    fn a_redelivery_keeps_the_event_id() {
        let first = event("unfollow", "01E", serde_json::json!({}));
        let again = event(
            "unfollow",
            "01E",
            serde_json::json!({"deliveryContext": {"isRedelivery": true}}),
        );
        let events =
            parse_events(&envelope(serde_json::json!([first, again])), NOW_MS).expect("parses");
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].id, events[1].id);
    }

    #[test]
    fn groups_other_types_and_odd_items_are_skipped() {
        let group_message = serde_json::json!({
            "type": "message", "timestamp": 1, "webhookEventId": "01G",
            "source": {"type": "group", "groupId": "Ca56f94637c...", "userId": USER},
            "message": {"type": "text", "id": "1", "text": "hi all"}
        });
        let body = envelope(serde_json::json!([
            group_message,
            event("postback", "01H", serde_json::json!({"postback": {"data": "x"}})),
            event("unsend", "01I", serde_json::json!({})),
            {"type": "follow", "source": {"type": "user"}},
            "not an object",
            {"no": "type"},
            event("message", "01J", serde_json::json!({})),
            event("follow", "01K", serde_json::json!({})),
        ]));
        let event = only(parse_events(&body, NOW_MS).expect("parses"));
        assert_eq!(event.id, "01K");
    }

    #[test]
    fn missing_ids_and_timestamps_have_fallbacks() {
        let body = envelope(serde_json::json!([
            {"type": "unfollow", "source": {"type": "user", "userId": USER}, "timestamp": 1_700_000_000_000u64},
            {"type": "follow", "source": {"type": "user", "userId": USER}}
        ]));
        let events = parse_events(&body, NOW_MS).expect("parses");
        assert_eq!(events[0].id, format!("unfollow:{USER}:1700000000000"));
        assert_eq!(events[0].occurred_at_ms, 1_700_000_000_000);
        assert_eq!(events[1].id, format!("follow:{USER}:"));
        assert_eq!(events[1].occurred_at_ms, NOW_MS);
    }

    #[test]
    fn events_that_are_not_a_list_read_as_none() {
        let body = br#"{"destination":"U1","events":{"type":"follow"}}"#;
        assert!(parse_events(body, NOW_MS).expect("parses").is_empty());
        assert_eq!(
            parse_events(b"[]", NOW_MS)
                .expect_err("not an object")
                .to_string(),
            "webhook body is not a LINE webhook: expected a JSON object"
        );
    }
}
