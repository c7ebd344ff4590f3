//! Webhooks from the WhatsApp Business Account: the `hub.challenge`
//! verification handshake, the `X-Hub-Signature-256` check, and the parsing
//! of notifications into normalised events.
//!
//! Everything here is pure; the adapter layer reads the secrets and passes
//! them in.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use switchboard_sdk::signature;
use switchboard_sdk::types::{
    ConsentChange, DeliveryState, EventKind, Failure, HttpRequest, HttpResponse, InboundMessage,
    Purpose, StatusUpdate, WebhookEvent, WebhookResult,
};

/// The header carrying `sha256=<hex HMAC-SHA256(app secret, raw body)>`.
pub const SIGNATURE_HEADER: &str = "x-hub-signature-256";

/// Answer Meta's `GET ?hub.mode=subscribe&hub.verify_token=…&hub.challenge=…`.
///
/// Replies 200 with the challenge as a plain body when the mode is
/// `subscribe` and the token equals `expected_token` (compared in constant
/// time); otherwise 403. A missing or empty expected token never verifies.
pub fn verify_handshake(
    mode: Option<&str>,
    token: Option<&str>,
    challenge: Option<&str>,
    expected_token: Option<&str>,
) -> HttpResponse {
    let expected = expected_token.filter(|expected| !expected.is_empty());
    match (mode, token, challenge, expected) {
        (Some("subscribe"), Some(token), Some(challenge), Some(expected))
            if signature::constant_time_eq(token.as_bytes(), expected.as_bytes()) =>
        {
            HttpResponse::text(200, challenge)
        }
        _ => HttpResponse::text(403, "verification failed"),
    }
}

/// [`verify_handshake`] with the parameters read from the request's query.
pub fn handshake(request: &HttpRequest, expected_token: Option<&str>) -> HttpResponse {
    verify_handshake(
        request.query("hub.mode").as_deref(),
        request.query("hub.verify_token").as_deref(),
        request.query("hub.challenge").as_deref(),
        expected_token,
    )
}

/// Whether `header` (the value of `X-Hub-Signature-256`) is `sha256=` and
/// the hex HMAC-SHA256 of `body` under `app_secret`, compared in constant
/// time. A missing header, another prefix, bad hex or an empty secret fail.
pub fn signature_valid(app_secret: &str, body: &[u8], header: Option<&str>) -> bool {
    if app_secret.is_empty() {
        return false;
    }
    match header
        .map(str::trim)
        .and_then(|h| h.strip_prefix("sha256="))
    {
        Some(hex) => signature::verify_hmac_sha256_hex(app_secret.as_bytes(), body, hex),
        None => false,
    }
}

/// Why a notification body could not be read.
#[derive(Debug)]
pub struct ParseError(serde_json::Error);

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "webhook body is not a WhatsApp notification: {}", self.0)
    }
}

impl std::error::Error for ParseError {}

/// Handle a signed `POST` notification: 401 and no events unless the
/// signature verifies, 400 if the body is not a JSON object, otherwise
/// `200 ok` with the events.
///
/// `received_at_ms` stands in for items that carry no usable timestamp.
pub fn handle_notification(
    request: &HttpRequest,
    app_secret: &str,
    received_at_ms: u64,
) -> WebhookResult {
    if !signature_valid(app_secret, &request.body, request.header(SIGNATURE_HEADER)) {
        return WebhookResult::reply(HttpResponse::unauthorized("invalid signature"));
    }
    match parse_events(&request.body, received_at_ms) {
        Ok(events) => WebhookResult::accepted(events),
        Err(error) => WebhookResult::reply(HttpResponse::text(400, error.to_string())),
    }
}

/// The events in a notification body, in the order Meta sent them: for each
/// change, its inbound messages, then its statuses, then its user
/// preferences.
///
/// Only changes with `field` `messages` or `user_preferences` are read;
/// other fields, unknown keys, unknown statuses and items that do not have
/// the expected shape are skipped. The body must be a JSON object.
pub fn parse_events(body: &[u8], received_at_ms: u64) -> Result<Vec<WebhookEvent>, ParseError> {
    let envelope: Envelope = serde_json::from_slice(body).map_err(ParseError)?;
    let mut events = Vec::new();
    for change in envelope.entry.iter().flat_map(|entry| &entry.changes) {
        if change.field != "messages" && change.field != "user_preferences" {
            continue;
        }
        let value = &change.value;
        events.extend(
            value
                .messages
                .iter()
                .filter_map(|m| m.event(received_at_ms)),
        );
        events.extend(
            value
                .statuses
                .iter()
                .filter_map(|s| s.event(received_at_ms)),
        );
        events.extend(
            value
                .user_preferences
                .iter()
                .filter_map(|p| p.event(received_at_ms)),
        );
    }
    Ok(events)
}

