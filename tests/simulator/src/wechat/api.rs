//! `/cgi-bin/stable_token`, `/cgi-bin/message/custom/send` and
//! `/cgi-bin/message/template/send`.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::error::{WeChatError, codes};
use super::{
    Api, FOLLOW_WINDOW_SECS, Inner, MAX_TEXT_BYTES, SentMessage, TOKEN_LIFETIME_SECS,
    TOKEN_RENEW_BEFORE_SECS, WeChatState, china_day, is_openid, push,
};

pub(super) fn router(state: Arc<WeChatState>) -> Router {
    Router::new()
        .route("/cgi-bin/stable_token", post(stable_token))
        .route("/cgi-bin/message/custom/send", post(custom_send))
        .route("/cgi-bin/message/template/send", post(template_send))
        .with_state(state)
}

type QueryMap = Query<HashMap<String, String>>;

fn reply(state: &WeChatState, result: Result<Value, WeChatError>) -> Response {
    match result {
        Ok(body) => Json(body).into_response(),
        Err(error) => {
            state.rejections.record(error.errcode);
            tracing::debug!(errcode = error.errcode, errmsg = %error.errmsg, "wechat: rejected");
            error.into_response()
        }
    }
}

/// The reply to a message API request, through the shared send faults
/// (`slow_response_ms`, `reset_after_accept_rate`).
async fn finish_send(state: &WeChatState, result: Result<Value, WeChatError>) -> Response {
    let accepted = result.is_ok();
    let response = reply(state, result);
    state
        .faults
        .finish_send(accepted, &state.reset_after_accept, response)
        .await
}

#[derive(Deserialize)]
struct StableTokenRequest {
    #[serde(default)]
    grant_type: String,
    #[serde(default)]
    appid: String,
    #[serde(default)]
    secret: String,
    #[serde(default)]
    force_refresh: bool,
}

async fn stable_token(State(state): State<Arc<WeChatState>>, body: Bytes) -> Response {
    state.token_requests.fetch_add(1, Ordering::Relaxed);
    let result = issue_token(&state, &body).await;
    reply(&state, result)
}

async fn issue_token(state: &WeChatState, body: &[u8]) -> Result<Value, WeChatError> {
    if state.faults.apply().await {
        return Err(WeChatError::system_busy());
    }
    let request: StableTokenRequest =
        serde_json::from_slice(body).map_err(|e| WeChatError::data_format_error(&e.to_string()))?;
    if request.grant_type != "client_credential" {
        return Err(WeChatError::new(
            codes::INVALID_GRANT_TYPE,
            "invalid grant_type",
        ));
    }
    if request.appid != state.app_id {
        return Err(WeChatError::new(codes::INVALID_APPID, "invalid appid"));
    }
    if request.secret != state.app_secret {
        return Err(WeChatError::new(
            codes::INVALID_APPSECRET,
            "invalid appsecret",
        ));
    }
    let now = state.clock.now_unix();
    let mut inner = state.lock();
    if request.force_refresh {
        state.forced_token_refreshes.fetch_add(1, Ordering::Relaxed);
        // Forcing invalidates the current token at once.
        if let Some(current) = inner.current_token.take() {
            inner.tokens.remove(&current);
        }
    } else if let Some(current) = inner.current_token.clone()
        && let Some(&expires) = inner.tokens.get(&current)
        && expires - now > TOKEN_RENEW_BEFORE_SECS
    {
        return Ok(json!({"access_token": current, "expires_in": expires - now}));
    }
    // Expired tokens are forgotten; a predecessor still in its last five
    // minutes stays valid until it expires.
    inner.tokens.retain(|_, expires| *expires > now);
    let token = new_token();
    inner
        .tokens
        .insert(token.clone(), now + TOKEN_LIFETIME_SECS);
    inner.current_token = Some(token.clone());
    state.tokens_issued.fetch_add(1, Ordering::Relaxed);
    Ok(json!({"access_token": token, "expires_in": TOKEN_LIFETIME_SECS}))
}

/// A token shaped like WeChat's: long, of letters, digits, `_` and `-`.
fn new_token() -> String {
    use rand::Rng as _;
    let body: String = rand::rng()
        .sample_iter(&rand::distr::Alphanumeric)
        .take(100)
        .map(char::from)
        .collect();
    format!("89_{body}")
}

