//! Request bodies and URLs of the WeChat Official Account API.
//!
//! - `POST /cgi-bin/stable_token` `{"grant_type":"client_credential","appid","secret","force_refresh"}`;
//! - `POST /cgi-bin/message/custom/send?access_token=…`
//!   `{"touser","msgtype":"text","text":{"content"}}` (customer-service text, inside the window);
//! - `POST /cgi-bin/message/template/send?access_token=…`
//!   `{"touser","template_id","url"?,"data":{"keyword1":{"value"},…}}` (template messages).
//!
//! Everything here is pure: it refuses content WeChat would reject anyway
//! before any request is made.

use std::collections::BTreeMap;

use serde::Serialize;
use switchboard_sdk::types::{Content, Failure, OutboundMessage, SendError, TemplateMessage};

/// Longest customer-service text the adapter sends, in UTF-8 bytes, and
/// the limit declared to the host (which counts in UTF-8 bytes too).
///
/// WeChat does not document the customer-service text limit. 2,048 bytes
/// is the documented limit of text in passive replies, the same text
/// message on the same account, so it is assumed here.
pub const MAX_TEXT_BYTES: usize = 2_048;

/// Longest `touser` the adapter accepts. OpenIDs are 28 characters; the
/// bound only keeps garbage out of URLs and logs.
pub const MAX_OPENID_LEN: usize = 64;

/// Paths under the base URL.
pub mod paths {
    /// The stable access-token endpoint.
    pub const STABLE_TOKEN: &str = "/cgi-bin/stable_token";
    /// Customer-service messages.
    pub const CUSTOM_SEND: &str = "/cgi-bin/message/custom/send";
    /// Template messages.
    pub const TEMPLATE_SEND: &str = "/cgi-bin/message/template/send";
}

/// `{base_url}{path}`, tolerating a trailing slash on the base URL.
pub fn url(base_url: &str, path: &str) -> String {
    format!("{}{path}", base_url.trim().trim_end_matches('/'))
}

/// `{base_url}{path}?access_token=…`, the token percent-encoded.
pub fn url_with_token(base_url: &str, path: &str, access_token: &str) -> String {
    format!(
        "{}?access_token={}",
        url(base_url, path),
        percent_encode(access_token)
    )
}

/// Percent-encode everything but RFC 3986's unreserved characters.
pub fn percent_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// The body of `POST /cgi-bin/stable_token`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct StableTokenRequest<'a> {
    grant_type: &'static str,
    appid: &'a str,
    secret: &'a str,
    force_refresh: bool,
}

impl<'a> StableTokenRequest<'a> {
    /// A request for `appid`'s token; `force_refresh` invalidates the
    /// current one and issues another (limited to 20 a day by WeChat).
    pub fn new(appid: &'a str, secret: &'a str, force_refresh: bool) -> Self {
        Self {
            grant_type: "client_credential",
            appid,
            secret,
            force_refresh,
        }
    }
}

/// Which API a message goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    /// `/cgi-bin/message/custom/send`.
    Custom,
    /// `/cgi-bin/message/template/send`.
    Template,
}

impl Api {
    /// The API's path.
    pub fn path(self) -> &'static str {
        match self {
            Api::Custom => paths::CUSTOM_SEND,
            Api::Template => paths::TEMPLATE_SEND,
        }
    }
}

/// A message ready to post: which API, and its JSON body.
#[derive(Debug, Clone, PartialEq)]
pub struct MessageRequest {
    /// Where it goes.
    pub api: Api,
    /// The JSON posted, fields in WeChat's documented order.
    pub body: String,
}

/// `{"touser","msgtype":"text","text":{"content"}}`.
#[derive(Debug, Serialize)]
struct CustomText<'a> {
    touser: &'a str,
    msgtype: &'static str,
    text: TextContent<'a>,
}

#[derive(Debug, Serialize)]
struct TextContent<'a> {
    content: &'a str,
}

/// `{"touser","template_id","url"?,"data":{name:{"value"}}}`.
#[derive(Debug, Serialize)]
struct TemplateSend<'a> {
    touser: &'a str,
    template_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    url: Option<&'a str>,
    data: BTreeMap<String, DataValue<'a>>,
}

#[derive(Debug, Serialize)]
struct DataValue<'a> {
    value: &'a str,
}

impl MessageRequest {
    /// The request for `message`, or `invalid-content` (or, for a bad
    /// OpenID, `recipient-unreachable`) when WeChat would refuse it.
    ///
    /// Text goes to the customer-service API; templates to the template
    /// API, each parameter becoming a `data` key (a bare number `n`, from
    /// a positional list in the campaign, becomes `keywordn`) and the
    /// template's `link` the `url`.
    pub fn for_message(message: &OutboundMessage) -> Result<Self, SendError> {
        let touser = openid(&message.to)?;
        let (api, body) = match &message.content {
            Content::Text(text) => {
                check_text(text)?;
                let body = CustomText {
                    touser,
                    msgtype: "text",
                    text: TextContent { content: text },
                };
                (Api::Custom, serde_json::to_string(&body))
            }
            Content::Template(template) => (Api::Template, template_body(touser, template)?),
        };
        let body = body.map_err(|error| invalid(&format!("cannot encode the request: {error}")))?;
        Ok(Self { api, body })
    }
}

