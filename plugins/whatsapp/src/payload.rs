//! Request bodies for `POST /{version}/{phone-number-id}/messages`.
//!
//! Everything here is pure: it turns the host's [`OutboundMessage`] into the
//! Graph API's JSON, and refuses content WhatsApp would reject anyway (too
//! long, empty) before any request is made.

use serde::Serialize;
use switchboard_sdk::types::{Content, Failure, OutboundMessage, SendError, TemplateMessage};

/// Longest free-form text body WhatsApp accepts, in Unicode scalar values.
pub const MAX_TEXT_CHARS: usize = 4_096;

/// Template language used when the message names none.
pub const DEFAULT_LANGUAGE: &str = "en_US";

/// The URL messages are posted to: `{base_url}/{api_version}/{phone_number_id}/messages`.
///
/// Trailing slashes on the base URL and stray slashes around the version are
/// tolerated, so `https://graph.facebook.com/` and `/v21.0/` work as well.
pub fn messages_url(base_url: &str, api_version: &str, phone_number_id: &str) -> String {
    format!(
        "{}/{}/{}/messages",
        base_url.trim().trim_end_matches('/'),
        api_version.trim().trim_matches('/'),
        phone_number_id.trim()
    )
}

/// The Cloud API's `to`: the E.164 number without its leading `+`.
pub fn wa_recipient(e164: &str) -> &str {
    let trimmed = e164.trim();
    trimmed.strip_prefix('+').unwrap_or(trimmed)
}

/// The JSON body of one `/messages` request.
///
/// Build it with [`MessageRequest::for_message`]; serialise it with serde.
#[derive(Debug, Clone, Serialize)]
pub struct MessageRequest<'a> {
    messaging_product: &'static str,
    recipient_type: &'static str,
    to: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    text: Option<TextBody<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    template: Option<TemplateBody<'a>>,
    /// Returned by WhatsApp in every status webhook for this message. The
    /// Cloud API has no idempotency key, so the host's key travels here to
    /// let statuses be correlated with the send that caused them.
    #[serde(skip_serializing_if = "str::is_empty")]
    biz_opaque_callback_data: &'a str,
}

/// `text` object of a free-form message.
#[derive(Debug, Clone, Serialize)]
struct TextBody<'a> {
    body: &'a str,
    preview_url: bool,
}

/// `template` object of a template message.
#[derive(Debug, Clone, Serialize)]
struct TemplateBody<'a> {
    name: &'a str,
    language: Language<'a>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    components: Vec<Component<'a>>,
}

/// `template.language`.
#[derive(Debug, Clone, Serialize)]
struct Language<'a> {
    code: &'a str,
}

/// One entry of `template.components`.
#[derive(Debug, Clone, Serialize)]
struct Component<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    parameters: Vec<Parameter<'a>>,
}

/// One positional template parameter (`{{1}}`, `{{2}}`, ...).
#[derive(Debug, Clone, Serialize)]
struct Parameter<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    text: &'a str,
}

impl<'a> MessageRequest<'a> {
    /// The request body for `message`, or `invalid-content` when WhatsApp
    /// would refuse the content (empty or longer than [`MAX_TEXT_CHARS`]
    /// text, a template without a name).
    ///
    /// Template parameters fill the body component in list order; the
    /// template's `link` is not used (WhatsApp URL buttons need a button
    /// index the contract does not carry).
    pub fn for_message(message: &'a OutboundMessage) -> Result<Self, SendError> {
        let (kind, text, template) = match &message.content {
            Content::Text(body) => ("text", Some(text_body(body)?), None),
            Content::Template(template) => ("template", None, Some(template_body(template)?)),
        };
        Ok(Self {
            messaging_product: "whatsapp",
            recipient_type: "individual",
            to: wa_recipient(&message.to),
            kind,
            text,
            template,
            biz_opaque_callback_data: &message.idempotency_key,
        })
    }
}

fn text_body(body: &str) -> Result<TextBody<'_>, SendError> {
    if body.trim().is_empty() {
        return Err(invalid(
            "the text is empty; WhatsApp refuses empty messages",
        ));
    }
    let length = body.chars().count();
    if length > MAX_TEXT_CHARS {
        return Err(invalid(&format!(
            "the text is {length} characters long; WhatsApp accepts at most {MAX_TEXT_CHARS}"
        )));
    }
    Ok(TextBody {
        body,
        preview_url: false,
    })
}

