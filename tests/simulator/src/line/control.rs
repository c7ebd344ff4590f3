//! `/_sim/line/...`: the control routes of the LINE simulator.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{
    FailMode, LineControl, LineControlError, LineMessage, LineRequest, LineState, LineStats,
};
use crate::control::{ControlFailure, json_body};
use crate::webhook_sender::WebhookError;

type Body<T> = Result<Json<T>, JsonRejection>;
type Reply = Result<Json<Value>, ControlFailure>;

impl From<LineControlError> for ControlFailure {
    fn from(error: LineControlError) -> Self {
        let status = match &error {
            LineControlError::InvalidUserId(_)
            | LineControlError::InvalidUrl(_)
            | LineControlError::Invalid(_) => StatusCode::BAD_REQUEST,
            LineControlError::UnknownEvent(_) => StatusCode::NOT_FOUND,
            LineControlError::Webhook(WebhookError::NoUrl) => StatusCode::CONFLICT,
            LineControlError::Webhook(_) => StatusCode::BAD_GATEWAY,
        };
        Self::new(status, error.to_string())
    }
}

pub(super) fn router(state: Arc<LineState>) -> Router {
    Router::new()
        .route("/messages", get(list_messages).delete(clear_messages))
        .route("/requests", get(list_requests))
        .route("/stats", get(stats))
        .route("/recipients", get(recipient_counts))
        .route("/follow", post(follow))
        .route("/unfollow", post(unfollow))
        .route("/inbound", post(inbound))
        .route("/redeliver", post(redeliver))
        .route("/verify", post(verify))
        .route("/webhook", get(get_webhook).put(put_webhook))
        .route("/rate", get(get_rate).put(put_rate))
        .route("/quota", get(get_quota).put(put_quota))
        .route("/fail-next", post(fail_next))
        .route("/reset", post(reset))
        .with_state(state)
}

fn control(state: &Arc<LineState>) -> LineControl {
    LineControl::new(Arc::clone(state))
}

#[derive(Deserialize)]
struct MessagesQuery {
    to: Option<String>,
}

async fn list_messages(
    State(state): State<Arc<LineState>>,
    Query(query): Query<MessagesQuery>,
) -> Json<Vec<LineMessage>> {
    let control = control(&state);
    Json(match query.to {
        Some(to) => control.messages_to(&to),
        None => control.messages(),
    })
}

async fn clear_messages(State(state): State<Arc<LineState>>) -> Json<Value> {
    control(&state).clear_messages();
    Json(json!({"cleared": true}))
}

async fn list_requests(State(state): State<Arc<LineState>>) -> Json<Vec<LineRequest>> {
    Json(control(&state).requests())
}

async fn stats(State(state): State<Arc<LineState>>) -> Json<LineStats> {
    Json(control(&state).stats())
}

async fn recipient_counts(State(state): State<Arc<LineState>>) -> Json<BTreeMap<String, u64>> {
    Json(control(&state).recipient_counts())
}

#[derive(Deserialize)]
struct UserRequest {
    user_id: String,
}

async fn follow(State(state): State<Arc<LineState>>, body: Body<UserRequest>) -> Reply {
    let request = json_body(body)?;
    let id = control(&state).follow(&request.user_id).await?;
    Ok(Json(json!({"webhook_event_id": id, "blocked": false})))
}

async fn unfollow(State(state): State<Arc<LineState>>, body: Body<UserRequest>) -> Reply {
    let request = json_body(body)?;
    let id = control(&state).unfollow(&request.user_id).await?;
    Ok(Json(json!({"webhook_event_id": id, "blocked": true})))
}

#[derive(Deserialize)]
struct InboundRequest {
    user_id: String,
    text: String,
}

async fn inbound(State(state): State<Arc<LineState>>, body: Body<InboundRequest>) -> Reply {
    let request = json_body(body)?;
    let id = control(&state)
        .deliver_text(&request.user_id, &request.text)
        .await?;
    Ok(Json(json!({"webhook_event_id": id})))
}

#[derive(Deserialize)]
struct RedeliverRequest {
    webhook_event_id: String,
}

async fn redeliver(State(state): State<Arc<LineState>>, body: Body<RedeliverRequest>) -> Reply {
    let request = json_body(body)?;
    control(&state).redeliver(&request.webhook_event_id).await?;
    Ok(Json(
        json!({"webhook_event_id": request.webhook_event_id, "redelivered": true}),
    ))
}

async fn verify(State(state): State<Arc<LineState>>) -> Reply {
    control(&state).verify_webhook().await?;
    Ok(Json(json!({"verified": true})))
}

#[derive(Deserialize)]
struct WebhookRequest {
    url: Option<String>,
}

async fn get_webhook(State(state): State<Arc<LineState>>) -> Json<Value> {
    Json(json!({"url": state.webhook_url()}))
}

async fn put_webhook(State(state): State<Arc<LineState>>, body: Body<WebhookRequest>) -> Reply {
    let request = json_body(body)?;
    control(&state).set_webhook_url(request.url.as_deref())?;
    Ok(Json(json!({"url": state.webhook_url()})))
}

#[derive(Deserialize)]
struct RateRequest {
    push_per_second: Option<u32>,
    multicast_per_second: Option<u32>,
}

fn rate_json(control: &LineControl) -> Json<Value> {
    Json(json!({
        "push_per_second": control.push_rate(),
        "multicast_per_second": control.multicast_rate(),
    }))
}

async fn get_rate(State(state): State<Arc<LineState>>) -> Json<Value> {
    rate_json(&control(&state))
}

async fn put_rate(State(state): State<Arc<LineState>>, body: Body<RateRequest>) -> Reply {
    let request = json_body(body)?;
    let control = control(&state);
    if let Some(rate) = request.push_per_second {
        control.set_push_rate(rate);
    }
    if let Some(rate) = request.multicast_per_second {
        control.set_multicast_rate(rate);
    }
    Ok(rate_json(&control))
}

#[derive(Deserialize)]
struct QuotaRequest {
    monthly_limit: Option<u64>,
    used: Option<u64>,
}

fn quota_json(control: &LineControl) -> Json<Value> {
    let stats = control.stats();
    Json(json!({"monthly_limit": stats.monthly_quota, "used": stats.quota_used}))
}

async fn get_quota(State(state): State<Arc<LineState>>) -> Json<Value> {
    quota_json(&control(&state))
}

async fn put_quota(State(state): State<Arc<LineState>>, body: Body<QuotaRequest>) -> Reply {
    let request = json_body(body)?;
    let control = control(&state);
    if let Some(limit) = request.monthly_limit {
        control.set_monthly_quota(limit);
    }
    if let Some(used) = request.used {
        control.set_quota_used(used);
    }
    Ok(quota_json(&control))
}

#[derive(Deserialize)]
struct FailNextRequest {
    count: usize,
    #[serde(default)]
    after_accept: bool,
}

async fn fail_next(State(state): State<Arc<LineState>>, body: Body<FailNextRequest>) -> Reply {
    let request = json_body(body)?;
    if request.count > 10_000 {
        return Err(ControlFailure::bad_request("count must be at most 10000"));
    }
    let mode = if request.after_accept {
        FailMode::AfterAccept
    } else {
        FailMode::BeforeAccept
    };
    let control = control(&state);
    control.fail_next(request.count, mode);
    Ok(Json(
        json!({"pending": control.pending_failures(), "mode": mode}),
    ))
}

async fn reset(State(state): State<Arc<LineState>>) -> Json<Value> {
    control(&state).reset();
    Json(json!({"reset": true}))
}
