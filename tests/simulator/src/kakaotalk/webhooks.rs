//! `MESSAGE_RESULT_UPDATE` webhooks to the host, with the configured
//! `X-Toast-Webhook-Signature` string (NHN's "signature" is the static
//! string entered when the webhook was configured, not an HMAC).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use reqwest::header::{HeaderName, HeaderValue};
use serde_json::{Value, json};

use super::error::codes;
use super::{KakaoMessage, KakaoTalkState, kst, lock};
use crate::webhook_sender::{SignedRequest, WebhookError};

/// Name of NHN's signature header.
pub(crate) const SIGNATURE_HEADER: &str = "x-toast-webhook-signature";
/// The event name of delivery results.
pub(crate) const MESSAGE_RESULT_UPDATE: &str = "MESSAGE_RESULT_UPDATE";
/// `webhookConfigId` in every webhook.
pub(crate) const WEBHOOK_CONFIG_ID: &str = "sim-kakao-webhook-config";

/// The hook for one message's delivery result.
pub(crate) fn result_hook(
    state: &KakaoTalkState,
    message: &KakaoMessage,
    code: i64,
    now_ms: i64,
) -> Value {
    let mut hook = json!({
        "kakaoMessageType": message.kind.webhook_name(),
        "requestId": message.request_id,
        "recipientSeq": message.recipient_seq,
        "requestDate": kst::Local::of(message.received_at_ms).datetime(),
        "createDate": kst::Local::of(message.received_at_ms).datetime(),
        "receiveDate": kst::Local::of(now_ms).datetime(),
        "recipientNo": message.recipient_no,
        "resultCode": code.to_string(),
        "_links": {"self": {"href": message.kind.link(&state.app_key, &message.request_id, message.recipient_seq)}},
        "hookId": uuid::Uuid::new_v4().to_string(),
    });
    if let Some(object) = hook.as_object_mut() {
        if let Some(key) = &message.sender_grouping_key {
            object.insert("senderGroupingKey".into(), json!(key));
        }
        if let Some(key) = &message.recipient_grouping_key {
            object.insert("recipientGroupingKey".into(), json!(key));
        }
    }
    hook
}

/// The webhook envelope around `hooks`.
pub(crate) fn envelope(state: &KakaoTalkState, event: &str, hooks: Vec<Value>) -> Value {
    json!({
        "hooksId": uuid::Uuid::new_v4().simple().to_string(),
        "webhookConfigId": WEBHOOK_CONFIG_ID,
        "productName": "KakaoTalk Bizmessage",
        "appKey": state.app_key,
        "event": event,
        "hooks": hooks,
    })
}

/// A POST of `payload` to `url` with the signature header.
pub(crate) fn signed(state: &KakaoTalkState, url: &str, payload: &Value) -> SignedRequest {
    let request = SignedRequest::json(url, payload.to_string().into_bytes());
    match HeaderValue::from_str(&state.webhook_signature) {
        Ok(value) => request.with_header(HeaderName::from_static(SIGNATURE_HEADER), value),
        // A configured string with control characters cannot be a header;
        // the webhook then goes unsigned and the host refuses it.
        Err(_) => request,
    }
}

/// Queues one `MESSAGE_RESULT_UPDATE` carrying a result for every message
/// of a request, after the result delay: 1000 (delivered), or the code
/// set with `set_delivery_failure` for the number. Never blocks the API.
pub(crate) fn schedule_results(state: &Arc<KakaoTalkState>, messages: Vec<KakaoMessage>) {
    if messages.is_empty()
        || !state.send_results.load(Ordering::Relaxed)
        || state.webhook_url().is_none()
    {
        return;
    }
    let job_state = Arc::clone(state);
    let job = async move {
        let state = job_state;
        let delay = state.result_delay_ms.load(Ordering::Relaxed);
        if delay > 0 {
            tokio::time::sleep(Duration::from_millis(delay)).await;
        }
        if let Err(error) = post_results(&state, &messages).await {
            tracing::warn!(%error, "kakaotalk: result webhook not delivered");
        }
    };
    if let Err(error) = state.sender.enqueue(job) {
        tracing::warn!(%error, "kakaotalk: result webhook dropped");
    }
}

/// Posts the results of `messages` now, in one webhook.
pub(crate) async fn post_results(
    state: &KakaoTalkState,
    messages: &[KakaoMessage],
) -> Result<(), WebhookError> {
    let url = state.webhook_url().ok_or(WebhookError::NoUrl)?;
    let now_ms = state.clock.now_unix_ms();
    let hooks: Vec<Value> = {
        let failures = lock(&state.delivery_failures);
        messages
            .iter()
            .map(|message| {
                let code = failures
                    .get(&message.recipient_no)
                    .copied()
                    .unwrap_or(codes::DELIVERED);
                result_hook(state, message, code, now_ms)
            })
            .collect()
    };
    let count = hooks.len() as u64;
    let payload = envelope(state, MESSAGE_RESULT_UPDATE, hooks);
    state.sender.post(signed(state, &url, &payload)).await?;
    state.results_posted.fetch_add(count, Ordering::Relaxed);
    Ok(())
}

/// Posts a template review event (`TSC01`–`TSC04`), which carries no
/// delivery results.
pub(crate) async fn post_template_status(
    state: &KakaoTalkState,
    template_code: &str,
    status: &str,
) -> Result<(), WebhookError> {
    let url = state.webhook_url().ok_or(WebhookError::NoUrl)?;
    let now = kst::Local::of(state.clock.now_unix_ms()).datetime();
    let payload = envelope(
        state,
        "TEMPLATE_STATUS_UPDATE",
        vec![json!({
            "senderKey": state.sender_key,
            "templateCode": template_code,
            "kakaoTemplateCode": template_code,
            "status": status,
            "comments": [],
            "updateDate": now,
            "hookId": uuid::Uuid::new_v4().to_string(),
        })],
    );
    state.sender.post(signed(state, &url, &payload)).await?;
    Ok(())
}
