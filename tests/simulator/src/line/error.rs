//! Messaging API error replies, shaped like LINE's:
//!
//! ```json
//! {"message":"The request body has 1 error(s)",
//!  "details":[{"message":"May not be empty","property":"messages[0].text"}]}
//! ```

use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// The `message` of a `429` for the monthly quota.
pub const MONTHLY_LIMIT: &str = "You have reached your monthly limit.";
/// The `message` of a `429` for the request rate.
pub const TOO_MANY_REQUESTS: &str = "Too Many Requests";
/// The `message` of a `409` for a replayed retry key.
pub const RETRY_KEY_ACCEPTED: &str = "The retry key is already accepted";
/// The `message` of a `401`.
pub const AUTHENTICATION_FAILED: &str =
    "Authentication failed. Confirm that the access token in the authorization header is valid.";
/// The `message` of a `400` for a retry key that is not a UUID.
pub const INVALID_RETRY_KEY: &str = "The value for the 'X-Line-Retry-Key' header is invalid";
/// The `message` of an injected `500`.
pub const INTERNAL_ERROR: &str = "An error occurred in the server";

/// One `details[]` entry: what is wrong with which property.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Detail {
    /// What is wrong.
    pub message: String,
    /// The property, e.g. `messages[0].text` or `to[3]`.
    pub property: String,
}

impl Detail {
    /// A detail for `property`.
    pub fn new(property: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            property: property.into(),
        }
    }
}

/// A Messaging API error reply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("HTTP {status}: {message}")]
pub struct LineApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// LINE's `message`.
    pub message: String,
    /// LINE's `details`, for validation errors.
    pub details: Vec<Detail>,
}

impl LineApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            details: Vec::new(),
        }
    }

    /// 400 with one `details[]` entry per problem:
    /// `The request body has N error(s)`.
    pub fn invalid_body(details: Vec<Detail>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            message: format!("The request body has {} error(s)", details.len()),
            details,
        }
    }

    /// 400 without details (e.g. an unreadable body or a bad header).
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    /// 401: missing or wrong channel access token.
    pub fn authentication_failed() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, AUTHENTICATION_FAILED)
    }

    /// 400: the `X-Line-Retry-Key` is not a UUID.
    pub fn invalid_retry_key() -> Self {
        Self::bad_request(INVALID_RETRY_KEY)
    }

    /// 429: over the request rate of the endpoint.
    pub fn too_many_requests() -> Self {
        Self::new(StatusCode::TOO_MANY_REQUESTS, TOO_MANY_REQUESTS)
    }

    /// 429: the monthly message quota is used up.
    pub fn monthly_limit() -> Self {
        Self::new(StatusCode::TOO_MANY_REQUESTS, MONTHLY_LIMIT)
    }

    /// 500: an injected server error.
    pub fn internal() -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, INTERNAL_ERROR)
    }

    /// The JSON body: `message`, and `details` when there are any.
    pub fn body(&self) -> Value {
        if self.details.is_empty() {
            json!({ "message": self.message })
        } else {
            json!({ "message": self.message, "details": self.details })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_look_like_lines() {
        assert_eq!(
            LineApiError::authentication_failed().body(),
            json!({"message": "Authentication failed. Confirm that the access token in the authorization header is valid."})
        );
        let error = LineApiError::invalid_body(vec![
            Detail::new("messages[0].text", "May not be empty"),
            Detail::new("to", "Size must be between 1 and 500"),
        ]);
        assert_eq!(error.status, StatusCode::BAD_REQUEST);
        assert_eq!(
            error.body(),
            json!({
                "message": "The request body has 2 error(s)",
                "details": [
                    {"message": "May not be empty", "property": "messages[0].text"},
                    {"message": "Size must be between 1 and 500", "property": "to"}
                ]
            })
        );
        assert_eq!(
            LineApiError::monthly_limit().body(),
            json!({"message": "You have reached your monthly limit."})
        );
        assert_eq!(
            LineApiError::too_many_requests().status,
            StatusCode::TOO_MANY_REQUESTS
        );
        assert_eq!(
            LineApiError::invalid_retry_key().to_string(),
            "HTTP 400 Bad Request: The value for the 'X-Line-Retry-Key' header is invalid"
        );
    }
}
