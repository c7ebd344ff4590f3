//! Request bodies for NHN Cloud KakaoTalk Bizmessage, and how a batch is
//! split into requests.
//!
//! - Templates go out as **AlimTalk** (`POST /alimtalk/v2.3/appkeys/{appKey}/messages`,
//!   or `…/auth/messages` for purpose `authentication`): one request per
//!   template code, up to 1,000 recipients, each with its own
//!   `templateParameter` (the `#{key}` values).
//! - Free-form text goes out as a **Brand Message**
//!   (`POST /brand-message/v1.0/appkeys/{appKey}/freestyle-messages`,
//!   `chatBubbleType` `TEXT`, targeting `I` = channel friends): one request
//!   per distinct content, up to 1,000 recipients. Marketing text is
//!   labelled `(광고)` as Korean law requires, unless it already is.
//!
//! Everything here is pure; the adapter layer reads the settings and makes
//! the calls.

use std::collections::BTreeMap;

use serde::Serialize;
use sha2::{Digest, Sha256};
use switchboard_sdk::types::{Content, Failure, OutboundMessage, Purpose, SendError};

use crate::address;

/// Most recipients NHN accepts in one request (`recipientList`).
pub const MAX_RECIPIENTS: usize = 1_000;
/// Longest Brand Message `TEXT` content, in characters (label included).
pub const MAX_BRAND_TEXT_CHARS: usize = 1_300;
/// Longest AlimTalk message, in characters. The template body is stored
/// at NHN, so the rendered length is checked there (result 3014); the
/// adapter only refuses a single parameter value that alone exceeds it.
pub const MAX_ALIMTALK_CHARS: usize = 1_000;
/// Longest template code NHN accepts.
pub const MAX_TEMPLATE_CODE_CHARS: usize = 20;
/// The advertising label the law (정보통신망법 §50(4)) requires at the start
/// of commercial messages.
pub const AD_LABEL: &str = "(광고)";
/// Brand Message targeting: users who are friends of the channel. The
/// marketing-consent targetings `M` / `N` need a channel Kakao approved for
/// them and are not used.
pub const TARGETING_FRIENDS: &str = "I";

/// Which NHN API a request goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Api {
    /// AlimTalk with template substitution.
    AlimTalk,
    /// AlimTalk's authentication-message variant (OTP; the text must
    /// contain an authentication word such as 인증 or "verif").
    AlimTalkAuth,
    /// Brand Message free-form (`freestyle-messages`).
    BrandMessage,
}

impl Api {
    /// The path after the base URL, e.g.
    /// `/alimtalk/v2.3/appkeys/{appKey}/messages`.
    pub fn path(self, app_key: &str) -> String {
        let app_key = app_key.trim();
        match self {
            Api::AlimTalk => format!("/alimtalk/v2.3/appkeys/{app_key}/messages"),
            Api::AlimTalkAuth => format!("/alimtalk/v2.3/appkeys/{app_key}/auth/messages"),
            Api::BrandMessage => {
                format!("/brand-message/v1.0/appkeys/{app_key}/freestyle-messages")
            }
        }
    }

    /// The full URL under `base_url` (trailing slashes tolerated).
    pub fn url(self, base_url: &str, app_key: &str) -> String {
        format!(
            "{}{}",
            base_url.trim().trim_end_matches('/'),
            self.path(app_key)
        )
    }

    /// A short name for logs.
    pub fn name(self) -> &'static str {
        match self {
            Api::AlimTalk => "AlimTalk",
            Api::AlimTalkAuth => "AlimTalk (authentication)",
            Api::BrandMessage => "Brand Message",
        }
    }

    /// A stable code, for what is stored: `alimtalk`, `alimtalk-auth`,
    /// `brand-message`.
    pub fn code(self) -> &'static str {
        match self {
            Api::AlimTalk => "alimtalk",
            Api::AlimTalkAuth => "alimtalk-auth",
            Api::BrandMessage => "brand-message",
        }
    }

    /// The API with [`Api::code`] `code`.
    pub fn from_code(code: &str) -> Option<Self> {
        [Api::AlimTalk, Api::AlimTalkAuth, Api::BrandMessage]
            .into_iter()
            .find(|api| api.code() == code)
    }
}

