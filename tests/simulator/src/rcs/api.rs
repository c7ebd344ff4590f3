//! The RBM API and the OAuth token endpoint.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine as _;
use rand::Rng as _;
use serde_json::{Value, json};

use super::auth::{self, AssertionError};
use super::error::{GoogleError, OAuthError};
use super::validate::{self, Expiry};
use super::{MessageState, RcsMessage, RcsState, lock, webhooks};

/// The JWT-bearer grant type.
const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// The real token endpoint, also accepted as an assertion's audience.
const GOOGLE_TOKEN_URL: &str = "https://oauth2.googleapis.com/token";

pub(super) fn router(state: Arc<RcsState>) -> Router {
    Router::new()
        .route("/token", post(token))
        .route("/v1/phones/{phone}/agentMessages", post(send_message))
        .route("/v1/phones/{phone}/capabilities", get(capabilities))
        .with_state(state)
}

/// `key=value` pairs of a query string or form body, percent-decoded.
fn form_pairs(text: &str) -> Vec<(String, String)> {
    text.split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(key), percent_decode(value))
        })
        .collect()
}

fn form_value(pairs: &[(String, String)], name: &str) -> Option<String> {
    pairs
        .iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.clone())
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                match std::str::from_utf8(&bytes[i + 1..i + 3])
                    .ok()
                    .and_then(|hex| u8::from_str_radix(hex, 16).ok())
                {
                    Some(byte) => {
                        out.push(byte);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            other => out.push(other),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

async fn token(State(state): State<Arc<RcsState>>, headers: HeaderMap, body: Bytes) -> Response {
    state.token_requests.fetch_add(1, Ordering::Relaxed);
    match issue_token(&state, &headers, &body) {
        Ok(reply) => Json(reply).into_response(),
        Err(error) => {
            state.token_refusals.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(%error, "rcs: token request refused");
            error.into_response()
        }
    }
}

fn issue_token(state: &RcsState, headers: &HeaderMap, body: &[u8]) -> Result<Value, OAuthError> {
    let form = form_pairs(&String::from_utf8_lossy(body));
    let grant_type = form_value(&form, "grant_type").unwrap_or_default();
    if grant_type != JWT_BEARER {
        return Err(OAuthError::unsupported_grant_type(&grant_type));
    }
    let assertion = form_value(&form, "assertion")
        .filter(|a| !a.is_empty())
        .ok_or_else(|| OAuthError::invalid_request("Missing required parameter: assertion"))?;
    let mut audiences = vec![GOOGLE_TOKEN_URL.to_owned()];
    if let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) {
        audiences.push(format!("http://{host}/token"));
    }
    let now = state.clock.now_unix();
    auth::verify_assertion(
        &assertion,
        &state.verifying_key,
        &state.client_email,
        &audiences,
        now,
    )
    .map_err(|error: AssertionError| OAuthError::from(error))?;
    let mut raw = [0u8; 48];
    rand::rng().fill(&mut raw[..]);
    let token = format!(
        "ya29.sim-{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
    );
    let lifetime = state.token_lifetime_secs;
    let expires_at = state.clock.now_unix_ms() + i64::from(lifetime) * 1_000;
    lock(&state.tokens).insert(token.clone(), expires_at);
    state.tokens_issued.fetch_add(1, Ordering::Relaxed);
    Ok(json!({"access_token": token, "expires_in": lifetime, "token_type": "Bearer"}))
}

/// Checks shared by every API call: bearer token, agent, fault injection.
async fn authorize(
    state: &RcsState,
    headers: &HeaderMap,
    query: &[(String, String)],
) -> Result<(), GoogleError> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim().to_owned());
    let now = state.clock.now_unix_ms();
    let valid = token
        .as_deref()
        .and_then(|token| lock(&state.tokens).get(token).copied())
        .is_some_and(|expires_at| expires_at > now);
    if !valid {
        return Err(GoogleError::unauthenticated());
    }
    let agent = form_value(query, "agentId").unwrap_or_default();
    if agent != state.agent_id {
        return Err(GoogleError::permission_denied(&agent));
    }
    if state.faults.apply().await {
        return Err(GoogleError::unavailable());
    }
    Ok(())
}

fn reject(state: &RcsState, error: GoogleError) -> Response {
    state.rejections.record(i64::from(error.status.as_u16()));
    tracing::debug!(%error, "rcs: rejected");
    error.into_response()
}

async fn send_message(
    State(state): State<Arc<RcsState>>,
    Path(phone): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let query = form_pairs(query.as_deref().unwrap_or(""));
    let (accepted, reply) = match accept(&state, &phone, &query, &headers, &body).await {
        Ok(reply) => (true, Json(reply).into_response()),
        Err(error) => (false, reject(&state, error)),
    };
    state
        .faults
        .finish_send(accepted, &state.reset_after_accept, reply)
        .await
}

