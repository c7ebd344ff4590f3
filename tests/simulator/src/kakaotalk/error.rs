//! NHN Cloud replies and result codes.
//!
//! Every reply has NHN's envelope:
//!
//! ```json
//! {"header":{"resultCode":-1001,"resultMessage":"Invalid secretKey.","isSuccessful":false}}
//! ```
//!
//! NHN's documentation gives no HTTP statuses for API errors, so the
//! simulator answers request-level errors with HTTP 200 and
//! `isSuccessful:false` (the `resultCode` carries the meaning), injected
//! faults with HTTP 500 and -9999, and its own throughput limit with HTTP
//! 429 and `Retry-After` (NHN documents no rate-limit code).

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// NHN (negative) and Kakao (positive) result codes the simulator uses.
pub mod codes {
    /// Success (request header and accepted recipients).
    pub const SUCCESS: i64 = 0;
    /// Delivered (result webhooks).
    pub const DELIVERED: i64 = 1000;
    /// Invalid appKey.
    pub const INVALID_APP_KEY: i64 = -1000;
    /// Invalid secretKey.
    pub const INVALID_SECRET_KEY: i64 = -1001;
    /// The same `X-NC-API-IDEMPOTENCY-KEY` within 10 minutes.
    pub const DUPLICATE_IDEMPOTENCY_KEY: i64 = -1005;
    /// Every recipient of the request failed.
    pub const ALL_RECIPIENTS_FAILED: i64 = -1031;
    /// A field is too long.
    pub const FIELD_TOO_LONG: i64 = -2000;
    /// A field is blank.
    pub const FIELD_BLANK: i64 = -2001;
    /// A field is outside its range (e.g. `recipientList` size).
    pub const FIELD_OUT_OF_RANGE: i64 = -2004;
    /// No outgoing profile (channel) for the sender key.
    pub const NO_SENDER: i64 = -2017;
    /// The request body cannot be read.
    pub const FIELD_NOT_VALID: i64 = -3002;
    /// The template does not exist.
    pub const TEMPLATE_MISSING: i64 = -3003;
    /// Template parameter error (not an object of strings).
    pub const TEMPLATE_PARAMETER: i64 = -3004;
    /// The template is not approved.
    pub const TEMPLATE_NOT_APPROVED: i64 = -3005;
    /// The message does not match the template (a `#{key}` has no value).
    pub const CONTENT_MISMATCH: i64 = -3010;
    /// Brand Message targeting missing or invalid.
    pub const TARGETING_INVALID: i64 = -3298;
    /// Malformed 080 opt-out number.
    pub const UNSUBSCRIBE_NO_INVALID: i64 = -3340;
    /// Invalid parameter.
    pub const INVALID_PARAMETER: i64 = -4000;
    /// M/N targeting without Kakao's approval.
    pub const TARGETING_NOT_APPROVED: i64 = -4029;
    /// Invalid fallback (`resendParameter`).
    pub const RESEND_INVALID: i64 = -4200;
    /// Invalid recipient number.
    pub const RECIPIENT_NO_INVALID: i64 = -5000;
    /// Authentication message without an authentication word.
    pub const AUTH_WORD_MISSING: i64 = -8006;
    /// The retired FriendTalk API.
    pub const RETIRED_API: i64 = -9992;
    /// Content-Type is not `application/json`.
    pub const NOT_JSON: i64 = -9996;
    /// Client error (used with HTTP 429 by the simulator's limit).
    pub const CLIENT_ERROR: i64 = -9997;
    /// System error (injected faults).
    pub const SYSTEM_ERROR: i64 = -9999;
    /// Sent but not confirmed (may arrive within 3 days).
    pub const UNCONFIRMED: i64 = 3005;
    /// Phone number error.
    pub const PHONE_NUMBER_ERROR: i64 = 3008;
    /// Message length limit error.
    pub const LENGTH_LIMIT: i64 = 3014;
    /// Cannot send: inactive user, SIM mismatch, sanctioned.
    pub const CANNOT_SEND: i64 = 3018;
    /// Not a KakaoTalk user.
    pub const NOT_KAKAO_USER: i64 = 3019;
    /// The user blocked AlimTalk / the channel.
    pub const BLOCKED: i64 = 3020;
    /// KakaoTalk version too old.
    pub const CLIENT_TOO_OLD: i64 = 3021;
    /// Brand Messages only 08:00–20:50 KST.
    pub const NIGHT_BAN: i64 = 3022;
}

