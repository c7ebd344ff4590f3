//! Webhooks to the host, as RBM sends them: Pub/Sub-style pushes whose
//! `message.data` is the base64 event JSON, signed with
//! `X-Goog-Signature: base64(HMAC-SHA512(client token, event JSON))`; and
//! the setup handshake.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use rand::Rng as _;
use reqwest::header::{HeaderName, HeaderValue};
use serde_json::{Value, json};

use super::{
    MessageState, RcsControlError, RcsMessage, RcsState, TTL_SWEEP_INTERVAL, lock, normalize_phone,
    validate,
};
use crate::webhook_sender::{SignedRequest, WebhookError};

/// The signature header.
pub(crate) const SIGNATURE_HEADER: &str = "x-goog-signature";

static SEQUENCE: AtomicU64 = AtomicU64::new(1);

/// A unique id shaped like RBM's (`MxAbC…`).
fn unique_id(prefix: &str) -> String {
    let sequence = SEQUENCE.fetch_add(1, Ordering::Relaxed);
    let salt: u32 = rand::rng().random();
    format!("{prefix}{salt:08x}{sequence:010x}")
}

/// `base64(HMAC-SHA512(client_token, data))`.
pub fn goog_signature(client_token: &[u8], data: &[u8]) -> String {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = match Hmac::<sha2::Sha512>::new_from_slice(client_token) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC-SHA512 accepts keys of any length"),
    };
    mac.update(data);
    STANDARD.encode(mac.finalize().into_bytes())
}

/// The push envelope RBM posts for `data`, and its `X-Goog-Signature`
/// value under `client_token`.
pub fn push_body(
    client_token: &str,
    agent_id: &str,
    data: &Value,
    publish_time_ms: i64,
) -> (String, String) {
    let raw = data.to_string();
    let push_id = unique_id("");
    let published = validate::format_rfc3339(publish_time_ms);
    let envelope = json!({
        "message": {
            "attributes": {},
            "data": STANDARD.encode(&raw),
            "messageId": push_id,
            "message_id": push_id,
            "publishTime": published,
            "publish_time": published,
        },
        "subscription": format!("projects/rbm-{agent_id}/subscriptions/rbm-agent-subscription"),
    });
    let signature = goog_signature(client_token.as_bytes(), raw.as_bytes());
    (envelope.to_string(), signature)
}

/// The signed push carrying `data` to `url`.
fn signed_push(state: &RcsState, url: &str, data: &Value) -> SignedRequest {
    let (body, signature) = push_body(
        &state.client_token,
        &state.agent_id,
        data,
        state.clock.now_unix_ms(),
    );
    let request = SignedRequest::json(url, body);
    match HeaderValue::from_str(&signature) {
        Ok(value) => request.with_header(HeaderName::from_static(SIGNATURE_HEADER), value),
        // Base64 is always a valid header value.
        Err(_) => request,
    }
}

/// A user event about one of the agent's messages.
fn user_event(state: &RcsState, phone: &str, kind: &str, message_id: &str) -> Value {
    json!({
        "senderPhoneNumber": phone,
        "eventType": kind,
        "eventId": unique_id("Mx"),
        "messageId": message_id,
        "sendTime": validate::format_rfc3339(state.clock.now_unix_ms()),
        "agentId": state.agent_id,
    })
}

fn set_state(state: &RcsState, message_id: &str, new: MessageState) {
    if let Some(message) = lock(&state.messages)
        .iter_mut()
        .find(|m| m.message_id == message_id)
    {
        message.state = new;
    }
}

/// Queues the `DELIVERED` then `READ` webhooks of a delivered message,
/// `status_delay_ms` apart, if statuses are on and a webhook URL is set.
/// The message is marked read once `READ` is posted.
pub(crate) fn schedule_statuses(state: &Arc<RcsState>, message_id: &str, phone: &str) {
    if !state.send_statuses.load(Ordering::Relaxed) || state.webhook_url().is_none() {
        return;
    }
    let job_state = Arc::clone(state);
    let message_id = message_id.to_owned();
    let phone = phone.to_owned();
    let job = async move {
        let state = job_state;
        for kind in ["DELIVERED", "READ"] {
            let delay = state.status_delay_ms.load(Ordering::Relaxed);
            if delay > 0 {
                tokio::time::sleep(Duration::from_millis(delay)).await;
            }
            let Some(url) = state.webhook_url() else {
                return;
            };
            let data = user_event(&state, &phone, kind, &message_id);
            match state.sender.post(signed_push(&state, &url, &data)).await {
                Ok(_) => {
                    state.statuses_posted.fetch_add(1, Ordering::Relaxed);
                    if kind == "READ" {
                        set_state(&state, &message_id, MessageState::Read);
                    }
                }
                Err(error) => {
                    tracing::warn!(%message_id, kind, %error, "rcs: status webhook not delivered");
                }
            }
        }
    };
    if let Err(error) = state.sender.enqueue(job) {
        tracing::warn!(%error, "rcs: status webhooks dropped");
    }
}

/// Delivers the messages waiting for `phone` (not revoked): marks them
/// delivered and queues their status webhooks.
pub(crate) fn deliver_waiting(state: &Arc<RcsState>, phone: &str) {
    let delivered: Vec<String> = lock(&state.messages)
        .iter_mut()
        .filter(|m| m.phone == phone && m.state == MessageState::Pending)
        .map(|m| {
            m.state = MessageState::Delivered;
            m.message_id.clone()
        })
        .collect();
    for message_id in delivered {
        schedule_statuses(state, &message_id, phone);
    }
}

