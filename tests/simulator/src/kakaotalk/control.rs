//! `/_sim/kakaotalk/...`: the control routes of the KakaoTalk simulator.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{delete, get, post, put};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{
    KakaoControlError, KakaoMessage, KakaoRequest, KakaoStats, KakaoTalkControl, KakaoTalkState,
    KakaoTemplate,
};
use crate::control::{ControlFailure, json_body};
use crate::webhook_sender::WebhookError;

type Body<T> = Result<Json<T>, JsonRejection>;
type Reply = Result<Json<Value>, ControlFailure>;

pub(super) fn router(state: Arc<KakaoTalkState>) -> Router {
    Router::new()
        .route("/messages", get(list_messages).delete(clear_messages))
        .route("/requests", get(list_requests))
        .route("/stats", get(stats))
        .route("/webhook", get(get_webhook).put(put_webhook))
        .route("/results", put(put_results))
        .route("/rate", get(get_rate).put(put_rate))
        .route("/recipients", get(recipient_counts).post(set_recipient))
        .route("/recipients/{number}", delete(clear_recipient))
        .route("/delivery-failures", post(set_delivery_failure))
        .route(
            "/delivery-failures/{number}",
            delete(clear_delivery_failure),
        )
        .route("/fail-next", post(fail_next))
        .route("/templates", get(list_templates).post(add_template))
        .route("/template-status", post(template_status))
        .route("/reset", post(reset))
        .with_state(state)
}

fn control(state: &Arc<KakaoTalkState>) -> KakaoTalkControl {
    KakaoTalkControl::new(Arc::clone(state))
}

impl From<KakaoControlError> for ControlFailure {
    fn from(error: KakaoControlError) -> Self {
        let status = match &error {
            KakaoControlError::InvalidNumber(_)
            | KakaoControlError::InvalidUrl(_)
            | KakaoControlError::Invalid(_) => StatusCode::BAD_REQUEST,
            KakaoControlError::Webhook(WebhookError::NoUrl) => StatusCode::CONFLICT,
            KakaoControlError::Webhook(_) => StatusCode::BAD_GATEWAY,
        };
        ControlFailure::new(status, error.to_string())
    }
}

#[derive(Deserialize)]
struct MessagesQuery {
    recipient_no: Option<String>,
}

async fn list_messages(
    State(state): State<Arc<KakaoTalkState>>,
    Query(query): Query<MessagesQuery>,
) -> Result<Json<Vec<KakaoMessage>>, ControlFailure> {
    let control = control(&state);
    Ok(Json(match query.recipient_no {
        Some(number) => control.messages_to(&number)?,
        None => control.messages(),
    }))
}

async fn clear_messages(State(state): State<Arc<KakaoTalkState>>) -> Json<Value> {
    control(&state).clear_messages();
    Json(json!({"cleared": true}))
}

async fn list_requests(State(state): State<Arc<KakaoTalkState>>) -> Json<Vec<KakaoRequest>> {
    Json(control(&state).requests())
}

async fn stats(State(state): State<Arc<KakaoTalkState>>) -> Json<KakaoStats> {
    Json(control(&state).stats())
}

async fn recipient_counts(State(state): State<Arc<KakaoTalkState>>) -> Json<BTreeMap<String, u64>> {
    Json(control(&state).recipient_counts())
}

#[derive(Deserialize)]
struct WebhookRequest {
    url: Option<String>,
}

async fn get_webhook(State(state): State<Arc<KakaoTalkState>>) -> Json<Value> {
    Json(json!({"url": state.webhook_url()}))
}

async fn put_webhook(
    State(state): State<Arc<KakaoTalkState>>,
    body: Body<WebhookRequest>,
) -> Reply {
    let request = json_body(body)?;
    control(&state).set_webhook_url(request.url.as_deref())?;
    Ok(Json(json!({"url": state.webhook_url()})))
}

#[derive(Deserialize)]
struct ResultsRequest {
    enabled: Option<bool>,
    delay_ms: Option<u64>,
}

