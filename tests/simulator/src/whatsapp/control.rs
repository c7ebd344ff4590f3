//! `/_sim/whatsapp/...`: the control routes of the WhatsApp simulator.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::{Deserialize, Deserializer};
use serde_json::{Value, json};

use super::{
    AcceptedMessage, ControlError, InboundMessage, MarketingPreference, Template, WhatsAppControl,
    WhatsAppState, WhatsAppStats, webhooks,
};
use crate::control::{ControlFailure, json_body};

type Body<T> = Result<Json<T>, JsonRejection>;
type Reply = Result<Json<Value>, ControlFailure>;

pub(super) fn router(state: Arc<WhatsAppState>) -> Router {
    Router::new()
        .route("/messages", get(list_messages).delete(clear_messages))
        .route("/stats", get(stats))
        .route("/recipients", get(recipient_counts))
        .route("/inbound", post(inbound))
        .route("/window", post(open_window))
        .route("/window/{wa_id}", get(window_state).delete(close_window))
        .route("/preferences", post(preferences))
        .route("/webhook", get(get_webhook).put(put_webhook))
        .route("/throughput", get(get_throughput).put(put_throughput))
        .route("/limits", get(get_limits).put(put_limits))
        .route("/statuses", put(put_statuses))
        .route("/templates", get(list_templates).post(add_template))
        .route("/reset", post(reset))
        .with_state(state)
}

fn control(state: &Arc<WhatsAppState>) -> WhatsAppControl {
    WhatsAppControl::new(Arc::clone(state))
}

#[derive(Deserialize)]
struct MessagesQuery {
    to: Option<String>,
}

async fn list_messages(
    State(state): State<Arc<WhatsAppState>>,
    Query(query): Query<MessagesQuery>,
) -> Json<Vec<AcceptedMessage>> {
    let control = control(&state);
    Json(match query.to {
        Some(to) => control.messages_to(&to),
        None => control.messages(),
    })
}

async fn clear_messages(State(state): State<Arc<WhatsAppState>>) -> Json<Value> {
    control(&state).clear_messages();
    Json(json!({"cleared": true}))
}

async fn stats(State(state): State<Arc<WhatsAppState>>) -> Json<WhatsAppStats> {
    Json(control(&state).stats())
}

async fn recipient_counts(State(state): State<Arc<WhatsAppState>>) -> Json<BTreeMap<String, u64>> {
    Json(control(&state).recipient_counts())
}

async fn inbound(State(state): State<Arc<WhatsAppState>>, body: Body<InboundMessage>) -> Reply {
    let message = json_body(body)?;
    let from = message.from.clone();
    match webhooks::deliver_inbound(&state, message).await {
        Ok(wamid) => Ok(Json(json!({
            "wamid": wamid,
            "wa_id": from.trim_start_matches('+'),
            "window_open": true,
            "webhook_posted": true,
        }))),
        Err(error @ ControlError::Webhook(_)) => Err(ControlFailure::from(error)
            .with("window_open", json!(true))
            .with("webhook_posted", json!(false))),
        Err(error) => Err(error.into()),
    }
}

#[derive(Deserialize)]
struct WindowRequest {
    wa_id: String,
    at_unix: Option<i64>,
}

async fn open_window(State(state): State<Arc<WhatsAppState>>, body: Body<WindowRequest>) -> Reply {
    let request = json_body(body)?;
    let control = control(&state);
    let at = request.at_unix.unwrap_or_else(|| state.clock.now_unix());
    control.open_window_at(&request.wa_id, at)?;
    Ok(Json(json!({
        "wa_id": request.wa_id.trim_start_matches('+'),
        "last_inbound_at": at,
        "window_open": control.window_open(&request.wa_id),
    })))
}

async fn window_state(
    State(state): State<Arc<WhatsAppState>>,
    Path(wa_id): Path<String>,
) -> Json<Value> {
    Json(json!({"wa_id": wa_id, "window_open": control(&state).window_open(&wa_id)}))
}

async fn close_window(
    State(state): State<Arc<WhatsAppState>>,
    Path(wa_id): Path<String>,
) -> Json<Value> {
    let closed = control(&state).close_window(&wa_id);
    Json(json!({"wa_id": wa_id, "closed": closed}))
}

#[derive(Deserialize)]
struct PreferenceRequest {
    wa_id: String,
    value: MarketingPreference,
    name: Option<String>,
}

