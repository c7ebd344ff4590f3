//! Platform webhooks: the channel's adapter verifies the request and turns
//! it into normalised events; [`switchboard_core::events::effects`] decides
//! what each event changes, and the store applies them all in one
//! transaction (a redelivered event changes nothing).

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use switchboard_contract::model::HttpRequest;
use switchboard_core::events;
use switchboard_store::{EventRecord, now_ms};

use crate::AppState;

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
        state.metrics.webhook(None, "unknown_channel");
        return (StatusCode::NOT_FOUND, "no such channel\n").into_response();
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
    let records: Vec<EventRecord> = result
        .events
        .iter()
        .map(|event| EventRecord {
            event_id: event.id.clone(),
            occurred_ms: i64::try_from(event.occurred_at_ms).unwrap_or(i64::MAX),
            received_ms,
            effects: events::effects(&adapter.info, event),
        })
        .collect();
    if !records.is_empty()
        && let Err(error) = state.store.apply_events(&channel, records).await
    {
        let id = correlation_id();
        tracing::error!(%channel, correlation = %id, %error, "could not record webhook events");
        state.metrics.webhook(Some(&channel), "store_error");
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("failed ({id})\n"),
        )
            .into_response();
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