async fn put_results(
    State(state): State<Arc<KakaoTalkState>>,
    body: Body<ResultsRequest>,
) -> Reply {
    let request = json_body(body)?;
    let control = control(&state);
    if let Some(enabled) = request.enabled {
        control.set_send_results(enabled);
    }
    if let Some(delay_ms) = request.delay_ms {
        control.set_result_delay(Duration::from_millis(delay_ms));
    }
    Ok(Json(json!({
        "enabled": control.send_results(),
        "delay_ms": control.result_delay().as_millis() as u64,
    })))
}

#[derive(Deserialize)]
struct RateRequest {
    requests_per_second: u32,
}

async fn get_rate(State(state): State<Arc<KakaoTalkState>>) -> Json<Value> {
    Json(json!({"requests_per_second": control(&state).requests_per_second()}))
}

async fn put_rate(State(state): State<Arc<KakaoTalkState>>, body: Body<RateRequest>) -> Reply {
    let request = json_body(body)?;
    let control = control(&state);
    control.set_requests_per_second(request.requests_per_second);
    Ok(Json(
        json!({"requests_per_second": control.requests_per_second()}),
    ))
}

#[derive(Deserialize)]
struct RecipientRequest {
    recipient_no: String,
    result_code: i64,
}

async fn set_recipient(
    State(state): State<Arc<KakaoTalkState>>,
    body: Body<RecipientRequest>,
) -> Reply {
    let request = json_body(body)?;
    let number =
        control(&state).set_recipient_result(&request.recipient_no, request.result_code)?;
    Ok(Json(
        json!({"recipient_no": number, "result_code": request.result_code}),
    ))
}

async fn clear_recipient(
    State(state): State<Arc<KakaoTalkState>>,
    Path(number): Path<String>,
) -> Reply {
    let cleared = control(&state).clear_recipient_result(&number)?;
    Ok(Json(json!({"recipient_no": number, "cleared": cleared})))
}

async fn set_delivery_failure(
    State(state): State<Arc<KakaoTalkState>>,
    body: Body<RecipientRequest>,
) -> Reply {
    let request = json_body(body)?;
    let number =
        control(&state).set_delivery_failure(&request.recipient_no, request.result_code)?;
    Ok(Json(
        json!({"recipient_no": number, "result_code": request.result_code}),
    ))
}

async fn clear_delivery_failure(
    State(state): State<Arc<KakaoTalkState>>,
    Path(number): Path<String>,
) -> Reply {
    let cleared = control(&state).clear_delivery_failure(&number)?;
    Ok(Json(json!({"recipient_no": number, "cleared": cleared})))
}

#[derive(Deserialize)]
struct FailNextRequest {
    requests: u32,
}

async fn fail_next(State(state): State<Arc<KakaoTalkState>>, body: Body<FailNextRequest>) -> Reply {
    let request = json_body(body)?;
    control(&state).fail_next_requests(request.requests);
    Ok(Json(json!({"fail_next": request.requests})))
}

async fn list_templates(State(state): State<Arc<KakaoTalkState>>) -> Json<Vec<KakaoTemplate>> {
    Json(control(&state).templates())
}

async fn add_template(
    State(state): State<Arc<KakaoTalkState>>,
    body: Body<KakaoTemplate>,
) -> Reply {
    let template = json_body(body)?;
    control(&state).add_template(template.clone())?;
    Ok(Json(json!(template)))
}

#[derive(Deserialize)]
struct TemplateStatusRequest {
    template_code: String,
    status: String,
}

async fn template_status(
    State(state): State<Arc<KakaoTalkState>>,
    body: Body<TemplateStatusRequest>,
) -> Reply {
    let request = json_body(body)?;
    control(&state)
        .post_template_status(&request.template_code, &request.status)
        .await?;
    Ok(Json(json!({"webhook_posted": true})))
}

async fn reset(State(state): State<Arc<KakaoTalkState>>) -> Json<Value> {
    control(&state).reset();
    Json(json!({"reset": true}))
}
