//! The HTTP server: platform webhooks, a small admin API and metrics.
//!
//! - [`events`]: applying webhook events to the store.
//! - [`metrics`]: the counters at `/metrics`.
//!
//! - `GET|POST /webhooks/{channel}`: handed to the channel's adapter, which
//!   verifies it and returns the reply and normalised events; the events
//!   update delivery status, windows and the consent ledger.
//! - `GET /healthz`: liveness.
//! - `GET /metrics`: Prometheus text.
//! - `GET /api/channels`: loaded adapters and what they declared.
//! - `GET /api/sends?campaign=NAME`: the outbox.
//! - `GET /api/profiles/{id}/decisions`: why a person got what they got.
//! - `POST /api/adapters/reload`: load new or changed adapter packages from
//!   the adapters directory without a restart; calls in flight finish on the
//!   version they started with.

pub mod events;
pub mod metrics;

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{any, get};
use serde::Deserialize;

use switchboard_contract::model::HttpRequest;
use switchboard_runtime::AdapterRuntime;
use switchboard_store::Store;

use metrics::Metrics;

/// Largest webhook body accepted, in bytes.
const MAX_WEBHOOK_BYTES: usize = 1024 * 1024;

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    /// Loaded adapters.
    pub runtime: Arc<AdapterRuntime>,
    /// The database.
    pub store: Store,
    /// Counters.
    pub metrics: Arc<Metrics>,
    /// Where adapter packages live, for hot reload.
    pub adapters_dir: Option<std::path::PathBuf>,
}

/// The server's routes.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/webhooks/{channel}", any(webhook))
        .route("/healthz", get(|| async { "ok" }))
        .route("/metrics", get(metrics_text))
        .route("/api/channels", get(channels))
        .route("/api/sends", get(sends))
        .route("/api/profiles/{profile_id}/decisions", get(decisions))
        .route("/api/adapters/reload", axum::routing::post(reload))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_WEBHOOK_BYTES))
        .with_state(state)
}

async fn webhook(
    State(state): State<AppState>,
    Path(channel): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(adapter) = state.runtime.get(&channel) else {
        state.metrics.count(&format!(
            "webhooks_total{{channel=\"{channel}\",result=\"unknown_channel\"}}"
        ));
        return (
            StatusCode::NOT_FOUND,
            format!("no adapter for channel `{channel}`\n"),
        )
            .into_response();
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
            state.metrics.count(&format!(
                "webhooks_total{{channel=\"{channel}\",result=\"adapter_error\"}}"
            ));
            // 500 makes the platform redeliver later.
            return (StatusCode::INTERNAL_SERVER_ERROR, format!("{error}\n")).into_response();
        }
    };
    let applied = events::apply(&state.store, &adapter.info, &result.events);
    if let Err(error) = applied {
        tracing::error!(%error, channel, "could not record webhook events");
        state.metrics.count(&format!(
            "webhooks_total{{channel=\"{channel}\",result=\"store_error\"}}"
        ));
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            "could not record events\n",
        )
            .into_response();
    }
    state.metrics.count(&format!(
        "webhooks_total{{channel=\"{channel}\",result=\"{}\"}}",
        result.response.status
    ));
    for event in &result.events {
        state.metrics.count(&format!(
            "webhook_events_total{{channel=\"{channel}\",kind=\"{}\"}}",
            event.kind.name()
        ));
    }
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

async fn metrics_text(State(state): State<AppState>) -> String {
    state.metrics.render(&state.runtime)
}

async fn channels(State(state): State<AppState>) -> Json<serde_json::Value> {
    let list: Vec<serde_json::Value> = state
        .runtime
        .channels()
        .into_iter()
        .filter_map(|name| state.runtime.get(&name))
        .map(|adapter| {
            serde_json::json!({
                "channel": adapter.channel(),
                "display_name": adapter.info.display_name,
                "version": adapter.manifest.adapter.version,
                "contract": adapter.contract.as_str(),
                "digest": adapter.digest,
                "messages_per_second": adapter.info.limits.messages_per_second,
                "max_batch_size": adapter.info.limits.max_batch_size,
                "egress_hosts": adapter.info.egress_hosts,
            })
        })
        .collect();
    Json(serde_json::Value::Array(list))
}

#[derive(Deserialize)]
struct SendsQuery {
    campaign: Option<String>,
}

async fn sends(State(state): State<AppState>, Query(query): Query<SendsQuery>) -> Response {
    match state.store.sends(query.campaign.as_deref()) {
        Ok(sends) => Json(sends).into_response(),
        Err(error) => (StatusCode::INTERNAL_SERVER_ERROR, error.to_string()).into_response(),
    }
}

async fn decisions(State(state): State<AppState>, Path(profile_id): Path<String>) -> Response {
    match state.store.decisions_for(&profile_id) {
        Ok(list) => Json(list).into_response(),
        Err(error) => (StatusCode::INTERNAL_SERVER_ERROR, error.to_string()).into_response(),
    }
}

async fn reload(State(state): State<AppState>) -> Response {
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
            Ok(adapter) => loaded.push(serde_json::json!({
                "channel": adapter.channel(),
                "version": adapter.manifest.adapter.version,
                "digest": adapter.digest,
            })),
            Err(error) => errors.push(error.to_string()),
        }
    }
    let status = if errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::MULTI_STATUS
    };
    (
        status,
        Json(serde_json::json!({"loaded": loaded, "errors": errors})),
    )
        .into_response()
}
