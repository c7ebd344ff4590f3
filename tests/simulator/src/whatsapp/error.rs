//! Graph API errors, shaped like Meta's.
//!
//! ```json
//! {"error":{"message":"(#131047) Re-engagement message","type":"OAuthException","code":131047,
//!   "error_data":{"messaging_product":"whatsapp","details":"Message failed to send because..."},
//!   "fbtrace_id":"A1b2C3..."}}
//! ```

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::ids;

/// Graph error codes the simulator answers with, as in Meta's table
/// (<https://developers.facebook.com/documentation/business-messaging/whatsapp/support/error-codes/>).
pub mod codes {
    /// Invalid parameter (also: unsupported post request).
    pub const INVALID_PARAMETER: i64 = 100;
    /// Invalid or missing OAuth access token.
    pub const ACCESS_TOKEN: i64 = 190;
    /// Unknown path components (bad API version).
    pub const UNKNOWN_PATH: i64 = 2500;
    /// Cloud API throughput reached.
    pub const RATE_LIMIT_HIT: i64 = 130429;
    /// Spam rate limit hit. Meta documents no dedicated code for the
    /// messaging limit (unique users reached outside a customer-service
    /// window per moving 24 h), so the simulator refuses a template beyond
    /// it with this one, the restriction on how many messages a number may
    /// send.
    pub const SPAM_RATE_LIMIT_HIT: i64 = 131048;
    /// Unknown error ("something went wrong"); used for injected faults.
    pub const SOMETHING_WENT_WRONG: i64 = 131000;
    /// Parameter value is not valid (e.g. the recipient number).
    pub const PARAMETER_VALUE_NOT_VALID: i64 = 131009;
    /// Free-form message outside the 24-hour customer-service window.
    pub const RE_ENGAGEMENT: i64 = 131047;
    /// The recipient stopped marketing messages from this business.
    pub const MARKETING_OPTED_OUT: i64 = 131050;
    /// Too many messages to the same user in a short time ("(Business
    /// Account, Consumer Account) pair rate limit hit").
    pub const PAIR_RATE_LIMIT_HIT: i64 = 131056;
    /// Unsupported message type.
    pub const UNSUPPORTED_MESSAGE_TYPE: i64 = 131051;
    /// Template parameter count mismatch.
    pub const TEMPLATE_PARAM_COUNT_MISMATCH: i64 = 132000;
    /// Template does not exist in the requested language.
    pub const TEMPLATE_DOES_NOT_EXIST: i64 = 132001;
}

/// A Graph API error response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GraphError {
    /// HTTP status of the response.
    pub status: StatusCode,
    /// Graph `code`.
    pub code: i64,
    /// Graph `type`, e.g. `OAuthException`.
    pub error_type: &'static str,
    /// Graph `message`.
    pub message: String,
    /// `error_data.details`.
    pub details: String,
    /// Legacy `error_subcode`, when Meta still sends one.
    pub error_subcode: Option<i64>,
}

impl GraphError {
    fn new(
        status: StatusCode,
        code: i64,
        message: impl Into<String>,
        details: impl Into<String>,
    ) -> Self {
        Self {
            status,
            code,
            error_type: "OAuthException",
            message: message.into(),
            details: details.into(),
            error_subcode: None,
        }
    }

    /// The JSON body, with a fresh `fbtrace_id`.
    pub fn body(&self) -> Value {
        let mut error = json!({
            "message": self.message,
            "type": self.error_type,
            "code": self.code,
            "error_data": {"messaging_product": "whatsapp", "details": self.details},
            "fbtrace_id": ids::fbtrace_id(),
        });
        if let (Some(subcode), Some(obj)) = (self.error_subcode, error.as_object_mut()) {
            obj.insert("error_subcode".into(), json!(subcode));
        }
        json!({ "error": error })
    }