/// Operator settings that shape the bodies.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Options {
    /// The 40-character sender key of the KakaoTalk channel.
    pub sender_key: String,
    /// SMS fallback sender number for AlimTalk (`resendParameter`), if set.
    pub resend_send_no: Option<String>,
    /// 080 opt-out number for Brand Messages (`unsubscribeNo`), if set.
    pub unsubscribe_no: Option<String>,
}

/// `resendParameter`: SMS fallback when KakaoTalk delivery fails.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ResendParameter {
    is_resend: bool,
    resend_type: &'static str,
    resend_send_no: String,
}

/// One AlimTalk recipient.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AlimTalkRecipient {
    recipient_no: String,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    template_parameter: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    resend_parameter: Option<ResendParameter>,
    /// The host's idempotency key of the message (64 hex characters; NHN
    /// allows 100), echoed in result webhooks and the console.
    recipient_grouping_key: String,
}

/// The body of an AlimTalk send.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AlimTalkRequest {
    sender_key: String,
    template_code: String,
    /// The request's idempotency key, so an operator can find the request
    /// in the NHN console (and behind a `duplicate` receipt).
    sender_grouping_key: String,
    recipient_list: Vec<AlimTalkRecipient>,
}

/// One Brand Message recipient.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BrandRecipient {
    recipient_no: String,
    targeting: &'static str,
    recipient_grouping_key: String,
}

/// The body of a Brand Message free-form send.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BrandRequest {
    sender_key: String,
    chat_bubble_type: &'static str,
    content: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    unsubscribe_no: Option<String>,
    sender_grouping_key: String,
    recipient_list: Vec<BrandRecipient>,
}

/// A request body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Body {
    /// AlimTalk (either API).
    AlimTalk(AlimTalkRequest),
    /// Brand Message.
    Brand(BrandRequest),
}

/// One request to make: where, what, and which messages of the batch it
/// carries (in `recipientList` order).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedRequest {
    /// The API.
    pub api: Api,
    /// Indices into the batch, in `recipientList` order.
    pub members: Vec<usize>,
    /// The recipients' national numbers, in the same order.
    pub recipients: Vec<String>,
    /// `X-NC-API-IDEMPOTENCY-KEY`, derived from the members' keys.
    pub idempotency_key: String,
    /// The JSON body.
    pub body: Body,
}

/// A batch split into requests, and the messages refused before any call.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    /// Requests, in the order their first message appears in the batch.
    pub requests: Vec<PlannedRequest>,
    /// Messages refused without a call, with why.
    pub refused: Vec<(usize, SendError)>,
}

/// How [`plan`] treats a message of the batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Group it with the messages it can share a request with.
    Group,
    /// Send it in a request of its own (a retry of a message sent alone:
    /// its request key is derived from its own key only).
    Alone,
    /// Leave it out: it is settled or resent some other way.
    Skip,
}

/// What a message becomes before grouping.
enum Item {
    AlimTalk {
        api: Api,
        code: String,
        recipient: AlimTalkRecipient,
    },
    Brand {
        content: String,
        recipient: BrandRecipient,
    },
}

