//! The `/_sim` control API: what tests, benchmarks and `make demo` use to
//! steer the simulator from outside the process.
//!
//! Shared routes live here (`/_sim/health`, `/_sim/faults`,
//! `/_sim/faults/stats`, `/_sim/clock`);
//! each platform contributes its own sub-router (`/_sim/whatsapp/...`). The
//! full list is in the crate documentation. Errors are JSON:
//! `{"error":"…"}` with a 4xx/5xx status.

use std::sync::Arc;

use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::clock::Clock;
use crate::faults::{FaultConfig, FaultStats, Faults};
use crate::webhook_sender::WebhookError;
use crate::whatsapp::ControlError;

/// A failed control request: an HTTP status and `{"error": message}` plus
/// optional extra fields.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ControlFailure {
    status: StatusCode,
    body: Value,
}

impl ControlFailure {
    /// A failure with `status` and message.
    pub(crate) fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            body: json!({ "error": message.into() }),
        }
    }

    /// 400 with `message`.
    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    /// Adds a field to the error body.
    pub(crate) fn with(mut self, key: &str, value: Value) -> Self {
        if let Some(obj) = self.body.as_object_mut() {
            obj.insert(key.to_owned(), value);
        }
        self
    }
}

impl IntoResponse for ControlFailure {
    fn into_response(self) -> Response {
        (self.status, Json(self.body)).into_response()
    }
}

impl From<ControlError> for ControlFailure {
    fn from(error: ControlError) -> Self {
        let status = match &error {
            ControlError::InvalidWaId(_)
            | ControlError::InvalidUrl(_)
            | ControlError::Invalid(_) => StatusCode::BAD_REQUEST,
            ControlError::Webhook(WebhookError::NoUrl) => StatusCode::CONFLICT,
            ControlError::Webhook(_) => StatusCode::BAD_GATEWAY,
        };
        Self::new(status, error.to_string())
    }
}

/// Unwraps a JSON body, turning a malformed one into a 400 with the reason.
pub(crate) fn json_body<T>(body: Result<Json<T>, JsonRejection>) -> Result<T, ControlFailure> {
    body.map(|Json(value)| value)
        .map_err(|rejection| ControlFailure::bad_request(rejection.body_text()))
}

#[derive(Clone)]
struct Shared {
    clock: Arc<Clock>,
    faults: Arc<Faults>,
}

/// The whole `/_sim` router (to be nested at `/_sim`).
/// Each platform contributes `(name, router)`, nested at `/_sim/{name}`.
pub(crate) fn router(
    clock: Arc<Clock>,
    faults: Arc<Faults>,
    platforms: Vec<(&'static str, Router)>,
) -> Router {
    let shared = Shared { clock, faults };
    let mut router = Router::new()
        .route("/health", get(health))
        .route("/faults", get(get_faults).put(put_faults))
        .route("/faults/stats", get(fault_stats).delete(clear_fault_stats))
        .route("/clock", get(get_clock).put(put_clock))
        .route("/clock/advance", post(advance_clock))
        .with_state(shared);
    for (name, platform) in platforms {
        router = router.nest(&format!("/{name}"), platform);
    }
    router
}

async fn health() -> Json<Value> {
    Json(json!({"status": "ok", "platforms": crate::PLATFORMS}))
}

async fn get_faults(State(shared): State<Shared>) -> Json<FaultConfig> {
    Json(shared.faults.get())
}

async fn put_faults(
    State(shared): State<Shared>,
    body: Result<Json<FaultConfig>, JsonRejection>,
) -> Result<Json<FaultConfig>, ControlFailure> {
    let config = json_body(body)?;
    shared
        .faults
        .set(config)
        .map_err(|e| ControlFailure::bad_request(e.to_string()))?;
    Ok(Json(shared.faults.get()))
}

async fn fault_stats(State(shared): State<Shared>) -> Json<FaultStats> {
    Json(shared.faults.stats())
}

async fn clear_fault_stats(State(shared): State<Shared>) -> Json<FaultStats> {
    shared.faults.clear_stats();
    Json(shared.faults.stats())
}

fn clock_json(clock: &Clock) -> Json<Value> {
    Json(json!({"now_unix": clock.now_unix(), "offset_secs": clock.offset_secs()}))
}

async fn get_clock(State(shared): State<Shared>) -> Json<Value> {
    clock_json(&shared.clock)
}

#[derive(Deserialize)]
struct SetClock {
    offset_secs: i64,
}

async fn put_clock(
    State(shared): State<Shared>,
    body: Result<Json<SetClock>, JsonRejection>,
) -> Result<Json<Value>, ControlFailure> {
    let request = json_body(body)?;
    shared.clock.set_offset(request.offset_secs);
    Ok(clock_json(&shared.clock))
}

#[derive(Deserialize)]
struct AdvanceClock {
    seconds: i64,
}

async fn advance_clock(
    State(shared): State<Shared>,
    body: Result<Json<AdvanceClock>, JsonRejection>,
) -> Result<Json<Value>, ControlFailure> {
    let request = json_body(body)?;
    shared.clock.advance(request.seconds);
    Ok(clock_json(&shared.clock))
}
