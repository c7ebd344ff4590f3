//! The neutral host model: what the host knows about channels, messages,
//! outcomes and webhook events, independent of the contract version an
//! adapter was built against.
//!
//! Every supported contract version converts into these types (see the
//! `v1_0`, `v1_1` and `v1_2` shims), so policy, delivery and storage are written
//! once. The model follows the newest contract; an older version's value
//! maps onto it with the defaults that version implied (for example, a
//! 1.0.0 window rule becomes a one-element list of rules, and its text
//! lengths count Unicode scalar values).

use serde::{Deserialize, Serialize};

/// How a platform addresses a recipient.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AddressKind {
    /// An E.164 phone number such as `+821012345678`.
    PhoneNumber,
    /// An identifier the platform issued for this business (LINE userId, WeChat OpenID).
    PlatformUserId,
}

/// Why a message is sent; consent, quiet hours and templates are decided per purpose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Purpose {
    /// Promotions, win-back, offers.
    Marketing,
    /// Transactional or informational: order updates, loyalty balances.
    Utility,
    /// One-time passwords and login codes.
    Authentication,
    /// A reply inside a conversation the customer started.
    Service,
}

impl Purpose {
    /// Every purpose, in the contract's order.
    pub const ALL: [Purpose; 4] = [
        Purpose::Marketing,
        Purpose::Utility,
        Purpose::Authentication,
        Purpose::Service,
    ];

    /// The purpose's name as written in campaigns, audiences and the store.
    pub fn as_str(self) -> &'static str {
        match self {
            Purpose::Marketing => "marketing",
            Purpose::Utility => "utility",
            Purpose::Authentication => "authentication",
            Purpose::Service => "service",
        }
    }

    /// The purpose with this name.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|purpose| purpose.as_str() == name)
    }
}

/// What opens or refreshes a conversation window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WindowOpener {
    /// The customer sends a message to the business.
    InboundMessage,
    /// The customer follows or subscribes to the business account.
    Follow,
    /// The customer taps a menu, scans a code or otherwise interacts.
    Interaction,
    /// The customer pays the business.
    Payment,
}

impl WindowOpener {
    /// Every opener.
    pub const ALL: [WindowOpener; 4] = [
        WindowOpener::InboundMessage,
        WindowOpener::Follow,
        WindowOpener::Interaction,
        WindowOpener::Payment,
    ];

    /// The opener's name as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            WindowOpener::InboundMessage => "inbound_message",
            WindowOpener::Follow => "follow",
            WindowOpener::Interaction => "interaction",
            WindowOpener::Payment => "payment",
        }
    }

    /// The opener with this stored name.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|opener| opener.as_str() == name)
    }
}

/// A conversation window opened by some customer actions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowRule {
    /// How long the window stays open, in seconds.
    pub duration_seconds: u32,
    /// The actions that open or refresh it.
    pub opened_by: Vec<WindowOpener>,
    /// The most free-form messages per window, if capped.
    pub max_messages: Option<u32>,
}

/// When free-form (non-template) content may be sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FreeFormRule {
    /// At any time to a consenting recipient.
    Always,
    /// Only while one of these windows is open and below its cap.
    WithinWindow(Vec<WindowRule>),
    /// Only templates.
    Never,
}

/// A daily period in which some purposes must not be sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuietHours {
    /// IANA time zone, e.g. `Asia/Seoul`.
    pub time_zone: String,
    /// Start, minutes after local midnight.
    pub start_minute: u16,
    /// End, minutes after local midnight; before `start_minute` spans midnight.
    pub end_minute: u16,
    /// The purposes it restricts.
    pub purposes: Vec<Purpose>,
    /// Where the rule comes from.
    pub reason: String,
}

/// The unit a platform counts text lengths in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TextUnit {
    /// Unicode scalar values.
    #[default]
    UnicodeScalarValues,
    /// UTF-16 code units.
    Utf16CodeUnits,
    /// UTF-8 bytes.
    Utf8Bytes,
}

impl TextUnit {
    /// The length of `text` in this unit.
    pub fn length(self, text: &str) -> usize {
        match self {
            TextUnit::UnicodeScalarValues => text.chars().count(),
            TextUnit::Utf16CodeUnits => text.encode_utf16().count(),
            TextUnit::Utf8Bytes => text.len(),
        }
    }

    /// The unit's name in messages: `characters`, `UTF-16 code units`, `bytes`.
    pub fn describe(self) -> &'static str {
        match self {
            TextUnit::UnicodeScalarValues => "characters",
            TextUnit::Utf16CodeUnits => "UTF-16 code units",
            TextUnit::Utf8Bytes => "bytes",
        }
    }
}

