//! The HTTP server of a running host.
//!
//! Two routers on two listeners, because they face different people:
//! - [`public_router`]: what platforms call — `GET|POST /webhooks/{channel}`
//!   (handed to the channel's adapter, which verifies it and returns the
//!   reply and normalised events) and `GET /healthz`; nothing else;
//! - [`admin_router`]: what operators call — campaigns, sends, decisions,
//!   adapters and metrics (see [`api`]), behind bearer tokens and a Host
//!   check ([`auth`]), on a loopback listener by default.
//!
//! Modules:
//! - [`webhooks`]: platform webhooks into store changes;
//! - [`gate`]: how many webhook calls run at once;
//! - [`api`]: the admin API;
//! - [`auth`]: the admin API's tokens and Host check;
//! - [`campaigns`]: campaigns submitted over the API, enqueued in the background;
//! - [`events`]: events from the brand's systems, run through the triggers;
//! - [`metrics`]: the counters at `/metrics`;
//! - [`listener`]: serving a router with connection limits and timeouts.

pub mod api;
pub mod auth;
pub mod campaigns;
pub mod events;
pub mod gate;
pub mod listener;
pub mod metrics;
pub mod webhooks;

use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::routing::{any, get, post};
use switchboard_delivery::{DeliverySettings, Engine};
use switchboard_runtime::AdapterRuntime;
use switchboard_store::Store;

use auth::AdminAuth;
use gate::WebhookGate;
use metrics::Metrics;

/// Largest webhook body accepted, in bytes.
pub const MAX_WEBHOOK_BYTES: usize = 1024 * 1024;
/// Largest campaign submission (definition plus an uploaded audience), in bytes.
pub const MAX_SUBMISSION_BYTES: usize = 256 * 1024 * 1024;

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    /// Loaded adapters.
    pub runtime: Arc<AdapterRuntime>,
    /// The database.
    pub store: Arc<dyn Store>,
    /// The delivery engine working the outbox.
    pub engine: Arc<Engine>,
    /// How the engine sends (for campaign validation).
    pub settings: DeliverySettings,
    /// Counters.
    pub metrics: Arc<Metrics>,
    /// Where adapter packages live, for hot reload.
    pub adapters_dir: Option<PathBuf>,
    /// Where uploaded audiences are kept.
    pub uploads_dir: PathBuf,
    /// Who may call the admin API.
    pub auth: Arc<AdminAuth>,
    /// How many webhook calls run at once.
    pub gate: Arc<WebhookGate>,
    /// The listening triggers, as last read from the database.
    pub triggers: Arc<events::TriggerCache>,
}

/// The routes platforms call: webhooks and a health check.
pub fn public_router(state: AppState) -> Router {
    Router::new()
        .route("/webhooks/{channel}", any(webhooks::webhook))
        .route("/healthz", get(|| async { "ok" }))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_WEBHOOK_BYTES))
        .with_state(state)
}

/// The routes operators call, behind [`auth::require_admin`].
pub fn admin_router(state: AppState) -> Router {
    let auth = Arc::clone(&state.auth);
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/metrics", get(api::metrics_text))
        .route("/api/channels", get(api::channels))
        .route("/api/adapters/reload", post(api::reload))
        .route("/api/sends", get(api::sends))
        .route("/api/sends/retry", post(api::retry_class))
        .route("/api/sends/{key}", get(api::send))
        .route("/api/sends/{key}/retry", post(api::retry_send))
        .route("/api/profiles/{profile_id}/decisions", get(api::decisions))
        .route("/api/campaigns", post(campaigns::submit))
        .route("/api/campaigns/{name}", get(campaigns::status))
        .route("/api/campaigns/{name}/cancel", post(campaigns::cancel))
        .route("/api/events", post(events::post_events))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_SUBMISSION_BYTES))
        .layer(axum::middleware::from_fn_with_state(
            auth,
            auth::require_admin,
        ))
        .with_state(state)
}
