//! Platform webhooks: the channel's adapter verifies the request and turns
//! it into normalised events; [`switchboard_core::events::effects`] decides
//! what each event changes, and the store applies them in bounded batches
//! (a redelivered event changes nothing, so a batch that fails is simply
//! redelivered by the platform).
//!
//! A request for a channel that is not loaded is answered 404 and counted
//! nowhere (metric labels come only from loaded channels). Calls wait for a
//! slot in the [`crate::gate`]; error replies say only "refused" or
//! "failed" with a correlation id that the log line carries, never what the
//! adapter said.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use switchboard_contract::model::HttpRequest;
use switchboard_core::events;
use switchboard_store::{EventRecord, now_ms};

use crate::AppState;

/// Events applied per store transaction.
const EVENTS_PER_BATCH: usize = 250;

/// `GET|POST /webhooks/{channel}`.
pub async fn webhook(
    State(state): State<AppState>,
    Path(channel): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(adapter) = state.runtime.get(&channel) else {
        tracing::debug!("webhook for a channel that is not loaded");
        return (StatusCode::NOT_FOUND, "no such channel\n").into_response();
    };
    let Some(_slot) = state.gate.enter(&channel).await else {
        state.metrics.webhook(Some(&channel), "busy");
        tracing::warn!(%channel, "webhook refused: every slot is busy");
        let mut response = (StatusCode::SERVICE_UNAVAILABLE, "busy, retry later\n").into_response();
        response.headers_mut().insert(
            axum::http::header::RETRY_AFTER,
            axum::http::HeaderValue::from_static("1"),
        );
        return response;
    };
    let request = HttpRequest {
        method: method.as_str().to_owned(),
        path_and_query: uri
            .path_and_query()
            .map_or_else(|| uri.path().to_owned(), |pq| pq.as_str().to_owned()),
        headers: headers
            .iter()
            .map(|(name, value)| {
                (
                    name.as_str().to_owned(),
                    String::from_utf8_lossy(value.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body: body.to_vec(),
    };
    let result = match adapter.handle_webhook(&request).await {
        Ok(result) => result,
        Err(error) => {
            state.metrics.webhook(Some(&channel), "adapter_error");
            let id = correlation_id();
            tracing::warn!(%channel, correlation = %id, %error, "webhook failed in the adapter");
            // 500 makes the platform redeliver later.
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("failed ({id})\n"),
            )
                .into_response();
        }
    };
    let received_ms = now_ms();
    let policy = state.settings.consent(&channel);
    let mut records: Vec<EventRecord> = Vec::with_capacity(result.events.len());
    for event in &result.events {
        if let Some(reason) = events::refuse(event, u64::try_from(received_ms).unwrap_or(0)) {
            tracing::warn!(%channel, %reason, "webhook event refused");
            state.metrics.webhook_event(&channel, "refused");
            continue;
        }
        records.push(EventRecord {
            event_id: event.id.clone(),
            occurred_ms: i64::try_from(event.occurred_at_ms).unwrap_or(i64::MAX),
            received_ms,
            effects: events::effects(&adapter.info, &policy, event),
        });
    }
    while !records.is_empty() {
        let rest = records.split_off(records.len().min(EVENTS_PER_BATCH));
        let batch = std::mem::replace(&mut records, rest);
        if let Err(error) = state.store.apply_events(&channel, batch).await {
            let id = correlation_id();
            tracing::error!(%channel, correlation = %id, %error, "could not record webhook events");
            state.metrics.webhook(Some(&channel), "store_error");
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("failed ({id})\n"),
            )
                .into_response();
        }
    }
    state
        .metrics
        .webhook(Some(&channel), &result.response.status.to_string());
    for event in &result.events {
        state.metrics.webhook_event(&channel, event.kind.name());
    }
    // A send that fell back on an expired status is due now.
    state.engine.wake_all();
    let status = StatusCode::from_u16(result.response.status).unwrap_or(StatusCode::BAD_GATEWAY);
    if status.is_client_error() || status.is_server_error() {
        // What the adapter found wrong stays in the log.
        let id = correlation_id();
        tracing::warn!(
            %channel,
            correlation = %id,
            status = status.as_u16(),
            reply = %switchboard_runtime::bounds::escape_log_line(&String::from_utf8_lossy(&result.response.body)),
            "webhook refused by the adapter"
        );
        let word = if status.is_client_error() {
            "refused"
        } else {
            "failed"
        };
        return (status, format!("{word} ({id})\n")).into_response();
    }
    let mut response = (status, result.response.body).into_response();
    for (name, value) in result.response.headers {
        if let (Ok(name), Ok(value)) = (
            axum::http::HeaderName::from_bytes(name.as_bytes()),
            axum::http::HeaderValue::from_str(&value),
        ) {
            response.headers_mut().insert(name, value);
        }
    }
    response
}

/// A short id that ties an error reply to its log line.
pub fn correlation_id() -> String {
    format!("{:016x}", rand_u64())
}

fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    hasher.finish()
}
