//! Events from the brand's systems: `POST /api/events`.
//!
//! The body is one event or a batch:
//!
//! ```json
//! {"events": [{"id": "evt-1", "profile_id": "cust-1", "name": "cart_abandoned",
//!              "time": "2026-12-03T17:00:00Z",
//!              "properties": {"phone": "+4915123456789", "consent_whatsapp_marketing": "yes",
//!                             "name": "Chen", "cart_url": "https://shop.example/c/1"}}]}
//! ```
//!
//! `time` is optional (default: now), as RFC 3339 or ms since the Unix
//! epoch. Each event is recorded once by id (a replay answers `duplicate`
//! and does nothing) and run through the listening triggers
//! ([`switchboard_delivery::triggers`]). The answer lists, per event, what
//! each trigger did. A malformed event is refused with its index and field;
//! the others in the batch still go through (207).

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use switchboard_core::campaign::Campaign;
use switchboard_delivery::activation::Outbox;
use switchboard_delivery::run::channel_infos;
use switchboard_delivery::triggers;
use switchboard_store::{ProfileEvent, Store, now_ms};
use tokio::sync::Mutex;

use crate::AppState;

/// The most events in one request.
pub const MAX_EVENTS: usize = 10_000;
/// How long the triggers read from the database are used before reading again.
const TRIGGERS_FRESH_FOR: Duration = Duration::from_secs(1);

/// The listening triggers, read from the database at most once a second so
/// that a trigger submitted to any node acts on every node's events.
#[derive(Default)]
pub struct TriggerCache {
    cached: Mutex<Option<(Instant, Arc<Vec<Campaign>>)>>,
}

impl TriggerCache {
    /// The listening triggers, fresh within a second.
    pub async fn get(
        &self,
        store: &Arc<dyn Store>,
    ) -> switchboard_store::StoreResult<Arc<Vec<Campaign>>> {
        let mut cached = self.cached.lock().await;
        if let Some((at, triggers)) = cached.as_ref()
            && at.elapsed() < TRIGGERS_FRESH_FOR
        {
            return Ok(Arc::clone(triggers));
        }
        let triggers = Arc::new(triggers::listening(&store.campaigns().await?));
        *cached = Some((Instant::now(), Arc::clone(&triggers)));
        Ok(triggers)
    }

    /// Forget what was read (a trigger was submitted or cancelled here).
    pub async fn invalidate(&self) {
        *self.cached.lock().await = None;
    }
}

/// The body: `{"events": [...]}` or one event.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Events {
    /// A batch.
    Batch {
        /// The events.
        events: Vec<serde_json::Value>,
    },
    /// One event.
    One(serde_json::Value),
}

/// One event as posted.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PostedEvent {
    id: String,
    profile_id: String,
    name: String,
    #[serde(default)]
    time: Option<serde_json::Value>,
    #[serde(default)]
    properties: serde_json::Map<String, serde_json::Value>,
}

/// Check one posted event; the error names the field.
fn read_event(value: serde_json::Value, received_ms: i64) -> Result<ProfileEvent, String> {
    let posted: PostedEvent = serde_json::from_value(value).map_err(|e| e.to_string())?;
    for (field, text) in [
        ("id", &posted.id),
        ("profile_id", &posted.profile_id),
        ("name", &posted.name),
    ] {
        if text.trim().is_empty() {
            return Err(format!("field `{field}`: must not be empty"));
        }
    }
    let occurred_ms = match &posted.time {
        None | Some(serde_json::Value::Null) => received_ms,
        Some(serde_json::Value::Number(ms)) => ms.as_i64().ok_or_else(|| {
            format!("field `time`: `{ms}` is not whole milliseconds since the Unix epoch")
        })?,
        Some(serde_json::Value::String(text)) => text
            .parse::<jiff::Timestamp>()
            .map(|t| t.as_millisecond())
            .map_err(|e| format!("field `time`: `{text}` is not an RFC 3339 time ({e})"))?,
        Some(other) => {
            return Err(format!(
                "field `time`: expected an RFC 3339 string or ms since the Unix epoch, found {other}"
            ));
        }
    };
    let properties = triggers::properties_from_json(&posted.properties)
        .map_err(|e| format!("field `properties`: {e}"))?;
    Ok(ProfileEvent {
        event_id: posted.id,
        profile_id: posted.profile_id,
        name: posted.name,
        occurred_ms,
        received_ms,
        properties,
    })
}

