//! `/_sim/wechat/...`: the control routes of the WeChat simulator.
//!
//! | Route | Body | Does |
//! |---|---|---|
//! | `GET /messages[?to=openid]`, `DELETE /messages` | | accepted messages / forget them |
//! | `GET /stats` | | counters, including `token_requests` and `reset_after_accept` |
//! | `GET /recipients` | | `{"openid": N}`: accepted messages per user ([`WeChatControl::recipient_counts`]) |
//! | `POST /inbound` | `{"openid","text","at_unix"?}` | open the 48-hour window and push the message |
//! | `POST /follow`, `POST /unfollow` | `{"openid"}` | push `subscribe` / `unsubscribe` |
//! | `POST /refuse` | `{"openid","refused"?:true}` | sends to the user fail with 43101 |
//! | `POST /window`, `GET`/`DELETE /window/{openid}` | `{"openid","at_unix"?}` | open a window silently / read / forget it |
//! | `GET`/`PUT /webhook` | `{"url"}` | where pushes go |
//! | `GET`/`PUT /safe_mode` | `{"enabled"}` | encrypt pushes or not |
//! | `PUT /quota` | `{"custom"?,"template"?}` | daily quotas (45009 beyond) |
//! | `PUT /templates_authorized` | `{"authorized"}` | 48001 for templates when false |
//! | `GET`/`POST /templates` | `{"template_id","title","keys","content"}` | the account's templates |
//! | `PUT /template_status` | `{"openid","status"?}` | `Status` of that user's `TEMPLATESENDJOBFINISH` |
//! | `POST /tokens/revoke` | | every token now gets 40001 |
//! | `POST /verify` | | verify the server URL (signed GET with `echostr`) |
//! | `POST /reset` | | clear messages, counters, windows, users, tokens |

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{SentMessage, Template, WeChatControl, WeChatControlError, WeChatState, WeChatStats};
use crate::control::{ControlFailure, json_body};
use crate::webhook_sender::WebhookError;

type Body<T> = Result<Json<T>, JsonRejection>;
type Reply = Result<Json<Value>, ControlFailure>;

impl From<WeChatControlError> for ControlFailure {
    fn from(error: WeChatControlError) -> Self {
        let status = match &error {
            WeChatControlError::InvalidOpenId(_)
            | WeChatControlError::InvalidUrl(_)
            | WeChatControlError::Invalid(_) => StatusCode::BAD_REQUEST,
            WeChatControlError::Webhook(WebhookError::NoUrl) => StatusCode::CONFLICT,
            WeChatControlError::Webhook(_) => StatusCode::BAD_GATEWAY,
        };
        ControlFailure::new(status, error.to_string())
    }
}

pub(super) fn router(state: Arc<WeChatState>) -> Router {
    Router::new()
        .route("/messages", get(list_messages).delete(clear_messages))
        .route("/stats", get(stats))
        .route("/recipients", get(recipient_counts))
        .route("/inbound", post(inbound))
        .route("/follow", post(follow))
        .route("/unfollow", post(unfollow))
        .route("/refuse", post(refuse))
        .route("/window", post(open_window))
        .route("/window/{openid}", get(window_state).delete(close_window))
        .route("/webhook", get(get_webhook).put(put_webhook))
        .route("/safe_mode", get(get_safe_mode).put(put_safe_mode))
        .route("/quota", put(put_quota))
        .route("/templates_authorized", put(put_templates_authorized))
        .route("/templates", get(list_templates).post(add_template))
        .route("/template_status", put(put_template_status))
        .route("/tokens/revoke", post(revoke_tokens))
        .route("/verify", post(verify))
        .route("/reset", post(reset))
        .with_state(state)
}

fn control(state: &Arc<WeChatState>) -> WeChatControl {
    WeChatControl::new(Arc::clone(state))
}

#[derive(Deserialize)]
struct MessagesQuery {
    to: Option<String>,
}

async fn list_messages(
    State(state): State<Arc<WeChatState>>,
    Query(query): Query<MessagesQuery>,
) -> Json<Vec<SentMessage>> {
    let control = control(&state);
    Json(match query.to {
        Some(to) => control.messages_to(&to),
        None => control.messages(),
    })
}

async fn clear_messages(State(state): State<Arc<WeChatState>>) -> Json<Value> {
    control(&state).clear_messages();
    Json(json!({"cleared": true}))
}

async fn stats(State(state): State<Arc<WeChatState>>) -> Json<WeChatStats> {
    Json(control(&state).stats())
}

async fn recipient_counts(State(state): State<Arc<WeChatState>>) -> Json<BTreeMap<String, u64>> {
    Json(control(&state).recipient_counts())
}

#[derive(Deserialize)]
struct InboundRequest {
    openid: String,
    text: String,
    at_unix: Option<i64>,
}

async fn inbound(State(state): State<Arc<WeChatState>>, body: Body<InboundRequest>) -> Reply {
    let request = json_body(body)?;
    let control = control(&state);
    let result = match request.at_unix {
        Some(at) => {
            control
                .deliver_inbound_at(&request.openid, &request.text, at)
                .await
        }
        None => {
            control
                .deliver_inbound(&request.openid, &request.text)
                .await
        }
    };
    match result {
        Ok(msg_id) => Ok(Json(json!({
            "msg_id": msg_id,
            "openid": request.openid,
            "window_open": true,
            "webhook_posted": true,
        }))),
        Err(error @ WeChatControlError::Webhook(_)) => Err(ControlFailure::from(error)
            .with("window_open", json!(true))
            .with("webhook_posted", json!(false))),
        Err(error) => Err(error.into()),
    }
}

#[derive(Deserialize)]
struct OpenIdRequest {
    openid: String,
}