/// What template parameter values may contain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParameterRules {
    /// Longest value, in the channel's text unit.
    pub max_length: Option<u32>,
    /// Whether values may contain line breaks.
    pub allow_newlines: bool,
    /// Whether values may contain tabs.
    pub allow_tabs: bool,
    /// The most consecutive spaces a value may contain.
    pub max_consecutive_spaces: Option<u32>,
}

impl Default for ParameterRules {
    /// No rules of the platform's own (contract 1.0.0 declared none).
    fn default() -> Self {
        Self {
            max_length: None,
            allow_newlines: true,
            allow_tabs: true,
            max_consecutive_spaces: None,
        }
    }
}

/// Sizes and speeds a platform imposes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// Longest free-form text, in `text_unit`s.
    pub max_text_length: u32,
    /// The unit lengths count in.
    pub text_unit: TextUnit,
    /// What template parameter values may contain.
    pub template_parameters: ParameterRules,
    /// Messages per `send` call.
    pub max_batch_size: u32,
    /// Default sending rate, messages per second.
    pub messages_per_second: u32,
}

/// What an adapter declares about its platform.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelInfo {
    /// Channel name, e.g. `whatsapp`.
    pub name: String,
    /// Human-readable platform name.
    pub display_name: String,
    /// How recipients are addressed.
    pub address_kind: AddressKind,
    /// When free-form content may be sent.
    pub free_form: FreeFormRule,
    /// Purposes templates may carry.
    pub template_purposes: Vec<Purpose>,
    /// Periods in which some purposes must not be sent.
    pub quiet_hours: Vec<QuietHours>,
    /// Sizes and speeds.
    pub limits: Limits,
    /// Hosts the adapter calls.
    pub egress_hosts: Vec<String>,
    /// Secret keys it reads.
    pub secrets: Vec<String>,
    /// Setting keys it reads.
    pub settings: Vec<String>,
    /// Whether the platform deduplicates on the idempotency key.
    pub deduplicates: bool,
}

/// A named value substituted into a template.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemplateParameter {
    /// Parameter name.
    pub name: String,
    /// Value.
    pub value: String,
}

/// A pre-approved template and its values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemplateMessage {
    /// The platform's template identifier.
    pub name: String,
    /// Template language, where needed.
    pub language: Option<String>,
    /// Values for the placeholders.
    pub parameters: Vec<TemplateParameter>,
    /// A link the template opens, where supported.
    pub link: Option<String>,
}

/// What to send.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Content {
    /// Free-form text.
    Text(String),
    /// A pre-approved template.
    Template(TemplateMessage),
}

impl Content {
    /// `text` or `template`.
    pub fn kind(&self) -> &'static str {
        match self {
            Content::Text(_) => "text",
            Content::Template(_) => "template",
        }
    }
}

/// One message for one recipient.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboundMessage {
    /// The host's idempotency key (lowercase hex SHA-256).
    pub idempotency_key: String,
    /// The recipient's address.
    pub to: String,
    /// Why it is sent.
    pub purpose: Purpose,
    /// What to send.
    pub content: Content,
    /// Drop it if not delivered within this many seconds, where supported.
    pub ttl_seconds: Option<u32>,
    /// 1 for the first attempt.
    pub attempt: u32,
}

/// The platform accepted a message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    /// The platform's identifier, if it returns one.
    pub platform_message_id: Option<String>,
    /// The platform had already accepted this key: nothing new was sent.
    pub duplicate: bool,
}

/// A platform error, for operators and logs.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Failure {
    /// The platform's own code; empty when none.
    pub code: String,
    /// What went wrong.
    pub message: String,
}

impl Failure {
    /// A failure with a code and message.
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            code: code.into(),
            message: message.into(),
        }
    }
}

impl std::fmt::Display for Failure {
    /// `(code) message`, or the message alone when there is no code.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.code.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "({}) {}", self.code, self.message)
        }
    }
}

/// Who a rate limit applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RateLimitScope {
    /// The sending account: slow every message down.
    Sender,
    /// One recipient: delay only messages to them.
    Recipient,
    /// A daily or monthly quota.
    Quota,
}

/// The platform asked us to slow down.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RateLimited {
    /// Who the limit applies to.
    pub scope: RateLimitScope,
    /// How long to wait, if the platform said.
    pub retry_after_ms: Option<u32>,
    /// The platform's error.
    pub failure: Failure,
}

/// The platform will take a message later.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deferral {
    /// When it may be sent, ms since the Unix epoch.
    pub until_ms: u64,
    /// The platform's answer.
    pub failure: Failure,
}

