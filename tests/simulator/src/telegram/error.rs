//! Bot API error replies, shaped like Telegram's
//! (<https://core.telegram.org/bots/api#making-requests>):
//!
//! ```json
//! {"ok":false,"error_code":429,"description":"Too Many Requests: retry after 3","parameters":{"retry_after":3}}
//! ```
//!
//! `error_code` repeats the HTTP status; `parameters` (`ResponseParameters`)
//! appears only where Telegram sends it.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// `description` of a 401: the token is well formed but not a bot's.
pub const UNAUTHORIZED: &str = "Unauthorized";
/// `description` of a 404: a malformed token or an unknown method.
pub const NOT_FOUND: &str = "Not Found";
/// `description` of an injected 500.
pub const INTERNAL: &str = "Internal Server Error";
/// `description` of a 400 for a missing `chat_id`.
pub const CHAT_ID_EMPTY: &str = "Bad Request: chat_id is empty";
/// `description` of a 400 for a chat that never started the bot.
pub const CHAT_NOT_FOUND: &str = "Bad Request: chat not found";
/// `description` of a 400 for a missing or blank `text`.
pub const TEXT_EMPTY: &str = "Bad Request: message text is empty";
/// `description` of a 400 for a text over 4,096 UTF-16 code units.
pub const TOO_LONG: &str = "Bad Request: message is too long";
/// `description` of a 403 for a user who blocked the bot.
pub const BLOCKED: &str = "Forbidden: bot was blocked by the user";

/// A Bot API error reply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("HTTP {status}: {description}")]
pub struct BotApiError {
    /// HTTP status (and `error_code`).
    pub status: StatusCode,
    /// Telegram's `description`.
    pub description: String,
    /// `parameters.retry_after`, for 429s.
    pub retry_after: Option<u64>,
}

impl BotApiError {
    fn new(status: StatusCode, description: impl Into<String>) -> Self {
        Self {
            status,
            description: description.into(),
            retry_after: None,
        }
    }

    /// 401 `Unauthorized`.
    pub fn unauthorized() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, UNAUTHORIZED)
    }

    /// 404 `Not Found`.
    pub fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, NOT_FOUND)
    }

    /// 500, for injected faults.
    pub fn internal() -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, INTERNAL)
    }

    /// 400 with `description`.
    pub fn bad_request(description: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, description)
    }

    /// 403 `Forbidden: bot was blocked by the user`.
    pub fn blocked() -> Self {
        Self::new(StatusCode::FORBIDDEN, BLOCKED)
    }

    /// 429 `Too Many Requests: retry after N` with `parameters.retry_after`.
    pub fn too_many_requests(retry_after: u64) -> Self {
        Self {
            status: StatusCode::TOO_MANY_REQUESTS,
            description: format!("Too Many Requests: retry after {retry_after}"),
            retry_after: Some(retry_after),
        }
    }

    /// The JSON body.
    pub fn body(&self) -> Value {
        let mut body = json!({
            "ok": false,
            "error_code": self.status.as_u16(),
            "description": self.description,
        });
        if let (Some(obj), Some(secs)) = (body.as_object_mut(), self.retry_after) {
            obj.insert("parameters".into(), json!({ "retry_after": secs }));
        }
        body
    }
}

impl IntoResponse for BotApiError {
    fn into_response(self) -> Response {
        (self.status, Json(self.body())).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_look_like_telegrams() {
        assert_eq!(
            BotApiError::unauthorized().body(),
            json!({"ok": false, "error_code": 401, "description": "Unauthorized"})
        );
        assert_eq!(
            BotApiError::too_many_requests(3).body(),
            json!({
                "ok": false,
                "error_code": 429,
                "description": "Too Many Requests: retry after 3",
                "parameters": {"retry_after": 3}
            })
        );
        assert_eq!(BotApiError::blocked().status, StatusCode::FORBIDDEN);
        assert_eq!(
            BotApiError::bad_request(CHAT_NOT_FOUND).to_string(),
            "HTTP 400 Bad Request: Bad Request: chat not found"
        );
    }
}