/// `{"object":"whatsapp_business_account","entry":[…]}`.
#[derive(Debug, Deserialize)]
struct Envelope {
    #[serde(default, deserialize_with = "lenient_list")]
    entry: Vec<Entry>,
}

/// One WhatsApp Business Account's changes.
#[derive(Debug, Deserialize)]
struct Entry {
    #[serde(default, deserialize_with = "lenient_list")]
    changes: Vec<Change>,
}

/// `{"field":"messages","value":{…}}`.
#[derive(Debug, Deserialize)]
struct Change {
    #[serde(default)]
    field: String,
    #[serde(default)]
    value: ChangeValue,
}

/// The arrays a change may carry.
#[derive(Debug, Default, Deserialize)]
struct ChangeValue {
    #[serde(default, deserialize_with = "lenient_list")]
    messages: Vec<Message>,
    #[serde(default, deserialize_with = "lenient_list")]
    statuses: Vec<Status>,
    #[serde(default, deserialize_with = "lenient_list")]
    user_preferences: Vec<UserPreference>,
}

/// A Unix timestamp in seconds, sent as a string (`"1749416383"`) in
/// messages and statuses and as a number in user preferences.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum Timestamp {
    Number(u64),
    Text(String),
}

impl Timestamp {
    fn seconds(&self) -> Option<u64> {
        match self {
            Timestamp::Number(seconds) => Some(*seconds),
            Timestamp::Text(text) => text.trim().parse().ok(),
        }
    }

    fn millis_or(timestamp: Option<&Self>, fallback_ms: u64) -> u64 {
        timestamp
            .and_then(Timestamp::seconds)
            .map_or(fallback_ms, |seconds| seconds.saturating_mul(1_000))
    }

    fn raw(timestamp: Option<&Self>) -> String {
        match timestamp {
            Some(Timestamp::Number(seconds)) => seconds.to_string(),
            Some(Timestamp::Text(text)) => text.clone(),
            None => String::new(),
        }
    }
}

/// An inbound message: `{"from","id","timestamp","type","text":{"body"}}`.
#[derive(Debug, Deserialize)]
struct Message {
    from: String,
    id: String,
    #[serde(default)]
    timestamp: Option<Timestamp>,
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    text: Option<Text>,
}

/// `messages[].text`.
#[derive(Debug, Deserialize)]
struct Text {
    #[serde(default)]
    body: String,
}

impl Message {
    fn event(&self, received_at_ms: u64) -> Option<WebhookEvent> {
        if self.id.is_empty() || self.from.is_empty() {
            return None;
        }
        let text = match (self.kind.as_str(), &self.text) {
            ("text", Some(text)) => Some(text.body.clone()),
            _ => None,
        };
        Some(WebhookEvent {
            id: self.id.clone(),
            occurred_at_ms: Timestamp::millis_or(self.timestamp.as_ref(), received_at_ms),
            kind: EventKind::Inbound(InboundMessage {
                sender: e164(&self.from),
                text,
                kind: self.kind.clone(),
            }),
        })
    }
}

/// A status: `{"id":"wamid…","status","timestamp","recipient_id",
/// "biz_opaque_callback_data","errors":[…]}`.
#[derive(Debug, Deserialize)]
struct Status {
    id: String,
    status: String,
    #[serde(default)]
    timestamp: Option<Timestamp>,
    #[serde(default)]
    recipient_id: Option<String>,
    /// What the send passed as `biz_opaque_callback_data`: the host's
    /// idempotency key of the message.
    #[serde(default)]
    biz_opaque_callback_data: Option<String>,
    #[serde(default, deserialize_with = "lenient_list")]
    errors: Vec<StatusError>,
}

/// `statuses[].errors[]`.
#[derive(Debug, Deserialize)]
struct StatusError {
    #[serde(default)]
    code: Option<i64>,
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    error_data: Option<StatusErrorData>,
}

/// `statuses[].errors[].error_data`.
#[derive(Debug, Deserialize)]
struct StatusErrorData {
    #[serde(default)]
    details: Option<String>,
}

