//! Structural validation of `POST /{version}/{phone-number-id}/messages`
//! bodies, with Meta's error codes.
//!
//! Checks that need state (template registry, customer-service window,
//! marketing opt-outs) happen afterwards in the API handler.

use serde_json::{Map, Value};

use super::error::GraphError;

/// Maximum length of `text.body`, in characters.
pub const MAX_TEXT_BODY_CHARS: usize = 4096;

/// A structurally valid outbound message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outbound {
    /// `to` as the client sent it.
    pub to: String,
    /// `to` reduced to digits: the recipient's WhatsApp id.
    pub wa_id: String,
    /// What to send.
    pub content: Content,
    /// `biz_opaque_callback_data`, echoed in status webhooks.
    pub callback_data: Option<String>,
}

/// The message content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Content {
    /// Free-form text.
    Text {
        /// `text.body`.
        body: String,
    },
    /// A template message.
    Template {
        /// `template.name`.
        name: String,
        /// `template.language.code`.
        language: String,
        /// Body parameter texts, in order.
        body_params: Vec<String>,
        /// Number of header parameters.
        header_params: usize,
    },
}

/// Validates a request body.
pub fn parse(body: &[u8]) -> Result<Outbound, GraphError> {
    let value: Value =
        serde_json::from_slice(body).map_err(|_| GraphError::required("messaging_product"))?;
    let Some(obj) = value.as_object() else {
        return Err(GraphError::required("messaging_product"));
    };

    match obj.get("messaging_product") {
        None | Some(Value::Null) => return Err(GraphError::required("messaging_product")),
        Some(Value::String(p)) if p.eq_ignore_ascii_case("whatsapp") => {}
        Some(other) => {
            return Err(GraphError::invalid_parameter(format!(
                "Param messaging_product must be one of {{WHATSAPP}} - got {other}."
            )));
        }
    }

    if let Some(recipient_type) = obj.get("recipient_type") {
        match recipient_type.as_str() {
            Some(t) if t.eq_ignore_ascii_case("individual") => {}
            _ => {
                return Err(GraphError::invalid_parameter(format!(
                    "Param recipient_type must be one of {{INDIVIDUAL}} - got {recipient_type}."
                )));
            }
        }
    }

    let to = match obj.get("to") {
        None | Some(Value::Null) => return Err(GraphError::required("to")),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) if n.is_u64() => n.to_string(),
        Some(other) => {
            return Err(GraphError::invalid_parameter(format!(
                "Param to must be a string - got {other}."
            )));
        }
    };
    let wa_id = normalize_phone(&to).ok_or_else(|| {
        GraphError::parameter_value_not_valid(format!(
            "Invalid 'to' parameter: '{to}' is not a valid phone number (7 to 15 digits, optionally with a leading +)."
        ))
    })?;

    let message_type = match obj.get("type") {
        // Meta defaults a missing type to text.
        None | Some(Value::Null) => "text".to_owned(),
        Some(Value::String(t)) => t.clone(),
        Some(other) => {
            return Err(GraphError::invalid_parameter(format!(
                "Param type must be a string - got {other}."
            )));
        }
    };

    let content = match message_type.as_str() {
        "text" => parse_text(obj)?,
        "template" => parse_template(obj)?,
        other => return Err(GraphError::unsupported_message_type(other)),
    };

    let callback_data = obj
        .get("biz_opaque_callback_data")
        .and_then(Value::as_str)
        .map(str::to_owned);

    Ok(Outbound {
        to,
        wa_id,
        content,
        callback_data,
    })
}

/// Reduces a phone number to its digits: optional leading `+`, then 7 to 15
/// ASCII digits. Returns `None` otherwise.
pub fn normalize_phone(input: &str) -> Option<String> {
    let digits = input.strip_prefix('+').unwrap_or(input);
    let valid = (7..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit());
    valid.then(|| digits.to_owned())
}

