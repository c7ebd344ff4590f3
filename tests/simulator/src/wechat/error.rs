//! WeChat's global return codes, answered as WeChat does: HTTP 200 with
//! `{"errcode":N,"errmsg":"… rid: …"}`.

use axum::Json;
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// Return codes the simulator answers with.
pub mod codes {
    /// System busy (injected faults).
    pub const SYSTEM_BUSY: i64 = -1;
    /// The access token is invalid or not the latest.
    pub const INVALID_CREDENTIAL: i64 = 40001;
    /// `grant_type` is not `client_credential`.
    pub const INVALID_GRANT_TYPE: i64 = 40002;
    /// Invalid OpenID.
    pub const INVALID_OPENID: i64 = 40003;
    /// Invalid message type.
    pub const INVALID_MESSAGE_TYPE: i64 = 40008;
    /// Unknown AppID.
    pub const INVALID_APPID: i64 = 40013;
    /// Unknown `template_id`.
    pub const INVALID_TEMPLATE_ID: i64 = 40037;
    /// Wrong AppSecret.
    pub const INVALID_APPSECRET: i64 = 40125;
    /// `access_token` missing.
    pub const ACCESS_TOKEN_MISSING: i64 = 41001;
    /// The access token expired.
    pub const ACCESS_TOKEN_EXPIRED: i64 = 42001;
    /// The user does not follow the account.
    pub const REQUIRE_SUBSCRIBE: i64 = 43004;
    /// The user refused the account's messages.
    pub const USER_REFUSED: i64 = 43101;
    /// Empty text content.
    pub const EMPTY_CONTENT: i64 = 44004;
    /// Text content too long.
    pub const CONTENT_TOO_LONG: i64 = 45002;
    /// Daily quota reached.
    pub const QUOTA_REACHED: i64 = 45009;
    /// No customer-service window (or unfollowed).
    pub const OUT_OF_TIME_LIMIT: i64 = 45015;
    /// The window's message allowance is used up.
    pub const OUT_OF_RESPONSE_COUNT: i64 = 45047;
    /// Malformed JSON.
    pub const DATA_FORMAT_ERROR: i64 = 47001;
    /// Invalid argument (template data).
    pub const ARGUMENT_INVALID: i64 = 47003;
    /// The API is not authorised for the account.
    pub const API_UNAUTHORIZED: i64 = 48001;
}

/// An error reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WeChatError {
    /// `errcode`.
    pub errcode: i64,
    /// `errmsg`, without the `rid` WeChat appends.
    pub errmsg: String,
}

impl WeChatError {
    /// An error with `errcode` and `errmsg`.
    pub fn new(errcode: i64, errmsg: impl Into<String>) -> Self {
        Self {
            errcode,
            errmsg: errmsg.into(),
        }
    }

    /// The body, with a fresh request id like WeChat's (`rid: 6578…-…-…`).
    pub fn body(&self) -> serde_json::Value {
        json!({
            "errcode": self.errcode,
            "errmsg": format!("{} rid: {}", self.errmsg, request_id()),
        })
    }

    /// -1: system busy.
    pub fn system_busy() -> Self {
        Self::new(codes::SYSTEM_BUSY, "system error")
    }

    /// 41001.
    pub fn access_token_missing() -> Self {
        Self::new(codes::ACCESS_TOKEN_MISSING, "access_token missing")
    }

    /// 40001 for an unknown or revoked token.
    pub fn invalid_credential() -> Self {
        Self::new(
            codes::INVALID_CREDENTIAL,
            "invalid credential, access_token is invalid or not latest",
        )
    }

    /// 42001.
    pub fn access_token_expired() -> Self {
        Self::new(codes::ACCESS_TOKEN_EXPIRED, "access_token expired")
    }

    /// 45009.
    pub fn quota_reached() -> Self {
        Self::new(codes::QUOTA_REACHED, "reach max api daily quota limit")
    }

    /// 47001.
    pub fn data_format_error(detail: &str) -> Self {
        Self::new(
            codes::DATA_FORMAT_ERROR,
            format!("data format error: {detail}"),
        )
    }
}

fn request_id() -> String {
    use rand::Rng as _;
    let mut rng = rand::rng();
    format!(
        "{:08x}-{:08x}-{:08x}",
        rng.random::<u32>(),
        rng.random::<u32>(),
        rng.random::<u32>()
    )
}

impl IntoResponse for WeChatError {
    /// WeChat answers errors with HTTP 200.
    fn into_response(self) -> Response {
        Json(self.body()).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_carry_code_message_and_a_request_id() {
        let body = WeChatError::access_token_expired().body();
        assert_eq!(body["errcode"], 42001);
        let message = body["errmsg"].as_str().expect("errmsg");
        assert!(
            message.starts_with("access_token expired rid: "),
            "{message}"
        );
        assert_eq!(message.len(), "access_token expired rid: ".len() + 26);
    }
}
