//! Request URLs and bodies of the RBM API.
//!
//! - send: `POST {base}/v1/phones/{E.164}/agentMessages?messageId={UUID}&agentId={agent}`
//!   with an `AgentMessage` body;
//! - capability check: `GET {base}/v1/phones/{E.164}/capabilities?requestId={UUID}&agentId={agent}`.
//!
//! Everything here is pure: content RBM would refuse (empty, too long, a
//! template) is refused before any request is made.

use serde::Serialize;
use switchboard_sdk::types::{Content, Failure, OutboundMessage, Purpose, SendError};

use crate::jwt::form_encode;

/// Longest text RBM accepts, in Unicode scalar values (3,072; from AWS's
/// RCS limits page and RBM spec summaries — Google's own reference does not
/// state it).
pub const MAX_TEXT_CHARS: usize = 3_072;

/// `messageTrafficType` for promotions (`marketing`).
pub const TRAFFIC_PROMOTION: &str = "PROMOTION";
/// `messageTrafficType` for everything else.
pub const TRAFFIC_TRANSACTION: &str = "TRANSACTION";

/// The send URL for `phone` (E.164 with `+`).
pub fn send_url(base_url: &str, phone: &str, message_id: &str, agent_id: &str) -> String {
    format!(
        "{}/v1/phones/{}/agentMessages?messageId={}&agentId={}",
        trim_base(base_url),
        form_encode_path(phone),
        form_encode(message_id),
        form_encode(agent_id)
    )
}

/// The capability-check URL for `phone` (E.164 with `+`).
pub fn capability_url(base_url: &str, phone: &str, request_id: &str, agent_id: &str) -> String {
    format!(
        "{}/v1/phones/{}/capabilities?requestId={}&agentId={}",
        trim_base(base_url),
        form_encode_path(phone),
        form_encode(request_id),
        form_encode(agent_id)
    )
}

fn trim_base(base_url: &str) -> &str {
    base_url.trim().trim_end_matches('/')
}

/// A phone number in a path segment: `+` and digits stay as they are (RBM's
/// own examples write `phones/+12223334444`).
fn form_encode_path(phone: &str) -> String {
    phone
        .chars()
        .map(|c| match c {
            '+' | '0'..='9' => c.to_string(),
            other => form_encode(&other.to_string()),
        })
        .collect()
}

/// The recipient as RBM wants it: E.164 with a leading `+` and 8 to 15
/// digits. Anything else is `permanent` (the host validates addresses, so
/// this only catches a host or audience bug).
pub fn recipient(to: &str) -> Result<&str, SendError> {
    let to = to.trim();
    let digits = to.strip_prefix('+').unwrap_or("");
    if (8..=15).contains(&digits.len())
        && digits.bytes().all(|b| b.is_ascii_digit())
        && !digits.starts_with('0')
    {
        Ok(to)
    } else {
        Err(SendError::Permanent(Failure::new(
            "",
            format!(
                "`{to}` is not an E.164 phone number (`+` and 8 to 15 digits), which RBM addresses users by"
            ),
        )))
    }
}

/// `messageTrafficType` for a purpose: marketing is `PROMOTION`, the rest
/// `TRANSACTION`. The enum's values are not in the stored Google reference;
/// these are the ones aggregators document.
pub fn traffic_type(purpose: Purpose) -> &'static str {
    match purpose {
        Purpose::Marketing => TRAFFIC_PROMOTION,
        Purpose::Utility | Purpose::Authentication | Purpose::Service => TRAFFIC_TRANSACTION,
    }
}

/// The JSON body of one send: an `AgentMessage`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentMessage<'a> {
    content_message: ContentMessage<'a>,
    message_traffic_type: &'static str,
    /// `"{n}s"`, when the message or the operator set a TTL; RBM then sends
    /// `TTL_EXPIRATION_REVOKED` if it could not deliver in time.
    #[serde(skip_serializing_if = "Option::is_none")]
    ttl: Option<String>,
}

/// `AgentMessage.contentMessage`.
#[derive(Debug, Clone, Serialize)]
struct ContentMessage<'a> {
    text: &'a str,
}

impl<'a> AgentMessage<'a> {
    /// The body for `message`, with the message's TTL or else
    /// `default_ttl_seconds` (a TTL of 0 means none), or `invalid-content`
    /// when RBM would refuse the content: a template (RBM has none), empty
    /// text, text over [`MAX_TEXT_CHARS`].
    pub fn for_message(
        message: &'a OutboundMessage,
        default_ttl_seconds: Option<u32>,
    ) -> Result<Self, SendError> {
        let text = match &message.content {
            Content::Text(text) => text.as_str(),
            Content::Template(template) => {
                return Err(invalid(&format!(
                    "RBM has no templates: template `{}` cannot be sent; send free-form text",
                    template.name
                )));
            }
        };
        if text.trim().is_empty() {
            return Err(invalid("the text is empty; RBM refuses empty messages"));
        }
        let length = text.chars().count();
        if length > MAX_TEXT_CHARS {
            return Err(invalid(&format!(
                "the text is {length} characters long; RBM accepts at most {MAX_TEXT_CHARS}"
            )));
        }
        let ttl = message
            .ttl_seconds
            .or(default_ttl_seconds)
            .filter(|&seconds| seconds > 0)
            .map(|seconds| format!("{seconds}s"));
        // 3,072 characters are at most ~12 KB of JSON, far below RBM's
        // 250 KB limit on the whole AgentMessage, so that needs no check.
        Ok(Self {
            content_message: ContentMessage { text },
            message_traffic_type: traffic_type(message.purpose),
            ttl,
        })
    }
}