fn parse_text(obj: &Map<String, Value>) -> Result<Content, GraphError> {
    let text = match obj.get("text") {
        None | Some(Value::Null) => return Err(GraphError::required("text")),
        Some(Value::Object(text)) => text,
        Some(_) => {
            return Err(GraphError::invalid_parameter(
                "Param text must be an object with a body.",
            ));
        }
    };
    let body = match text.get("body") {
        None | Some(Value::Null) => return Err(GraphError::required("text['body']")),
        Some(Value::String(body)) => body,
        Some(_) => {
            return Err(GraphError::invalid_parameter(
                "Param text['body'] must be a string.",
            ));
        }
    };
    if body.trim().is_empty() {
        return Err(GraphError::required("text['body']"));
    }
    let chars = body.chars().count();
    if chars > MAX_TEXT_BODY_CHARS {
        return Err(GraphError::invalid_parameter(format!(
            "Param text['body'] must be at most {MAX_TEXT_BODY_CHARS} characters long (got {chars})."
        )));
    }
    if let Some(preview) = text.get("preview_url")
        && !preview.is_boolean()
    {
        return Err(GraphError::invalid_parameter(
            "Param text['preview_url'] must be a boolean.",
        ));
    }
    Ok(Content::Text { body: body.clone() })
}

fn parse_template(obj: &Map<String, Value>) -> Result<Content, GraphError> {
    let template = match obj.get("template") {
        None | Some(Value::Null) => return Err(GraphError::required("template")),
        Some(Value::Object(t)) => t,
        Some(_) => {
            return Err(GraphError::invalid_parameter(
                "Param template must be an object.",
            ));
        }
    };
    let name = match template.get("name") {
        Some(Value::String(name)) if !name.is_empty() => name.clone(),
        None | Some(Value::Null) => return Err(GraphError::required("template['name']")),
        Some(_) => {
            return Err(GraphError::invalid_parameter(
                "Param template['name'] must be a non-empty string.",
            ));
        }
    };
    let language = match template.get("language") {
        None | Some(Value::Null) => return Err(GraphError::required("template['language']")),
        Some(Value::Object(language)) => match language.get("code") {
            Some(Value::String(code)) if !code.is_empty() => code.clone(),
            None | Some(Value::Null) => {
                return Err(GraphError::required("template['language']['code']"));
            }
            Some(_) => {
                return Err(GraphError::invalid_parameter(
                    "Param template['language']['code'] must be a non-empty string.",
                ));
            }
        },
        Some(_) => {
            return Err(GraphError::invalid_parameter(
                "Param template['language'] must be an object with a code.",
            ));
        }
    };

    let components = match template.get("components") {
        None | Some(Value::Null) => &Vec::new(),
        Some(Value::Array(components)) => components,
        Some(_) => {
            return Err(GraphError::invalid_parameter(
                "Param template['components'] must be an array.",
            ));
        }
    };

    let mut body_params: Option<Vec<String>> = None;
    let mut header_params: Option<usize> = None;
    for (i, component) in components.iter().enumerate() {
        let path = format!("template['components'][{i}]");
        let Some(component) = component.as_object() else {
            return Err(GraphError::invalid_parameter(format!(
                "Param {path} must be an object."
            )));
        };
        let kind = match component.get("type") {
            Some(Value::String(kind)) => kind.to_ascii_lowercase(),
            None | Some(Value::Null) => {
                return Err(GraphError::required(&format!("{path}['type']")));
            }
            Some(_) => {
                return Err(GraphError::invalid_parameter(format!(
                    "Param {path}['type'] must be a string."
                )));
            }
        };
        let parameters = match component.get("parameters") {
            None | Some(Value::Null) => &Vec::new(),
            Some(Value::Array(parameters)) => parameters,
            Some(_) => {
                return Err(GraphError::invalid_parameter(format!(
                    "Param {path}['parameters'] must be an array."
                )));
            }
        };
        match kind.as_str() {
            "body" => {
                if body_params.is_some() {
                    return Err(GraphError::invalid_parameter(
                        "Duplicate template component of type BODY.",
                    ));
                }
                body_params = Some(parse_body_params(&path, parameters)?);
            }
            "header" => {
                if header_params.is_some() {
                    return Err(GraphError::invalid_parameter(
                        "Duplicate template component of type HEADER.",
                    ));
                }
                header_params = Some(parse_header_params(&path, parameters)?);
            }
            "button" => parse_button(&path, component)?,
            _ => {
                return Err(GraphError::invalid_parameter(format!(
                    "Param {path}['type'] must be one of {{HEADER, BODY, BUTTON}} - got \"{kind}\"."
                )));
            }
        }
    }

    Ok(Content::Template {
        name,
        language,
        body_params: body_params.unwrap_or_default(),
        header_params: header_params.unwrap_or(0),
    })
}