/// Split `batch` into requests (see the [module docs](self)); refuse
/// content NHN would refuse anyway and numbers KakaoTalk cannot reach.
/// `mode` says, per batch index, whether a message is grouped, sent alone
/// or left out.
pub fn plan(batch: &[OutboundMessage], options: &Options, mode: impl Fn(usize) -> Mode) -> Plan {
    let mut plan = Plan::default();
    // In first-seen order.
    let mut groups: Vec<Group> = Vec::new();
    for (index, message) in batch.iter().enumerate() {
        let alone = match mode(index) {
            Mode::Skip => continue,
            Mode::Alone => true,
            Mode::Group => false,
        };
        match item(message, options) {
            Ok(item) => {
                let key = GroupKey::of(&item);
                let open = groups.iter_mut().find(|group| {
                    !alone && !group.alone && group.key == key && group.items.len() < MAX_RECIPIENTS
                });
                match open {
                    Some(group) => group.items.push((index, item)),
                    None => groups.push(Group {
                        key,
                        alone,
                        items: vec![(index, item)],
                    }),
                }
            }
            Err(error) => plan.refused.push((index, error)),
        }
    }
    for Group { key, items, .. } in groups {
        let members: Vec<usize> = items.iter().map(|(index, _)| *index).collect();
        let idempotency_key =
            request_idempotency_key(members.iter().map(|&i| batch[i].idempotency_key.as_str()));
        let (api, body, recipients) = match key {
            GroupKey::AlimTalk(api, template_code) => {
                let recipient_list: Vec<AlimTalkRecipient> = items
                    .into_iter()
                    .filter_map(|(_, item)| match item {
                        Item::AlimTalk { recipient, .. } => Some(recipient),
                        Item::Brand { .. } => None,
                    })
                    .collect();
                let recipients = recipient_list
                    .iter()
                    .map(|r| r.recipient_no.clone())
                    .collect();
                let body = Body::AlimTalk(AlimTalkRequest {
                    sender_key: options.sender_key.clone(),
                    template_code,
                    sender_grouping_key: idempotency_key.clone(),
                    recipient_list,
                });
                (api, body, recipients)
            }
            GroupKey::Brand(content) => {
                let recipient_list: Vec<BrandRecipient> = items
                    .into_iter()
                    .filter_map(|(_, item)| match item {
                        Item::Brand { recipient, .. } => Some(recipient),
                        Item::AlimTalk { .. } => None,
                    })
                    .collect();
                let recipients = recipient_list
                    .iter()
                    .map(|r| r.recipient_no.clone())
                    .collect();
                let body = Body::Brand(BrandRequest {
                    sender_key: options.sender_key.clone(),
                    chat_bubble_type: "TEXT",
                    content,
                    unsubscribe_no: nonempty(options.unsubscribe_no.as_deref()),
                    sender_grouping_key: idempotency_key.clone(),
                    recipient_list,
                });
                (Api::BrandMessage, body, recipients)
            }
        };
        plan.requests.push(PlannedRequest {
            api,
            members,
            recipients,
            idempotency_key,
            body,
        });
    }
    plan
}

/// Messages that share a request, while planning.
struct Group {
    /// What they have in common.
    key: GroupKey,
    /// Whether it is a request of one that nothing may join.
    alone: bool,
    /// The messages, with their batch index.
    items: Vec<(usize, Item)>,
}

/// What makes two messages share a request.
#[derive(Debug, Clone, PartialEq, Eq)]
enum GroupKey {
    AlimTalk(Api, String),
    Brand(String),
}

impl GroupKey {
    fn of(item: &Item) -> Self {
        match item {
            Item::AlimTalk { api, code, .. } => GroupKey::AlimTalk(*api, code.clone()),
            Item::Brand { content, .. } => GroupKey::Brand(content.clone()),
        }
    }
}

