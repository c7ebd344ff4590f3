//! `POST /v2/bot/message/push`, `POST /v2/bot/message/multicast`,
//! `GET /v2/bot/message/quota` and `GET /v2/bot/message/quota/consumption`.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};

use super::error::{LineApiError, RETRY_KEY_ACCEPTED};
use super::{
    AcceptedKey, FailMode, LineEndpoint, LineMessage, LineRequest, LineState,
    RETRY_KEY_RETENTION_MS, ids, lock, validate,
};

/// `X-Line-Request-Id`, on every reply.
const REQUEST_ID: HeaderName = HeaderName::from_static("x-line-request-id");
/// `X-Line-Accepted-Request-Id`, on a 409.
const ACCEPTED_REQUEST_ID: HeaderName = HeaderName::from_static("x-line-accepted-request-id");
/// `X-Line-Retry-Key`, sent by the client.
const RETRY_KEY: &str = "x-line-retry-key";

pub(super) fn router(state: Arc<LineState>) -> Router {
    Router::new()
        .route("/v2/bot/message/push", post(push))
        .route("/v2/bot/message/multicast", post(multicast))
        .route("/v2/bot/message/quota", get(quota))
        .route("/v2/bot/message/quota/consumption", get(consumption))
        .with_state(state)
}

async fn push(State(state): State<Arc<LineState>>, headers: HeaderMap, body: Bytes) -> Response {
    send(&state, LineEndpoint::Push, &headers, &body).await
}

async fn multicast(
    State(state): State<Arc<LineState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    send(&state, LineEndpoint::Multicast, &headers, &body).await
}

/// How a send request was answered.
enum Answer {
    /// 200 with this body.
    Accepted(Value),
    /// 409: the retry key was accepted before, by this request id.
    Duplicate {
        accepted_request_id: String,
        sent_messages: Option<Value>,
    },
    /// An error reply.
    Error(LineApiError),
}

async fn send(
    state: &Arc<LineState>,
    endpoint: LineEndpoint,
    headers: &HeaderMap,
    body: &[u8],
) -> Response {
    let request_id = ids::request_id();
    let received_at_ms = state.clock.now_unix_ms();
    let retry_key = headers
        .get(RETRY_KEY)
        .map(|value| String::from_utf8_lossy(value.as_bytes()).trim().to_owned());
    let mut recipients = Vec::new();
    let answer = handle(
        state,
        endpoint,
        headers,
        body,
        &request_id,
        retry_key.as_deref(),
        &mut recipients,
    )
    .await;
    let accepted = matches!(answer, Answer::Accepted(_));
    let (status, error, response) = match answer {
        Answer::Accepted(body) => (StatusCode::OK, None, Json(body).into_response()),
        Answer::Duplicate {
            accepted_request_id,
            sent_messages,
        } => {
            state.duplicates.fetch_add(1, Ordering::Relaxed);
            let mut body = json!({"message": RETRY_KEY_ACCEPTED});
            if let (Some(obj), Some(sent)) = (body.as_object_mut(), sent_messages) {
                obj.insert("sentMessages".into(), sent);
            }
            let mut response = (StatusCode::CONFLICT, Json(body)).into_response();
            if let Ok(value) = HeaderValue::from_str(&accepted_request_id) {
                response.headers_mut().insert(ACCEPTED_REQUEST_ID, value);
            }
            (
                StatusCode::CONFLICT,
                Some(RETRY_KEY_ACCEPTED.to_owned()),
                response,
            )
        }
        Answer::Error(error) => {
            state.rejections.record(i64::from(error.status.as_u16()));
            tracing::debug!(status = %error.status, message = %error.message, "line: rejected");
            let response = (error.status, Json(error.body())).into_response();
            (error.status, Some(error.message), response)
        }
    };
    state.requests.push(LineRequest {
        request_id: request_id.clone(),
        endpoint,
        retry_key,
        recipients,
        status: status.as_u16(),
        error,
        received_at_ms,
    });
    let response = with_request_id(response, &request_id);
    state
        .faults
        .finish_send(accepted, &state.reset_after_accept, response)
        .await
}

