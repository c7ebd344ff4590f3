//! `POST /bot{token}/sendMessage` and `/bot{token}/getMe`, like
//! `api.telegram.org` (method names are case-insensitive; any other method
//! is a 404).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::{Json, Router};
use serde_json::{Value, json};

use super::error::{self, BotApiError};
use super::{ChatState, TelegramMessage, TelegramState, lock};

pub(super) fn router(state: Arc<TelegramState>) -> Router {
    Router::new()
        .route("/bot{token}/{method}", any(method))
        .with_state(state)
}

async fn method(
    State(state): State<Arc<TelegramState>>,
    Path((token, method)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    if !super::is_bot_token(&token) {
        return reject(&state, BotApiError::not_found());
    }
    if token != state.bot_token {
        return reject(&state, BotApiError::unauthorized());
    }
    match method.to_ascii_lowercase().as_str() {
        "sendmessage" => send_message(&state, &body).await,
        "getme" => Json(json!({"ok": true, "result": state.bot_user(true)})).into_response(),
        _ => reject(&state, BotApiError::not_found()),
    }
}

fn reject(state: &TelegramState, error: BotApiError) -> Response {
    state.rejections.record(i64::from(error.status.as_u16()));
    tracing::debug!(status = %error.status, description = %error.description, "telegram: rejected");
    error.into_response()
}

async fn send_message(state: &Arc<TelegramState>, body: &[u8]) -> Response {
    let (accepted, reply) = match accept(state, body).await {
        Ok(reply) => (true, Json(reply).into_response()),
        Err(error) => (false, reject(state, error)),
    };
    state
        .faults
        .finish_send(accepted, &state.reset_after_accept, reply)
        .await
}

/// The parameters of a `sendMessage` request this simulator reads.
struct SendMessage {
    chat_id: i64,
    text: String,
    disable_notification: bool,
}

/// A JSON body's parameters; Telegram also takes form and query
/// parameters, which the simulator does not.
fn parse(body: &[u8]) -> Result<SendMessage, BotApiError> {
    let params: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let chat_id = match params.get("chat_id") {
        None | Some(Value::Null) => return Err(BotApiError::bad_request(error::CHAT_ID_EMPTY)),
        Some(Value::String(text)) if text.trim().is_empty() => {
            return Err(BotApiError::bad_request(error::CHAT_ID_EMPTY));
        }
        // Numeric strings are ids; `@username` (a public channel) and
        // anything else name no chat the simulator knows.
        Some(Value::String(text)) => text
            .trim()
            .parse::<i64>()
            .map_err(|_| BotApiError::bad_request(error::CHAT_NOT_FOUND))?,
        Some(Value::Number(number)) => number
            .as_i64()
            .ok_or_else(|| BotApiError::bad_request(error::CHAT_NOT_FOUND))?,
        Some(_) => return Err(BotApiError::bad_request(error::CHAT_NOT_FOUND)),
    };
    let text = match params.get("text") {
        Some(Value::String(text)) if !text.trim().is_empty() => text.clone(),
        _ => return Err(BotApiError::bad_request(error::TEXT_EMPTY)),
    };
    // "1-4096 characters after entities parsing", counted in UTF-16 code units.
    if text.encode_utf16().count() > super::MAX_TEXT_UTF16 {
        return Err(BotApiError::bad_request(error::TOO_LONG));
    }
    if let Some(mode) = params.get("parse_mode")
        && !matches!(mode.as_str(), Some("HTML" | "Markdown" | "MarkdownV2"))
    {
        return Err(BotApiError::bad_request(
            "Bad Request: unsupported parse_mode",
        ));
    }
    let disable_notification =
        matches!(params.get("disable_notification"), Some(Value::Bool(true)));
    Ok(SendMessage {
        chat_id,
        text,
        disable_notification,
    })
}

async fn accept(state: &Arc<TelegramState>, body: &[u8]) -> Result<Value, BotApiError> {
    if state.faults.apply().await {
        state.faults_injected.fetch_add(1, Ordering::Relaxed);
        return Err(BotApiError::internal());
    }
    if !state.bucket.try_acquire() {
        state.rate_limited.fetch_add(1, Ordering::Relaxed);
        return Err(BotApiError::too_many_requests(state.retry_after_secs()));
    }
    let request = parse(body)?;
    let now_ms = state.clock.now_unix_ms();
    let (message_id, first_name) = {
        let mut chats = lock(&state.chats);
        let chat = chats
            .get_mut(&request.chat_id)
            .ok_or_else(|| BotApiError::bad_request(error::CHAT_NOT_FOUND))?;
        if chat.blocked {
            return Err(BotApiError::blocked());
        }
        if let Some(wait) = state.per_chat_wait_ms(chat, now_ms) {
            state.rate_limited.fetch_add(1, Ordering::Relaxed);
            return Err(BotApiError::too_many_requests(wait.div_ceil(1000).max(1)));
        }
        chat.last_sent_ms = Some(now_ms);
        (ChatState::next_message_id(chat), chat.first_name.clone())
    };
    state.messages.push(TelegramMessage {
        message_id,
        chat_id: request.chat_id,
        text: request.text.clone(),
        disable_notification: request.disable_notification,
        received_at_ms: now_ms,
    });
    state.accepted.fetch_add(1, Ordering::Relaxed);
    Ok(json!({
        "ok": true,
        "result": {
            "message_id": message_id,
            "from": state.bot_user(false),
            "chat": {"id": request.chat_id, "first_name": first_name, "type": "private"},
            "date": now_ms.div_euclid(1000),
            "text": request.text,
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_chat_ids_as_numbers_or_numeric_strings() {
        let ok = |body: &str| parse(body.as_bytes()).map(|m| m.chat_id);
        assert_eq!(ok(r#"{"chat_id":42,"text":"hi"}"#), Ok(42));
        assert_eq!(ok(r#"{"chat_id":"-100123","text":"hi"}"#), Ok(-100_123));
        let description = |body: &str| parse(body.as_bytes()).err().map(|e| e.description);
        assert_eq!(
            description(r#"{"text":"hi"}"#).as_deref(),
            Some(error::CHAT_ID_EMPTY)
        );
        assert_eq!(
            description("not json").as_deref(),
            Some(error::CHAT_ID_EMPTY)
        );
        assert_eq!(
            description(r#"{"chat_id":"@channel","text":"hi"}"#).as_deref(),
            Some(error::CHAT_NOT_FOUND)
        );
        assert_eq!(
            description(r#"{"chat_id":1,"text":"  "}"#).as_deref(),
            Some(error::TEXT_EMPTY)
        );
    }

    #[test]
    fn counts_text_in_utf16_code_units() {
        let body = |text: String| json!({"chat_id": 1, "text": text}).to_string();
        assert!(parse(body("a".repeat(4096)).as_bytes()).is_ok());
        assert_eq!(
            parse(body("a".repeat(4097)).as_bytes())
                .err()
                .map(|e| e.description),
            Some(error::TOO_LONG.to_owned())
        );
        // 2,048 emoji outside the BMP are 4,096 code units; one more is too long.
        assert!(parse(body("😀".repeat(2048)).as_bytes()).is_ok());
        assert!(parse(body(format!("{}a", "😀".repeat(2048))).as_bytes()).is_err());
    }
}