fn item(message: &OutboundMessage, options: &Options) -> Result<Item, SendError> {
    // Content first: it is wrong whatever the recipient.
    let item = match &message.content {
        Content::Template(template) => {
            if message.purpose == Purpose::Marketing {
                return Err(invalid(
                    "AlimTalk templates are informational only (Kakao review forbids advertising in them): send marketing as free-form text, which goes out as a Brand Message",
                ));
            }
            let code = template.name.trim();
            if code.is_empty() {
                return Err(invalid("the template has no code"));
            }
            let length = code.chars().count();
            if length > MAX_TEMPLATE_CODE_CHARS {
                return Err(invalid(&format!(
                    "template code `{code}` is {length} characters long; NHN accepts at most {MAX_TEMPLATE_CODE_CHARS}"
                )));
            }
            let mut parameters = BTreeMap::new();
            for parameter in &template.parameters {
                let name = parameter.name.trim();
                if name.is_empty() {
                    return Err(invalid("a template parameter has no name (`#{name}`)"));
                }
                if name.contains('@') {
                    return Err(invalid(&format!(
                        "template parameter name `{name}` contains `@`, which NHN refuses (-3347)"
                    )));
                }
                let value_length = parameter.value.chars().count();
                if value_length > MAX_ALIMTALK_CHARS {
                    return Err(invalid(&format!(
                        "template parameter `{name}` is {value_length} characters long; an AlimTalk message holds at most {MAX_ALIMTALK_CHARS}"
                    )));
                }
                if parameters
                    .insert(name.to_owned(), parameter.value.clone())
                    .is_some()
                {
                    return Err(invalid(&format!(
                        "template parameter `{name}` is given twice"
                    )));
                }
            }
            let api = if message.purpose == Purpose::Authentication {
                Api::AlimTalkAuth
            } else {
                Api::AlimTalk
            };
            let recipient_no = address::national(&message.to)?;
            Item::AlimTalk {
                api,
                code: code.to_owned(),
                recipient: AlimTalkRecipient {
                    recipient_no,
                    template_parameter: parameters,
                    resend_parameter: nonempty(options.resend_send_no.as_deref()).map(
                        |resend_send_no| ResendParameter {
                            is_resend: true,
                            resend_type: "SMS",
                            resend_send_no,
                        },
                    ),
                    recipient_grouping_key: message.idempotency_key.clone(),
                },
            }
        }
        Content::Text(text) => {
            let content = brand_content(text, message.purpose)?;
            let recipient_no = address::national(&message.to)?;
            Item::Brand {
                content,
                recipient: BrandRecipient {
                    recipient_no,
                    targeting: TARGETING_FRIENDS,
                    recipient_grouping_key: message.idempotency_key.clone(),
                },
            }
        }
    };
    Ok(item)
}

/// The Brand Message content for `text`: labelled `(광고) ` when the
/// purpose is marketing and the text does not start with the label
/// already; `invalid-content` when empty or longer than
/// [`MAX_BRAND_TEXT_CHARS`] with the label.
pub fn brand_content(text: &str, purpose: Purpose) -> Result<String, SendError> {
    if text.trim().is_empty() {
        return Err(invalid("the text is empty; NHN refuses empty content"));
    }
    let content = if purpose == Purpose::Marketing && !text.trim_start().starts_with(AD_LABEL) {
        format!("{AD_LABEL} {text}")
    } else {
        text.to_owned()
    };
    let length = content.chars().count();
    if length > MAX_BRAND_TEXT_CHARS {
        let note = if content.len() == text.len() {
            String::new()
        } else {
            format!(" (including the `{AD_LABEL} ` label the law requires)")
        };
        return Err(invalid(&format!(
            "the text is {length} characters long{note}; a Brand Message TEXT holds at most {MAX_BRAND_TEXT_CHARS}"
        )));
    }
    Ok(content)
}

/// A request ready to send: freshly planned, or recorded by an earlier
/// attempt and resent whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    /// The API.
    pub api: Api,
    /// `X-NC-API-IDEMPOTENCY-KEY`.
    pub idempotency_key: String,
    /// The JSON body, exactly as sent (and as recorded).
    pub body: String,
    /// The national numbers of `recipientList`, in order.
    pub recipients: Vec<String>,
    /// The `recipientGroupingKey` (the host's idempotency key) of each
    /// recipient, in the same order.
    pub grouping_keys: Vec<String>,
    /// The messages of this batch it carries: (batch index, position in
    /// `recipientList`). A resend may carry recipients whose messages are
    /// not in this batch.
    pub members: Vec<(usize, usize)>,
    /// Whether an earlier attempt recorded and may have sent it.
    pub resend: bool,
}

impl Outgoing {
    /// A freshly planned request of `batch`.
    pub fn fresh(request: PlannedRequest, batch: &[OutboundMessage]) -> Self {
        Self {
            api: request.api,
            // Serialising our own body types cannot fail.
            body: serde_json::to_string(&request.body).unwrap_or_default(),
            grouping_keys: request
                .members
                .iter()
                .map(|&index| batch[index].idempotency_key.clone())
                .collect(),
            members: request
                .members
                .iter()
                .enumerate()
                .map(|(position, &index)| (index, position))
                .collect(),
            idempotency_key: request.idempotency_key,
            recipients: request.recipients,
            resend: false,
        }
    }