fn invalid(message: &str) -> SendError {
    SendError::InvalidContent(Failure::new("", message))
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_sdk::types::{TemplateMessage, TemplateParameter};

    fn message(purpose: Purpose, content: Content, ttl: Option<u32>) -> OutboundMessage {
        OutboundMessage {
            idempotency_key: "k".into(),
            to: "+12223334444".into(),
            purpose,
            content,
            ttl_seconds: ttl,
            attempt: 1,
        }
    }

    fn json(message: &OutboundMessage, default_ttl: Option<u32>) -> String {
        let body = AgentMessage::for_message(message, default_ttl).expect("valid");
        serde_json::to_string(&body).expect("serialises")
    }

    fn invalid_message(result: Result<AgentMessage<'_>, SendError>) -> String {
        match result {
            Err(SendError::InvalidContent(failure)) => failure.message,
            other => panic!("expected invalid-content, got {other:?}"),
        }
    }

    #[test]
    fn builds_urls() {
        assert_eq!(
            send_url(
                "https://rcsbusinessmessaging.googleapis.com/",
                "+12223334444",
                "3f1c5a0e-9b7d-4c2a-8e6f-0b1d3c5a7e9f",
                "my_agent-1"
            ),
            "https://rcsbusinessmessaging.googleapis.com/v1/phones/+12223334444/agentMessages?messageId=3f1c5a0e-9b7d-4c2a-8e6f-0b1d3c5a7e9f&agentId=my_agent-1"
        );
        assert_eq!(
            capability_url("http://127.0.0.1:9000", "+12223334444", "abc", "a b"),
            "http://127.0.0.1:9000/v1/phones/+12223334444/capabilities?requestId=abc&agentId=a+b"
        );
    }

    #[test]
    fn text_payload_is_exact() {
        let m = message(
            Purpose::Utility,
            Content::Text("Your order #1234 has shipped".into()),
            None,
        );
        assert_eq!(
            json(&m, None),
            r##"{"contentMessage":{"text":"Your order #1234 has shipped"},"messageTrafficType":"TRANSACTION"}"##
        );
    }

    #[test]
    fn marketing_is_promotion_and_ttl_is_in_seconds() {
        let m = message(
            Purpose::Marketing,
            Content::Text("20% off".into()),
            Some(3_600),
        );
        assert_eq!(
            json(&m, Some(60)),
            r#"{"contentMessage":{"text":"20% off"},"messageTrafficType":"PROMOTION","ttl":"3600s"}"#
        );
        // The operator's default applies when the message has none; 0 is none.
        let m = message(
            Purpose::Authentication,
            Content::Text("code 123456".into()),
            None,
        );
        assert!(
            json(&m, Some(300)).ends_with(r#""messageTrafficType":"TRANSACTION","ttl":"300s"}"#)
        );
        let m = message(Purpose::Service, Content::Text("hi".into()), Some(0));
        assert!(!json(&m, Some(300)).contains("ttl"));
    }

    #[test]
    fn traffic_types_by_purpose() {
        assert_eq!(traffic_type(Purpose::Marketing), "PROMOTION");
        assert_eq!(traffic_type(Purpose::Utility), "TRANSACTION");
        assert_eq!(traffic_type(Purpose::Authentication), "TRANSACTION");
        assert_eq!(traffic_type(Purpose::Service), "TRANSACTION");
    }

    #[test]
    fn text_length_counts_characters() {
        let m = message(
            Purpose::Utility,
            Content::Text("한".repeat(MAX_TEXT_CHARS)),
            None,
        );
        assert!(AgentMessage::for_message(&m, None).is_ok());
        let m = message(
            Purpose::Utility,
            Content::Text("x".repeat(MAX_TEXT_CHARS + 1)),
            None,
        );
        assert_eq!(
            invalid_message(AgentMessage::for_message(&m, None)),
            "the text is 3073 characters long; RBM accepts at most 3072"
        );
    }

    #[test]
    fn empty_text_and_templates_are_invalid_content() {
        for text in ["", "  \n"] {
            let m = message(Purpose::Utility, Content::Text(text.into()), None);
            assert!(invalid_message(AgentMessage::for_message(&m, None)).contains("empty"));
        }
        let m = message(
            Purpose::Marketing,
            Content::Template(TemplateMessage {
                name: "winback_offer".into(),
                language: None,
                parameters: vec![TemplateParameter {
                    name: "1".into(),
                    value: "Ana".into(),
                }],
                link: None,
            }),
            None,
        );
        assert!(
            invalid_message(AgentMessage::for_message(&m, None))
                .contains("RBM has no templates: template `winback_offer`")
        );
    }

    #[test]
    fn recipients_must_be_e164() {
        assert_eq!(recipient(" +12223334444 ").expect("valid"), "+12223334444");
        assert_eq!(
            recipient("+4915112345678").expect("valid"),
            "+4915112345678"
        );
        for bad in [
            "12223334444",
            "+1222",
            "+1222333444455556",
            "+0123456789",
            "+1222-333-4444",
            "",
        ] {
            match recipient(bad) {
                Err(SendError::Permanent(failure)) => {
                    assert!(
                        failure.message.contains("is not an E.164 phone number"),
                        "{bad}"
                    );
                }
                other => panic!("{bad}: unexpected {other:?}"),
            }
        }
    }
}
