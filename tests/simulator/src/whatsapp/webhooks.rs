//! Webhooks to the host: statuses, inbound messages and marketing
//! preferences, signed with `X-Hub-Signature-256` like Meta's.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use reqwest::header::{HeaderName, HeaderValue};
use serde_json::{Value, json};

use super::templates::TemplateCategory;
use super::{
    ControlError, DEFAULT_PROFILE_NAME, DISPLAY_PHONE_NUMBER, InboundMessage, MarketingPreference,
    WABA_ID, WhatsAppState, ids, lock, normalize_wa_id,
};
use crate::webhook_sender::{SignedRequest, WebhookError, hub_signature_256};

/// Name of Meta's signature header.
pub(crate) const SIGNATURE_HEADER: &str = "x-hub-signature-256";

/// The `pricing` (and `conversation.origin`) of a message's statuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Pricing {
    category: &'static str,
    billable: bool,
}

impl Pricing {
    /// Free-form text is a free service message; utility templates inside
    /// an open window are free; other templates are billed.
    pub(crate) fn for_message(template: Option<TemplateCategory>, window_open: bool) -> Self {
        match template {
            None => Self {
                category: "service",
                billable: false,
            },
            Some(category) => Self {
                category: category.as_pricing_category(),
                billable: !(category == TemplateCategory::Utility && window_open),
            },
        }
    }

    fn json(self) -> Value {
        json!({
            "billable": self.billable,
            "pricing_model": "PMP",
            "category": self.category,
            "type": if self.billable { "regular" } else { "free_customer_service" },
        })
    }
}

fn envelope(state: &WhatsAppState, field: &str, mut value: Value) -> Value {
    if let Some(obj) = value.as_object_mut() {
        obj.insert("messaging_product".into(), json!("whatsapp"));
        obj.insert(
            "metadata".into(),
            json!({
                "display_phone_number": DISPLAY_PHONE_NUMBER,
                "phone_number_id": state.phone_number_id,
            }),
        );
    }
    json!({
        "object": "whatsapp_business_account",
        "entry": [{
            "id": WABA_ID,
            "changes": [{"field": field, "value": value}],
        }],
    })
}

fn signed(state: &WhatsAppState, url: &str, payload: &Value) -> SignedRequest {
    let body = payload.to_string().into_bytes();
    let signature = hub_signature_256(state.app_secret.as_bytes(), &body);
    let request = SignedRequest::json(url, body);
    match HeaderValue::from_str(&signature) {
        Ok(value) => request.with_header(HeaderName::from_static(SIGNATURE_HEADER), value),
        // A hex string is always a valid header value.
        Err(_) => request,
    }
}

/// Queues the sent → delivered → read status webhooks of an accepted
/// message, `status_delay_ms` apart, if statuses are on and a webhook URL is
/// set. Never blocks the API path.
pub(crate) fn schedule_statuses(
    state: &Arc<WhatsAppState>,
    wamid: &str,
    recipient: &str,
    pricing: Pricing,
    callback_data: Option<String>,
) {
    if !state.send_statuses.load(Ordering::Relaxed) || state.webhook_url().is_none() {
        return;
    }
    let job_state = Arc::clone(state);
    let wamid = wamid.to_owned();
    let recipient = recipient.to_owned();
    let job = async move {
        let state = job_state;
        let conversation_id = ids::conversation_id();
        let mut conversation_expires: Option<i64> = None;
        for status in ["sent", "delivered", "read"] {
            let delay = state.status_delay_ms.load(Ordering::Relaxed);
            if delay > 0 {
                tokio::time::sleep(Duration::from_millis(delay)).await;
            }
            let Some(url) = state.webhook_url() else {
                return;
            };
            let now = state.clock.now_unix();
            let mut status_obj = json!({
                "id": wamid,
                "status": status,
                "timestamp": now.to_string(),
                "recipient_id": recipient,
            });
            if let Some(obj) = status_obj.as_object_mut() {
                if status != "read" {
                    let expires = *conversation_expires.get_or_insert(now + super::WINDOW_SECS);
                    obj.insert(
                        "conversation".into(),
                        json!({
                            "id": conversation_id,
                            "expiration_timestamp": expires.to_string(),
                            "origin": {"type": pricing.category},
                        }),
                    );
                    obj.insert("pricing".into(), pricing.json());
                }
                if let Some(data) = &callback_data {
                    obj.insert("biz_opaque_callback_data".into(), json!(data));
                }
            }
            let payload = envelope(&state, "messages", json!({"statuses": [status_obj]}));
            match state.sender.post(signed(&state, &url, &payload)).await {
                Ok(_) => {
                    state.statuses_posted.fetch_add(1, Ordering::Relaxed);
                }
                Err(error) => {
                    tracing::warn!(%wamid, status, %error, "whatsapp: status webhook not delivered");
                }
            }
        }
    };
    if let Err(error) = state.sender.enqueue(job) {
        tracing::warn!(%error, "whatsapp: status webhooks dropped");
    }
}

