//! Structural validation of push and multicast request bodies and of the
//! `X-Line-Retry-Key` header, with LINE's `details[]` for each problem.
//!
//! Every problem in a body is reported at once, as LINE does
//! (`The request body has N error(s)`).

use serde_json::{Map, Value};

use super::LineEndpoint;
use super::error::{Detail, LineApiError};

/// Longest text message, in UTF-16 code units.
pub const MAX_TEXT_UTF16_UNITS: usize = 5_000;
/// Most recipients of one multicast.
pub const MAX_MULTICAST_RECIPIENTS: usize = 500;
/// Most message objects in one request.
pub const MAX_MESSAGES: usize = 5;

/// A structurally valid push or multicast request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendRequest {
    /// The user ids in `to`, in order, without repeats.
    pub recipients: Vec<String>,
    /// The texts of the message objects, in order.
    pub texts: Vec<String>,
    /// `notificationDisabled`.
    pub notification_disabled: bool,
}

/// Whether `id` is a LINE user id: `U` followed by 32 lowercase hex digits.
pub fn is_user_id(id: &str) -> bool {
    id.len() == 33
        && id.starts_with('U')
        && id[1..]
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Whether `key` is a UUID in hexadecimal notation
/// (`123e4567-e89b-12d3-a456-426614174000`, either case).
pub fn is_retry_key(key: &str) -> bool {
    let groups: Vec<&str> = key.split('-').collect();
    groups.len() == 5
        && groups.iter().map(|g| g.len()).eq([8, 4, 4, 4, 12])
        && groups
            .iter()
            .all(|g| g.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// The length of `text` as LINE counts it: UTF-16 code units.
pub fn utf16_len(text: &str) -> usize {
    text.encode_utf16().count()
}

/// Validates a push (`to` is one user id) or multicast (`to` is 1 to 500
/// user ids) body with 1 to 5 text messages.
pub fn parse(endpoint: LineEndpoint, body: &[u8]) -> Result<SendRequest, LineApiError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|_| LineApiError::bad_request("The request body is not valid JSON"))?;
    let Some(obj) = value.as_object() else {
        return Err(LineApiError::bad_request(
            "The request body must be a JSON object",
        ));
    };
    let mut details = Vec::new();
    let recipients = match endpoint {
        LineEndpoint::Push => push_recipient(obj, &mut details),
        LineEndpoint::Multicast => multicast_recipients(obj, &mut details),
    };
    let texts = messages(obj, &mut details);
    let notification_disabled = match obj.get("notificationDisabled") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(flag)) => *flag,
        Some(_) => {
            details.push(Detail::new("notificationDisabled", "Must be a boolean"));
            false
        }
    };
    if details.is_empty() {
        Ok(SendRequest {
            recipients,
            texts,
            notification_disabled,
        })
    } else {
        Err(LineApiError::invalid_body(details))
    }
}

fn push_recipient(obj: &Map<String, Value>, details: &mut Vec<Detail>) -> Vec<String> {
    match obj.get("to") {
        None | Some(Value::Null) => details.push(Detail::new("to", "May not be empty")),
        Some(Value::String(to)) if is_user_id(to) => return vec![to.clone()],
        Some(Value::String(_)) => details.push(Detail::new("to", "Invalid user ID")),
        Some(_) => details.push(Detail::new("to", "Must be a string")),
    }
    Vec::new()
}

fn multicast_recipients(obj: &Map<String, Value>, details: &mut Vec<Detail>) -> Vec<String> {
    let list = match obj.get("to") {
        None | Some(Value::Null) => {
            details.push(Detail::new("to", "May not be empty"));
            return Vec::new();
        }
        Some(Value::Array(list)) => list,
        Some(_) => {
            details.push(Detail::new("to", "Must be an array of user IDs"));
            return Vec::new();
        }
    };
    if !(1..=MAX_MULTICAST_RECIPIENTS).contains(&list.len()) {
        details.push(Detail::new(
            "to",
            format!("Size must be between 1 and {MAX_MULTICAST_RECIPIENTS}"),
        ));
        return Vec::new();
    }
    let mut recipients: Vec<String> = Vec::with_capacity(list.len());
    for (i, entry) in list.iter().enumerate() {
        match entry.as_str() {
            Some(id) if is_user_id(id) => {
                if !recipients.iter().any(|r| r == id) {
                    recipients.push(id.to_owned());
                }
            }
            _ => details.push(Detail::new(format!("to[{i}]"), "Invalid user ID")),
        }
    }
    recipients
}