    /// 401 / 190: missing, malformed or wrong access token.
    pub fn invalid_access_token() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            codes::ACCESS_TOKEN,
            "Invalid OAuth access token - Cannot parse access token",
            "The access token is missing, malformed or not valid for this phone number.",
        )
    }

    /// 400 / 100 (GraphMethodException, subcode 33): unknown phone number id.
    pub fn unsupported_post_request(object_id: &str) -> Self {
        Self {
            error_type: "GraphMethodException",
            error_subcode: Some(33),
            ..Self::new(
                StatusCode::BAD_REQUEST,
                codes::INVALID_PARAMETER,
                format!(
                    "Unsupported post request. Object with ID '{object_id}' does not exist, cannot be loaded due to missing permissions, or does not support this operation. Please read the Graph API documentation at https://developers.facebook.com/docs/graph-api"
                ),
                format!("Object with ID '{object_id}' does not exist."),
            )
        }
    }

    /// 400 / 2500: the path is not a Graph endpoint (e.g. bad version).
    pub fn unknown_path(path: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            codes::UNKNOWN_PATH,
            format!("Unknown path components: {path}"),
            "The API version must look like v21.0.",
        )
    }

    /// 400 / 100: a required parameter is missing.
    pub fn required(param: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            codes::INVALID_PARAMETER,
            format!("(#100) The parameter {param} is required."),
            format!("The parameter {param} is required."),
        )
    }

    /// 400 / 100: a parameter is present but invalid.
    pub fn invalid_parameter(details: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            codes::INVALID_PARAMETER,
            "(#100) Invalid parameter",
            details,
        )
    }

    /// 400 / 131009: parameter value is not valid.
    pub fn parameter_value_not_valid(details: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            codes::PARAMETER_VALUE_NOT_VALID,
            "(#131009) Parameter value is not valid",
            details,
        )
    }

    /// 400 / 131051: unsupported message type.
    pub fn unsupported_message_type(message_type: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            codes::UNSUPPORTED_MESSAGE_TYPE,
            "(#131051) Unsupported message type",
            format!("Message type '{message_type}' is not currently supported."),
        )
    }

    /// 400 / 131047: free-form message outside the customer-service window.
    pub fn re_engagement() -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            codes::RE_ENGAGEMENT,
            "(#131047) Re-engagement message",
            "Message failed to send because more than 24 hours have passed since the customer last replied to this number.",
        )
    }

    /// 400 / 131050: the user stopped marketing messages.
    pub fn marketing_opted_out() -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            codes::MARKETING_OPTED_OUT,
            "(#131050) Unable to deliver the message. This recipient has chosen to stop receiving marketing messages on WhatsApp from your business.",
            "Unable to deliver the message. This recipient has chosen to stop receiving marketing messages on WhatsApp from your business.",
        )
    }

    /// 400 / 130429: throughput limit reached.
    pub fn rate_limit_hit() -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            codes::RATE_LIMIT_HIT,
            "(#130429) Rate limit hit",
            "Cloud API message throughput has been reached.",
        )
    }

    /// 400 / 131056: the recipient was sent a message too recently (pair
    /// rate). Other recipients are not affected.
    /// <https://developers.facebook.com/documentation/business-messaging/whatsapp/throughput>
    pub fn pair_rate_limit_hit() -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            codes::PAIR_RATE_LIMIT_HIT,
            "(#131056) (Business Account, Consumer Account) pair rate limit hit",
            "Too many messages sent from the sender phone number to the same recipient phone number in a short period of time.",
        )
    }

    /// 400 / 131048: a business-initiated message to a new recipient beyond
    /// the messaging limit of `limit` unique users per moving 24 hours.
    /// Meta documents no dedicated error code for the messaging limit, so
    /// the simulator answers with 131048 "Spam rate limit hit", Meta's
    /// refusal for a number restricted in how many messages it may send.
    /// <https://developers.facebook.com/documentation/business-messaging/whatsapp/messaging-limits>
    pub fn messaging_limit_hit(limit: u64) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            codes::SPAM_RATE_LIMIT_HIT,
            "(#131048) Spam rate limit hit",
            format!(
                "Message failed to send because there are restrictions on how many messages can be sent from this phone number (messaging limit: {limit} unique users outside a customer service window per 24 hours)."
            ),
        )
    }

    /// 500 / 131000: unknown error (injected fault).
    pub fn something_went_wrong() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            codes::SOMETHING_WENT_WRONG,
            "(#131000) Something went wrong",
            "Message failed to send due to an unknown error. Try again later.",
        )
    }

    /// 400 / 132000: template parameter count mismatch.
    pub fn template_param_count(component: &str, got: usize, expected: usize) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            codes::TEMPLATE_PARAM_COUNT_MISMATCH,
            "(#132000) Number of parameters does not match the expected number of params",
            format!(
                "{component}: number of localizable_params ({got}) does not match the expected number of params ({expected})"
            ),
        )
    }

    /// 400 / 132001: template does not exist in the language.
    pub fn template_does_not_exist(name: &str, language: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            codes::TEMPLATE_DOES_NOT_EXIST,
            "(#132001) Template name does not exist in the translation",
            format!("template name ({name}) does not exist in {language}"),
        )
    }
}

impl IntoResponse for GraphError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(self.body())).into_response();
        if self.code == codes::ACCESS_TOKEN {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(
                    "OAuth \"Facebook Platform\" \"invalid_token\" \"Invalid OAuth access token - Cannot parse access token\"",
                ),
            );
        }
        response
    }
}
