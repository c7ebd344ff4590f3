//! Webhooks to the host: follow, unfollow, text messages, redeliveries and
//! the empty "Verify" request, signed with `x-line-signature` like LINE's.

use std::sync::Arc;

use base64::Engine as _;
use reqwest::header::{HeaderName, HeaderValue};
use serde_json::{Value, json};

use super::{LineControlError, LineState, check_user_id, ids, lock};
use crate::webhook_sender::{SignedRequest, WebhookError};

/// Name of LINE's signature header.
pub(crate) const SIGNATURE_HEADER: &str = "x-line-signature";

/// `base64(HMAC-SHA256(channel secret, body))`, the value of
/// `x-line-signature`.
pub fn line_signature(channel_secret: &[u8], body: &[u8]) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = match Hmac::<sha2::Sha256>::new_from_slice(channel_secret) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC-SHA256 accepts keys of any length"),
    };
    mac.update(body);
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// The common fields of an event from `user_id` now.
fn base_event(state: &LineState, kind: &str, user_id: &str) -> (String, Value) {
    let now_ms = state.clock.now_unix_ms();
    let id = ids::webhook_event_id(now_ms);
    let event = json!({
        "type": kind,
        "mode": "active",
        "timestamp": now_ms,
        "source": {"type": "user", "userId": user_id},
        "webhookEventId": id,
        "deliveryContext": {"isRedelivery": false},
    });
    (id, event)
}

fn with(mut event: Value, key: &str, value: Value) -> Value {
    if let Some(obj) = event.as_object_mut() {
        obj.insert(key.to_owned(), value);
    }
    event
}

/// Signs and posts `{"destination","events"}` to the webhook URL.
async fn post(state: &LineState, events: Vec<Value>) -> Result<(), LineControlError> {
    let url = state.webhook_url().ok_or(WebhookError::NoUrl)?;
    let body = json!({"destination": state.bot_user_id, "events": events})
        .to_string()
        .into_bytes();
    let signature = line_signature(state.channel_secret.as_bytes(), &body);
    let mut request = SignedRequest::json(url, body);
    if let Ok(value) = HeaderValue::from_str(&signature) {
        // Base64 is always a valid header value.
        request = request.with_header(HeaderName::from_static(SIGNATURE_HEADER), value);
    }
    state.sender.post(request).await?;
    Ok(())
}

/// Keeps a posted event for redelivery and posts it.
async fn post_event(
    state: &LineState,
    id: String,
    event: Value,
) -> Result<String, LineControlError> {
    lock(&state.events).insert(id.clone(), event.clone());
    post(state, vec![event]).await?;
    Ok(id)
}

/// Unblocks `user_id` and posts a `follow` event.
pub(crate) async fn follow(
    state: &Arc<LineState>,
    user_id: &str,
) -> Result<String, LineControlError> {
    let user_id = check_user_id(user_id)?;
    let was_blocked = lock(&state.blocked).remove(&user_id);
    let (id, event) = base_event(state, "follow", &user_id);
    let event = with(event, "replyToken", json!(ids::token()));
    let event = with(event, "follow", json!({"isUnblocked": was_blocked}));
    post_event(state, id, event).await
}

/// Blocks `user_id` and posts an `unfollow` event (which has no reply token).
pub(crate) async fn unfollow(
    state: &Arc<LineState>,
    user_id: &str,
) -> Result<String, LineControlError> {
    let user_id = check_user_id(user_id)?;
    lock(&state.blocked).insert(user_id.clone());
    let (id, event) = base_event(state, "unfollow", &user_id);
    post_event(state, id, event).await
}

/// Posts a text `message` event from `user_id`.
pub(crate) async fn text_message(
    state: &Arc<LineState>,
    user_id: &str,
    text: &str,
) -> Result<String, LineControlError> {
    let user_id = check_user_id(user_id)?;
    if text.is_empty() {
        return Err(LineControlError::Invalid("text must not be empty".into()));
    }
    let (id, event) = base_event(state, "message", &user_id);
    let event = with(event, "replyToken", json!(ids::token()));
    let event = with(
        event,
        "message",
        json!({"type": "text", "id": ids::message_id(), "quoteToken": ids::token(), "text": text}),
    );
    post_event(state, id, event).await
}

/// Posts an earlier event again with `deliveryContext.isRedelivery` true.
pub(crate) async fn redeliver(
    state: &Arc<LineState>,
    webhook_event_id: &str,
) -> Result<(), LineControlError> {
    let event = lock(&state.events)
        .get(webhook_event_id)
        .cloned()
        .ok_or_else(|| LineControlError::UnknownEvent(webhook_event_id.to_owned()))?;
    let event = with(event, "deliveryContext", json!({"isRedelivery": true}));
    post(state, vec![event]).await
}

/// Posts an empty `events` list (the console's "Verify" button).
pub(crate) async fn verify(state: &Arc<LineState>) -> Result<(), LineControlError> {
    post(state, Vec::new()).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_rfc_4231_in_base64() {
        // RFC 4231 test case 2: 5bdcc146…3843, base64-encoded.
        assert_eq!(
            line_signature(b"Jefe", b"what do ya want for nothing?"),
            "W9zBRr9gdU5qBCQmCJV1x1oAPwidJzmDnexYuWTsOEM="
        );
    }
}