/// Why a message was not accepted, by class.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SendError {
    /// Too fast.
    RateLimited(RateLimited),
    /// A passing fault: retry with backoff.
    Transient(Failure),
    /// Never accepted: do not retry.
    Permanent(Failure),
    /// Free-form outside the window.
    WindowClosed(Failure),
    /// Not reachable on this platform: try the next channel.
    RecipientUnreachable(Failure),
    /// Opted out on the platform.
    OptedOut(Failure),
    /// Credentials missing, wrong or expired.
    AuthFailed(Failure),
    /// The content breaks the platform's rules.
    InvalidContent(Failure),
    /// May or may not have been delivered.
    Uncertain(Failure),
    /// Not now: reschedule this message.
    Deferred(Deferral),
}

impl SendError {
    /// The class's stable name, as stored and reported: `rate_limited`,
    /// `transient`, `permanent`, `window_closed`, `unreachable`, `opted_out`,
    /// `auth_failed`, `invalid_content`, `uncertain`, `deferred`.
    pub fn class(&self) -> &'static str {
        match self {
            SendError::RateLimited(_) => "rate_limited",
            SendError::Transient(_) => "transient",
            SendError::Permanent(_) => "permanent",
            SendError::WindowClosed(_) => "window_closed",
            SendError::RecipientUnreachable(_) => "unreachable",
            SendError::OptedOut(_) => "opted_out",
            SendError::AuthFailed(_) => "auth_failed",
            SendError::InvalidContent(_) => "invalid_content",
            SendError::Uncertain(_) => "uncertain",
            SendError::Deferred(_) => "deferred",
        }
    }

    /// The failure inside any class.
    pub fn failure(&self) -> &Failure {
        match self {
            SendError::RateLimited(limited) => &limited.failure,
            SendError::Deferred(deferral) => &deferral.failure,
            SendError::Transient(f)
            | SendError::Permanent(f)
            | SendError::WindowClosed(f)
            | SendError::RecipientUnreachable(f)
            | SendError::OptedOut(f)
            | SendError::AuthFailed(f)
            | SendError::InvalidContent(f)
            | SendError::Uncertain(f) => f,
        }
    }

    /// The failure details, to rewrite (cut or redact) in place.
    pub fn failure_mut(&mut self) -> &mut Failure {
        match self {
            SendError::RateLimited(limited) => &mut limited.failure,
            SendError::Deferred(deferral) => &mut deferral.failure,
            SendError::Transient(f)
            | SendError::Permanent(f)
            | SendError::WindowClosed(f)
            | SendError::RecipientUnreachable(f)
            | SendError::OptedOut(f)
            | SendError::AuthFailed(f)
            | SendError::InvalidContent(f)
            | SendError::Uncertain(f) => f,
        }
    }
}

/// One message's outcome: a receipt or a classified error.
pub type SendResult = Result<Receipt, SendError>;

/// An HTTP request the host received for a channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRequest {
    /// `GET`, `POST`, ...
    pub method: String,
    /// Path and query as received.
    pub path_and_query: String,
    /// Header names in lowercase, in order.
    pub headers: Vec<(String, String)>,
    /// The raw body.
    pub body: Vec<u8>,
}

/// An HTTP reply: the host's reply to a webhook, or a platform's reply to
/// an [`OutgoingRequest`] (header names in lowercase, in order).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    /// Status code.
    pub status: u16,
    /// Headers.
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: Vec<u8>,
}

/// A request an adapter asks the host to perform (`http.send`, 1.2.0).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingRequest {
    /// `GET`, `POST`, ...
    pub method: String,
    /// The absolute URL.
    pub url: String,
    /// Header names and values, in order.
    pub headers: Vec<(String, String)>,
    /// The body; empty for none.
    pub body: Vec<u8>,
    /// The longest wait for the whole reply the adapter asked for, in
    /// milliseconds (the host clamps it).
    pub timeout_ms: Option<u32>,
    /// Batch positions of the messages the request carries.
    pub messages: Vec<u32>,
}

/// Why an [`OutgoingRequest`] got no complete reply, by whether it was
/// written: what decides if a retry is safe.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OutgoingError {
    /// Refused by the host; nothing was sent.
    #[error("refused by the host: {0}")]
    Denied(String),
    /// Failed before anything was written.
    #[error("not sent: {0}")]
    NotSent(String),
    /// Written, then no complete reply: the platform may have acted on it.
    #[error("no reply: {0}")]
    NoReply(String),
}

/// One outgoing request's result.
pub type OutgoingResult = Result<HttpResponse, OutgoingError>;

/// How far a message got.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    /// Accepted, not yet sent on.
    Accepted,
    /// Sent to the device or network.
    Sent,
    /// Delivered to the device.
    Delivered,
    /// Read.
    Read,
    /// Not delivered.
    Failed,
    /// Withdrawn when its time to live ran out.
    Expired,
}

