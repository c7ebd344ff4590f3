//! Pushes from WeChat to the Official Account's server URL: the
//! URL-verification handshake, signature checks, safe-mode decryption and
//! the parsing of messages and events into normalised events.
//!
//! Everything here is pure; the adapter layer reads the secrets and passes
//! them in.
//!
//! - `GET ?signature&timestamp&nonce&echostr`: 200 with `echostr` when the
//!   signature verifies, 403 otherwise.
//! - `POST ?signature&timestamp&nonce&openid[&encrypt_type=aes&msg_signature]`:
//!   401 unless `signature` verifies (and, in safe mode, `msg_signature`
//!   and the decryption with the configured AppID); 400 for a body that is
//!   not WeChat XML; otherwise 200 `success` with the events.

use switchboard_sdk::types::{
    ConsentChange, DeliveryState, EventKind, Failure, HttpRequest, HttpResponse, InboundMessage,
    Interaction, StatusUpdate, WebhookEvent, WebhookResult, WindowOpener,
};

use crate::crypto;
use crate::xml::{self, Fields};

/// What verifying a push needs, read from the adapter's configuration.
#[derive(Debug, Clone, Copy, Default)]
pub struct Secrets<'a> {
    /// The Token configured on the WeChat platform (signs every push).
    pub token: Option<&'a str>,
    /// The 43-character EncodingAESKey (safe mode).
    pub encoding_aes_key: Option<&'a str>,
    /// The Official Account's AppID, checked inside safe-mode messages.
    pub app_id: Option<&'a str>,
}

/// The body WeChat expects back: `success` (an empty body works too) stops
/// its retries. Nothing is replied to the user, so it is not encrypted.
pub const REPLY: &str = "success";

/// Answer WeChat's URL verification: 200 with `echostr` as a plain body
/// when `signature` is the SHA-1 of the sorted token, timestamp and nonce;
/// 403 otherwise (also without a configured token).
pub fn handshake(request: &HttpRequest, token: Option<&str>) -> HttpResponse {
    let token = token.unwrap_or_default();
    match (
        request.query("signature"),
        request.query("timestamp"),
        request.query("nonce"),
        request.query("echostr"),
    ) {
        (Some(signature), Some(timestamp), Some(nonce), Some(echostr))
            if crypto::signature_matches(token, &[&timestamp, &nonce], &signature) =>
        {
            HttpResponse::text(200, echostr)
        }
        _ => HttpResponse::text(403, "verification failed"),
    }
}

/// Handle a `POST` push (see the module docs). `received_at_ms` stands in
/// for events without a `CreateTime`.
pub fn handle_push(
    request: &HttpRequest,
    secrets: Secrets<'_>,
    received_at_ms: u64,
) -> WebhookResult {
    match read_push(request, secrets) {
        Ok(fields) => WebhookResult {
            response: HttpResponse::text(200, REPLY),
            events: event_of(&fields, received_at_ms).into_iter().collect(),
        },
        Err(refusal) => WebhookResult::reply(refusal.response()),
    }
}

/// Why a push was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// It could not be authenticated (signature, decryption, AppID): 401.
    Unauthorized(String),
    /// It is authentic but not a WeChat push: 400.
    BadRequest(String),
    /// It cannot be checked now (storage unavailable): 503, WeChat retries.
    Unavailable(String),
}

impl Refusal {
    /// The HTTP reply.
    pub fn response(&self) -> HttpResponse {
        match self {
            Refusal::Unauthorized(why) => HttpResponse::unauthorized(why),
            Refusal::BadRequest(why) => HttpResponse::text(400, why.as_str()),
            Refusal::Unavailable(why) => HttpResponse::text(503, why.as_str()),
        }
    }

    /// Why, in words.
    pub fn reason(&self) -> &str {
        match self {
            Refusal::Unauthorized(why) | Refusal::BadRequest(why) | Refusal::Unavailable(why) => {
                why
            }
        }
    }
}

/// How far a push's `timestamp` may be from the host's clock. WeChat signs
/// plain-mode pushes over the timestamp and nonce only (not the body), so a
/// captured signature must not be reusable later: stale pushes are refused
/// and each nonce is accepted once (see [`replay_key`]).
pub const FRESHNESS_SECONDS: u64 = 300;