    /// The batch indices it is sent for, for the request's tag.
    pub fn indices(&self) -> Vec<u32> {
        self.members
            .iter()
            .map(|&(index, _)| u32::try_from(index).unwrap_or(u32::MAX))
            .collect()
    }

    /// Whether it carries several recipients, so that its body must be
    /// recorded for a retry of any one of them to resend it whole.
    pub fn grouped(&self) -> bool {
        self.recipients.len() > 1
    }
}

/// The recipients of a request body as sent: (`recipientNo`,
/// `recipientGroupingKey`) of each `recipientList` entry, in order; `None`
/// unless the body is a JSON object with such a list.
pub fn recipients_of(body: &str) -> Option<Vec<(String, String)>> {
    let value: serde_json::Value = serde_json::from_str(body).ok()?;
    value
        .get("recipientList")?
        .as_array()?
        .iter()
        .map(|recipient| {
            let field = |name: &str| recipient.get(name)?.as_str().map(str::to_owned);
            Some((field("recipientNo")?, field("recipientGroupingKey")?))
        })
        .collect()
}

/// `X-NC-API-IDEMPOTENCY-KEY` for a request carrying messages with `keys`:
/// a UUID-formatted SHA-256 of the sorted, distinct host keys. The same
/// messages always give the same key, in any order and on any attempt, so
/// a resend of the same request within NHN's 10 minutes fails with -1005
/// instead of delivering twice.
pub fn request_idempotency_key<'a>(keys: impl IntoIterator<Item = &'a str>) -> String {
    let mut keys: Vec<&str> = keys.into_iter().collect();
    keys.sort_unstable();
    keys.dedup();
    let mut hasher = Sha256::new();
    hasher.update(b"switchboard-kakaotalk-request-v1");
    for key in keys {
        hasher.update([0x1f]);
        hasher.update(key.as_bytes());
    }
    let digest = hasher.finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    // Version 4 and RFC 4122 variant bits, so it reads as a UUID anywhere.
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex = hex::encode(bytes);
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

fn nonempty(value: Option<&str>) -> Option<String> {
    value
        .map(str::trim)
        .filter(|value| !value.is_empty())
        .map(str::to_owned)
}

fn invalid(message: &str) -> SendError {
    SendError::InvalidContent(Failure::new("", message))
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_sdk::types::{TemplateMessage, TemplateParameter};

    const SENDER_KEY: &str = "0123456789abcdef0123456789abcdef01234567";

    fn options() -> Options {
        Options {
            sender_key: SENDER_KEY.into(),
            resend_send_no: None,
            unsubscribe_no: None,
        }
    }

    fn key(n: usize) -> String {
        format!("{n:064x}")
    }

    fn template(
        n: usize,
        to: &str,
        code: &str,
        purpose: Purpose,
        params: &[(&str, &str)],
    ) -> OutboundMessage {
        OutboundMessage {
            idempotency_key: key(n),
            to: to.into(),
            purpose,
            content: Content::Template(TemplateMessage {
                name: code.into(),
                language: None,
                parameters: params
                    .iter()
                    .map(|(name, value)| TemplateParameter {
                        name: (*name).into(),
                        value: (*value).into(),
                    })
                    .collect(),
                link: None,
            }),
            ttl_seconds: None,
            attempt: 1,
        }
    }

    fn text(n: usize, to: &str, text: &str, purpose: Purpose) -> OutboundMessage {
        OutboundMessage {
            idempotency_key: key(n),
            to: to.into(),
            purpose,
            content: Content::Text(text.into()),
            ttl_seconds: None,
            attempt: 1,
        }
    }

    fn json(request: &PlannedRequest) -> serde_json::Value {
        serde_json::to_value(&request.body).expect("serialises")
    }

    fn refused_message(error: &SendError) -> &str {
        &error.failure().message
    }

    #[test]
    fn builds_urls() {
        assert_eq!(
            Api::AlimTalk.url(
                "https://kakaotalk-bizmessage.api.nhncloudservice.com/",
                "AK"
            ),
            "https://kakaotalk-bizmessage.api.nhncloudservice.com/alimtalk/v2.3/appkeys/AK/messages"
        );
        assert_eq!(
            Api::AlimTalkAuth.url("http://127.0.0.1:9000", "AK"),
            "http://127.0.0.1:9000/alimtalk/v2.3/appkeys/AK/auth/messages"
        );
        assert_eq!(
            Api::BrandMessage.url("http://127.0.0.1:9000", " AK "),
            "http://127.0.0.1:9000/brand-message/v1.0/appkeys/AK/freestyle-messages"
        );
    }

    #[test]
    fn one_alimtalk_request_per_template_with_per_recipient_parameters() {
        let batch = vec![
            template(
                1,
                "+821012340001",
                "ORDER_SHIPPED",
                Purpose::Utility,
                &[("name", "민지"), ("orderNo", "A-1")],
            ),
            template(
                2,
                "+821012340002",
                "POINTS",
                Purpose::Utility,
                &[("points", "300")],
            ),
            template(
                3,
                "+821012340003",
                "ORDER_SHIPPED",
                Purpose::Utility,
                &[("name", "Jisoo"), ("orderNo", "A-3")],
            ),
        ];
        let plan = plan(&batch, &options(), |_| Mode::Group);
        assert!(plan.refused.is_empty());
        assert_eq!(plan.requests.len(), 2);
        let first = &plan.requests[0];
        assert_eq!(first.api, Api::AlimTalk);
        assert_eq!(first.members, vec![0, 2]);
        assert_eq!(first.recipients, vec!["01012340001", "01012340003"]);
        assert_eq!(
            first.idempotency_key,
            request_idempotency_key([key(1).as_str(), key(3).as_str()])
        );
        assert_eq!(
            json(first),
            serde_json::json!({
                "senderKey": SENDER_KEY,
                "templateCode": "ORDER_SHIPPED",
                "senderGroupingKey": first.idempotency_key,
                "recipientList": [
                    {"recipientNo": "01012340001", "templateParameter": {"name": "민지", "orderNo": "A-1"}, "recipientGroupingKey": key(1)},
                    {"recipientNo": "01012340003", "templateParameter": {"name": "Jisoo", "orderNo": "A-3"}, "recipientGroupingKey": key(3)}
                ]
            })
        );
        assert_eq!(plan.requests[1].members, vec![1]);
    }

    #[test]
    fn resend_parameter_when_a_fallback_number_is_set() {
        let options = Options {
            resend_send_no: Some("0212345678".into()),
            ..options()
        };
        let batch = vec![template(
            1,
            "+821012340001",
            "NOPARAMS",
            Purpose::Utility,
            &[],
        )];
        let plan = plan(&batch, &options, |_| Mode::Group);
        assert_eq!(
            json(&plan.requests[0])["recipientList"][0],
            serde_json::json!({
                "recipientNo": "01012340001",
                "resendParameter": {"isResend": true, "resendType": "SMS", "resendSendNo": "0212345678"},
                "recipientGroupingKey": key(1)
            })
        );
    }

    #[test]
    fn authentication_uses_the_auth_api() {
        let batch = vec![
            template(
                1,
                "+821012340001",
                "OTP",
                Purpose::Authentication,
                &[("code", "123456")],
            ),
            template(
                2,
                "+821012340002",
                "OTP",
                Purpose::Utility,
                &[("code", "654321")],
            ),
        ];
        let plan = plan(&batch, &options(), |_| Mode::Group);
        assert_eq!(plan.requests.len(), 2, "same code, different APIs");
        assert_eq!(plan.requests[0].api, Api::AlimTalkAuth);
        assert_eq!(plan.requests[1].api, Api::AlimTalk);
    }

    #[test]
    fn marketing_text_is_labelled_and_grouped_by_content() {
        let options = Options {
            unsubscribe_no: Some("0801234567".into()),
            ..options()
        };
        let batch = vec![
            text(1, "+821012340001", "이번 주 20% 할인", Purpose::Marketing),
            text(
                2,
                "+821012340002",
                "(광고) 이번 주 20% 할인",
                Purpose::Marketing,
            ),
            text(
                3,
                "+821012340003",
                "Your points expire soon",
                Purpose::Utility,
            ),
        ];
        let plan = plan(&batch, &options, |_| Mode::Group);
        assert!(plan.refused.is_empty());
        assert_eq!(plan.requests.len(), 2, "labelled texts are identical");
        let ad = &plan.requests[0];
        assert_eq!(ad.api, Api::BrandMessage);
        assert_eq!(ad.members, vec![0, 1]);
        assert_eq!(
            json(ad),
            serde_json::json!({
                "senderKey": SENDER_KEY,
                "chatBubbleType": "TEXT",
                "content": "(광고) 이번 주 20% 할인",
                "unsubscribeNo": "0801234567",
                "senderGroupingKey": ad.idempotency_key,
                "recipientList": [
                    {"recipientNo": "01012340001", "targeting": "I", "recipientGroupingKey": key(1)},
                    {"recipientNo": "01012340002", "targeting": "I", "recipientGroupingKey": key(2)}
                ]
            })
        );
        assert_eq!(
            json(&plan.requests[1])["content"],
            "Your points expire soon"
        );
        assert!(json(&plan.requests[1]).get("unsubscribeNo").is_some());
    }

    #[test]
    fn requests_hold_at_most_a_thousand_recipients() {
        let batch: Vec<OutboundMessage> = (0..1_001)
            .map(|i| template(i, &format!("+8210{:08}", i), "BULK", Purpose::Utility, &[]))
            .collect();
        let plan = plan(&batch, &options(), |_| Mode::Group);
        assert_eq!(plan.requests.len(), 2);
        assert_eq!(plan.requests[0].members.len(), MAX_RECIPIENTS);
        assert_eq!(plan.requests[1].members, vec![1_000]);
    }

    #[test]
    fn refuses_marketing_templates_bad_codes_and_parameters() {
        let cases = [
            (
                template(1, "+821012340001", "PROMO", Purpose::Marketing, &[]),
                "AlimTalk templates are informational only",
            ),
            (
                template(2, "+821012340001", " ", Purpose::Utility, &[]),
                "the template has no code",
            ),
            (
                template(
                    3,
                    "+821012340001",
                    "A_TEMPLATE_CODE_TOO_LONG",
                    Purpose::Utility,
                    &[],
                ),
                "is 24 characters long; NHN accepts at most 20",
            ),
            (
                template(4, "+821012340001", "T", Purpose::Utility, &[("", "x")]),
                "a template parameter has no name",
            ),
            (
                template(5, "+821012340001", "T", Purpose::Utility, &[("a@b", "x")]),
                "contains `@`",
            ),
            (
                template(
                    6,
                    "+821012340001",
                    "T",
                    Purpose::Utility,
                    &[("a", "x"), ("a", "y")],
                ),
                "`a` is given twice",
            ),
        ];
        for (message, expected) in cases {
            let plan = plan(std::slice::from_ref(&message), &options(), |_| Mode::Group);
            assert!(plan.requests.is_empty());
            let (index, error) = &plan.refused[0];
            assert_eq!(*index, 0);
            assert!(matches!(error, SendError::InvalidContent(_)), "{error:?}");
            assert!(refused_message(error).contains(expected), "{error:?}");
        }
    }

    #[test]
    fn refuses_empty_and_too_long_text_counting_the_label() {
        let exactly = "가".repeat(MAX_BRAND_TEXT_CHARS);
        assert!(brand_content(&exactly, Purpose::Utility).is_ok());
        // Fits alone, but not with the label.
        let error = brand_content(&exactly, Purpose::Marketing).unwrap_err();
        assert!(matches!(error, SendError::InvalidContent(_)));
        assert_eq!(
            refused_message(&error),
            "the text is 1305 characters long (including the `(광고) ` label the law requires); a Brand Message TEXT holds at most 1300"
        );
        let error = brand_content(&"x".repeat(1_301), Purpose::Utility).unwrap_err();
        assert_eq!(
            refused_message(&error),
            "the text is 1301 characters long; a Brand Message TEXT holds at most 1300"
        );
        assert!(matches!(
            brand_content("  ", Purpose::Marketing),
            Err(SendError::InvalidContent(_))
        ));
        assert_eq!(
            brand_content("  (광고) already", Purpose::Marketing)
                .as_deref()
                .ok(),
            Some("  (광고) already")
        );
    }

    #[test]
    fn unreachable_numbers_are_refused_without_costing_the_others() {
        let batch = vec![
            template(1, "+14155550100", "T", Purpose::Utility, &[]),
            template(2, "+821012340002", "T", Purpose::Utility, &[]),
        ];
        let plan = plan(&batch, &options(), |_| Mode::Group);
        assert_eq!(plan.requests.len(), 1);
        assert_eq!(plan.requests[0].members, vec![1]);
        assert_eq!(plan.refused.len(), 1);
        assert!(matches!(
            plan.refused[0],
            (0, SendError::RecipientUnreachable(_))
        ));
    }

    #[test]
    fn alone_and_skipped_messages() {
        let batch: Vec<OutboundMessage> = (1..=4)
            .map(|i| template(i, &format!("+8210123400{i:02}"), "T", Purpose::Utility, &[]))
            .collect();
        let plan = plan(&batch, &options(), |i| match i {
            0 => Mode::Skip,
            2 => Mode::Alone,
            _ => Mode::Group,
        });
        let members: Vec<Vec<usize>> = plan.requests.iter().map(|r| r.members.clone()).collect();
        assert_eq!(members, vec![vec![1, 3], vec![2]]);
        assert_eq!(
            plan.requests[1].idempotency_key,
            request_idempotency_key([key(3).as_str()])
        );
    }

    #[test]
    fn outgoing_requests_keep_the_body_and_who_is_where() {
        let batch = vec![
            template(1, "+821012340001", "T", Purpose::Utility, &[("a", "1")]),
            text(2, "+821012340002", "hi", Purpose::Utility),
            template(3, "+821012340003", "T", Purpose::Utility, &[("a", "3")]),
        ];
        let plan = plan(&batch, &options(), |_| Mode::Group);
        let request = Outgoing::fresh(plan.requests[0].clone(), &batch);
        assert_eq!(request.members, vec![(0, 0), (2, 1)]);
        assert_eq!(request.indices(), vec![0, 2]);
        assert_eq!(request.grouping_keys, vec![key(1), key(3)]);
        assert!(request.grouped() && !request.resend);
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&request.body).expect("json"),
            json(&plan.requests[0])
        );
        assert_eq!(
            recipients_of(&request.body),
            Some(vec![
                ("01012340001".to_owned(), key(1)),
                ("01012340003".to_owned(), key(3))
            ])
        );
        assert_eq!(recipients_of("{}"), None);
        for api in [Api::AlimTalk, Api::AlimTalkAuth, Api::BrandMessage] {
            assert_eq!(Api::from_code(api.code()), Some(api));
        }
        assert_eq!(Api::from_code("sms"), None);
    }

    #[test]
    fn idempotency_key_is_a_stable_uuid_of_the_set() {
        let a = request_idempotency_key(["k1", "k2"]);
        assert_eq!(a, request_idempotency_key(["k2", "k1", "k1"]));
        assert_ne!(a, request_idempotency_key(["k1"]));
        assert_eq!(a.len(), 36);
        let parts: Vec<&str> = a.split('-').collect();
        assert_eq!(
            parts.iter().map(|p| p.len()).collect::<Vec<_>>(),
            vec![8, 4, 4, 4, 12]
        );
        assert!(parts[2].starts_with('4'), "{a}");
        assert!(
            matches!(parts[3].as_bytes()[0], b'8' | b'9' | b'a' | b'b'),
            "{a}"
        );
        // Pinned: changing the derivation would break deduplication of
        // requests in flight across an upgrade.
        assert_eq!(
            request_idempotency_key(["k1"]),
            "83e722da-ad43-423e-bc77-3fd04a1af378"
        );
    }
}
