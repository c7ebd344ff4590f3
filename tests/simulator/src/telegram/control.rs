//! `/_sim/telegram/...`: the control routes of the Telegram simulator.

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
    TelegramChat, TelegramControl, TelegramControlError, TelegramMessage, TelegramState,
    TelegramStats,
};
use crate::control::{ControlFailure, json_body};
use crate::webhook_sender::WebhookError;

type Body<T> = Result<Json<T>, JsonRejection>;
type Reply = Result<Json<Value>, ControlFailure>;

impl From<TelegramControlError> for ControlFailure {
    fn from(error: TelegramControlError) -> Self {
        let status = match &error {
            TelegramControlError::InvalidUrl(_) | TelegramControlError::Invalid(_) => {
                StatusCode::BAD_REQUEST
            }
            TelegramControlError::UnknownChat(_) => StatusCode::NOT_FOUND,
            TelegramControlError::Webhook(WebhookError::NoUrl) => StatusCode::CONFLICT,
            TelegramControlError::Webhook(_) => StatusCode::BAD_GATEWAY,
        };
        Self::new(status, error.to_string())
    }
}

pub(super) fn router(state: Arc<TelegramState>) -> Router {
    Router::new()
        .route("/messages", get(list_messages).delete(clear_messages))
        .route("/stats", get(stats))
        .route("/recipients", get(recipient_counts))
        .route("/chats", get(list_chats).post(put_chat))
        .route("/start", post(start))
        .route("/block", post(block))
        .route("/unblock", post(unblock))
        .route("/inbound", post(inbound))
        .route("/webhook", get(get_webhook).put(put_webhook))
        .route("/rate", get(get_rate).put(put_rate))
        .route("/reset", post(reset))
        .with_state(state)
}

fn control(state: &Arc<TelegramState>) -> TelegramControl {
    TelegramControl::new(Arc::clone(state))
}

#[derive(Deserialize)]
struct MessagesQuery {
    chat_id: Option<i64>,
}

async fn list_messages(
    State(state): State<Arc<TelegramState>>,
    Query(query): Query<MessagesQuery>,
) -> Json<Vec<TelegramMessage>> {
    let control = control(&state);
    Json(match query.chat_id {
        Some(chat_id) => control.messages_to(chat_id),
        None => control.messages(),
    })
}

async fn clear_messages(State(state): State<Arc<TelegramState>>) -> Json<Value> {
    control(&state).clear_messages();
    Json(json!({"cleared": true}))
}

async fn stats(State(state): State<Arc<TelegramState>>) -> Json<TelegramStats> {
    Json(control(&state).stats())
}

async fn recipient_counts(State(state): State<Arc<TelegramState>>) -> Json<BTreeMap<String, u64>> {
    Json(control(&state).recipient_counts())
}

async fn list_chats(State(state): State<Arc<TelegramState>>) -> Json<Vec<TelegramChat>> {
    Json(control(&state).chats())
}

#[derive(Deserialize)]
struct ChatRequest {
    chat_id: i64,
    first_name: Option<String>,
    blocked: Option<bool>,
}

fn first_name(request: &ChatRequest) -> String {
    request
        .first_name
        .clone()
        .unwrap_or_else(|| format!("User {}", request.chat_id))
}

async fn put_chat(State(state): State<Arc<TelegramState>>, body: Body<ChatRequest>) -> Reply {
    let request = json_body(body)?;
    let control = control(&state);
    control.add_chat(request.chat_id, &first_name(&request));
    if let Some(blocked) = request.blocked {
        control.set_blocked(request.chat_id, blocked)?;
    }
    Ok(Json(json!({
        "chat_id": request.chat_id,
        "blocked": control.is_blocked(request.chat_id),
    })))
}

async fn start(State(state): State<Arc<TelegramState>>, body: Body<ChatRequest>) -> Reply {
    let request = json_body(body)?;
    let update_id = control(&state)
        .start(request.chat_id, &first_name(&request))
        .await?;
    Ok(Json(json!({"update_id": update_id, "blocked": false})))
}

#[derive(Deserialize)]
struct ChatIdRequest {
    chat_id: i64,
}

async fn block(State(state): State<Arc<TelegramState>>, body: Body<ChatIdRequest>) -> Reply {
    let request = json_body(body)?;
    let update_id = control(&state).block(request.chat_id).await?;
    Ok(Json(json!({"update_id": update_id, "blocked": true})))
}

async fn unblock(State(state): State<Arc<TelegramState>>, body: Body<ChatIdRequest>) -> Reply {
    let request = json_body(body)?;
    let update_id = control(&state).unblock(request.chat_id).await?;
    Ok(Json(json!({"update_id": update_id, "blocked": false})))
}

#[derive(Deserialize)]
struct InboundRequest {
    chat_id: i64,
    text: String,
}

async fn inbound(State(state): State<Arc<TelegramState>>, body: Body<InboundRequest>) -> Reply {
    let request = json_body(body)?;
    let update_id = control(&state)
        .send_text(request.chat_id, &request.text)
        .await?;
    Ok(Json(json!({"update_id": update_id})))
}

#[derive(Deserialize)]
struct WebhookRequest {
    url: Option<String>,
}

async fn get_webhook(State(state): State<Arc<TelegramState>>) -> Json<Value> {
    Json(json!({"url": state.webhook_url()}))
}

async fn put_webhook(State(state): State<Arc<TelegramState>>, body: Body<WebhookRequest>) -> Reply {
    let request = json_body(body)?;
    control(&state).set_webhook_url(request.url.as_deref())?;
    Ok(Json(json!({"url": state.webhook_url()})))
}

/// `PUT /rate`: a field left out is unchanged; `per_chat_interval_ms:
/// null` turns the interval off.
#[derive(Deserialize)]
struct RateRequest {
    messages_per_second: Option<u32>,
    retry_after_secs: Option<u64>,
    #[serde(default, deserialize_with = "some_or_null")]
    per_chat_interval_ms: Option<Option<u64>>,
}

/// Present (a value or `null`) as `Some`, absent as `None`.
fn some_or_null<'de, D>(deserializer: D) -> Result<Option<Option<u64>>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    Option::<u64>::deserialize(deserializer).map(Some)
}

fn rate_json(control: &TelegramControl) -> Json<Value> {
    Json(json!({
        "messages_per_second": control.messages_per_second(),
        "retry_after_secs": control.retry_after_secs(),
        "per_chat_interval_ms": control.per_chat_interval_ms(),
    }))
}

async fn get_rate(State(state): State<Arc<TelegramState>>) -> Json<Value> {
    rate_json(&control(&state))
}

async fn put_rate(State(state): State<Arc<TelegramState>>, body: Body<RateRequest>) -> Reply {
    let request = json_body(body)?;
    let control = control(&state);
    if let Some(rate) = request.messages_per_second {
        control.set_messages_per_second(rate);
    }
    if let Some(secs) = request.retry_after_secs {
        control.set_retry_after_secs(secs);
    }
    if let Some(interval) = request.per_chat_interval_ms {
        control.set_per_chat_interval_ms(interval);
    }
    Ok(rate_json(&control))
}

async fn reset(State(state): State<Arc<TelegramState>>) -> Json<Value> {
    control(&state).reset();
    Json(json!({"reset": true}))
}