impl StatusError {
    fn failure(&self) -> Failure {
        let nonempty = |s: &Option<String>| s.clone().filter(|s| !s.is_empty());
        let mut message = match (nonempty(&self.title), nonempty(&self.message)) {
            (Some(title), Some(message)) if title != message => format!("{title}: {message}"),
            (Some(text), _) | (None, Some(text)) => text,
            (None, None) => "WhatsApp reported a failure without a message".to_owned(),
        };
        if let Some(details) = self
            .error_data
            .as_ref()
            .and_then(|data| nonempty(&data.details))
            .filter(|details| !message.contains(details.as_str()))
        {
            message.push_str(" — ");
            message.push_str(&details);
        }
        let code = self.code.map(|code| code.to_string()).unwrap_or_default();
        Failure::new(code, message)
    }
}

impl Status {
    fn event(&self, received_at_ms: u64) -> Option<WebhookEvent> {
        let state = match self.status.as_str() {
            "sent" => DeliveryState::Sent,
            "delivered" => DeliveryState::Delivered,
            "read" => DeliveryState::Read,
            "failed" => DeliveryState::Failed,
            _ => return None,
        };
        if self.id.is_empty() {
            return None;
        }
        let failure = match state {
            DeliveryState::Failed => Some(self.errors.first().map_or_else(
                || Failure::new("", "WhatsApp reported the message failed without an error"),
                StatusError::failure,
            )),
            _ => None,
        };
        Some(WebhookEvent {
            id: format!("{}:{}", self.id, self.status),
            occurred_at_ms: Timestamp::millis_or(self.timestamp.as_ref(), received_at_ms),
            kind: EventKind::Status(StatusUpdate {
                platform_message_id: Some(self.id.clone()),
                state,
                recipient: self
                    .recipient_id
                    .as_deref()
                    .filter(|id| !id.is_empty())
                    .map(e164),
                failure,
                correlation_key: self
                    .biz_opaque_callback_data
                    .as_deref()
                    .map(str::trim)
                    .filter(|data| !data.is_empty())
                    .map(str::to_owned),
            }),
        })
    }
}

/// `{"wa_id","detail","category":"marketing_messages","value":"stop|resume","timestamp"}`.
#[derive(Debug, Deserialize)]
struct UserPreference {
    wa_id: String,
    #[serde(default)]
    category: String,
    #[serde(default)]
    value: String,
    #[serde(default)]
    timestamp: Option<Timestamp>,
}

impl UserPreference {
    fn event(&self, received_at_ms: u64) -> Option<WebhookEvent> {
        if self.category != "marketing_messages" || self.wa_id.is_empty() {
            return None;
        }
        let change = ConsentChange {
            address: e164(&self.wa_id),
            purpose: Some(Purpose::Marketing),
        };
        let kind = match self.value.as_str() {
            "stop" => EventKind::OptOut(change),
            "resume" => EventKind::OptIn(change),
            _ => return None,
        };
        Some(WebhookEvent {
            id: format!(
                "pref:{}:{}:{}",
                self.wa_id,
                Timestamp::raw(self.timestamp.as_ref()),
                self.value
            ),
            occurred_at_ms: Timestamp::millis_or(self.timestamp.as_ref(), received_at_ms),
            kind,
        })
    }
}