fn template_body(
    touser: &str,
    template: &TemplateMessage,
) -> Result<serde_json::Result<String>, SendError> {
    let template_id = template.name.trim();
    if template_id.is_empty() {
        return Err(invalid("the template has no template_id (name)"));
    }
    let mut data = BTreeMap::new();
    for parameter in &template.parameters {
        let key = data_key(&parameter.name);
        if key.is_empty() {
            return Err(invalid("a template parameter has no name"));
        }
        if data
            .insert(
                key.clone(),
                DataValue {
                    value: &parameter.value,
                },
            )
            .is_some()
        {
            return Err(invalid(&format!(
                "template parameter `{key}` is given twice"
            )));
        }
    }
    let url = template
        .link
        .as_deref()
        .map(str::trim)
        .filter(|link| !link.is_empty());
    if let Some(link) = url
        && !(link.starts_with("https://") || link.starts_with("http://"))
    {
        return Err(invalid(&format!(
            "the template link `{link}` is not an http(s) URL"
        )));
    }
    Ok(serde_json::to_string(&TemplateSend {
        touser,
        template_id,
        url,
        data,
    }))
}

/// The `data` key for a parameter name: `keyword{n}` for a bare number
/// `n` (a positional parameter), otherwise the name as given (`keyword1`,
/// `thing2`, `time3`, …).
pub fn data_key(name: &str) -> String {
    let name = name.trim();
    if !name.is_empty() && name.bytes().all(|b| b.is_ascii_digit()) {
        format!("keyword{name}")
    } else {
        name.to_owned()
    }
}

/// The OpenID to send to: trimmed, non-empty, printable ASCII without
/// spaces and not absurdly long. Anything else is not an OpenID WeChat
/// issued, so the recipient cannot be reached with it.
pub fn openid(to: &str) -> Result<&str, SendError> {
    let id = to.trim();
    if id.is_empty() || id.len() > MAX_OPENID_LEN || !id.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(SendError::RecipientUnreachable(Failure::new(
            "",
            format!("`{}` is not a WeChat OpenID", to.escape_debug()),
        )));
    }
    Ok(id)
}

fn check_text(text: &str) -> Result<(), SendError> {
    if text.trim().is_empty() {
        return Err(invalid(
            "the text is empty; WeChat refuses empty text messages",
        ));
    }
    if text.len() > MAX_TEXT_BYTES {
        return Err(invalid(&format!(
            "the text is {} bytes of UTF-8 ({} characters); the adapter sends at most {MAX_TEXT_BYTES} bytes",
            text.len(),
            text.chars().count()
        )));
    }
    Ok(())
}

