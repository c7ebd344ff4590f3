//! The admin API: adapters, the outbox, decisions and metrics.
//!
//! - `GET /metrics`: Prometheus text.
//! - `GET /api/channels`: loaded adapters and what they declared.
//! - `POST /api/adapters/reload`: load new or changed adapter packages from
//!   the adapters directory; calls in flight finish on their version.
//! - `GET /api/sends?campaign=&state=&class=&limit=`: the outbox, newest first.
//! - `GET /api/sends/{key}`: one send.
//! - `POST /api/sends/{key}/retry`: put a failed, uncertain, skipped or
//!   cancelled send back in the outbox.
//! - `POST /api/sends/retry?class=&campaign=`: the same for every failed
//!   send of a class (a dead-letter queue, drained).
//! - `GET /api/profiles/{id}/decisions`: why a person got what they got.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use switchboard_store::{SendQuery, SendState, StoreError, now_ms};

use crate::AppState;
use crate::webhooks::correlation_id;

/// The most sends one listing returns.
const MAX_LISTING: u32 = 10_000;

/// A database error as the API reports it: a correlation id, the details
/// in the log.
pub(crate) fn store_error(error: StoreError) -> Response {
    let id = correlation_id();
    tracing::error!(correlation = %id, %error, "admin API: database error");
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        Json(json!({"error": "database error", "correlation_id": id})),
    )
        .into_response()
}

/// `GET /metrics`.
pub async fn metrics_text(State(state): State<AppState>) -> String {
    state.metrics.render(&state.runtime)
}

/// `GET /api/channels`.
pub async fn channels(State(state): State<AppState>) -> Json<serde_json::Value> {
    let list: Vec<serde_json::Value> = state
        .runtime
        .channels()
        .into_iter()
        .filter_map(|name| state.runtime.get(&name))
        .map(|adapter| {
            json!({
                "channel": adapter.channel(),
                "display_name": adapter.info.display_name,
                "version": adapter.manifest.adapter.version,
                "contract": adapter.contract.as_str(),
                "digest": adapter.digest,
                "signer": adapter.signer,
                "messages_per_second": adapter.info.limits.messages_per_second,
                "max_batch_size": adapter.info.limits.max_batch_size,
                "deduplicates": adapter.info.deduplicates,
                "egress_hosts": adapter.info.egress_hosts,
            })
        })
        .collect();
    Json(serde_json::Value::Array(list))
}

/// `POST /api/adapters/reload`.
pub async fn reload(State(state): State<AppState>) -> Response {
    let Some(dir) = &state.adapters_dir else {
        return (StatusCode::NOT_FOUND, "no adapters directory configured\n").into_response();
    };
    let results = match state.runtime.load_dir(dir).await {
        Ok(results) => results,
        Err(error) => {
            return (StatusCode::INTERNAL_SERVER_ERROR, format!("{error}\n")).into_response();
        }
    };
    let mut loaded = Vec::new();
    let mut errors = Vec::new();
    for result in results {
        match result {
            Ok(adapter) => loaded.push(json!({
                "channel": adapter.channel(),
                "version": adapter.manifest.adapter.version,
                "contract": adapter.contract.as_str(),
                "digest": adapter.digest,
            })),
            Err(error) => errors.push(error.to_string()),
        }
    }
    state.engine.wake_all();
    let status = if errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::MULTI_STATUS
    };
    (status, Json(json!({"loaded": loaded, "errors": errors}))).into_response()
}

/// The filters of `GET /api/sends`.
#[derive(Debug, Deserialize)]
pub struct SendsQuery {
    campaign: Option<String>,
    state: Option<String>,
    class: Option<String>,
    limit: Option<u32>,
}

/// `GET /api/sends`.
pub async fn sends(State(state): State<AppState>, Query(query): Query<SendsQuery>) -> Response {
    let send_state = match query.state.as_deref() {
        None => None,
        Some(name) => match SendState::from_name(name) {
            Some(send_state) => Some(send_state),
            None => {
                let known: Vec<&str> = SendState::ALL.iter().map(|s| s.as_str()).collect();
                return (
                    StatusCode::BAD_REQUEST,
                    Json(json!({"error": format!("unknown state `{name}` (one of {})", known.join(", "))})),
                )
                    .into_response();
            }
        },
    };
    let query = SendQuery {
        campaign: query.campaign,
        state: send_state,
        class: query.class,
        limit: Some(query.limit.unwrap_or(1_000).min(MAX_LISTING)),
        ..SendQuery::default()
    };
    match state.store.sends(query).await {
        Ok(sends) => Json(sends).into_response(),
        Err(error) => store_error(error),
    }
}

/// `GET /api/sends/{key}`.
pub async fn send(State(state): State<AppState>, Path(key): Path<String>) -> Response {
    match state.store.send(&key).await {
        Ok(Some(send)) => Json(send).into_response(),
        Ok(None) => (
            StatusCode::NOT_FOUND,
            Json(json!({"error": "no such send"})),
        )
            .into_response(),
        Err(error) => store_error(error),
    }
}

/// `POST /api/sends/{key}/retry`.
pub async fn retry_send(State(state): State<AppState>, Path(key): Path<String>) -> Response {
    match state.store.retry_send(&key, now_ms()).await {
        Ok(None) => (StatusCode::NOT_FOUND, Json(json!({"error": "no such send"}))).into_response(),
        Ok(Some(before))
            if matches!(
                before,
                SendState::Failed | SendState::Uncertain | SendState::Skipped | SendState::Cancelled
            ) =>
        {
            state.engine.wake_all();
            Json(json!({"retried": key, "was": before.as_str()})).into_response()
        }
        Ok(Some(before)) => (
            StatusCode::CONFLICT,
            Json(json!({
                "error": format!("the send is {}: only failed, uncertain, skipped or cancelled sends are retried", before.as_str())
            })),
        )
            .into_response(),
        Err(error) => store_error(error),
    }
}

/// The filters of `POST /api/sends/retry`.
#[derive(Debug, Deserialize)]
pub struct RetryQuery {
    class: String,
    campaign: Option<String>,
}

/// `POST /api/sends/retry?class=&campaign=`.
pub async fn retry_class(
    State(state): State<AppState>,
    Query(query): Query<RetryQuery>,
) -> Response {
    match state
        .store
        .retry_class(&query.class, query.campaign.as_deref(), now_ms())
        .await
    {
        Ok(count) => {
            state.engine.wake_all();
            Json(json!({"retried": count, "class": query.class})).into_response()
        }
        Err(error) => store_error(error),
    }
}

/// `GET /api/profiles/{id}/decisions`.
pub async fn decisions(State(state): State<AppState>, Path(profile_id): Path<String>) -> Response {
    match state.store.decisions_for(&profile_id).await {
        Ok(list) => Json(list).into_response(),
        Err(error) => store_error(error),
    }
}