/// Opens the sender's window and posts an inbound text-message webhook.
pub(crate) async fn deliver_inbound(
    state: &Arc<WhatsAppState>,
    message: InboundMessage,
) -> Result<String, ControlError> {
    let wa_id = normalize_wa_id(&message.from)?;
    if message.text.is_empty() {
        return Err(ControlError::Invalid("text must not be empty".into()));
    }
    let at = message.at_unix.unwrap_or_else(|| state.clock.now_unix());
    {
        let mut windows = lock(&state.windows);
        let last = windows.entry(wa_id.clone()).or_insert(at);
        *last = (*last).max(at);
    }
    let wamid = ids::wamid(&wa_id);
    let url = state.webhook_url().ok_or(WebhookError::NoUrl)?;
    let name = message
        .name
        .unwrap_or_else(|| DEFAULT_PROFILE_NAME.to_owned());
    let payload = envelope(
        state,
        "messages",
        json!({
            "contacts": [{"profile": {"name": name}, "wa_id": wa_id}],
            "messages": [{
                "from": wa_id,
                "id": wamid,
                "timestamp": at.to_string(),
                "type": "text",
                "text": {"body": message.text},
            }],
        }),
    );
    state.sender.post(signed(state, &url, &payload)).await?;
    state.inbound_posted.fetch_add(1, Ordering::Relaxed);
    Ok(wamid)
}

/// Records a marketing stop/resume and posts the `user_preferences` webhook.
pub(crate) async fn post_preference(
    state: &Arc<WhatsAppState>,
    wa_id: &str,
    preference: MarketingPreference,
    name: Option<String>,
) -> Result<(), ControlError> {
    let wa_id = normalize_wa_id(wa_id)?;
    {
        let mut stopped = lock(&state.marketing_stopped);
        match preference {
            MarketingPreference::Stop => stopped.insert(wa_id.clone()),
            MarketingPreference::Resume => stopped.remove(&wa_id),
        };
    }
    let url = state.webhook_url().ok_or(WebhookError::NoUrl)?;
    let detail = match preference {
        MarketingPreference::Stop => "User requested to stop marketing messages",
        MarketingPreference::Resume => "User requested to resume marketing messages",
    };
    let name = name.unwrap_or_else(|| DEFAULT_PROFILE_NAME.to_owned());
    let payload = envelope(
        state,
        "user_preferences",
        json!({
            "contacts": [{"profile": {"name": name}, "wa_id": wa_id}],
            "user_preferences": [{
                "wa_id": wa_id,
                "detail": detail,
                "category": "marketing_messages",
                "value": preference.as_str(),
                "timestamp": state.clock.now_unix(),
            }],
        }),
    );
    state.sender.post(signed(state, &url, &payload)).await?;
    state.preferences_posted.fetch_add(1, Ordering::Relaxed);
    Ok(())
}