async fn follow(State(state): State<Arc<WeChatState>>, body: Body<OpenIdRequest>) -> Reply {
    let request = json_body(body)?;
    control(&state).follow(&request.openid).await?;
    Ok(Json(json!({"openid": request.openid, "subscribed": true})))
}

async fn unfollow(State(state): State<Arc<WeChatState>>, body: Body<OpenIdRequest>) -> Reply {
    let request = json_body(body)?;
    control(&state).unfollow(&request.openid).await?;
    Ok(Json(json!({"openid": request.openid, "subscribed": false})))
}

#[derive(Deserialize)]
struct RefuseRequest {
    openid: String,
    #[serde(default = "yes")]
    refused: bool,
}

fn yes() -> bool {
    true
}

async fn refuse(State(state): State<Arc<WeChatState>>, body: Body<RefuseRequest>) -> Reply {
    let request = json_body(body)?;
    control(&state).set_refused(&request.openid, request.refused)?;
    Ok(Json(
        json!({"openid": request.openid, "refused": request.refused}),
    ))
}

#[derive(Deserialize)]
struct WindowRequest {
    openid: String,
    at_unix: Option<i64>,
}

async fn open_window(State(state): State<Arc<WeChatState>>, body: Body<WindowRequest>) -> Reply {
    let request = json_body(body)?;
    let at = request.at_unix.unwrap_or_else(|| state.clock.now_unix());
    let control = control(&state);
    control.open_window_at(&request.openid, at)?;
    Ok(Json(
        json!({"openid": request.openid, "window": control.window(&request.openid)}),
    ))
}

async fn window_state(
    State(state): State<Arc<WeChatState>>,
    Path(openid): Path<String>,
) -> Json<Value> {
    let window = control(&state).window(&openid);
    let now = state.clock.now_unix();
    Json(json!({
        "openid": openid,
        "window": window,
        "open": window.is_some_and(|w| w.open_at(now) && w.sent < w.cap),
    }))
}

async fn close_window(
    State(state): State<Arc<WeChatState>>,
    Path(openid): Path<String>,
) -> Json<Value> {
    let closed = control(&state).close_window(&openid);
    Json(json!({"openid": openid, "closed": closed}))
}

#[derive(Deserialize)]
struct WebhookRequest {
    url: Option<String>,
}

async fn get_webhook(State(state): State<Arc<WeChatState>>) -> Json<Value> {
    Json(json!({"url": state.webhook_url()}))
}

async fn put_webhook(State(state): State<Arc<WeChatState>>, body: Body<WebhookRequest>) -> Reply {
    let request = json_body(body)?;
    control(&state).set_webhook_url(request.url.as_deref())?;
    Ok(Json(json!({"url": state.webhook_url()})))
}

#[derive(Deserialize)]
struct EnabledRequest {
    enabled: bool,
}

async fn get_safe_mode(State(state): State<Arc<WeChatState>>) -> Json<Value> {
    Json(json!({"enabled": control(&state).safe_mode()}))
}

async fn put_safe_mode(State(state): State<Arc<WeChatState>>, body: Body<EnabledRequest>) -> Reply {
    let request = json_body(body)?;
    control(&state).set_safe_mode(request.enabled);
    Ok(Json(json!({"enabled": request.enabled})))
}

#[derive(Deserialize)]
struct QuotaRequest {
    custom: Option<u64>,
    template: Option<u64>,
}

async fn put_quota(State(state): State<Arc<WeChatState>>, body: Body<QuotaRequest>) -> Reply {
    let request = json_body(body)?;
    let control = control(&state);
    if let Some(custom) = request.custom {
        control.set_custom_daily_quota(custom);
    }
    if let Some(template) = request.template {
        control.set_template_daily_quota(template);
    }
    let inner = state.lock();
    Ok(Json(json!({
        "custom": inner.custom_daily_quota,
        "template": inner.template_daily_quota,
    })))
}

#[derive(Deserialize)]
struct AuthorizedRequest {
    authorized: bool,
}

async fn put_templates_authorized(
    State(state): State<Arc<WeChatState>>,
    body: Body<AuthorizedRequest>,
) -> Reply {
    let request = json_body(body)?;
    control(&state).set_templates_authorized(request.authorized);
    Ok(Json(json!({"authorized": request.authorized})))
}

async fn list_templates(State(state): State<Arc<WeChatState>>) -> Json<Vec<Template>> {
    Json(control(&state).templates())
}

async fn add_template(State(state): State<Arc<WeChatState>>, body: Body<Template>) -> Reply {
    let template = json_body(body)?;
    if template.template_id.trim().is_empty() {
        return Err(ControlFailure::bad_request("template_id must not be empty"));
    }
    control(&state).add_template(template.clone());
    Ok(Json(json!(template)))
}

#[derive(Deserialize)]
struct TemplateStatusRequest {
    openid: String,
    status: Option<String>,
}

async fn put_template_status(
    State(state): State<Arc<WeChatState>>,
    body: Body<TemplateStatusRequest>,
) -> Reply {
    let request = json_body(body)?;
    control(&state).set_template_status(&request.openid, request.status.as_deref());
    Ok(Json(
        json!({"openid": request.openid, "status": request.status}),
    ))
}

async fn revoke_tokens(State(state): State<Arc<WeChatState>>) -> Json<Value> {
    control(&state).revoke_tokens();
    Json(json!({"revoked": true}))
}

async fn verify(State(state): State<Arc<WeChatState>>) -> Reply {
    let verified = control(&state).verify_url().await?;
    Ok(Json(json!({"verified": verified})))
}

async fn reset(State(state): State<Arc<WeChatState>>) -> Json<Value> {
    control(&state).reset();
    Json(json!({"reset": true}))
}