fn invalid(message: &str) -> SendError {
    SendError::InvalidContent(Failure::new("", message))
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_sdk::types::{Purpose, TemplateParameter};

    const OPENID: &str = "oDF3iY9ffA-hqb2vVvbr7qxf6A0Q";

    fn message(content: Content) -> OutboundMessage {
        OutboundMessage {
            idempotency_key: "ab".repeat(32),
            to: OPENID.into(),
            purpose: Purpose::Utility,
            content,
            ttl_seconds: None,
            attempt: 1,
        }
    }

    fn template(params: &[(&str, &str)], link: Option<&str>) -> Content {
        Content::Template(TemplateMessage {
            name: "ngqIpbwh8bUfcSsECmogfXcV14J0tQlEpBO27izEYtY".into(),
            language: None,
            parameters: params
                .iter()
                .map(|(name, value)| TemplateParameter {
                    name: (*name).into(),
                    value: (*value).into(),
                })
                .collect(),
            link: link.map(str::to_owned),
        })
    }

    fn error_text(error: SendError) -> String {
        error.failure().message.clone()
    }

    #[test]
    fn builds_urls() {
        assert_eq!(
            url("https://api.weixin.qq.com/", paths::STABLE_TOKEN),
            "https://api.weixin.qq.com/cgi-bin/stable_token"
        );
        assert_eq!(
            url_with_token("http://127.0.0.1:9/", paths::CUSTOM_SEND, "A+b/c=_-"),
            "http://127.0.0.1:9/cgi-bin/message/custom/send?access_token=A%2Bb%2Fc%3D_-"
        );
    }

    #[test]
    fn stable_token_body_is_exact() {
        assert_eq!(
            serde_json::to_string(&StableTokenRequest::new("wx1", "s3cret", false)).expect("json"),
            r#"{"grant_type":"client_credential","appid":"wx1","secret":"s3cret","force_refresh":false}"#
        );
        assert_eq!(
            serde_json::to_string(&StableTokenRequest::new("wx1", "s", true)).expect("json"),
            r#"{"grant_type":"client_credential","appid":"wx1","secret":"s","force_refresh":true}"#
        );
    }

    #[test]
    fn text_goes_to_the_customer_service_api() {
        let request = MessageRequest::for_message(&message(Content::Text(
            "您好，订单已发货 \"quoted\"".into(),
        )))
        .expect("valid");
        assert_eq!(request.api, Api::Custom);
        assert_eq!(request.api.path(), "/cgi-bin/message/custom/send");
        assert_eq!(
            request.body,
            format!(
                r#"{{"touser":"{OPENID}","msgtype":"text","text":{{"content":"您好，订单已发货 \"quoted\""}}}}"#
            )
        );
    }

    #[test]
    fn template_goes_to_the_template_api_with_named_data_and_url() {
        let request = MessageRequest::for_message(&message(template(
            &[
                ("keyword1", "Order #1234"),
                ("keyword2", "39.80 CNY"),
                ("3", "2024-09-22"),
            ],
            Some("https://example.com/order/1234"),
        )))
        .expect("valid");
        assert_eq!(request.api, Api::Template);
        assert_eq!(
            request.body,
            format!(
                r#"{{"touser":"{OPENID}","template_id":"ngqIpbwh8bUfcSsECmogfXcV14J0tQlEpBO27izEYtY","url":"https://example.com/order/1234","data":{{"keyword1":{{"value":"Order #1234"}},"keyword2":{{"value":"39.80 CNY"}},"keyword3":{{"value":"2024-09-22"}}}}}}"#
            )
        );
    }

    #[test]
    fn template_without_link_or_parameters_omits_url_and_sends_empty_data() {
        let request =
            MessageRequest::for_message(&message(template(&[], Some("  ")))).expect("valid");
        assert_eq!(
            request.body,
            format!(
                r#"{{"touser":"{OPENID}","template_id":"ngqIpbwh8bUfcSsECmogfXcV14J0tQlEpBO27izEYtY","data":{{}}}}"#
            )
        );
    }

    #[test]
    fn data_keys() {
        assert_eq!(data_key("1"), "keyword1");
        assert_eq!(data_key(" 12 "), "keyword12");
        assert_eq!(data_key("thing2"), "thing2");
        assert_eq!(data_key("keyword1"), "keyword1");
        assert_eq!(data_key(" "), "");
    }

    #[test]
    fn refuses_bad_templates() {
        let mut no_id = message(template(&[("keyword1", "x")], None));
        if let Content::Template(t) = &mut no_id.content {
            t.name = " ".into();
        }
        let error = MessageRequest::for_message(&no_id).expect_err("no id");
        assert!(matches!(error, SendError::InvalidContent(_)));
        assert!(error_text(error).contains("template_id"));

        let twice = message(template(&[("1", "a"), ("keyword1", "b")], None));
        let error = MessageRequest::for_message(&twice).expect_err("twice");
        assert!(error_text(error).contains("`keyword1` is given twice"));

        let nameless = message(template(&[(" ", "a")], None));
        assert!(
            error_text(MessageRequest::for_message(&nameless).expect_err("nameless"))
                .contains("no name")
        );

        let bad_link = message(template(&[], Some("javascript:alert(1)")));
        let error = MessageRequest::for_message(&bad_link).expect_err("link");
        assert!(matches!(error, SendError::InvalidContent(_)));
        assert!(error_text(error).contains("not an http(s) URL"));
    }

    #[test]
    fn text_limits_count_bytes() {
        // 682 three-byte characters: 2,046 bytes, accepted.
        assert!(MessageRequest::for_message(&message(Content::Text("好".repeat(682)))).is_ok());
        assert!(
            MessageRequest::for_message(&message(Content::Text("x".repeat(MAX_TEXT_BYTES))))
                .is_ok()
        );
        let error =
            MessageRequest::for_message(&message(Content::Text("x".repeat(MAX_TEXT_BYTES + 1))))
                .expect_err("too long");
        assert!(matches!(error, SendError::InvalidContent(_)));
        assert!(error_text(error).contains("2049 bytes"));
        // 600 emoji are 600 characters but 2,400 bytes.
        let error = MessageRequest::for_message(&message(Content::Text("😀".repeat(600))))
            .expect_err("emoji");
        assert!(error_text(error).contains("600 characters"));
        for empty in ["", " \n "] {
            let error = MessageRequest::for_message(&message(Content::Text(empty.into())))
                .expect_err("empty");
            assert!(error_text(error).contains("empty"));
        }
    }

    #[test]
    fn refuses_what_cannot_be_an_openid() {
        for bad in ["", "  ", "has space", "tab\tid", &"o".repeat(65), "ö-utf8"] {
            let mut m = message(Content::Text("hi".into()));
            m.to = bad.into();
            match MessageRequest::for_message(&m) {
                Err(SendError::RecipientUnreachable(failure)) => {
                    assert!(failure.message.contains("not a WeChat OpenID"), "{bad}");
                }
                other => panic!("{bad:?}: {other:?}"),
            }
        }
        let mut padded = message(Content::Text("hi".into()));
        padded.to = format!(" {OPENID} ");
        let request = MessageRequest::for_message(&padded).expect("trimmed");
        assert!(
            request
                .body
                .starts_with(&format!(r#"{{"touser":"{OPENID}","#)),
            "{}",
            request.body
        );
    }
}