fn with_request_id(mut response: Response, request_id: &str) -> Response {
    if let Ok(value) = HeaderValue::from_str(request_id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    response
}

async fn handle(
    state: &Arc<LineState>,
    endpoint: LineEndpoint,
    headers: &HeaderMap,
    body: &[u8],
    request_id: &str,
    retry_key: Option<&str>,
    recipients: &mut Vec<String>,
) -> Answer {
    if bearer_token(headers).as_deref() != Some(state.access_token.as_str()) {
        return Answer::Error(LineApiError::authentication_failed());
    }
    if retry_key.is_some_and(|key| !validate::is_retry_key(key)) {
        return Answer::Error(LineApiError::invalid_retry_key());
    }
    let scripted = lock(&state.scripted).pop_front();
    if scripted == Some(FailMode::BeforeAccept) || state.faults.apply().await {
        state.faults_injected.fetch_add(1, Ordering::Relaxed);
        return Answer::Error(LineApiError::internal());
    }
    if !state.bucket(endpoint).try_acquire() {
        state.rate_limited.fetch_add(1, Ordering::Relaxed);
        return Answer::Error(LineApiError::too_many_requests());
    }
    let request = match validate::parse(endpoint, body) {
        Ok(request) => request,
        Err(error) => return Answer::Error(error),
    };
    recipients.clone_from(&request.recipients);

    let now_ms = state.clock.now_unix_ms();
    let reply = {
        // One lock over the replay check, the quota and the acceptance, so
        // that two requests with the same key cannot both be accepted.
        let mut keys = lock(&state.retry_keys);
        if let Some(accepted) = retry_key
            .and_then(|key| keys.get(key))
            .filter(|accepted| now_ms - accepted.at_ms < RETRY_KEY_RETENTION_MS)
        {
            return Answer::Duplicate {
                accepted_request_id: accepted.request_id.clone(),
                sent_messages: accepted.sent_messages.clone(),
            };
        }
        let deliverable = request
            .recipients
            .iter()
            .filter(|to| !state.is_blocked(to))
            .count() as u64;
        let used = state.quota_used.load(Ordering::Relaxed);
        if used.saturating_add(deliverable) > state.monthly_quota.load(Ordering::Relaxed) {
            state.quota_exceeded.fetch_add(1, Ordering::Relaxed);
            return Answer::Error(LineApiError::monthly_limit());
        }
        state
            .quota_used
            .store(used.saturating_add(deliverable), Ordering::Relaxed);

        let mut sent_messages = Vec::new();
        for to in &request.recipients {
            let delivered = !state.is_blocked(to);
            for text in &request.texts {
                let id = ids::message_id();
                if endpoint == LineEndpoint::Push {
                    sent_messages.push(json!({"id": id, "quoteToken": ids::token()}));
                }
                state.messages.push(LineMessage {
                    id,
                    request_id: request_id.to_owned(),
                    endpoint,
                    to: to.clone(),
                    message_type: "text".into(),
                    text: text.clone(),
                    retry_key: retry_key.map(str::to_owned),
                    delivered,
                    received_at_ms: now_ms,
                });
                state.messages_accepted.fetch_add(1, Ordering::Relaxed);
                let counter = if delivered {
                    &state.messages_delivered
                } else {
                    &state.messages_blocked
                };
                counter.fetch_add(1, Ordering::Relaxed);
            }
        }
        let (reply, kept) = match endpoint {
            LineEndpoint::Push => {
                let sent = Value::Array(sent_messages);
                (json!({"sentMessages": sent.clone()}), Some(sent))
            }
            LineEndpoint::Multicast => (json!({}), None),
        };
        if let Some(key) = retry_key {
            keys.insert(
                key.to_owned(),
                AcceptedKey {
                    request_id: request_id.to_owned(),
                    at_ms: now_ms,
                    sent_messages: kept,
                },
            );
        }
        reply
    };
    let counter = match endpoint {
        LineEndpoint::Push => &state.push_accepted,
        LineEndpoint::Multicast => &state.multicast_accepted,
    };
    counter.fetch_add(1, Ordering::Relaxed);

    if scripted == Some(FailMode::AfterAccept) {
        state.faults_injected.fetch_add(1, Ordering::Relaxed);
        return Answer::Error(LineApiError::internal());
    }
    Answer::Accepted(reply)
}

async fn quota(State(state): State<Arc<LineState>>, headers: HeaderMap) -> Response {
    let limit = state.monthly_quota.load(Ordering::Relaxed);
    read_only(&state, &headers, json!({"type": "limited", "value": limit}))
}

async fn consumption(State(state): State<Arc<LineState>>, headers: HeaderMap) -> Response {
    let used = state.quota_used.load(Ordering::Relaxed);
    read_only(&state, &headers, json!({"totalUsage": used}))
}

/// A `GET` reply after the bearer check.
fn read_only(state: &LineState, headers: &HeaderMap, body: Value) -> Response {
    let response = if bearer_token(headers).as_deref() == Some(state.access_token.as_str()) {
        Json(body).into_response()
    } else {
        let error = LineApiError::authentication_failed();
        (error.status, Json(error.body())).into_response()
    };
    with_request_id(response, &ids::request_id())
}

fn bearer_token(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_bearer_tokens() {
        let mut headers = HeaderMap::new();
        assert_eq!(bearer_token(&headers), None);
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer sim-line-token"),
        );
        assert_eq!(bearer_token(&headers).as_deref(), Some("sim-line-token"));
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert_eq!(bearer_token(&headers), None);
    }
}
