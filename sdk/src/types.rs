//! The contract's types, as plain Rust values, with small constructors so
//! adapters read like a description of their platform.

pub use crate::bindings::switchboard::channel::types::Event as WebhookEvent;
pub use crate::bindings::switchboard::channel::types::*;

impl ChannelInfo {
    /// A channel that sends free-form content at any time, has no templates,
    /// no quiet hours, one message per request at 10 per second, no egress,
    /// secrets or settings. Adjust the fields your platform needs.
    pub fn new(name: &str, display_name: &str, address_kind: AddressKind) -> Self {
        Self {
            name: name.to_owned(),
            display_name: display_name.to_owned(),
            address_kind,
            free_form: FreeFormRule::Always,
            template_purposes: Vec::new(),
            quiet_hours: Vec::new(),
            limits: Limits {
                max_text_length: 1_000,
                text_unit: TextUnit::UnicodeScalarValues,
                template_parameters: ParameterRules::none(),
                max_batch_size: 1,
                messages_per_second: 10,
            },
            egress_hosts: Vec::new(),
            secrets: Vec::new(),
            settings: Vec::new(),
            deduplicates: false,
        }
    }
}

impl ParameterRules {
    /// No rules of the platform's own: any length, line breaks, tabs and spaces.
    pub fn none() -> Self {
        Self {
            max_length: None,
            allow_newlines: true,
            allow_tabs: true,
            max_consecutive_spaces: None,
        }
    }
}

impl Receipt {
    /// A receipt for a newly accepted message.
    pub fn new(platform_message_id: impl Into<String>) -> Self {
        Self {
            platform_message_id: Some(platform_message_id.into()),
            duplicate: false,
        }
    }

    /// A receipt for a message the platform accepted without returning an
    /// identifier (WeChat customer-service messages).
    pub fn without_id() -> Self {
        Self {
            platform_message_id: None,
            duplicate: false,
        }
    }

    /// A receipt for a message the platform had already accepted under the
    /// same idempotency key (nothing new was sent).
    pub fn duplicate(platform_message_id: impl Into<String>) -> Self {
        Self {
            platform_message_id: Some(platform_message_id.into()),
            duplicate: true,
        }
    }

    /// The platform's id, or `""` when it gave none.
    pub fn id(&self) -> &str {
        self.platform_message_id.as_deref().unwrap_or_default()
    }
}

impl Failure {
    /// A platform error with its code and message.
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            code: code.into(),
            message: message.into(),
        }
    }
}

impl SendError {
    /// The failure inside any class of error.
    pub fn failure(&self) -> &Failure {
        match self {
            SendError::RateLimited(limited) => &limited.failure,
            SendError::Transient(f)
            | SendError::Permanent(f)
            | SendError::WindowClosed(f)
            | SendError::RecipientUnreachable(f)
            | SendError::OptedOut(f)
            | SendError::AuthFailed(f)
            | SendError::InvalidContent(f)
            | SendError::Uncertain(f) => f,
            SendError::Deferred(deferral) => &deferral.failure,
        }
    }

    /// The failure inside any class of error, to amend it.
    pub fn failure_mut(&mut self) -> &mut Failure {
        match self {
            SendError::RateLimited(limited) => &mut limited.failure,
            SendError::Transient(f)
            | SendError::Permanent(f)
            | SendError::WindowClosed(f)
            | SendError::RecipientUnreachable(f)
            | SendError::OptedOut(f)
            | SendError::AuthFailed(f)
            | SendError::InvalidContent(f)
            | SendError::Uncertain(f) => f,
            SendError::Deferred(deferral) => &mut deferral.failure,
        }
    }

    /// A rate limit for the whole sender, with an optional wait.
    pub fn rate_limited(
        scope: RateLimitScope,
        retry_after_ms: Option<u32>,
        failure: Failure,
    ) -> Self {
        SendError::RateLimited(RateLimited {
            scope,
            retry_after_ms,
            failure,
        })
    }
}

impl OutboundMessage {
    /// The free-form text, if the content is text.
    pub fn text(&self) -> Option<&str> {
        match &self.content {
            Content::Text(text) => Some(text),
            Content::Template(_) => None,
        }
    }
}

impl HttpRequest {
    /// The first value of a header, by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    /// The path without its query string.
    pub fn path(&self) -> &str {
        self.path_and_query
            .split_once('?')
            .map_or(self.path_and_query.as_str(), |(path, _)| path)
    }

    /// The decoded value of a query parameter.
    pub fn query(&self, name: &str) -> Option<String> {
        let (_, query) = self.path_and_query.split_once('?')?;
        crate::webhook::query_pairs(query)
            .find(|(key, _)| key == name)
            .map(|(_, value)| value)
    }
}

impl HttpResponse {
    /// A plain-text reply.
    pub fn text(status: u16, body: impl Into<String>) -> Self {
        Self {
            status,
            headers: vec![("content-type".into(), "text/plain; charset=utf-8".into())],
            body: body.into().into_bytes(),
        }
    }

    /// A JSON reply.
    pub fn json(status: u16, body: &serde_json::Value) -> Self {
        Self {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: body.to_string().into_bytes(),
        }
    }

    /// `405 Method Not Allowed`, naming the methods the endpoint takes.
    pub fn method_not_allowed(allow: &str) -> Self {
        let mut response = Self::text(405, "method not allowed");
        response.headers.push(("allow".into(), allow.into()));
        response
    }

    /// `401 Unauthorized`, for a request whose signature does not verify.
    pub fn unauthorized(reason: &str) -> Self {
        Self::text(401, reason)
    }
}

impl WebhookResult {
    /// A reply that carries no events (handshakes, rejected requests).
    pub fn reply(response: HttpResponse) -> Self {
        Self {
            response,
            events: Vec::new(),
        }
    }

    /// A `200 OK` reply with the events the request carried.
    pub fn accepted(events: Vec<WebhookEvent>) -> Self {
        Self {
            response: HttpResponse::text(200, "ok"),
            events,
        }
    }
}