/// Check `?access_token=`: 41001 missing, 42001 expired, 40001 unknown.
fn check_token(
    inner: &Inner,
    query: &HashMap<String, String>,
    now: i64,
) -> Result<(), WeChatError> {
    let token = query
        .get("access_token")
        .filter(|t| !t.is_empty())
        .ok_or_else(WeChatError::access_token_missing)?;
    match inner.tokens.get(token) {
        Some(&expires) if expires > now => Ok(()),
        Some(_) => Err(WeChatError::access_token_expired()),
        None => Err(WeChatError::invalid_credential()),
    }
}

/// Everything every message API checks first: token, faults, JSON.
async fn prelude(
    state: &WeChatState,
    query: &HashMap<String, String>,
    body: &[u8],
) -> Result<Value, WeChatError> {
    let now = state.clock.now_unix();
    check_token(&state.lock(), query, now)?;
    if state.faults.apply().await {
        return Err(WeChatError::system_busy());
    }
    let value: Value =
        serde_json::from_slice(body).map_err(|e| WeChatError::data_format_error(&e.to_string()))?;
    if !value.is_object() {
        return Err(WeChatError::data_format_error(
            "the body is not a JSON object",
        ));
    }
    Ok(value)
}

fn quota_left(inner: &Inner, api: Api, now: i64) -> Result<(), WeChatError> {
    let quota = match api {
        Api::Custom => inner.custom_daily_quota,
        Api::Template => inner.template_daily_quota,
    };
    let used = inner
        .usage
        .get(&(api, china_day(now)))
        .copied()
        .unwrap_or(0);
    if used >= quota {
        Err(WeChatError::quota_reached())
    } else {
        Ok(())
    }
}

fn touser(value: &Value) -> Result<String, WeChatError> {
    match value.get("touser").and_then(Value::as_str) {
        Some(id) if is_openid(id) => Ok(id.to_owned()),
        _ => Err(WeChatError::new(codes::INVALID_OPENID, "invalid openid")),
    }
}

async fn custom_send(
    State(state): State<Arc<WeChatState>>,
    Query(query): QueryMap,
    body: Bytes,
) -> Response {
    let result = accept_custom(&state, &query, &body).await;
    finish_send(&state, result).await
}

async fn accept_custom(
    state: &WeChatState,
    query: &HashMap<String, String>,
    body: &[u8],
) -> Result<Value, WeChatError> {
    let value = prelude(state, query, body).await?;
    let now_ms = state.clock.now_unix_ms();
    let now = now_ms.div_euclid(1000);
    let mut inner = state.lock();
    quota_left(&inner, Api::Custom, now)?;
    let openid = touser(&value)?;
    let user = inner.users.get(&openid).copied().unwrap_or_default();
    if user.unsubscribed {
        return Err(WeChatError::new(
            codes::OUT_OF_TIME_LIMIT,
            "response out of time limit or subscription is canceled",
        ));
    }
    if user.refused {
        return Err(WeChatError::new(
            codes::USER_REFUSED,
            "user refuse to accept the msg",
        ));
    }
    if value.get("msgtype").and_then(Value::as_str) != Some("text") {
        return Err(WeChatError::new(
            codes::INVALID_MESSAGE_TYPE,
            "invalid message type",
        ));
    }
    let content = value
        .pointer("/text/content")
        .and_then(Value::as_str)
        .filter(|c| !c.is_empty())
        .ok_or_else(|| WeChatError::new(codes::EMPTY_CONTENT, "empty content"))?
        .to_owned();
    if content.len() > MAX_TEXT_BYTES {
        return Err(WeChatError::new(
            codes::CONTENT_TOO_LONG,
            "content size out of limit",
        ));
    }
    let window = inner
        .windows
        .get_mut(&openid)
        .filter(|w| w.open_at(now))
        .ok_or_else(|| {
            WeChatError::new(
                codes::OUT_OF_TIME_LIMIT,
                "response out of time limit or subscription is canceled",
            )
        })?;
    if window.sent >= window.cap {
        return Err(WeChatError::new(
            codes::OUT_OF_RESPONSE_COUNT,
            "out of response count limit",
        ));
    }
    window.sent += 1;
    *inner
        .usage
        .entry((Api::Custom, china_day(now)))
        .or_insert(0) += 1;
    drop(inner);
    state.messages.push(SentMessage {
        msgtype: "text".into(),
        touser: openid,
        text: content,
        msgid: None,
        template_id: None,
        data: BTreeMap::new(),
        url: None,
        received_at: now,
        received_at_ms: now_ms,
    });
    state.accepted_text.fetch_add(1, Ordering::Relaxed);
    Ok(json!({"errcode": 0, "errmsg": "ok"}))
}

