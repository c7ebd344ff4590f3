//! `POST /{version}/{phone-number-id}/messages`.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{Value, json};

use super::error::{GraphError, codes};
use super::templates::TemplateCategory;
use super::throttle::Refusal;
use super::validate::{self, Content};
use super::{AcceptedMessage, WhatsAppState, ids, lock, webhooks};

pub(super) fn router(state: Arc<WhatsAppState>) -> Router {
    Router::new()
        .route("/{version}/{phone_number_id}/messages", post(send_message))
        .with_state(state)
}

async fn send_message(
    State(state): State<Arc<WhatsAppState>>,
    Path((version, phone_number_id)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (accepted, reply) = match handle(
        &state,
        &version,
        &phone_number_id,
        query.as_deref(),
        &headers,
        &body,
    )
    .await
    {
        Ok(reply) => (true, Json(reply).into_response()),
        Err(error) => {
            state.rejections.record(error.code);
            tracing::debug!(code = error.code, message = %error.message, "whatsapp: rejected");
            let retry_after = (error.code == codes::RATE_LIMIT_HIT)
                .then(|| state.retry_after_secs())
                .flatten();
            let mut response = error.into_response();
            if let Some(secs) = retry_after {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(secs));
            }
            (false, response)
        }
    };
    state
        .faults
        .finish_send(accepted, &state.reset_after_accept, reply)
        .await
}

async fn handle(
    state: &Arc<WhatsAppState>,
    version: &str,
    phone_number_id: &str,
    query: Option<&str>,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Value, GraphError> {
    if !is_graph_version(version) {
        return Err(GraphError::unknown_path(&format!(
            "/{version}/{phone_number_id}/messages"
        )));
    }
    let token = bearer_token(headers).or_else(|| query_token(query));
    if token.as_deref() != Some(state.access_token.as_str()) {
        return Err(GraphError::invalid_access_token());
    }
    if phone_number_id != state.phone_number_id {
        return Err(GraphError::unsupported_post_request(phone_number_id));
    }
    if state.faults.apply().await {
        return Err(GraphError::something_went_wrong());
    }
    if !state.bucket.try_acquire() {
        return Err(GraphError::rate_limit_hit());
    }

    let outbound = validate::parse(body)?;
    let now_ms = state.clock.now_unix_ms();
    let window_open = state.window_open(&outbound.wa_id);

    let (message_type, text, template, parameters) = match &outbound.content {
        Content::Text { body } => {
            if !window_open {
                return Err(GraphError::re_engagement());
            }
            ("text", body.clone(), None, Vec::new())
        }
        Content::Template {
            name,
            language,
            body_params,
            header_params,
        } => {
            let template = lock(&state.templates)
                .get(name, language)
                .cloned()
                .ok_or_else(|| GraphError::template_does_not_exist(name, language))?;
            if *header_params != template.header_params {
                return Err(GraphError::template_param_count(
                    "header",
                    *header_params,
                    template.header_params,
                ));
            }
            if body_params.len() != template.body_params {
                return Err(GraphError::template_param_count(
                    "body",
                    body_params.len(),
                    template.body_params,
                ));
            }
            if template.category == TemplateCategory::Marketing
                && state.is_marketing_stopped(&outbound.wa_id)
            {
                return Err(GraphError::marketing_opted_out());
            }
            let rendered = template.render(body_params);
            ("template", rendered, Some(template), body_params.clone())
        }
    };

    // Per-recipient throttling last, so only messages that would otherwise
    // be accepted meet it; checking and recording happen under one lock.
    let business_initiated = template.is_some() && !window_open;
    lock(&state.throttle)
        .admit(&outbound.wa_id, business_initiated, now_ms)
        .map_err(|refusal| match refusal {
            Refusal::PairRate => GraphError::pair_rate_limit_hit(),
            Refusal::MessagingLimit(limit) => GraphError::messaging_limit_hit(limit),
        })?;

    let wamid = ids::wamid(&outbound.wa_id);
    let pricing =
        webhooks::Pricing::for_message(template.as_ref().map(|t| t.category), window_open);
    let accepted = AcceptedMessage {
        wamid: wamid.clone(),
        to: outbound.to.clone(),
        wa_id: outbound.wa_id.clone(),
        message_type: message_type.to_owned(),
        template_name: template.as_ref().map(|t| t.name.clone()),
        template_language: template.as_ref().map(|t| t.language.clone()),
        template_category: template.as_ref().map(|t| t.category),
        parameters,
        text,
        callback_data: outbound.callback_data.clone(),
        received_at: now_ms.div_euclid(1000),
        received_at_ms: now_ms,
    };
    state.messages.push(accepted);
    state.accepted.fetch_add(1, Ordering::Relaxed);
    webhooks::schedule_statuses(
        state,
        &wamid,
        &outbound.wa_id,
        pricing,
        outbound.callback_data,
    );

    Ok(json!({
        "messaging_product": "whatsapp",
        "contacts": [{"input": outbound.to, "wa_id": outbound.wa_id}],
        "messages": [{"id": wamid}],
    }))
}

/// `vNN.N`, e.g. `v21.0`.
fn is_graph_version(version: &str) -> bool {
    let Some(rest) = version.strip_prefix('v') else {
        return false;
    };
    let Some((major, minor)) = rest.split_once('.') else {
        return false;
    };
    let digits = |s: &str| !s.is_empty() && s.len() <= 3 && s.bytes().all(|b| b.is_ascii_digit());
    digits(major) && digits(minor)
}

fn bearer_token(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_owned())
}

fn query_token(query: Option<&str>) -> Option<String> {
    query?.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=')?;
        (key == "access_token").then(|| value.to_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        assert!(is_graph_version("v21.0"));
        assert!(is_graph_version("v9.0"));
        assert!(!is_graph_version("21.0"));
        assert!(!is_graph_version("v21"));
        assert!(!is_graph_version("vx.0"));
        assert!(!is_graph_version("_sim"));
    }

    #[test]
    fn tokens() {
        let mut headers = HeaderMap::new();
        assert_eq!(bearer_token(&headers), None);
        headers.insert(header::AUTHORIZATION, "Bearer abc".parse().expect("header"));
        assert_eq!(bearer_token(&headers).as_deref(), Some("abc"));
        headers.insert(header::AUTHORIZATION, "Basic abc".parse().expect("header"));
        assert_eq!(bearer_token(&headers), None);
        assert_eq!(
            query_token(Some("a=1&access_token=xyz")).as_deref(),
            Some("xyz")
        );
    }
}