fn template_body(template: &TemplateMessage) -> Result<TemplateBody<'_>, SendError> {
    if template.name.trim().is_empty() {
        return Err(invalid("the template has no name"));
    }
    let code = template
        .language
        .as_deref()
        .map(str::trim)
        .filter(|code| !code.is_empty())
        .unwrap_or(DEFAULT_LANGUAGE);
    let components = if template.parameters.is_empty() {
        Vec::new()
    } else {
        vec![Component {
            kind: "body",
            parameters: template
                .parameters
                .iter()
                .map(|parameter| Parameter {
                    kind: "text",
                    text: &parameter.value,
                })
                .collect(),
        }]
    };
    Ok(TemplateBody {
        name: &template.name,
        language: Language { code },
        components,
    })
}

fn invalid(message: &str) -> SendError {
    SendError::InvalidContent(Failure::new("", message))
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_sdk::types::{Purpose, TemplateParameter};

    const KEY: &str = "3f1c5a0e9b7d4c2a8e6f0b1d3c5a7e9f1b3d5c7a9e0f2b4d6c8a0e2f4b6d8c0a";

    fn message(content: Content) -> OutboundMessage {
        OutboundMessage {
            idempotency_key: KEY.into(),
            to: "+16505551234".into(),
            purpose: Purpose::Utility,
            content,
            ttl_seconds: None,
            attempt: 1,
        }
    }

    fn json(message: &OutboundMessage) -> String {
        let request = MessageRequest::for_message(message).expect("valid content");
        serde_json::to_string(&request).expect("serialises")
    }

    fn template(parameters: &[&str], language: Option<&str>) -> Content {
        Content::Template(TemplateMessage {
            name: "order_update".into(),
            language: language.map(str::to_owned),
            parameters: parameters
                .iter()
                .enumerate()
                .map(|(i, value)| TemplateParameter {
                    name: (i + 1).to_string(),
                    value: (*value).to_owned(),
                })
                .collect(),
            link: None,
        })
    }

    #[test]
    fn builds_the_messages_url() {
        assert_eq!(
            messages_url("https://graph.facebook.com", "v21.0", "106540352242922"),
            "https://graph.facebook.com/v21.0/106540352242922/messages"
        );
        assert_eq!(
            messages_url("http://127.0.0.1:9000/", "/v21.0/", "1"),
            "http://127.0.0.1:9000/v21.0/1/messages"
        );
    }

    #[test]
    fn strips_the_plus_from_e164() {
        assert_eq!(wa_recipient("+821012345678"), "821012345678");
        assert_eq!(wa_recipient("16505551234"), "16505551234");
    }

    #[test]
    fn text_payload_is_exact() {
        let m = message(Content::Text("Hello, your order shipped".into()));
        assert_eq!(
            json(&m),
            format!(
                r#"{{"messaging_product":"whatsapp","recipient_type":"individual","to":"16505551234","type":"text","text":{{"body":"Hello, your order shipped","preview_url":false}},"biz_opaque_callback_data":"{KEY}"}}"#
            )
        );
    }

    #[test]
    fn template_payload_is_exact() {
        let m = message(template(&["Jane", "#1234"], Some("en_GB")));
        assert_eq!(
            json(&m),
            format!(
                r##"{{"messaging_product":"whatsapp","recipient_type":"individual","to":"16505551234","type":"template","template":{{"name":"order_update","language":{{"code":"en_GB"}},"components":[{{"type":"body","parameters":[{{"type":"text","text":"Jane"}},{{"type":"text","text":"#1234"}}]}}]}},"biz_opaque_callback_data":"{KEY}"}}"##
            )
        );
    }

    #[test]
    fn template_without_parameters_omits_components_and_defaults_language() {
        let m = message(template(&[], None));
        assert_eq!(
            json(&m),
            format!(
                r#"{{"messaging_product":"whatsapp","recipient_type":"individual","to":"16505551234","type":"template","template":{{"name":"order_update","language":{{"code":"en_US"}}}},"biz_opaque_callback_data":"{KEY}"}}"#
            )
        );
    }

    #[test]
    fn text_of_exactly_the_limit_is_accepted_counting_characters() {
        // 4,096 three-byte characters: 12,288 bytes but within the limit.
        let m = message(Content::Text("한".repeat(MAX_TEXT_CHARS)));
        assert!(MessageRequest::for_message(&m).is_ok());
    }

    #[test]
    fn too_long_or_empty_text_is_invalid_content() {
        for text in ["x".repeat(MAX_TEXT_CHARS + 1), String::new(), "  ".into()] {
            let m = message(Content::Text(text));
            assert!(matches!(
                MessageRequest::for_message(&m),
                Err(SendError::InvalidContent(_))
            ));
        }
    }

    #[test]
    fn template_without_name_is_invalid_content() {
        let mut m = message(template(&["x"], None));
        if let Content::Template(t) = &mut m.content {
            t.name = " ".into();
        }
        assert!(matches!(
            MessageRequest::for_message(&m),
            Err(SendError::InvalidContent(_))
        ));
    }
}