async fn template_send(
    State(state): State<Arc<WeChatState>>,
    Query(query): QueryMap,
    body: Bytes,
) -> Response {
    let result = accept_template(&state, &query, &body).await;
    finish_send(&state, result).await
}

async fn accept_template(
    state: &Arc<WeChatState>,
    query: &HashMap<String, String>,
    body: &[u8],
) -> Result<Value, WeChatError> {
    let value = prelude(state, query, body).await?;
    let now_ms = state.clock.now_unix_ms();
    let now = now_ms.div_euclid(1000);
    let mut inner = state.lock();
    if !inner.templates_authorized {
        return Err(WeChatError::new(
            codes::API_UNAUTHORIZED,
            "api unauthorized",
        ));
    }
    quota_left(&inner, Api::Template, now)?;
    let openid = touser(&value)?;
    let user = inner.users.get(&openid).copied().unwrap_or_default();
    if user.unsubscribed {
        return Err(WeChatError::new(
            codes::REQUIRE_SUBSCRIBE,
            "require subscribe",
        ));
    }
    if user.refused {
        return Err(WeChatError::new(
            codes::USER_REFUSED,
            "user refuse to accept the msg",
        ));
    }
    let template_id = value
        .get("template_id")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let template = inner
        .templates
        .get(template_id)
        .cloned()
        .ok_or_else(|| WeChatError::new(codes::INVALID_TEMPLATE_ID, "invalid template_id"))?;
    let data = value.get("data").cloned().unwrap_or_else(|| json!({}));
    let mut values = BTreeMap::new();
    for key in &template.keys {
        let value = data
            .pointer(&format!("/{key}/value"))
            .and_then(Value::as_str)
            .ok_or_else(|| {
                WeChatError::new(
                    codes::ARGUMENT_INVALID,
                    format!("argument invalid! data.{key}.value is empty"),
                )
            })?;
        values.insert(key.clone(), value.to_owned());
    }
    let url = match value.get("url") {
        None | Some(Value::Null) => None,
        Some(Value::String(url)) => Some(url.clone()),
        Some(_) => {
            return Err(WeChatError::new(
                codes::ARGUMENT_INVALID,
                "argument invalid! url is not a string",
            ));
        }
    };
    let msgid = inner.next_msgid;
    inner.next_msgid += 1;
    *inner
        .usage
        .entry((Api::Template, china_day(now)))
        .or_insert(0) += 1;
    let status = inner
        .template_statuses
        .get(&openid)
        .cloned()
        .unwrap_or_else(|| "success".to_owned());
    drop(inner);
    state.messages.push(SentMessage {
        msgtype: "template".into(),
        touser: openid.clone(),
        text: template.render(&values),
        msgid: Some(msgid),
        template_id: Some(template.template_id.clone()),
        data: values,
        url,
        received_at: now,
        received_at_ms: now_ms,
    });
    state.accepted_templates.fetch_add(1, Ordering::Relaxed);
    push::schedule_template_status(state, &openid, msgid, status);
    Ok(json!({"errcode": 0, "errmsg": "ok", "msgid": msgid}))
}

/// Opens (or keeps) the one-minute, three-message allowance of a follow.
pub(super) fn open_follow_window(inner: &mut Inner, openid: &str, now: i64) {
    let longer_open = inner.windows.get(openid).is_some_and(|w| {
        w.open_at(now) && w.opened_at + w.duration_secs > now + FOLLOW_WINDOW_SECS
    });
    if !longer_open {
        inner.windows.insert(
            openid.to_owned(),
            super::Window {
                opened_at: now,
                duration_secs: FOLLOW_WINDOW_SECS,
                cap: super::FOLLOW_WINDOW_MESSAGES,
                sent: 0,
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_look_like_wechats() {
        let token = new_token();
        assert!(token.starts_with("89_"));
        assert_eq!(token.len(), 103);
        assert_ne!(token, new_token());
    }
}
