//! `/_sim/rcs/...`: the control routes of the RBM simulator (listed in the
//! module documentation).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::JsonRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{RcsControl, RcsControlError, RcsMessage, RcsState, RcsStats};
use crate::control::{ControlFailure, json_body};
use crate::webhook_sender::WebhookError;

type Body<T> = Result<Json<T>, JsonRejection>;
type Reply = Result<Json<Value>, ControlFailure>;

pub(super) fn router(state: Arc<RcsState>) -> Router {
    Router::new()
        .route("/messages", get(list_messages).delete(clear_messages))
        .route("/stats", get(stats))
        .route("/recipients", get(recipient_counts))
        .route("/webhook", get(get_webhook).put(put_webhook))
        .route("/webhook/verify", post(verify_webhook))
        .route("/inbound", post(inbound))
        .route("/subscription", post(subscription))
        .route("/capability", put(capability))
        .route("/device", put(device))
        .route("/throughput", get(get_throughput).put(put_throughput))
        .route("/statuses", put(put_statuses))
        .route("/tokens/revoke", post(revoke_tokens))
        .route("/expire", post(expire))
        .route("/reset", post(reset))
        .with_state(state)
}

fn control(state: &Arc<RcsState>) -> RcsControl {
    RcsControl::new(Arc::clone(state))
}

/// The HTTP answer to a failed control operation.
fn failure(error: RcsControlError) -> ControlFailure {
    let status = match &error {
        RcsControlError::InvalidPhone(_)
        | RcsControlError::InvalidUrl(_)
        | RcsControlError::Invalid(_) => StatusCode::BAD_REQUEST,
        RcsControlError::Webhook(WebhookError::NoUrl) => StatusCode::CONFLICT,
        RcsControlError::Webhook(_) | RcsControlError::Handshake { .. } => StatusCode::BAD_GATEWAY,
    };
    ControlFailure::new(status, error.to_string())
}

#[derive(Deserialize)]
struct MessagesQuery {
    to: Option<String>,
}

async fn list_messages(
    State(state): State<Arc<RcsState>>,
    Query(query): Query<MessagesQuery>,
) -> Json<Vec<RcsMessage>> {
    let control = control(&state);
    Json(match query.to {
        Some(to) => control.messages_to(&to),
        None => control.messages(),
    })
}

async fn clear_messages(State(state): State<Arc<RcsState>>) -> Json<Value> {
    control(&state).clear_messages();
    Json(json!({"cleared": true}))
}

async fn stats(State(state): State<Arc<RcsState>>) -> Json<RcsStats> {
    Json(control(&state).stats())
}

async fn recipient_counts(State(state): State<Arc<RcsState>>) -> Json<BTreeMap<String, u64>> {
    Json(control(&state).recipient_counts())
}

#[derive(Deserialize)]
struct WebhookRequest {
    url: Option<String>,
}

async fn get_webhook(State(state): State<Arc<RcsState>>) -> Json<Value> {
    Json(json!({"url": state.webhook_url()}))
}

async fn put_webhook(State(state): State<Arc<RcsState>>, body: Body<WebhookRequest>) -> Reply {
    let request = json_body(body)?;
    control(&state)
        .set_webhook_url(request.url.as_deref())
        .map_err(failure)?;
    Ok(Json(json!({"url": state.webhook_url()})))
}

async fn verify_webhook(State(state): State<Arc<RcsState>>) -> Reply {
    control(&state).verify_webhook().await.map_err(failure)?;
    Ok(Json(json!({"verified": true})))
}

#[derive(Deserialize)]
struct InboundRequest {
    from: String,
    text: String,
}

async fn inbound(State(state): State<Arc<RcsState>>, body: Body<InboundRequest>) -> Reply {
    let request = json_body(body)?;
    let message_id = control(&state)
        .deliver_inbound(&request.from, &request.text)
        .await
        .map_err(failure)?;
    Ok(Json(
        json!({"message_id": message_id, "webhook_posted": true}),
    ))
}

#[derive(Deserialize)]
struct SubscriptionRequest {
    phone: String,
    subscribed: bool,
}

async fn subscription(
    State(state): State<Arc<RcsState>>,
    body: Body<SubscriptionRequest>,
) -> Reply {
    let request = json_body(body)?;
    control(&state)
        .post_subscription(&request.phone, request.subscribed)
        .await
        .map_err(failure)?;
    Ok(Json(
        json!({"phone": request.phone, "subscribed": request.subscribed, "webhook_posted": true}),
    ))
}

#[derive(Deserialize)]
struct CapabilityRequest {
    phone: String,
    capable: bool,
}

async fn capability(State(state): State<Arc<RcsState>>, body: Body<CapabilityRequest>) -> Reply {
    let request = json_body(body)?;
    control(&state)
        .set_rcs_capable(&request.phone, request.capable)
        .map_err(failure)?;
    Ok(Json(
        json!({"phone": request.phone, "capable": request.capable}),
    ))
}

#[derive(Deserialize)]
struct DeviceRequest {
    phone: String,
    online: bool,
}

async fn device(State(state): State<Arc<RcsState>>, body: Body<DeviceRequest>) -> Reply {
    let request = json_body(body)?;
    control(&state)
        .set_online(&request.phone, request.online)
        .map_err(failure)?;
    Ok(Json(
        json!({"phone": request.phone, "online": request.online}),
    ))
}

#[derive(Deserialize)]
struct ThroughputRequest {
    messages_per_second: u32,
}

async fn get_throughput(State(state): State<Arc<RcsState>>) -> Json<Value> {
    Json(json!({"messages_per_second": state.bucket.rate()}))
}

async fn put_throughput(
    State(state): State<Arc<RcsState>>,
    body: Body<ThroughputRequest>,
) -> Reply {
    let request = json_body(body)?;
    control(&state).set_messages_per_second(request.messages_per_second);
    Ok(Json(json!({"messages_per_second": state.bucket.rate()})))
}

#[derive(Deserialize)]
struct StatusesRequest {
    enabled: Option<bool>,
    delay_ms: Option<u64>,
}

async fn put_statuses(State(state): State<Arc<RcsState>>, body: Body<StatusesRequest>) -> Reply {
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

async fn revoke_tokens(State(state): State<Arc<RcsState>>) -> Json<Value> {
    control(&state).revoke_tokens();
    Json(json!({"revoked": true}))
}

async fn expire(State(state): State<Arc<RcsState>>) -> Json<Value> {
    let revoked = control(&state).expire_due().await;
    Json(json!({"revoked": revoked}))
}

async fn reset(State(state): State<Arc<RcsState>>) -> Json<Value> {
    control(&state).reset();
    Json(json!({"reset": true}))
}