fn messages(obj: &Map<String, Value>, details: &mut Vec<Detail>) -> Vec<String> {
    let list = match obj.get("messages") {
        None | Some(Value::Null) => {
            details.push(Detail::new("messages", "May not be empty"));
            return Vec::new();
        }
        Some(Value::Array(list)) => list,
        Some(_) => {
            details.push(Detail::new("messages", "Must be an array"));
            return Vec::new();
        }
    };
    if !(1..=MAX_MESSAGES).contains(&list.len()) {
        details.push(Detail::new(
            "messages",
            format!("Size must be between 1 and {MAX_MESSAGES}"),
        ));
        return Vec::new();
    }
    let mut texts = Vec::with_capacity(list.len());
    for (i, message) in list.iter().enumerate() {
        let property = |field: &str| format!("messages[{i}].{field}");
        let Some(message) = message.as_object() else {
            details.push(Detail::new(format!("messages[{i}]"), "Must be an object"));
            continue;
        };
        match message.get("type").and_then(Value::as_str) {
            Some("text") => {}
            None => {
                details.push(Detail::new(property("type"), "May not be empty"));
                continue;
            }
            Some(_) => {
                details.push(Detail::new(
                    property("type"),
                    "Must be one of the following values: [text] (the simulator serves text messages only)",
                ));
                continue;
            }
        }
        match message.get("text") {
            None | Some(Value::Null) => {
                details.push(Detail::new(property("text"), "May not be empty"));
            }
            Some(Value::String(text)) if text.is_empty() => {
                details.push(Detail::new(property("text"), "May not be empty"));
            }
            Some(Value::String(text)) if utf16_len(text) > MAX_TEXT_UTF16_UNITS => {
                details.push(Detail::new(
                    property("text"),
                    format!("Length must be between 0 and {MAX_TEXT_UTF16_UNITS}"),
                ));
            }
            Some(Value::String(text)) => texts.push(text.clone()),
            Some(_) => details.push(Detail::new(property("text"), "Must be a string")),
        }
    }
    texts
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const ANA: &str = "U4af4980629a1b2c3d4e5f60718293a4b";
    const BEN: &str = "U0123456789abcdef0123456789abcdef";

    fn parse_json(endpoint: LineEndpoint, body: Value) -> Result<SendRequest, LineApiError> {
        parse(endpoint, body.to_string().as_bytes())
    }

    fn details(error: LineApiError) -> Vec<(String, String)> {
        error
            .details
            .into_iter()
            .map(|d| (d.property, d.message))
            .collect()
    }

    #[test]
    fn ids_and_retry_keys() {
        assert!(is_user_id(ANA));
        assert!(!is_user_id("U4AF4980629A1B2C3D4E5F60718293A4B"));
        assert!(!is_user_id("C4af4980629a1b2c3d4e5f60718293a4b"));
        assert!(!is_user_id("U4af4980629a1b2c3d4e5f60718293a4"));
        assert!(is_retry_key("123e4567-e89b-12d3-a456-426614174000"));
        assert!(is_retry_key("123E4567-E89B-12D3-A456-426614174000"));
        assert!(!is_retry_key("123e4567e89b12d3a456426614174000"));
        assert!(!is_retry_key("123e4567-e89b-12d3-a456-42661417400g"));
        assert!(!is_retry_key("retry-1"));
        assert!(!is_retry_key(""));
    }

    #[test]
    fn accepts_a_push_and_a_multicast() {
        let push = parse_json(
            LineEndpoint::Push,
            json!({"to": ANA, "messages": [{"type": "text", "text": "Hi"}]}),
        )
        .expect("valid push");
        assert_eq!(push.recipients, vec![ANA]);
        assert_eq!(push.texts, vec!["Hi"]);
        assert!(!push.notification_disabled);
        let multicast = parse_json(
            LineEndpoint::Multicast,
            json!({"to": [ANA, BEN, ANA], "messages": [{"type": "text", "text": "Sale"}, {"type": "text", "text": "Now"}], "notificationDisabled": true}),
        )
        .expect("valid multicast");
        assert_eq!(multicast.recipients, vec![ANA, BEN], "repeats dropped");
        assert_eq!(multicast.texts, vec!["Sale", "Now"]);
        assert!(multicast.notification_disabled);
    }

    #[test]
    fn reports_every_problem_with_its_property() {
        let error = parse_json(
            LineEndpoint::Multicast,
            json!({"to": [ANA, "nobody", 7], "messages": [
                {"type": "text", "text": ""},
                {"type": "sticker", "packageId": "446"},
                {"text": "no type"},
                {"type": "text", "text": "a".repeat(5_001)},
                "not an object"
            ], "notificationDisabled": "yes"}),
        )
        .expect_err("invalid");
        assert_eq!(error.status, axum::http::StatusCode::BAD_REQUEST);
        assert_eq!(error.message, "The request body has 8 error(s)");
        assert_eq!(
            details(error),
            vec![
                ("to[1]".into(), "Invalid user ID".into()),
                ("to[2]".into(), "Invalid user ID".into()),
                ("messages[0].text".into(), "May not be empty".into()),
                (
                    "messages[1].type".into(),
                    "Must be one of the following values: [text] (the simulator serves text messages only)".into()
                ),
                ("messages[2].type".into(), "May not be empty".into()),
                (
                    "messages[3].text".into(),
                    "Length must be between 0 and 5000".into()
                ),
                ("messages[4]".into(), "Must be an object".into()),
                ("notificationDisabled".into(), "Must be a boolean".into()),
            ]
        );
    }

    #[test]
    fn text_length_is_counted_in_utf16_units() {
        let ok = "😀".repeat(2_500);
        assert!(
            parse_json(
                LineEndpoint::Push,
                json!({"to": ANA, "messages": [{"type": "text", "text": ok}]})
            )
            .is_ok()
        );
        let long = "😀".repeat(2_501);
        let error = parse_json(
            LineEndpoint::Push,
            json!({"to": ANA, "messages": [{"type": "text", "text": long}]}),
        )
        .expect_err("5,002 units");
        assert_eq!(
            details(error),
            vec![(
                "messages[0].text".into(),
                "Length must be between 0 and 5000".into()
            )]
        );
    }

    #[test]
    fn recipient_and_message_counts_are_bounded() {
        let many: Vec<String> = (0..501).map(|i| format!("U{i:032x}")).collect();
        let error = parse_json(
            LineEndpoint::Multicast,
            json!({"to": many, "messages": [{"type": "text", "text": "x"}]}),
        )
        .expect_err("501 recipients");
        assert_eq!(
            details(error),
            vec![("to".into(), "Size must be between 1 and 500".into())]
        );
        let error = parse_json(LineEndpoint::Multicast, json!({"to": [], "messages": []}))
            .expect_err("empty");
        assert_eq!(
            details(error),
            vec![
                ("to".into(), "Size must be between 1 and 500".into()),
                ("messages".into(), "Size must be between 1 and 5".into())
            ]
        );
        let six = vec![json!({"type": "text", "text": "x"}); 6];
        let error = parse_json(LineEndpoint::Push, json!({"to": ANA, "messages": six}))
            .expect_err("six messages");
        assert_eq!(
            details(error),
            vec![("messages".into(), "Size must be between 1 and 5".into())]
        );
    }

    #[test]
    fn push_needs_one_user_id() {
        let error = parse_json(
            LineEndpoint::Push,
            json!({"to": [ANA], "messages": [{"type": "text", "text": "x"}]}),
        )
        .expect_err("array");
        assert_eq!(
            details(error),
            vec![("to".into(), "Must be a string".into())]
        );
        let error = parse_json(
            LineEndpoint::Push,
            json!({"messages": [{"type": "text", "text": "x"}]}),
        )
        .expect_err("missing");
        assert_eq!(
            details(error),
            vec![("to".into(), "May not be empty".into())]
        );
        let error = parse_json(
            LineEndpoint::Push,
            json!({"to": "+4915112345678", "messages": [{"type": "text", "text": "x"}]}),
        )
        .expect_err("phone");
        assert_eq!(
            details(error),
            vec![("to".into(), "Invalid user ID".into())]
        );
    }

    #[test]
    fn unreadable_bodies() {
        let error = parse(LineEndpoint::Push, b"{not json").expect_err("not json");
        assert_eq!(error.message, "The request body is not valid JSON");
        assert!(error.details.is_empty());
        let error = parse(LineEndpoint::Push, b"[1]").expect_err("array");
        assert_eq!(error.message, "The request body must be a JSON object");
    }
}