fn parse_body_params(path: &str, parameters: &[Value]) -> Result<Vec<String>, GraphError> {
    parameters
        .iter()
        .enumerate()
        .map(|(j, parameter)| {
            let ppath = format!("{path}['parameters'][{j}]");
            let Some(parameter) = parameter.as_object() else {
                return Err(GraphError::invalid_parameter(format!(
                    "Param {ppath} must be an object."
                )));
            };
            match parameter.get("type") {
                Some(Value::String(t)) if t.eq_ignore_ascii_case("text") => {}
                None | Some(Value::Null) => {
                    return Err(GraphError::required(&format!("{ppath}['type']")));
                }
                Some(other) => {
                    return Err(GraphError::invalid_parameter(format!(
                        "Param {ppath}['type'] must be TEXT (the simulator supports text body parameters only) - got {other}."
                    )));
                }
            }
            match parameter.get("text") {
                Some(Value::String(text)) if !text.trim().is_empty() => Ok(text.clone()),
                None | Some(Value::Null) => Err(GraphError::required(&format!("{ppath}['text']"))),
                Some(_) => Err(GraphError::invalid_parameter(format!(
                    "Param {ppath}['text'] must be a non-empty string."
                ))),
            }
        })
        .collect()
}

fn parse_header_params(path: &str, parameters: &[Value]) -> Result<usize, GraphError> {
    for (j, parameter) in parameters.iter().enumerate() {
        let ppath = format!("{path}['parameters'][{j}]");
        let kind = parameter
            .get("type")
            .and_then(Value::as_str)
            .map(str::to_ascii_lowercase);
        match kind.as_deref() {
            Some("text" | "image" | "video" | "document" | "location") => {}
            None => return Err(GraphError::required(&format!("{ppath}['type']"))),
            Some(other) => {
                return Err(GraphError::invalid_parameter(format!(
                    "Param {ppath}['type'] must be one of {{TEXT, IMAGE, VIDEO, DOCUMENT, LOCATION}} - got \"{other}\"."
                )));
            }
        }
    }
    Ok(parameters.len())
}