/// The message NHN (or Kakao) gives with a per-recipient code.
pub fn recipient_message(code: i64) -> &'static str {
    match code {
        codes::SUCCESS => "SUCCESS",
        codes::UNCONFIRMED => "Message sent but not confirmed.",
        codes::PHONE_NUMBER_ERROR => "Phone number error.",
        codes::LENGTH_LIMIT => "Message length limit error.",
        codes::CANNOT_SEND => "Unable to send message.",
        codes::NOT_KAKAO_USER => "Unable to send message. Not a KakaoTalk user.",
        codes::BLOCKED => "Unable to send message. Block AlimTalk messages.",
        codes::CLIENT_TOO_OLD => "Unable to send message. KakaoTalk minimum version not supported.",
        codes::NIGHT_BAN => {
            "Not available for sending (messages can be sent from 8:00 AM to 8:50 PM)."
        }
        codes::CONTENT_MISMATCH => "The contents do not match the template.",
        codes::TEMPLATE_PARAMETER => "Please check template parameter.",
        codes::RECIPIENT_NO_INVALID => "RecipientNo is invalid.",
        codes::RESEND_INVALID => "Resend Message is invalid.",
        codes::AUTH_WORD_MISSING => "The content must contain auth guidement",
        3006 => "Message delivery failed due to internal system error.",
        2001 => "Message could not be sent (an unexpected error occurred).",
        _ => "Message could not be sent.",
    }
}

/// A request-level error reply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("HTTP {status}: ({code}) {message}")]
pub struct NhnError {
    /// HTTP status.
    pub status: StatusCode,
    /// `header.resultCode`.
    pub code: i64,
    /// `header.resultMessage`.
    pub message: String,
    /// `Retry-After`, in seconds.
    pub retry_after_secs: Option<u64>,
}