async fn preferences(
    State(state): State<Arc<WhatsAppState>>,
    body: Body<PreferenceRequest>,
) -> Reply {
    let request = json_body(body)?;
    match webhooks::post_preference(&state, &request.wa_id, request.value, request.name).await {
        Ok(()) => Ok(Json(json!({
            "wa_id": request.wa_id.trim_start_matches('+'),
            "value": request.value,
            "webhook_posted": true,
        }))),
        Err(error @ ControlError::Webhook(_)) => Err(ControlFailure::from(error)
            .with("value", json!(request.value))
            .with("webhook_posted", json!(false))),
        Err(error) => Err(error.into()),
    }
}

#[derive(Deserialize)]
struct WebhookRequest {
    url: Option<String>,
}

async fn get_webhook(State(state): State<Arc<WhatsAppState>>) -> Json<Value> {
    Json(json!({"url": state.webhook_url()}))
}

async fn put_webhook(State(state): State<Arc<WhatsAppState>>, body: Body<WebhookRequest>) -> Reply {
    let request = json_body(body)?;
    control(&state).set_webhook_url(request.url.as_deref())?;
    Ok(Json(json!({"url": state.webhook_url()})))
}

/// A field that may be absent (leave the setting alone), `null` (turn it
/// off) or a value (set it): `None`, `Some(None)`, `Some(Some(v))`.
fn nullable<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ThroughputRequest {
    messages_per_second: Option<u32>,
    #[serde(default, deserialize_with = "nullable")]
    retry_after_secs: Option<Option<u32>>,
}

fn throughput(control: &WhatsAppControl) -> Json<Value> {
    Json(json!({
        "messages_per_second": control.messages_per_second(),
        "retry_after_secs": control.retry_after_secs(),
    }))
}

async fn get_throughput(State(state): State<Arc<WhatsAppState>>) -> Json<Value> {
    throughput(&control(&state))
}

async fn put_throughput(
    State(state): State<Arc<WhatsAppState>>,
    body: Body<ThroughputRequest>,
) -> Reply {
    let request = json_body(body)?;
    let control = control(&state);
    if let Some(messages_per_second) = request.messages_per_second {
        control.set_messages_per_second(messages_per_second);
    }
    if let Some(retry_after_secs) = request.retry_after_secs {
        control.set_retry_after_secs(retry_after_secs);
    }
    Ok(throughput(&control))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LimitsRequest {
    #[serde(default, deserialize_with = "nullable")]
    pair_interval_ms: Option<Option<u64>>,
    #[serde(default, deserialize_with = "nullable")]
    daily_unique_recipients: Option<Option<u64>>,
}

fn limits(control: &WhatsAppControl) -> Json<Value> {
    Json(json!({
        "pair_interval_ms": control.pair_interval_ms(),
        "daily_unique_recipients": control.daily_unique_recipients(),
        "unique_recipients_24h": control.unique_recipients_24h(),
    }))
}

async fn get_limits(State(state): State<Arc<WhatsAppState>>) -> Json<Value> {
    limits(&control(&state))
}

async fn put_limits(State(state): State<Arc<WhatsAppState>>, body: Body<LimitsRequest>) -> Reply {
    let request = json_body(body)?;
    let control = control(&state);
    if let Some(pair_interval_ms) = request.pair_interval_ms {
        control.set_pair_interval_ms(pair_interval_ms);
    }
    if let Some(daily_unique_recipients) = request.daily_unique_recipients {
        control.set_daily_unique_recipients(daily_unique_recipients);
    }
    Ok(limits(&control))
}

#[derive(Deserialize)]
struct StatusesRequest {
    enabled: Option<bool>,
    delay_ms: Option<u64>,
}

async fn put_statuses(
    State(state): State<Arc<WhatsAppState>>,
    body: Body<StatusesRequest>,
) -> Reply {
    let request = json_body(body)?;
    let control = control(&state);
    if let Some(enabled) = request.enabled {
        control.set_send_statuses(enabled);
    }
    if let Some(delay_ms) = request.delay_ms {
        control.set_status_delay(Duration::from_millis(delay_ms));
    }
    Ok(Json(json!({
        "enabled": state.send_statuses.load(std::sync::atomic::Ordering::Relaxed),
        "delay_ms": state.status_delay_ms.load(std::sync::atomic::Ordering::Relaxed),
    })))
}

async fn list_templates(State(state): State<Arc<WhatsAppState>>) -> Json<Vec<Template>> {
    Json(control(&state).templates())
}

async fn add_template(State(state): State<Arc<WhatsAppState>>, body: Body<Template>) -> Reply {
    let template = json_body(body)?;
    if template.name.is_empty() || template.language.is_empty() {
        return Err(ControlFailure::bad_request(
            "template name and language must not be empty",
        ));
    }
    control(&state).add_template(template.clone());
    Ok(Json(json!(template)))
}

async fn reset(State(state): State<Arc<WhatsAppState>>) -> Json<Value> {
    control(&state).reset();
    Json(json!({"reset": true}))
}