/// Refuse a push whose `timestamp` is more than [`FRESHNESS_SECONDS`] from
/// `now_ms` (or missing).
pub fn check_fresh(request: &HttpRequest, now_ms: u64) -> Result<(), Refusal> {
    let timestamp = request
        .query("timestamp")
        .and_then(|t| t.parse::<u64>().ok())
        .ok_or_else(|| Refusal::Unauthorized("the push has no timestamp".into()))?;
    let now = now_ms / 1_000;
    if timestamp.abs_diff(now) > FRESHNESS_SECONDS {
        return Err(Refusal::Unauthorized(format!(
            "stale push: its timestamp is {} s from the host's clock (at most {FRESHNESS_SECONDS} s)",
            timestamp.abs_diff(now)
        )));
    }
    Ok(())
}

/// The durable-storage key that marks a push's timestamp and nonce as
/// seen; kept for twice the freshness window.
pub fn replay_key(request: &HttpRequest) -> String {
    format!(
        "push-nonce:{}:{}",
        request.query("timestamp").unwrap_or_default(),
        request.query("nonce").unwrap_or_default()
    )
}

/// Verify a push and return the message's fields (decrypted in safe mode).
/// Freshness and replays are checked by [`check_fresh`] and [`replay_key`].
pub fn read_push(request: &HttpRequest, secrets: Secrets<'_>) -> Result<Fields, Refusal> {
    let unauthorized = |why: &str| Refusal::Unauthorized(why.to_owned());
    let token = secrets
        .token
        .filter(|t| !t.is_empty())
        .ok_or_else(|| unauthorized("invalid signature (no token is configured)"))?;
    let timestamp = request.query("timestamp").unwrap_or_default();
    let nonce = request.query("nonce").unwrap_or_default();
    let signature = request.query("signature").unwrap_or_default();
    if !crypto::signature_matches(token, &[&timestamp, &nonce], &signature) {
        return Err(unauthorized("invalid signature"));
    }
    let body = std::str::from_utf8(&request.body)
        .map_err(|_| Refusal::BadRequest("the body is not UTF-8".into()))?;
    let outer = xml::parse(body).map_err(|error| Refusal::BadRequest(error.to_string()))?;
    match request.query("encrypt_type").as_deref() {
        None | Some("") | Some("raw") => Ok(outer),
        Some("aes") => {
            let encrypt = outer
                .non_empty("Encrypt")
                .ok_or_else(|| Refusal::BadRequest("safe-mode push without <Encrypt>".into()))?;
            let msg_signature = request.query("msg_signature").unwrap_or_default();
            if !crypto::signature_matches(token, &[&timestamp, &nonce, encrypt], &msg_signature) {
                return Err(unauthorized("invalid msg_signature"));
            }
            let key = secrets
                .encoding_aes_key
                .filter(|k| !k.is_empty())
                .ok_or_else(|| {
                    unauthorized("safe-mode push, but no encoding_aes_key is configured")
                })
                .and_then(|k| {
                    crypto::aes_key(k).map_err(|error| unauthorized(&error.to_string()))
                })?;
            let app_id = secrets
                .app_id
                .filter(|a| !a.is_empty())
                .ok_or_else(|| unauthorized("safe-mode push, but no app_id is configured"))?;
            let plain = crypto::decrypt(&key, app_id, encrypt)
                .map_err(|error| unauthorized(&error.to_string()))?;
            xml::parse(&plain).map_err(|error| Refusal::BadRequest(format!("decrypted {error}")))
        }
        Some(other) => Err(Refusal::BadRequest(format!(
            "unknown encrypt_type `{other}`"
        ))),
    }
}