impl DeliveryState {
    /// Every state.
    pub const ALL: [DeliveryState; 6] = [
        DeliveryState::Accepted,
        DeliveryState::Sent,
        DeliveryState::Delivered,
        DeliveryState::Read,
        DeliveryState::Failed,
        DeliveryState::Expired,
    ];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Accepted => "accepted",
            DeliveryState::Sent => "sent",
            DeliveryState::Delivered => "delivered",
            DeliveryState::Read => "read",
            DeliveryState::Failed => "failed",
            DeliveryState::Expired => "expired",
        }
    }

    /// The state with this stored name.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|state| state.as_str() == name)
    }

    /// How far along the state is: webhooks arrive out of order and must
    /// never move a message backwards (read, then a late delivered). The
    /// terminal failures rank highest.
    pub fn rank(self) -> u8 {
        match self {
            DeliveryState::Accepted => 1,
            DeliveryState::Sent => 2,
            DeliveryState::Delivered => 3,
            DeliveryState::Read => 4,
            DeliveryState::Failed => 5,
            DeliveryState::Expired => 6,
        }
    }
}

/// A change in a sent message's delivery state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusUpdate {
    /// The platform's identifier, if the webhook carries one.
    pub platform_message_id: Option<String>,
    /// The new state.
    pub state: DeliveryState,
    /// The recipient's address, if reported.
    pub recipient: Option<String>,
    /// Why it failed.
    pub failure: Option<Failure>,
    /// The idempotency key the platform echoed back, if any.
    pub correlation_key: Option<String>,
}

/// A message a customer sent to the business.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundMessage {
    /// The sender's address.
    pub sender: String,
    /// The text, for text messages.
    pub text: Option<String>,
    /// The platform's kind of message.
    pub kind: String,
}

/// A customer's consent changed on the platform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentChange {
    /// The customer's address.
    pub address: String,
    /// The purpose; `None` is every purpose (the operator decides what a follow means).
    pub purpose: Option<Purpose>,
}

/// A customer action that opens a window without being a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interaction {
    /// The customer's address.
    pub address: String,
    /// Which window it opens.
    pub opener: WindowOpener,
    /// What the platform calls it.
    pub kind: String,
}

/// What happened, in platform-neutral terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventKind {
    /// A sent message moved on.
    Status(StatusUpdate),
    /// A customer wrote in.
    Inbound(InboundMessage),
    /// A customer opted in (followed, resumed marketing).
    OptIn(ConsentChange),
    /// A customer opted out (blocked, unfollowed, stopped marketing).
    OptOut(ConsentChange),
    /// A customer did something that opens a window.
    Interaction(Interaction),
}

impl EventKind {
    /// The kind's name, for metrics and logs.
    pub fn name(&self) -> &'static str {
        match self {
            EventKind::Status(_) => "status",
            EventKind::Inbound(_) => "inbound",
            EventKind::OptIn(_) => "opt_in",
            EventKind::OptOut(_) => "opt_out",
            EventKind::Interaction(_) => "interaction",
        }
    }
}

/// One normalised webhook event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// The platform's event id, for dropping redeliveries.
    pub id: String,
    /// When it happened by the platform's clock, ms since the Unix epoch.
    pub occurred_at_ms: u64,
    /// What happened.
    pub kind: EventKind,
}

/// The answer to a webhook: the reply and the events it carried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookResult {
    /// The HTTP reply.
    pub response: HttpResponse,
    /// The events, in order.
    pub events: Vec<Event>,
}

/// Severity of an adapter's log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    /// Fine detail.
    Debug,
    /// Normal operation.
    Info,
    /// Something unexpected but handled.
    Warn,
    /// Something failed.
    Error,
}

/// Why the host refused an adapter's durable-storage write.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StorageError {
    /// The key or value is larger than the host allows.
    #[error("too large: {0}")]
    TooLarge(String),
    /// The channel holds as many entries as the host allows.
    #[error("quota exceeded: {0}")]
    QuotaExceeded(String),
    /// The database could not be written.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_units_count_differently() {
        let text = "a😀é";
        assert_eq!(TextUnit::UnicodeScalarValues.length(text), 3);
        assert_eq!(TextUnit::Utf16CodeUnits.length(text), 4);
        assert_eq!(TextUnit::Utf8Bytes.length(text), 7);
    }

    #[test]
    fn names_round_trip() {
        for purpose in Purpose::ALL {
            assert_eq!(Purpose::from_name(purpose.as_str()), Some(purpose));
        }
        for opener in WindowOpener::ALL {
            assert_eq!(WindowOpener::from_name(opener.as_str()), Some(opener));
        }
        for state in DeliveryState::ALL {
            assert_eq!(DeliveryState::from_name(state.as_str()), Some(state));
        }
        assert_eq!(Purpose::from_name("spam"), None);
    }

    #[test]
    fn failed_states_outrank_progress() {
        assert!(DeliveryState::Read.rank() > DeliveryState::Delivered.rank());
        assert!(DeliveryState::Expired.rank() > DeliveryState::Read.rank());
    }
}
