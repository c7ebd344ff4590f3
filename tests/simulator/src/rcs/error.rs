//! Errors the simulated RBM answers with, shaped like Google's.
//!
//! API errors: `{"error":{"code":404,"message":"Requested entity was not found.","status":"NOT_FOUND"}}`.
//! Token endpoint errors: `{"error":"invalid_grant","error_description":"Invalid JWT Signature."}`.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// A Google API error response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status} {canonical}: {message}")]
pub struct GoogleError {
    /// HTTP status.
    pub status: StatusCode,
    /// The canonical status name, e.g. `NOT_FOUND`.
    pub canonical: &'static str,
    /// Google's message.
    pub message: String,
}

impl GoogleError {
    fn new(status: StatusCode, canonical: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            canonical,
            message: message.into(),
        }
    }

    /// The JSON body.
    pub fn body(&self) -> Value {
        json!({"error": {
            "code": self.status.as_u16(),
            "message": self.message,
            "status": self.canonical,
        }})
    }

    /// 401 `UNAUTHENTICATED`: no bearer token, or one the simulator did not issue or that expired.
    pub fn unauthenticated() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "UNAUTHENTICATED",
            "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project.",
        )
    }

    /// 403 `PERMISSION_DENIED`: the service account may not act for this agent.
    pub fn permission_denied(agent_id: &str) -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "PERMISSION_DENIED",
            format!("The caller does not have permission to act for agent `{agent_id}`"),
        )
    }

    /// 400 `INVALID_ARGUMENT`.
    pub fn invalid_argument(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "INVALID_ARGUMENT", message)
    }

    /// 404 `NOT_FOUND`: the number is not reachable over RCS.
    pub fn not_found() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            "Requested entity was not found.",
        )
    }

    /// 409 `ALREADY_EXISTS`: the `messageId` was used before by this agent.
    /// (The reply to a reused id is undocumented; this is the simulator's choice.)
    pub fn already_exists(message_id: &str) -> Self {
        Self::new(
            StatusCode::CONFLICT,
            "ALREADY_EXISTS",
            format!("Message with id {message_id} already exists"),
        )
    }

    /// 429 `RESOURCE_EXHAUSTED`: over the agent's messages-per-second quota.
    pub fn resource_exhausted() -> Self {
        Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "RESOURCE_EXHAUSTED",
            "Quota exceeded for quota metric 'Agent messages' and limit 'Agent messages per second'",
        )
    }

    /// 503 `UNAVAILABLE` (injected fault).
    pub fn unavailable() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "UNAVAILABLE",
            "The service is currently unavailable.",
        )
    }
}

impl IntoResponse for GoogleError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(self.body())).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(
                    "Bearer realm=\"https://accounts.google.com/\", error=\"invalid_token\"",
                ),
            );
        }
        if self.status == StatusCode::TOO_MANY_REQUESTS {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

/// An OAuth token endpoint error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{error}: {description}")]
pub struct OAuthError {
    /// The OAuth error code, e.g. `invalid_grant`.
    pub error: &'static str,
    /// `error_description`.
    pub description: String,
}

impl OAuthError {
    /// 400 `invalid_grant` with `description`.
    pub fn invalid_grant(description: impl Into<String>) -> Self {
        Self {
            error: "invalid_grant",
            description: description.into(),
        }
    }

    /// 400 `invalid_request` with `description`.
    pub fn invalid_request(description: impl Into<String>) -> Self {
        Self {
            error: "invalid_request",
            description: description.into(),
        }
    }

    /// 400 `unsupported_grant_type`.
    pub fn unsupported_grant_type(grant_type: &str) -> Self {
        Self {
            error: "unsupported_grant_type",
            description: format!("Invalid grant_type: {grant_type}"),
        }
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": self.error, "error_description": self.description})),
        )
            .into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_look_like_googles() {
        assert_eq!(
            GoogleError::not_found().body(),
            json!({"error": {"code": 404, "message": "Requested entity was not found.", "status": "NOT_FOUND"}})
        );
        let error = GoogleError::already_exists("abc");
        assert_eq!(error.status, StatusCode::CONFLICT);
        assert_eq!(error.body()["error"]["status"], "ALREADY_EXISTS");
        assert_eq!(
            GoogleError::resource_exhausted().into_response().headers()[header::RETRY_AFTER],
            "1"
        );
        assert!(
            GoogleError::unauthenticated()
                .into_response()
                .headers()
                .contains_key(header::WWW_AUTHENTICATE)
        );
    }
}