/// The event a message or event push carries, if it is one the host acts on.
///
/// | Push | Event | Id |
/// |---|---|---|
/// | `MsgType` text, image, voice, video, shortvideo, location, link, file | inbound (text only for `text`) | `MsgId` |
/// | event `subscribe` (also a follow by scanning a code) | opt-in without a purpose (the operator's `opt_in_purposes` decide which; the host opens the follow window from it) | `FromUserName:CreateTime:subscribe` |
/// | event `unsubscribe` | opt-out, every purpose | `FromUserName:CreateTime:unsubscribe` |
/// | event `CLICK`, `VIEW` (menu tap), `SCAN` (a follower scans a code) | interaction, opener `interaction`, kind = `Event` | `FromUserName:CreateTime:{Event}` |
/// | event `TEMPLATESENDJOBFINISH` | status: `success` delivered, `failed…` failed | `FromUserName:CreateTime:TEMPLATESENDJOBFINISH:MsgID` |
///
/// Other events (location reports, mass-send results, …) and pushes
/// without a `FromUserName` carry none.
pub fn event_of(fields: &Fields, received_at_ms: u64) -> Option<WebhookEvent> {
    let from = fields.non_empty("FromUserName")?;
    let create_time = fields.non_empty("CreateTime");
    let occurred_at_ms = create_time
        .and_then(|t| t.parse::<u64>().ok())
        .map_or(received_at_ms, |seconds| seconds.saturating_mul(1_000));
    let event_id = |suffix: &str| format!("{from}:{}:{suffix}", create_time.unwrap_or("0"));
    let msg_type = fields.non_empty("MsgType")?;
    let (id, kind) = match msg_type {
        "event" => {
            let event = fields.non_empty("Event")?;
            match event {
                "subscribe" | "unsubscribe" => {
                    let change = ConsentChange {
                        address: from.to_owned(),
                        purpose: None,
                    };
                    let kind = if event == "subscribe" {
                        EventKind::OptIn(change)
                    } else {
                        EventKind::OptOut(change)
                    };
                    (event_id(event), kind)
                }
                // A tap on a menu item (CLICK: a key the account handles;
                // VIEW: a link) or a follower scanning a parametric QR code
                // opens the one-minute customer-service window.
                "CLICK" | "VIEW" | "SCAN" => (
                    event_id(event),
                    EventKind::Interaction(Interaction {
                        address: from.to_owned(),
                        opener: WindowOpener::Interaction,
                        kind: event.to_owned(),
                    }),
                ),
                "TEMPLATESENDJOBFINISH" => {
                    let msg_id = fields
                        .non_empty("MsgID")
                        .or_else(|| fields.non_empty("MsgId"))?;
                    let status = fields.non_empty("Status")?;
                    let (state, failure) = template_status(status)?;
                    (
                        event_id(&format!("TEMPLATESENDJOBFINISH:{msg_id}")),
                        EventKind::Status(StatusUpdate {
                            platform_message_id: Some(msg_id.to_owned()),
                            state,
                            recipient: Some(from.to_owned()),
                            failure,
                            correlation_key: None,
                        }),
                    )
                }
                _ => return None,
            }
        }
        "text" | "image" | "voice" | "video" | "shortvideo" | "location" | "link" | "file" => {
            let id = fields
                .non_empty("MsgId")
                .map_or_else(|| event_id(msg_type), str::to_owned);
            let text =
                (msg_type == "text").then(|| fields.get("Content").unwrap_or_default().to_owned());
            (
                id,
                EventKind::Inbound(InboundMessage {
                    sender: from.to_owned(),
                    text,
                    kind: msg_type.to_owned(),
                }),
            )
        }
        _ => return None,
    };
    Some(WebhookEvent {
        id,
        occurred_at_ms,
        kind,
    })
}