async fn accept(
    state: &Arc<RcsState>,
    phone: &str,
    query: &[(String, String)],
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Value, GoogleError> {
    authorize(state, headers, query).await?;
    if !state.bucket.try_acquire() {
        return Err(GoogleError::resource_exhausted());
    }
    if !validate::is_e164(phone) {
        return Err(GoogleError::invalid_argument(format!(
            "Invalid phone number \"{phone}\": expected E.164, e.g. +12223334444"
        )));
    }
    let message_id = form_value(query, "messageId").unwrap_or_default();
    if message_id.is_empty() {
        return Err(GoogleError::invalid_argument("messageId is required"));
    }
    if !validate::is_uuid(&message_id) {
        return Err(GoogleError::invalid_argument(format!(
            "messageId \"{message_id}\" is not a UUID"
        )));
    }
    let outbound = validate::parse_agent_message(body)?;
    if state.is_unreachable(phone) {
        return Err(GoogleError::not_found());
    }
    if !lock(&state.used_ids).insert(message_id.clone()) {
        return Err(GoogleError::already_exists(&message_id));
    }
    let now = state.clock.now_unix_ms();
    let expire_at_ms = match outbound.expiry {
        Expiry::None => None,
        Expiry::TtlMs(ttl) => Some(now.saturating_add(ttl)),
        Expiry::AtMs(at) => Some(at),
    };
    let online = !state.is_offline(phone);
    let message = RcsMessage {
        message_id: message_id.clone(),
        phone: phone.to_owned(),
        text: outbound.text.clone(),
        traffic_type: outbound.traffic_type.clone(),
        expire_at_ms,
        received_at_ms: now,
        state: if online {
            MessageState::Delivered
        } else {
            MessageState::Pending
        },
    };
    lock(&state.messages).push(message);
    state.accepted.fetch_add(1, Ordering::Relaxed);
    if online {
        webhooks::schedule_statuses(state, &message_id, phone);
    }
    let mut reply = json!({
        "name": format!("phones/{phone}/agentMessages/{message_id}"),
        "sendTime": validate::format_rfc3339(now),
        "contentMessage": {"text": outbound.text},
    });
    if let Some(obj) = reply.as_object_mut() {
        if let Some(kind) = outbound.traffic_type {
            obj.insert("messageTrafficType".into(), json!(kind));
        }
        if let Some(at) = expire_at_ms {
            obj.insert("expireTime".into(), json!(validate::format_rfc3339(at)));
        }
    }
    Ok(reply)
}

async fn capabilities(
    State(state): State<Arc<RcsState>>,
    Path(phone): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let query = form_pairs(query.as_deref().unwrap_or(""));
    let result = async {
        authorize(&state, &headers, &query).await?;
        if !validate::is_e164(&phone) {
            return Err(GoogleError::invalid_argument(format!(
                "Invalid phone number \"{phone}\": expected E.164, e.g. +12223334444"
            )));
        }
        let request_id = form_value(&query, "requestId").unwrap_or_default();
        if !validate::is_uuid(&request_id) {
            return Err(GoogleError::invalid_argument(
                "requestId is required and must be a UUID",
            ));
        }
        if state.is_unreachable(&phone) {
            return Err(GoogleError::not_found());
        }
        state.capability_checks.fetch_add(1, Ordering::Relaxed);
        Ok(json!({"features": [
            "RICHCARD_STANDALONE",
            "RICHCARD_CAROUSEL",
            "ACTION_CREATE_CALENDAR_EVENT",
            "ACTION_DIAL",
            "ACTION_OPEN_URL",
            "ACTION_SHARE_LOCATION",
            "ACTION_VIEW_LOCATION",
        ]}))
    }
    .await;
    match result {
        Ok(reply) => Json(reply).into_response(),
        Err(error) => reject(&state, error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_forms() {
        let pairs = form_pairs(
            "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion=a.b-c_d&x=1+2&bad=%zz&flag",
        );
        assert_eq!(
            form_value(&pairs, "grant_type").as_deref(),
            Some(JWT_BEARER)
        );
        assert_eq!(form_value(&pairs, "assertion").as_deref(), Some("a.b-c_d"));
        assert_eq!(form_value(&pairs, "x").as_deref(), Some("1 2"));
        assert_eq!(form_value(&pairs, "bad").as_deref(), Some("%zz"));
        assert_eq!(form_value(&pairs, "flag").as_deref(), Some(""));
        assert_eq!(form_value(&pairs, "missing"), None);
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%e2%82%ac"), "€");
    }
}