/// Marks revoked, and returns, every waiting message to an offline device
/// whose expiry has passed on the shared clock.
fn take_expired(state: &RcsState) -> Vec<RcsMessage> {
    let now = state.clock.now_unix_ms();
    let offline = lock(&state.offline).clone();
    lock(&state.messages)
        .iter_mut()
        .filter(|m| {
            m.state == MessageState::Pending
                && offline.contains(&m.phone)
                && m.expire_at_ms.is_some_and(|at| at <= now)
        })
        .map(|m| {
            m.state = MessageState::Revoked;
            m.clone()
        })
        .collect()
}

/// Posts the `TTL_EXPIRATION_REVOKED` server event for `message`.
async fn post_revocation(state: &RcsState, message: &RcsMessage) -> Result<(), WebhookError> {
    let url = state.webhook_url().ok_or(WebhookError::NoUrl)?;
    let data = json!({
        "phoneNumber": message.phone,
        "messageId": message.message_id,
        "agentId": state.agent_id,
        "eventType": "TTL_EXPIRATION_REVOKED",
        "eventId": unique_id("Sx"),
        "sendTime": validate::format_rfc3339(state.clock.now_unix_ms()),
    });
    state.sender.post(signed_push(state, &url, &data)).await?;
    state.revocations_posted.fetch_add(1, Ordering::Relaxed);
    Ok(())
}

/// Revokes what expired now and posts each revocation before returning.
pub(crate) async fn expire_due(state: &RcsState) -> Vec<String> {
    let mut revoked = Vec::new();
    for message in take_expired(state) {
        if let Err(error) = post_revocation(state, &message).await {
            tracing::warn!(message_id = %message.message_id, %error, "rcs: revocation webhook not delivered");
        }
        revoked.push(message.message_id);
    }
    revoked
}

/// The background TTL sweep: every [`TTL_SWEEP_INTERVAL`], revoke what
/// expired and queue the revocation webhooks. Ends with the state.
pub(crate) async fn sweep_forever(state: Weak<RcsState>) {
    loop {
        tokio::time::sleep(TTL_SWEEP_INTERVAL).await;
        let Some(state) = state.upgrade() else {
            return;
        };
        for message in take_expired(&state) {
            let job_state = Arc::clone(&state);
            let job = async move {
                if let Err(error) = post_revocation(&job_state, &message).await {
                    tracing::warn!(message_id = %message.message_id, %error, "rcs: revocation webhook not delivered");
                }
            };
            if let Err(error) = state.sender.enqueue(job) {
                tracing::warn!(%error, "rcs: revocation webhook dropped");
            }
        }
    }
}

/// Posts a user's text message; returns its `messageId`.
pub(crate) async fn deliver_inbound(
    state: &RcsState,
    from: &str,
    text: &str,
) -> Result<String, RcsControlError> {
    let phone = normalize_phone(from)?;
    if text.trim().is_empty() {
        return Err(RcsControlError::Invalid("text must not be empty".into()));
    }
    let url = state.webhook_url().ok_or(WebhookError::NoUrl)?;
    let message_id = unique_id("MsIn");
    let data = json!({
        "senderPhoneNumber": phone,
        "messageId": message_id,
        "sendTime": validate::format_rfc3339(state.clock.now_unix_ms()),
        "agentId": state.agent_id,
        "text": text,
    });
    state.sender.post(signed_push(state, &url, &data)).await?;
    state.inbound_posted.fetch_add(1, Ordering::Relaxed);
    Ok(message_id)
}

/// Posts a `SUBSCRIBE` / `UNSUBSCRIBE` user event.
pub(crate) async fn post_subscription(
    state: &RcsState,
    phone: &str,
    subscribed: bool,
) -> Result<(), RcsControlError> {
    let phone = normalize_phone(phone)?;
    let url = state.webhook_url().ok_or(WebhookError::NoUrl)?;
    let data = json!({
        "senderPhoneNumber": phone,
        "eventType": if subscribed { "SUBSCRIBE" } else { "UNSUBSCRIBE" },
        "eventId": unique_id("Mx"),
        "sendTime": validate::format_rfc3339(state.clock.now_unix_ms()),
        "agentId": state.agent_id,
    });
    state.sender.post(signed_push(state, &url, &data)).await?;
    state.subscriptions_posted.fetch_add(1, Ordering::Relaxed);
    Ok(())
}

/// The setup handshake: `{"clientToken","secret"}` must come back as the secret.
pub(crate) async fn verify_webhook(state: &RcsState) -> Result<(), RcsControlError> {
    let url = state.webhook_url().ok_or(WebhookError::NoUrl)?;
    let secret = unique_id("");
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| WebhookError::Transport(e.to_string()))?;
    let response = client
        .post(&url)
        .json(&json!({"clientToken": state.client_token, "secret": secret}))
        .send()
        .await
        .map_err(|e| WebhookError::Transport(e.to_string()))?;
    let status = response.status().as_u16();
    let body = response.text().await.unwrap_or_default();
    if status == 200 && body == secret {
        Ok(())
    } else {
        Err(RcsControlError::Handshake {
            status,
            body: body.chars().take(200).collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_base64_hmac_sha512() {
        // RFC 4231 test case 2.
        let expected = STANDARD.encode(
            (0..64)
                .map(|i| {
                    u8::from_str_radix(
                        &"164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea2505549758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737"[2 * i..2 * i + 2],
                        16,
                    )
                    .expect("hex")
                })
                .collect::<Vec<u8>>(),
        );
        assert_eq!(
            goog_signature(b"Jefe", b"what do ya want for nothing?"),
            expected
        );
    }

    #[test]
    fn ids_are_unique() {
        assert_ne!(unique_id("Mx"), unique_id("Mx"));
        assert!(unique_id("Mx").starts_with("Mx"));
    }
}