fn parse_button(path: &str, component: &Map<String, Value>) -> Result<(), GraphError> {
    match component.get("sub_type") {
        Some(Value::String(_)) => {}
        None | Some(Value::Null) => {
            return Err(GraphError::required(&format!("{path}['sub_type']")));
        }
        Some(_) => {
            return Err(GraphError::invalid_parameter(format!(
                "Param {path}['sub_type'] must be a string."
            )));
        }
    }
    match component.get("index") {
        Some(Value::Number(_)) => Ok(()),
        Some(Value::String(s)) if s.parse::<u32>().is_ok() => Ok(()),
        None | Some(Value::Null) => Err(GraphError::required(&format!("{path}['index']"))),
        Some(_) => Err(GraphError::invalid_parameter(format!(
            "Param {path}['index'] must be a number."
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::whatsapp::error::codes;
    use serde_json::json;

    fn code_of(body: Value) -> i64 {
        match parse(body.to_string().as_bytes()) {
            Ok(_) => 0,
            Err(e) => e.code,
        }
    }

    #[test]
    fn phone_numbers() {
        assert_eq!(
            normalize_phone("+4915112345678").as_deref(),
            Some("4915112345678")
        );
        assert_eq!(
            normalize_phone("16505551234").as_deref(),
            Some("16505551234")
        );
        assert!(normalize_phone("123456").is_none());
        assert!(normalize_phone("1234567890123456").is_none());
        assert!(normalize_phone("+1 650 555 1234").is_none());
        assert!(normalize_phone("++16505551234").is_none());
    }

    #[test]
    fn envelope_errors() {
        assert_eq!(
            parse(b"not json").err().map(|e| e.code),
            Some(codes::INVALID_PARAMETER)
        );
        assert_eq!(
            code_of(json!({"to": "16505551234", "type": "text", "text": {"body": "x"}})),
            100
        );
        assert_eq!(
            code_of(
                json!({"messaging_product": "sms", "to": "16505551234", "text": {"body": "x"}})
            ),
            100
        );
        assert_eq!(
            code_of(
                json!({"messaging_product": "whatsapp", "type": "text", "text": {"body": "x"}})
            ),
            100
        );
        assert_eq!(
            code_of(json!({"messaging_product": "whatsapp", "to": "12ab", "text": {"body": "x"}})),
            131009
        );
        assert_eq!(
            code_of(
                json!({"messaging_product": "whatsapp", "to": "16505551234", "type": "image", "image": {"id": "1"}})
            ),
            131051
        );
        assert_eq!(
            code_of(
                json!({"messaging_product": "whatsapp", "to": "16505551234", "type": "text", "text": {"body": ""}})
            ),
            100
        );
        assert_eq!(
            code_of(
                json!({"messaging_product": "whatsapp", "to": "16505551234", "text": {"body": "hi"}})
            ),
            0
        );
    }

    #[test]
    fn text_length_counts_characters() {
        let ok = "é".repeat(MAX_TEXT_BODY_CHARS);
        let too_long = "a".repeat(MAX_TEXT_BODY_CHARS + 1);
        assert_eq!(
            code_of(
                json!({"messaging_product": "whatsapp", "to": "16505551234", "type": "text", "text": {"body": ok}})
            ),
            0
        );
        assert_eq!(
            code_of(
                json!({"messaging_product": "whatsapp", "to": "16505551234", "type": "text", "text": {"body": too_long}})
            ),
            100
        );
    }

    #[test]
    fn template_structure() {
        let good = json!({"messaging_product": "whatsapp", "to": "+16505551234", "type": "template",
            "template": {"name": "order_update", "language": {"code": "en_US"},
              "components": [{"type": "body", "parameters": [{"type": "text", "text": "Jane"}, {"type": "text", "text": "#1234"}]}]}});
        let parsed = parse(good.to_string().as_bytes()).expect("valid");
        assert_eq!(parsed.wa_id, "16505551234");
        assert_eq!(
            parsed.content,
            Content::Template {
                name: "order_update".into(),
                language: "en_US".into(),
                body_params: vec!["Jane".into(), "#1234".into()],
                header_params: 0,
            }
        );
        let no_lang = json!({"messaging_product": "whatsapp", "to": "16505551234", "type": "template", "template": {"name": "x"}});
        assert_eq!(code_of(no_lang), 100);
        let bad_component = json!({"messaging_product": "whatsapp", "to": "16505551234", "type": "template",
            "template": {"name": "x", "language": {"code": "en_US"}, "components": [{"type": "footer"}]}});
        assert_eq!(code_of(bad_component), 100);
        let empty_param = json!({"messaging_product": "whatsapp", "to": "16505551234", "type": "template",
            "template": {"name": "x", "language": {"code": "en_US"}, "components": [{"type": "body", "parameters": [{"type": "text", "text": ""}]}]}});
        assert_eq!(code_of(empty_param), 100);
        let button_without_index = json!({"messaging_product": "whatsapp", "to": "16505551234", "type": "template",
            "template": {"name": "x", "language": {"code": "en_US"}, "components": [{"type": "button", "sub_type": "url"}]}});
        assert_eq!(code_of(button_without_index), 100);
    }
}