impl NhnError {
    fn api(code: i64, message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::OK,
            code,
            message: message.into(),
            retry_after_secs: None,
        }
    }

    /// -1000.
    pub fn invalid_app_key() -> Self {
        Self::api(codes::INVALID_APP_KEY, "Invalid appKey.")
    }

    /// -1001.
    pub fn invalid_secret_key() -> Self {
        Self::api(codes::INVALID_SECRET_KEY, "Invalid secretKey.")
    }

    /// -1005.
    pub fn duplicate_idempotency_key() -> Self {
        Self::api(
            codes::DUPLICATE_IDEMPOTENCY_KEY,
            "The same 'X-NC-API-IDEMPOTENCY-KEY' was used within the last 10 minute.",
        )
    }

    /// -2000.
    pub fn too_long(field: &str, max: usize) -> Self {
        Self::api(
            codes::FIELD_TOO_LONG,
            format!("The '{field}' must be at less than or equal to {max}."),
        )
    }

    /// -2001.
    pub fn blank(field: &str) -> Self {
        Self::api(
            codes::FIELD_BLANK,
            format!("The '{field}' must not be blank."),
        )
    }

    /// -2004.
    pub fn out_of_range(field: &str, min: usize, max: usize) -> Self {
        Self::api(
            codes::FIELD_OUT_OF_RANGE,
            format!("The '{field}' must be between {min} and {max}."),
        )
    }

    /// -2017.
    pub fn no_sender() -> Self {
        Self::api(codes::NO_SENDER, "Not exist plus friend.")
    }

    /// -3002.
    pub fn unreadable_body(detail: &str) -> Self {
        Self::api(
            codes::FIELD_NOT_VALID,
            format!("Field is not valid. {detail}"),
        )
    }

    /// -3003.
    pub fn template_missing(code: &str) -> Self {
        Self::api(
            codes::TEMPLATE_MISSING,
            format!("Template does not exist. (templateCode {code})"),
        )
    }

    /// -3005.
    pub fn template_not_approved(code: &str, status: &str) -> Self {
        Self::api(
            codes::TEMPLATE_NOT_APPROVED,
            format!("Please check template status. (templateCode {code} is {status})"),
        )
    }

    /// -3298.
    pub fn targeting_invalid(value: &str) -> Self {
        Self::api(
            codes::TARGETING_INVALID,
            format!("The targeting is invalid. ({value:?}; expected I, M or N)"),
        )
    }

    /// -3340.
    pub fn unsubscribe_no_invalid() -> Self {
        Self::api(
            codes::UNSUBSCRIBE_NO_INVALID,
            "Invalid unsubscribeNo format. Expected format: 080-xxx-xxxx or 080-xxxx-xxxx or 080xxxxxxx or 080xxxxxxxx.",
        )
    }

    /// -4000.
    pub fn invalid_parameter(detail: &str) -> Self {
        Self::api(
            codes::INVALID_PARAMETER,
            format!("Invalid parameter. {detail}"),
        )
    }

    /// -4029.
    pub fn targeting_not_approved() -> Self {
        Self::api(
            codes::TARGETING_NOT_APPROVED,
            "To send 'M/N type' messages to users who are not friends with your profile, you must first apply to have the 'M/N type' activated.",
        )
    }

    /// -9992.
    pub fn retired_api() -> Self {
        Self::api(
            codes::RETIRED_API,
            "The API is no longer supported. Please migrate to the new brand-message endpoint/API.",
        )
    }

    /// -9996.
    pub fn not_json() -> Self {
        Self::api(
            codes::NOT_JSON,
            "Only application/json Content-type is supported.",
        )
    }

    /// -9999 with HTTP 500 (injected faults).
    pub fn system_error() -> Self {
        Self {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            ..Self::api(
                codes::SYSTEM_ERROR,
                "System error. Please inquire at support@toast.com.",
            )
        }
    }

    /// HTTP 429 with `Retry-After: 1` (the simulator's throughput limit).
    pub fn too_many_requests(per_second: u32) -> Self {
        Self {
            status: StatusCode::TOO_MANY_REQUESTS,
            retry_after_secs: Some(1),
            ..Self::api(
                codes::CLIENT_ERROR,
                format!(
                    "Too many requests: the simulator allows {per_second} requests per second (NHN documents no limit)."
                ),
            )
        }
    }

    /// The JSON body.
    pub fn body(&self) -> Value {
        header(self.code, &self.message, false)
    }
}

/// `{"header":{…}}`.
pub fn header(code: i64, message: &str, successful: bool) -> Value {
    json!({"header": {"resultCode": code, "resultMessage": message, "isSuccessful": successful}})
}

impl IntoResponse for NhnError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(self.body())).into_response();
        if let Some(seconds) = self.retry_after_secs
            && let Ok(value) = HeaderValue::from_str(&seconds.to_string())
        {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_errors_have_nhn_shape_and_status() {
        let error = NhnError::invalid_secret_key();
        assert_eq!(error.status, StatusCode::OK);
        assert_eq!(
            error.body(),
            json!({"header": {"resultCode": -1001, "resultMessage": "Invalid secretKey.", "isSuccessful": false}})
        );
        assert_eq!(
            NhnError::system_error().status,
            StatusCode::INTERNAL_SERVER_ERROR
        );
        let limited = NhnError::too_many_requests(5);
        assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(limited.retry_after_secs, Some(1));
        let response = limited.into_response();
        assert_eq!(
            response
                .headers()
                .get(header::RETRY_AFTER)
                .map(|v| v.as_bytes()),
            Some(&b"1"[..])
        );
        assert_eq!(
            NhnError::blank("senderKey").message,
            "The 'senderKey' must not be blank."
        );
    }
}