/// A `TEMPLATESENDJOBFINISH` `Status`: `success`, `failed:user block`
/// (the user refused the account's messages) or `failed: system failed`.
fn template_status(status: &str) -> Option<(DeliveryState, Option<Failure>)> {
    if status == "success" {
        return Some((DeliveryState::Delivered, None));
    }
    let reason = status
        .strip_prefix("failed")?
        .trim_start_matches(':')
        .trim();
    let message = match reason {
        "user block" => "the user refused messages from this Official Account".to_owned(),
        "system failed" => "WeChat failed to deliver the template message".to_owned(),
        "" => "WeChat reported the template message failed".to_owned(),
        other => format!("WeChat reported the template message failed: {other}"),
    };
    Some((DeliveryState::Failed, Some(Failure::new(status, message))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{self, Vector, VectorSet};

    const NOW_MS: u64 = 1_760_000_000_000;

    fn request(method: &str, query: &str, body: &str) -> HttpRequest {
        HttpRequest {
            method: method.into(),
            path_and_query: format!("/webhooks/wechat?{query}"),
            headers: vec![("content-type".into(), "text/xml".into())],
            body: body.as_bytes().to_vec(),
        }
    }

    fn secrets(set: &VectorSet) -> Secrets<'_> {
        Secrets {
            token: Some(&set.token),
            encoding_aes_key: Some(&set.encoding_aes_key),
            app_id: Some(&set.app_id),
        }
    }

    fn safe_push(v: &Vector) -> HttpRequest {
        request("POST", &v.query(), &v.body)
    }

    fn plain_push(set: &VectorSet, v: &Vector) -> HttpRequest {
        let signature = crypto::sorted_sha1(&[&set.token, &v.timestamp, &v.nonce]);
        request(
            "POST",
            &format!(
                "signature={signature}&timestamp={}&nonce={}&openid={}",
                v.timestamp, v.nonce, v.openid
            ),
            &v.plaintext,
        )
    }

    fn only(result: WebhookResult) -> WebhookEvent {
        assert_eq!(result.response.status, 200, "{:?}", result.response);
        assert_eq!(result.response.body, b"success");
        assert_eq!(result.events.len(), 1, "{:?}", result.events);
        result.events.into_iter().next().expect("one event")
    }

    /// Check an event against a vector's `expect`.
    fn check(event: &WebhookEvent, v: &Vector) {
        let (expect, name) = (&v.expect, v.name.as_str());
        let s = |key: &str| expect[key].as_str().unwrap_or_default().to_owned();
        assert_eq!(event.id, s("id"), "{name}");
        assert_eq!(
            event.occurred_at_ms,
            expect["occurred_at_ms"].as_u64().expect("time"),
            "{name}"
        );
        match (s("kind").as_str(), &event.kind) {
            ("inbound", EventKind::Inbound(message)) => {
                assert_eq!(message.sender, s("sender"), "{name}");
                assert_eq!(message.kind, "text", "{name}");
                if let Some(text) = expect["text"].as_str() {
                    assert_eq!(message.text.as_deref(), Some(text), "{name}");
                }
            }
            ("opt-in", EventKind::OptIn(change)) | ("opt-out", EventKind::OptOut(change)) => {
                assert_eq!(change.address, s("address"), "{name}");
                assert_eq!(change.purpose, None, "{name}");
            }
            ("status", EventKind::Status(update)) => {
                assert_eq!(
                    update.platform_message_id.as_deref(),
                    Some(s("platform_message_id").as_str()),
                    "{name}"
                );
                let state = match s("state").as_str() {
                    "delivered" => DeliveryState::Delivered,
                    "failed" => DeliveryState::Failed,
                    other => panic!("{other}"),
                };
                assert_eq!(update.state, state, "{name}");
                assert_eq!(
                    update.recipient.as_deref(),
                    Some(v.openid.as_str()),
                    "{name}"
                );
                assert_eq!(
                    update.failure.as_ref().map(|f| f.code.clone()),
                    expect["failure"].as_str().map(str::to_owned),
                    "{name}"
                );
            }
            (kind, other) => panic!("{name}: expected {kind}, got {other:?}"),
        }
    }

    #[test]
    fn handshake_echoes_echostr_for_the_documented_example() {
        let set = fixtures::load();
        let h = &set.handshake;
        let query = format!(
            "signature={}&timestamp={}&nonce={}&echostr={}",
            h.signature, h.timestamp, h.nonce, h.echostr
        );
        let reply = handshake(&request("GET", &query, ""), Some(&set.token));
        assert_eq!(reply.status, 200);
        assert_eq!(reply.body, h.echostr.as_bytes());
        assert_eq!(
            handshake(&request("GET", &query, ""), Some("other")).status,
            403
        );
        assert_eq!(handshake(&request("GET", &query, ""), None).status, 403);
        assert_eq!(handshake(&request("GET", &query, ""), Some("")).status, 403);
        let no_echo = format!(
            "signature={}&timestamp={}&nonce={}",
            h.signature, h.timestamp, h.nonce
        );
        assert_eq!(
            handshake(&request("GET", &no_echo, ""), Some(&set.token)).status,
            403
        );
        let tampered = query.replace(&h.nonce, "1372623150");
        assert_eq!(
            handshake(&request("GET", &tampered, ""), Some(&set.token)).status,
            403
        );
    }

    #[test]
    fn every_wechatpy_vector_reads_as_expected_in_safe_mode() {
        let set = fixtures::load();
        for v in set
            .vectors
            .iter()
            .filter(|v| v.expect["kind"] != "rejected")
        {
            let event = only(handle_push(&safe_push(v), secrets(&set), NOW_MS));
            check(&event, v);
        }
    }

    #[test]
    fn the_same_messages_read_the_same_in_plain_mode() {
        let set = fixtures::load();
        for v in set
            .vectors
            .iter()
            .filter(|v| v.expect["kind"] != "rejected")
        {
            let event = only(handle_push(&plain_push(&set, v), secrets(&set), NOW_MS));
            check(&event, v);
            // Plain mode needs no AES key or AppID.
            let token_only = Secrets {
                token: Some(&set.token),
                ..Secrets::default()
            };
            let event = only(handle_push(&plain_push(&set, v), token_only, NOW_MS));
            check(&event, v);
        }
    }

    #[test]
    fn a_message_for_another_account_is_refused() {
        let set = fixtures::load();
        let result = handle_push(
            &safe_push(set.vector("other_app_id")),
            secrets(&set),
            NOW_MS,
        );
        assert_eq!(result.response.status, 401);
        assert!(String::from_utf8_lossy(&result.response.body).contains("wx0000000000000000"));
        assert!(result.events.is_empty());
    }

    #[test]
    fn forged_or_tampered_pushes_get_401_and_no_events() {
        let set = fixtures::load();
        let v = set.vector("inbound_text");
        let cases = [
            // Wrong signature.
            (
                v.query().replace(&v.signature, &"0".repeat(40)),
                v.body.clone(),
                "invalid signature",
            ),
            // No signature at all.
            (
                format!(
                    "timestamp={}&nonce={}&encrypt_type=aes&msg_signature={}",
                    v.timestamp, v.nonce, v.msg_signature
                ),
                v.body.clone(),
                "invalid signature",
            ),
            // Right signature, forged msg_signature.
            (
                v.query().replace(&v.msg_signature, &"1".repeat(40)),
                v.body.clone(),
                "invalid msg_signature",
            ),
            // Replaced ciphertext: msg_signature no longer matches.
            (
                v.query(),
                v.body.replace(&v.encrypt, &set.vector("subscribe").encrypt),
                "invalid msg_signature",
            ),
        ];
        for (query, body, why) in cases {
            let result = handle_push(&request("POST", &query, &body), secrets(&set), NOW_MS);
            assert_eq!(result.response.status, 401, "{why}");
            assert_eq!(String::from_utf8_lossy(&result.response.body), why);
            assert!(result.events.is_empty());
        }
        // In plain mode WeChat's `signature` covers no body: a genuine
        // query with another body still verifies. Safe mode's
        // `msg_signature` covers the ciphertext, which is why it is
        // recommended (see the tampered-ciphertext case above).
        let mut swapped = plain_push(&set, v);
        swapped.body = set.vector("subscribe").plaintext.clone().into_bytes();
        assert_eq!(
            handle_push(&swapped, secrets(&set), NOW_MS).response.status,
            200
        );
    }

    #[test]
    fn safe_mode_without_the_key_or_app_id_is_refused() {
        let set = fixtures::load();
        let v = set.vector("inbound_text");
        for (secrets, why) in [
            (
                Secrets {
                    encoding_aes_key: None,
                    ..secrets(&set)
                },
                "no encoding_aes_key",
            ),
            (
                Secrets {
                    encoding_aes_key: Some("short"),
                    ..secrets(&set)
                },
                "invalid EncodingAESKey",
            ),
            (
                Secrets {
                    app_id: None,
                    ..secrets(&set)
                },
                "no app_id",
            ),
            (
                Secrets {
                    app_id: Some("wxother"),
                    ..secrets(&set)
                },
                "wxb11529c136998cb6",
            ),
            (
                Secrets {
                    token: None,
                    ..secrets(&set)
                },
                "no token",
            ),
        ] {
            let result = handle_push(&safe_push(v), secrets, NOW_MS);
            assert_eq!(result.response.status, 401, "{why}");
            let body = String::from_utf8_lossy(&result.response.body).into_owned();
            assert!(body.contains(why), "{why}: {body}");
            assert!(result.events.is_empty());
        }
    }

    #[test]
    fn signed_garbage_gets_400() {
        let set = fixtures::load();
        let v = set.vector("inbound_text");
        let signed = |body: &str, extra: &str| {
            let signature = crypto::sorted_sha1(&[&set.token, &v.timestamp, &v.nonce]);
            request(
                "POST",
                &format!(
                    "signature={signature}&timestamp={}&nonce={}{extra}",
                    v.timestamp, v.nonce
                ),
                body,
            )
        };
        for (req, why) in [
            (signed("{\"json\":1}", ""), "not a WeChat XML push"),
            (
                signed("<xml><ToUserName>x</ToUserName></xml>", "&encrypt_type=aes"),
                "without <Encrypt>",
            ),
            (
                signed("<xml/>", "&encrypt_type=sm4"),
                "unknown encrypt_type `sm4`",
            ),
        ] {
            let result = handle_push(&req, secrets(&set), NOW_MS);
            assert_eq!(result.response.status, 400, "{why}");
            assert!(
                String::from_utf8_lossy(&result.response.body).contains(why),
                "{why}"
            );
        }
        let mut binary = signed("", "");
        binary.body = vec![0xff, 0xfe];
        assert_eq!(
            handle_push(&binary, secrets(&set), NOW_MS).response.status,
            400
        );
    }

    fn fields(xml: &str) -> Fields {
        xml::parse(xml).expect("xml")
    }

    #[test]
    fn inbound_non_text_has_its_kind_and_no_text() {
        let event = event_of(
            &fields("<xml><FromUserName>oUser</FromUserName><CreateTime>1700000000</CreateTime><MsgType>image</MsgType><PicUrl>http://x</PicUrl><MsgId>42</MsgId></xml>"),
            NOW_MS,
        )
        .expect("event");
        assert_eq!(event.id, "42");
        match event.kind {
            EventKind::Inbound(message) => {
                assert_eq!(message.kind, "image");
                assert_eq!(message.text, None);
                assert_eq!(message.sender, "oUser");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn template_failures_and_odd_statuses() {
        let push = |status: &str| {
            fields(&format!(
                "<xml><FromUserName>oUser</FromUserName><CreateTime>1700000000</CreateTime><MsgType>event</MsgType><Event>TEMPLATESENDJOBFINISH</Event><MsgID>7</MsgID><Status><![CDATA[{status}]]></Status></xml>"
            ))
        };
        let event = event_of(&push("failed: system failed"), NOW_MS).expect("event");
        assert_eq!(event.id, "oUser:1700000000:TEMPLATESENDJOBFINISH:7");
        match event.kind {
            EventKind::Status(update) => {
                assert_eq!(update.state, DeliveryState::Failed);
                let failure = update.failure.expect("failure");
                assert_eq!(failure.code, "failed: system failed");
                assert_eq!(
                    failure.message,
                    "WeChat failed to deliver the template message"
                );
            }
            other => panic!("{other:?}"),
        }
        match event_of(&push("failed:user block"), NOW_MS)
            .expect("event")
            .kind
        {
            EventKind::Status(update) => assert_eq!(
                update.failure.expect("failure").message,
                "the user refused messages from this Official Account"
            ),
            other => panic!("{other:?}"),
        }
        assert!(event_of(&push("pending"), NOW_MS).is_none());
    }

    #[test]
    fn pushes_without_meaning_for_the_host_carry_no_event() {
        for xml in [
            "<xml><FromUserName>oUser</FromUserName><MsgType>event</MsgType><Event>LOCATION</Event><Latitude>23.1</Latitude></xml>",
            "<xml><FromUserName>oUser</FromUserName><MsgType>event</MsgType><Event>MASSSENDJOBFINISH</Event></xml>",
            "<xml><MsgType>event</MsgType><Event>CLICK</Event><EventKey>MENU</EventKey></xml>",
            "<xml><MsgType>text</MsgType><Content>no sender</Content><MsgId>1</MsgId></xml>",
            "<xml><FromUserName>oUser</FromUserName><MsgType>miniprogrampage</MsgType></xml>",
            "<xml><FromUserName>oUser</FromUserName><MsgType>event</MsgType><Event>TEMPLATESENDJOBFINISH</Event><Status>success</Status></xml>",
        ] {
            assert!(event_of(&fields(xml), NOW_MS).is_none(), "{xml}");
        }
    }

    #[test]
    fn menu_taps_and_scans_are_interactions() {
        for (event, extra) in [
            ("CLICK", "<EventKey>V1001_TODAY_MUSIC</EventKey>"),
            ("VIEW", "<EventKey>https://example.com/shop</EventKey>"),
            ("SCAN", "<EventKey>123123</EventKey><Ticket>TICKET</Ticket>"),
        ] {
            let push = fields(&format!(
                "<xml><ToUserName>gh_account</ToUserName><FromUserName>oUser</FromUserName><CreateTime>1700000000</CreateTime><MsgType>event</MsgType><Event>{event}</Event>{extra}</xml>"
            ));
            let pushed = event_of(&push, NOW_MS).expect("event");
            assert_eq!(pushed.id, format!("oUser:1700000000:{event}"));
            assert_eq!(pushed.occurred_at_ms, 1_700_000_000_000);
            match pushed.kind {
                EventKind::Interaction(interaction) => {
                    assert_eq!(interaction.address, "oUser");
                    assert_eq!(interaction.opener, WindowOpener::Interaction);
                    assert_eq!(interaction.kind, event);
                }
                other => panic!("{event}: {other:?}"),
            }
        }
    }

    #[test]
    fn a_follow_by_scanning_a_code_stays_an_opt_in() {
        let push = fields(
            "<xml><FromUserName>oUser</FromUserName><CreateTime>1700000000</CreateTime><MsgType>event</MsgType><Event>subscribe</Event><EventKey>qrscene_123123</EventKey><Ticket>TICKET</Ticket></xml>",
        );
        let event = event_of(&push, NOW_MS).expect("event");
        assert_eq!(event.id, "oUser:1700000000:subscribe");
        match event.kind {
            EventKind::OptIn(change) => {
                assert_eq!(change.address, "oUser");
                assert_eq!(change.purpose, None);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn missing_create_time_falls_back_on_the_receive_time() {
        let event = event_of(
            &fields("<xml><FromUserName>oUser</FromUserName><MsgType>event</MsgType><Event>subscribe</Event></xml>"),
            NOW_MS,
        )
        .expect("event");
        assert_eq!(event.occurred_at_ms, NOW_MS);
        assert_eq!(event.id, "oUser:0:subscribe");
    }

    #[test]
    fn stale_pushes_are_refused_and_nonces_keyed_per_push() {
        let request = |query: &str| HttpRequest {
            method: "POST".into(),
            path_and_query: format!("/webhooks/wechat?{query}"),
            headers: Vec::new(),
            body: Vec::new(),
        };
        let now_ms = 1_700_000_000_000;
        assert!(check_fresh(&request("timestamp=1700000100&nonce=1"), now_ms).is_ok());
        let stale = check_fresh(&request("timestamp=1699990000&nonce=1"), now_ms).unwrap_err();
        assert!(stale.reason().contains("stale push"), "{}", stale.reason());
        assert_eq!(stale.response().status, 401);
        assert!(check_fresh(&request("nonce=1"), now_ms).is_err());
        assert_ne!(
            replay_key(&request("timestamp=1&nonce=2")),
            replay_key(&request("timestamp=1&nonce=3"))
        );
    }
}