/// A WhatsApp id (`16505551234`) as an E.164 address (`+16505551234`).
fn e164(wa_id: &str) -> String {
    if wa_id.starts_with('+') {
        wa_id.to_owned()
    } else {
        format!("+{wa_id}")
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

    const APP_SECRET: &str = "c0ffee5ecret";
    const WAMID: &str = "wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBJDQjZCMzlEQUE4OTJBMTE4RTUA";
    const NOW_MS: u64 = 1_760_000_000_000;

    fn envelope(field: &str, value: serde_json::Value) -> Vec<u8> {
        serde_json::json!({
            "object": "whatsapp_business_account",
            "entry": [{
                "id": "102290129340398",
                "changes": [{"value": value, "field": field}]
            }]
        })
        .to_string()
        .into_bytes()
    }

    fn status(status: &str, extra: serde_json::Value) -> Vec<u8> {
        let mut item = serde_json::json!({
            "id": WAMID,
            "status": status,
            "timestamp": "1750263773",
            "recipient_id": "16505551234",
            "biz_opaque_callback_data": "3f1c5a0e9b7d4c2a",
            "pricing": {"billable": true, "pricing_model": "PMP", "category": "marketing", "type": "regular"}
        });
        if let (Some(item), Some(extra)) = (item.as_object_mut(), extra.as_object()) {
            item.extend(extra.clone());
        }
        envelope(
            "messages",
            serde_json::json!({
                "messaging_product": "whatsapp",
                "metadata": {"display_phone_number": "15550783881", "phone_number_id": "106540352242922"},
                "statuses": [item]
            }),
        )
    }

    fn signed(method: &str, body: Vec<u8>, header: Option<String>) -> HttpRequest {
        HttpRequest {
            method: method.into(),
            path_and_query: "/webhooks/whatsapp".into(),
            headers: header
                .map(|h| vec![(SIGNATURE_HEADER.to_owned(), h)])
                .unwrap_or_default(),
            body,
        }
    }

    fn sign(body: &[u8]) -> String {
        format!(
            "sha256={}",
            hex(&signature::hmac_sha256(APP_SECRET.as_bytes(), body))
        )
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn only(events: Vec<WebhookEvent>) -> WebhookEvent {
        assert_eq!(events.len(), 1, "{events:?}");
        events.into_iter().next().expect("one event")
    }

    fn status_update(event: &WebhookEvent) -> &StatusUpdate {
        match &event.kind {
            EventKind::Status(update) => update,
            other => panic!("not a status: {other:?}"),
        }
    }

    #[test]
    fn handshake_echoes_the_challenge_for_the_right_token() {
        let request = HttpRequest {
            method: "GET".into(),
            path_and_query:
                "/webhooks/whatsapp?hub.mode=subscribe&hub.challenge=1158201444&hub.verify_token=meatyhamhock"
                    .into(),
            headers: Vec::new(),
            body: Vec::new(),
        };
        let reply = handshake(&request, Some("meatyhamhock"));
        assert_eq!(reply.status, 200);
        assert_eq!(reply.body, b"1158201444");
        assert_eq!(handshake(&request, Some("other")).status, 403);
        assert_eq!(handshake(&request, None).status, 403);
    }

    #[test]
    fn handshake_rejects_bad_mode_missing_challenge_and_empty_tokens() {
        let ok = verify_handshake(Some("subscribe"), Some("t"), Some("42"), Some("t"));
        assert_eq!((ok.status, ok.body.as_slice()), (200, &b"42"[..]));
        for reply in [
            verify_handshake(Some("unsubscribe"), Some("t"), Some("42"), Some("t")),
            verify_handshake(None, Some("t"), Some("42"), Some("t")),
            verify_handshake(Some("subscribe"), None, Some("42"), Some("t")),
            verify_handshake(Some("subscribe"), Some("t"), None, Some("t")),
            verify_handshake(Some("subscribe"), Some("t2"), Some("42"), Some("t")),
            verify_handshake(Some("subscribe"), Some(""), Some("42"), Some("")),
        ] {
            assert_eq!(reply.status, 403);
        }
    }

    #[test]
    fn signature_accepts_the_right_hmac_only() {
        let body = status("sent", serde_json::json!({}));
        let good = sign(&body);
        assert!(signature_valid(APP_SECRET, &body, Some(&good)));
        assert!(signature_valid(
            APP_SECRET,
            &body,
            Some(&good.to_uppercase().replace("SHA256=", "sha256="))
        ));
        assert!(!signature_valid(APP_SECRET, &body, None));
        assert!(!signature_valid(
            APP_SECRET,
            &body,
            Some(good.trim_start_matches("sha256="))
        ));
        assert!(!signature_valid(
            APP_SECRET,
            &body,
            Some(&good.replace("sha256=", "sha1="))
        ));
        assert!(!signature_valid(APP_SECRET, &body, Some("sha256=zz")));
        assert!(!signature_valid("other secret", &body, Some(&good)));
        assert!(!signature_valid("", &body, Some(&good)));
        let mut tampered = body.clone();
        tampered.push(b' ');
        assert!(!signature_valid(APP_SECRET, &tampered, Some(&good)));
    }

    #[test]
    fn unsigned_or_badly_signed_posts_get_401_and_no_events() {
        let body = status("sent", serde_json::json!({}));
        for header in [
            None,
            Some("sha256=".to_owned()),
            Some("sha256=00".to_owned()),
            Some(format!("sha256={}", "0".repeat(64))),
        ] {
            let result =
                handle_notification(&signed("POST", body.clone(), header), APP_SECRET, NOW_MS);
            assert_eq!(result.response.status, 401);
            assert!(result.events.is_empty());
        }
    }

    #[test]
    fn signed_non_json_gets_400_and_no_events() {
        let body = b"this is not json".to_vec();
        let header = Some(sign(&body));
        let result = handle_notification(&signed("POST", body, header), APP_SECRET, NOW_MS);
        assert_eq!(result.response.status, 400);
        assert!(result.events.is_empty());
    }

    #[test]
    fn signed_notification_gets_200_ok_with_events() {
        let body = status("delivered", serde_json::json!({}));
        let header = Some(sign(&body));
        let result = handle_notification(&signed("POST", body, header), APP_SECRET, NOW_MS);
        assert_eq!(result.response.status, 200);
        assert_eq!(result.response.body, b"ok");
        assert_eq!(result.events.len(), 1);
    }

    #[test]
    fn parses_sent_delivered_and_read_statuses() {
        for (name, expected) in [
            ("sent", DeliveryState::Sent),
            ("delivered", DeliveryState::Delivered),
            ("read", DeliveryState::Read),
        ] {
            let event =
                only(parse_events(&status(name, serde_json::json!({})), NOW_MS).expect("parses"));
            assert_eq!(event.id, format!("{WAMID}:{name}"));
            assert_eq!(event.occurred_at_ms, 1_750_263_773_000);
            let update = status_update(&event);
            assert_eq!(update.platform_message_id.as_deref(), Some(WAMID));
            assert_eq!(update.state, expected);
            assert_eq!(update.recipient.as_deref(), Some("+16505551234"));
            assert!(update.failure.is_none());
        }
    }

    #[test]
    fn the_correlation_key_is_the_biz_opaque_callback_data() {
        let event =
            only(parse_events(&status("read", serde_json::json!({})), NOW_MS).expect("parses"));
        assert_eq!(
            status_update(&event).correlation_key.as_deref(),
            Some("3f1c5a0e9b7d4c2a")
        );
        // A status of a message sent without it (or with it blank) has none.
        for data in [
            serde_json::Value::Null,
            serde_json::json!(""),
            serde_json::json!("  "),
        ] {
            let body = status(
                "delivered",
                serde_json::json!({"biz_opaque_callback_data": data}),
            );
            let event = only(parse_events(&body, NOW_MS).expect("parses"));
            assert_eq!(status_update(&event).correlation_key, None, "{data:?}");
        }
    }

    #[test]
    fn parses_a_failed_status_with_its_first_error() {
        let body = status(
            "failed",
            serde_json::json!({"errors": [{
                "code": 131047,
                "title": "Re-engagement message",
                "message": "Re-engagement message",
                "error_data": {"details": "Message failed to send because more than 24 hours have passed since the customer last replied to this number."},
                "href": "https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes/"
            }, {"code": 1, "title": "second"}]}),
        );
        let event = only(parse_events(&body, NOW_MS).expect("parses"));
        assert_eq!(event.id, format!("{WAMID}:failed"));
        let update = status_update(&event);
        assert_eq!(update.state, DeliveryState::Failed);
        let failure = update.failure.as_ref().expect("failure");
        assert_eq!(failure.code, "131047");
        assert_eq!(
            failure.message,
            "Re-engagement message — Message failed to send because more than 24 hours have passed since the customer last replied to this number."
        );
    }

    #[test]
    fn failed_status_without_errors_still_has_a_failure() {
        let event =
            only(parse_events(&status("failed", serde_json::json!({})), NOW_MS).expect("parses"));
        let failure = status_update(&event).failure.as_ref().expect("failure");
        assert_eq!(failure.code, "");
    }

    #[test]
    fn parses_an_inbound_text_message() {
        let body = envelope(
            "messages",
            serde_json::json!({
                "messaging_product": "whatsapp",
                "metadata": {"display_phone_number": "15550783881", "phone_number_id": "106540352242922"},
                "contacts": [{"profile": {"name": "Sheena Nelson"}, "wa_id": "16505551234"}],
                "messages": [{
                    "from": "16505551234",
                    "id": "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA=",
                    "timestamp": "1749416383",
                    "type": "text",
                    "text": {"body": "Does it come in another color?"}
                }]
            }),
        );
        let event = only(parse_events(&body, NOW_MS).expect("parses"));
        assert_eq!(
            event.id,
            "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA="
        );
        assert_eq!(event.occurred_at_ms, 1_749_416_383_000);
        match event.kind {
            EventKind::Inbound(message) => {
                assert_eq!(message.sender, "+16505551234");
                assert_eq!(message.kind, "text");
                assert_eq!(
                    message.text.as_deref(),
                    Some("Does it come in another color?")
                );
            }
            other => panic!("not inbound: {other:?}"),
        }
    }

    #[test]
    fn inbound_non_text_has_its_kind_and_no_text() {
        let body = envelope(
            "messages",
            serde_json::json!({"messages": [{
                "from": "16505551234", "id": "wamid.IMG", "timestamp": "1749416383",
                "type": "image", "image": {"mime_type": "image/jpeg", "id": "1003383421387256"}
            }]}),
        );
        match only(parse_events(&body, NOW_MS).expect("parses")).kind {
            EventKind::Inbound(message) => {
                assert_eq!(message.kind, "image");
                assert!(message.text.is_none());
            }
            other => panic!("not inbound: {other:?}"),
        }
    }

    fn preference(value: &str) -> Vec<u8> {
        envelope(
            "user_preferences",
            serde_json::json!({
                "messaging_product": "whatsapp",
                "metadata": {"display_phone_number": "15550783881", "phone_number_id": "106540352242922"},
                "contacts": [{"profile": {"name": "Sheena Nelson"}, "wa_id": "16505551234"}],
                "user_preferences": [{
                    "wa_id": "16505551234",
                    "detail": "User requested to stop marketing messages",
                    "category": "marketing_messages",
                    "value": value,
                    "timestamp": 1731705721
                }]
            }),
        )
    }

    #[test]
    fn parses_marketing_stop_and_resume() {
        let stop = only(parse_events(&preference("stop"), NOW_MS).expect("parses"));
        assert_eq!(stop.id, "pref:16505551234:1731705721:stop");
        assert_eq!(stop.occurred_at_ms, 1_731_705_721_000);
        match stop.kind {
            EventKind::OptOut(change) => {
                assert_eq!(change.address, "+16505551234");
                assert_eq!(change.purpose, Some(Purpose::Marketing));
            }
            other => panic!("not opt-out: {other:?}"),
        }
        let resume = only(parse_events(&preference("resume"), NOW_MS).expect("parses"));
        assert_eq!(resume.id, "pref:16505551234:1731705721:resume");
        match resume.kind {
            EventKind::OptIn(change) => {
                assert_eq!(change.address, "+16505551234");
                assert_eq!(change.purpose, Some(Purpose::Marketing));
            }
            other => panic!("not opt-in: {other:?}"),
        }
    }

    #[test]
    fn ignores_unknown_fields_statuses_categories_and_odd_items() {
        let template_update = envelope(
            "message_template_status_update",
            serde_json::json!({"event": "APPROVED", "message_template_name": "order_update"}),
        );
        assert!(
            parse_events(&template_update, NOW_MS)
                .expect("parses")
                .is_empty()
        );
        assert!(
            parse_events(&status("deleted", serde_json::json!({})), NOW_MS)
                .expect("parses")
                .is_empty()
        );
        let other_category = envelope(
            "user_preferences",
            serde_json::json!({"user_preferences": [{"wa_id": "1", "category": "other", "value": "stop"}]}),
        );
        assert!(
            parse_events(&other_category, NOW_MS)
                .expect("parses")
                .is_empty()
        );
        // One malformed status does not cost the good one next to it, and a
        // missing timestamp falls back on the receive time.
        let mixed = envelope(
            "messages",
            serde_json::json!({"statuses": [
                {"status": "sent"},
                "nonsense",
                {"id": WAMID, "status": "read", "recipient_id": "16505551234"}
            ]}),
        );
        let event = only(parse_events(&mixed, NOW_MS).expect("parses"));
        assert_eq!(event.occurred_at_ms, NOW_MS);
        assert_eq!(event.id, format!("{WAMID}:read"));
        assert!(
            parse_events(br#"{"object":"whatsapp_business_account"}"#, NOW_MS)
                .expect("parses")
                .is_empty()
        );
        assert!(
            parse_events(br#"{"entry":"nope"}"#, NOW_MS)
                .expect("parses")
                .is_empty()
        );
        assert!(parse_events(b"[1,2]", NOW_MS).is_err());
        assert!(parse_events(b"", NOW_MS).is_err());
    }
}