/// `POST /api/events`.
pub async fn post_events(State(state): State<AppState>, Json(body): Json<Events>) -> Response {
    let values = match body {
        Events::Batch { events } => events,
        Events::One(event) => vec![event],
    };
    if values.len() > MAX_EVENTS {
        return (
            StatusCode::PAYLOAD_TOO_LARGE,
            Json(json!({"error": format!("at most {MAX_EVENTS} events per request; this one has {}", values.len())})),
        )
            .into_response();
    }
    let received_ms = now_ms();
    let mut events = Vec::with_capacity(values.len());
    let mut refused = Vec::new();
    for (index, value) in values.into_iter().enumerate() {
        match read_event(value, received_ms) {
            Ok(event) => events.push(event),
            Err(error) => {
                refused.push(json!({"index": index, "error": format!("events[{index}]: {error}")}))
            }
        }
    }
    let triggers = match state.triggers.get(&state.store).await {
        Ok(triggers) => triggers,
        Err(error) => return crate::api::store_error(error),
    };
    let infos = channel_infos(&state.runtime);
    let outbox = Outbox {
        store: &state.store,
        infos: &infos,
        settings: &state.settings,
    };
    let handled = match triggers::handle_events(outbox, &triggers, events, received_ms).await {
        Ok(handled) => handled,
        Err(error) => {
            let id = crate::webhooks::correlation_id();
            tracing::error!(correlation = %id, %error, "events: could not handle");
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                Json(json!({"error": "could not record the events", "correlation_id": id})),
            )
                .into_response();
        }
    };
    for channel in &handled.channels {
        state.engine.wake(channel);
    }
    state.metrics.events(handled.results.len() as u64);
    let status = if refused.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::MULTI_STATUS
    };
    (
        status,
        Json(json!({"results": handled.results, "refused": refused})),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_is_read_with_its_time_in_either_form() {
        let event = read_event(
            json!({"id": "e1", "profile_id": "p1", "name": "cart_abandoned",
                   "time": "2026-12-03T17:00:00Z", "properties": {"phone": "+4915123456789", "items": 3, "vip": true}}),
            5,
        )
        .expect("reads");
        assert_eq!(event.occurred_ms, 1_796_317_200_000);
        assert_eq!(event.properties["items"], "3");
        assert_eq!(event.properties["vip"], "true");
        let event = read_event(
            json!({"id": "e2", "profile_id": "p1", "name": "x", "time": 1234}),
            5,
        )
        .expect("reads");
        assert_eq!((event.occurred_ms, event.received_ms), (1234, 5));
        let event =
            read_event(json!({"id": "e3", "profile_id": "p1", "name": "x"}), 7).expect("reads");
        assert_eq!(event.occurred_ms, 7);
    }

    #[test]
    fn a_bad_event_names_its_field() {
        let error = read_event(json!({"id": "", "profile_id": "p", "name": "x"}), 0).unwrap_err();
        assert_eq!(error, "field `id`: must not be empty");
        let error = read_event(
            json!({"id": "e", "profile_id": "p", "name": "x", "time": "yesterday"}),
            0,
        )
        .unwrap_err();
        assert!(
            error.starts_with("field `time`: `yesterday` is not an RFC 3339 time"),
            "{error}"
        );
        let error = read_event(
            json!({"id": "e", "profile_id": "p", "name": "x", "properties": {"cart": [1]}}),
            0,
        )
        .unwrap_err();
        assert_eq!(
            error,
            "field `properties`: property `cart` is a list: give strings, numbers or booleans"
        );
        let error = read_event(json!({"id": "e", "profile_id": "p", "nmae": "x"}), 0).unwrap_err();
        assert!(error.contains("unknown field `nmae`"), "{error}");
    }
}
