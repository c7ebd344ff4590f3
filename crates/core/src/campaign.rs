//! Campaign files: what to send, why, and over which channels.
//!
//! A campaign is a TOML file:
//!
//! ```toml
//! name = "winback-2026-11"          # required, [a-z0-9_-]+; part of every idempotency key
//! purpose = "marketing"             # marketing | utility | authentication | service
//! route = ["whatsapp", "line"]      # channels to try, in order; at least one
//! window = "enforce"                # enforce (default) | ignore
//! ttl_seconds = 86400               # optional
//!
//! [message]
//! text = "Hi {{name}}, we miss you: 20% off with BACK20"   # optional free-form text
//!
//! [templates.whatsapp]              # per channel, optional
//! name = "winback_offer"
//! language = "en_US"                # optional
//! parameters = ["{{name}}"]         # positional ("1", "2", ...) or a table: { name = "{{name}}" }
//! link = "https://shop.example/back"   # optional
//!
//! [trigger]                         # optional: send on events, not to an audience file
//! event = "cart_abandoned"          # the event that starts it (`POST /api/events`)
//! wait = "30m"                      # optional: how long after the event (default 0s)
//! cancel_on = ["order_placed"]      # optional: events for the same profile that cancel it
//! deadline = "60m"                  # optional: never later than this after the event
//!                                   # (default: the wait plus 24h); past it, skipped
//!                                   # with reason `deadline_passed`
//! ```
//!
//! A triggered campaign's recipients come from its events: each event's
//! properties are read like an audience row (`phone`, `country`,
//! `consent_<channel>_<purpose>`, `<channel>_id`, and any attribute a
//! placeholder names).
//!
//! [`load_campaign`] checks the file on its own (types, unknown keys,
//! placeholder syntax); [`Campaign::validate`] checks it against the loaded
//! channels and the audience's columns. Every error names the file and the
//! field, and the line where the file has one.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use toml::de::{DeTable, DeValue};

use crate::template;
use switchboard_contract::model::{ChannelInfo, FreeFormRule, Purpose};

/// A problem with a campaign file.
#[derive(Debug, thiserror::Error)]
pub enum CampaignError {
    /// The file could not be read.
    #[error("cannot read campaign {}: {source}", file.display())]
    Read {
        /// The campaign file.
        file: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The file is not valid TOML.
    #[error("{}: invalid TOML: {message}", Location { file, line: *line, column: *column })]
    Syntax {
        /// The campaign file.
        file: PathBuf,
        /// 1-based line of the problem, when known.
        line: Option<usize>,
        /// 1-based column (in characters) of the problem, when known.
        column: Option<usize>,
        /// What the TOML parser said.
        message: String,
    },
    /// A field is missing, has the wrong type or value, or does not fit the
    /// loaded channels or the audience.
    #[error("{}: field `{field}`: {message}", Location { file, line: *line, column: None })]
    Field {
        /// The campaign file.
        file: PathBuf,
        /// 1-based line of the field, when known.
        line: Option<usize>,
        /// The field's path, e.g. `templates.whatsapp.name` or `route[0]`.
        field: String,
        /// What is wrong.
        message: String,
    },
}

impl CampaignError {
    /// The field the error is about, if it is about one.
    pub fn field(&self) -> Option<&str> {
        match self {
            CampaignError::Field { field, .. } => Some(field),
            _ => None,
        }
    }
}

/// `file`, `file:line` or `file:line:column`.
struct Location<'a> {
    file: &'a Path,
    line: Option<usize>,
    column: Option<usize>,
}

impl fmt::Display for Location<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(column) = self.column {
                write!(f, ":{column}")?;
            }
        }
        Ok(())
    }
}

/// Whether the host enforces conversation windows for this campaign.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WindowMode {
    /// Free-form text only where the channel allows it; templates elsewhere.
    #[default]
    Enforce,
    /// Send free-form text whenever the campaign has it, regardless of the
    /// window, so that the platform's own check can be tested.
    Ignore,
}

/// The campaign's free-form content.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Message {
    /// Free-form text with `{{column}}` placeholders.
    pub text: Option<String>,
}

/// A pre-approved template to send on one channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateSpec {
    /// The platform's template identifier.
    pub name: String,
    /// Template language, where the platform needs one (e.g. `en_US`).
    pub language: Option<String>,
    /// Parameters as (name, value with `{{column}}` placeholders), in the
    /// order written. A list in the file gives names `1`, `2`, ...
    pub parameters: Vec<(String, String)>,
    /// A link the template opens; may contain placeholders.
    pub link: Option<String>,
}

/// A campaign, as loaded from its file.
#[derive(Debug, Clone)]
pub struct Campaign {
    /// Name, `[a-z0-9_-]+`; part of every idempotency key.
    pub name: String,
    /// Why the messages are sent.
    pub purpose: Purpose,
    /// Channels to try, in order.
    pub route: Vec<String>,
    /// Whether conversation windows are enforced.
    pub window: WindowMode,
    /// Drop a message not delivered within this many seconds, where supported.
    pub ttl_seconds: Option<u32>,
    /// Free-form content.
    pub message: Message,
    /// Templates by channel name.
    pub templates: BTreeMap<String, TemplateSpec>,
    /// Send on events rather than to an audience file.
    pub trigger: Option<Trigger>,
    /// The 1-based line where each field was written, by field path
    /// (`purpose`, `route[0]`, `templates.whatsapp`, ...), for error
    /// messages. Empty for campaigns built in code.
    pub lines: BTreeMap<String, usize>,
}

/// When a triggered campaign sends: on an event, after a wait, unless a
/// cancelling event for the same profile came first, and never past a
/// deadline (the abandoned-cart nudge).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trigger {
    /// The event name that starts it, e.g. `cart_abandoned`.
    pub event: String,
    /// How long after the event the message goes out, ms.
    pub wait_ms: i64,
    /// Events that cancel it when they arrive for the same profile first.
    pub cancel_on: Vec<String>,
    /// The latest it may go out after the event, ms; past it, skipped
    /// with reason `deadline_passed`.
    pub deadline_ms: i64,
}

/// The idempotency key of one message: the lowercase hex SHA-256 of
/// `campaign`, `profile_id`, `channel` and `step` (in decimal), joined with
/// the ASCII unit separator `0x1f`.
///
/// The format is stable on purpose: the outbox recognises a message it has
/// already sent by this key, so changing the format would resend every
/// message of a re-run campaign. The separator cannot be confused with the
/// fields' own characters (campaign names are `[a-z0-9_-]+`, channel names
/// are identifiers), so different fields never give the same key.
pub fn idempotency_key(campaign: &str, profile_id: &str, channel: &str, step: u32) -> String {
    let mut hasher = Sha256::new();
    hasher.update(campaign.as_bytes());
    hasher.update([0x1f]);
    hasher.update(profile_id.as_bytes());
    hasher.update([0x1f]);
    hasher.update(channel.as_bytes());
    hasher.update([0x1f]);
    hasher.update(step.to_string().as_bytes());
    // The digest's own lowercase-hex formatting: `hex::encode` builds its
    // string a `char` at a time, about 9 % of the deciding thread in a
    // large dry run.
    format!("{:x}", hasher.finalize())
}

/// The idempotency key of a triggered message: like [`idempotency_key`],
/// with the event's id beside the profile's, so that each event sends at
/// most once and a replayed event sends nothing.
pub fn trigger_key(trigger: &str, profile_id: &str, event_id: &str, channel: &str) -> String {
    idempotency_key(
        trigger,
        &format!("{profile_id}\u{1f}{event_id}"),
        channel,
        0,
    )
}

/// The key of the message that carries on, on `next_channel`, after the
/// send `current_key` (on `current_channel`) reached nobody. A campaign's
/// sends keep the format of [`idempotency_key`] (step 0 on each channel),
/// so a re-run finds them; any other send (a trigger's) derives the next
/// key from its own, so two events' fall-backs never share a key.
pub fn next_channel_key(
    campaign: &str,
    profile_id: &str,
    current_channel: &str,
    current_key: &str,
    next_channel: &str,
) -> String {
    if current_key == idempotency_key(campaign, profile_id, current_channel, 0) {
        idempotency_key(campaign, profile_id, next_channel, 0)
    } else {
        let mut hasher = Sha256::new();
        hasher.update(current_key.as_bytes());
        hasher.update([0x1f]);
        hasher.update(next_channel.as_bytes());
        hex::encode(hasher.finalize())
    }
}

/// Read and check a campaign file; see the [module docs](self) for the format.
pub fn load_campaign(path: &Path) -> Result<Campaign, CampaignError> {
    let bytes = std::fs::read(path).map_err(|source| CampaignError::Read {
        file: path.to_path_buf(),
        source,
    })?;
    let text = String::from_utf8(bytes).map_err(|err| {
        let (line, column) = line_column(
            &String::from_utf8_lossy(err.as_bytes()),
            err.utf8_error().valid_up_to(),
        );
        CampaignError::Syntax {
            file: path.to_path_buf(),
            line: Some(line),
            column: Some(column),
            message: "the file is not valid UTF-8".into(),
        }
    })?;
    parse_campaign(path, &text)
}

/// Check a campaign given as TOML text; `file` is only used in errors.
pub fn parse_campaign(file: &Path, text: &str) -> Result<Campaign, CampaignError> {
    let root = DeTable::parse(text).map_err(|err| {
        let position = err.span().map(|span| line_column(text, span.start));
        CampaignError::Syntax {
            file: file.to_path_buf(),
            line: position.map(|(line, _)| line),
            column: position.map(|(_, column)| column),
            message: err.message().trim().replace('\n', "; "),
        }
    })?;
    let doc = Doc {
        file,
        text,
        lines: BTreeMap::new(),
    };
    doc.campaign(root.get_ref())
}

/// 1-based line and character column of byte offset `at` in `text`.
fn line_column(text: &str, at: usize) -> (usize, usize) {
    let at = at.min(text.len());
    let mut start = at;
    while !text.is_char_boundary(start) {
        start -= 1;
    }
    let before = &text[..start];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

const TOP_KEYS: &[&str] = &[
    "name",
    "purpose",
    "route",
    "window",
    "ttl_seconds",
    "message",
    "templates",
    "trigger",
];
const TRIGGER_KEYS: &[&str] = &["event", "wait", "cancel_on", "deadline"];
/// The deadline when a trigger names none: a day after the wait.
const DEFAULT_DEADLINE_AFTER_WAIT_MS: i64 = 24 * 3600 * 1000;
const MESSAGE_KEYS: &[&str] = &["text"];
const TEMPLATE_KEYS: &[&str] = &["name", "language", "parameters", "link"];

/// The file being read, for error messages.
struct Doc<'a> {
    file: &'a Path,
    text: &'a str,
    lines: BTreeMap<String, usize>,
}

type Entry<'i> = (
    &'i toml::Spanned<toml::de::DeString<'i>>,
    &'i toml::Spanned<DeValue<'i>>,
);

impl<'a> Doc<'a> {
    /// The line of a span, when the parser gave it one.
    fn line(&self, span: &Range<usize>) -> Option<usize> {
        (span.end > span.start).then(|| line_column(self.text, span.start).0)
    }

    fn error(
        &self,
        span: Option<&Range<usize>>,
        field: &str,
        message: impl Into<String>,
    ) -> CampaignError {
        CampaignError::Field {
            file: self.file.to_path_buf(),
            line: span.and_then(|span| self.line(span)),
            field: field.to_string(),
            message: message.into(),
        }
    }

    /// Reject keys not in `allowed`, naming the first unknown one.
    fn known_keys(
        &self,
        table: &DeTable<'_>,
        prefix: &str,
        allowed: &[&str],
    ) -> Result<(), CampaignError> {
        let mut entries: Vec<Entry<'_>> = table.iter().collect();
        entries.sort_by_key(|(key, _)| key.span().start);
        for (key, _) in entries {
            if !allowed.contains(&key.get_ref().as_ref()) {
                return Err(self.error(
                    Some(&key.span()),
                    &format!("{prefix}{}", key.get_ref()),
                    format!("unknown key (expected one of: {})", allowed.join(", ")),
                ));
            }
        }
        Ok(())
    }

    /// Record where a field was written.
    fn remember(&mut self, field: &str, span: &Range<usize>) {
        if let Some(line) = self.line(span) {
            self.lines.insert(field.to_string(), line);
        }
    }

    fn string(
        &self,
        value: &toml::Spanned<DeValue<'_>>,
        field: &str,
    ) -> Result<String, CampaignError> {
        match value.get_ref() {
            DeValue::String(text) => Ok(text.to_string()),
            other => Err(self.error(
                Some(&value.span()),
                field,
                format!("expected a string, found {}", article(other.type_str())),
            )),
        }
    }

    /// A string that must not be empty and may contain placeholders.
    fn content(
        &self,
        value: &toml::Spanned<DeValue<'_>>,
        field: &str,
    ) -> Result<String, CampaignError> {
        let text = self.string(value, field)?;
        if text.trim().is_empty() {
            return Err(self.error(Some(&value.span()), field, "must not be empty"));
        }
        template::placeholders(&text)
            .map_err(|err| self.error(Some(&value.span()), field, err.to_string()))?;
        Ok(text)
    }

    fn campaign(mut self, root: &DeTable<'_>) -> Result<Campaign, CampaignError> {
        self.known_keys(root, "", TOP_KEYS)?;

        let name = match root.get("name") {
            None => return Err(self.error(None, "name", "missing")),
            Some(value) => {
                let name = self.string(value, "name")?;
                let valid = !name.is_empty()
                    && name.bytes().all(|b| {
                        b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-'
                    });
                if !valid {
                    return Err(self.error(
                        Some(&value.span()),
                        "name",
                        format!(
                            "`{name}` is not a valid campaign name: use lowercase letters, digits, `_` and `-` (it is part of every idempotency key)"
                        ),
                    ));
                }
                self.remember("name", &value.span());
                name
            }
        };

        let purpose = match root.get("purpose") {
            None => {
                return Err(self.error(
                    None,
                    "purpose",
                    "missing (expected marketing, utility, authentication, service)",
                ));
            }
            Some(value) => {
                let text = self.string(value, "purpose")?;
                let purpose = Purpose::from_name(&text).ok_or_else(|| {
                    self.error(
                        Some(&value.span()),
                        "purpose",
                        format!("unknown purpose `{text}` (expected marketing, utility, authentication, service)"),
                    )
                })?;
                self.remember("purpose", &value.span());
                purpose
            }
        };

        let route = match root.get("route") {
            None => {
                return Err(self.error(
                    None,
                    "route",
                    "missing: list the channels to try, e.g. route = [\"whatsapp\"]",
                ));
            }
            Some(value) => self.route(value)?,
        };

        let window = match root.get("window") {
            None => WindowMode::Enforce,
            Some(value) => match self.string(value, "window")?.as_str() {
                "enforce" => WindowMode::Enforce,
                "ignore" => WindowMode::Ignore,
                other => {
                    return Err(self.error(
                        Some(&value.span()),
                        "window",
                        format!("unknown mode `{other}` (expected enforce, ignore)"),
                    ));
                }
            },
        };

        let ttl_seconds = match root.get("ttl_seconds") {
            None => None,
            Some(value) => {
                let ttl = match value.get_ref() {
                    DeValue::Integer(int) => i64::from_str_radix(int.as_str(), int.radix())
                        .ok()
                        .and_then(|n| u32::try_from(n).ok())
                        .filter(|n| *n > 0),
                    _ => None,
                };
                let Some(ttl) = ttl else {
                    return Err(self.error(
                        Some(&value.span()),
                        "ttl_seconds",
                        format!("expected a whole number of seconds from 1 to {}", u32::MAX),
                    ));
                };
                Some(ttl)
            }
        };

        let message = match root.get("message") {
            None => Message::default(),
            Some(value) => {
                let DeValue::Table(table) = value.get_ref() else {
                    return Err(self.error(
                        Some(&value.span()),
                        "message",
                        format!(
                            "expected a table, found {}",
                            article(value.get_ref().type_str())
                        ),
                    ));
                };
                self.known_keys(table, "message.", MESSAGE_KEYS)?;
                let text = match table.get("text") {
                    None => None,
                    Some(value) => {
                        self.remember("message.text", &value.span());
                        Some(self.content(value, "message.text")?)
                    }
                };
                Message { text }
            }
        };

        let mut templates = BTreeMap::new();
        if let Some(value) = root.get("templates") {
            let DeValue::Table(table) = value.get_ref() else {
                return Err(self.error(
                    Some(&value.span()),
                    "templates",
                    format!(
                        "expected a table of channels, found {}",
                        article(value.get_ref().type_str())
                    ),
                ));
            };
            let mut entries: Vec<Entry<'_>> = table.iter().collect();
            entries.sort_by_key(|(key, _)| key.span().start);
            for (key, value) in entries {
                let channel = key.get_ref().to_string();
                let spec = self.template(&channel, &key.span(), value)?;
                templates.insert(channel, spec);
            }
        }

        if message.text.is_none() && templates.is_empty() {
            return Err(self.error(
                None,
                "message.text",
                "missing: the campaign has nothing to send: add `message.text` or a `[templates.<channel>]` table",
            ));
        }

        let trigger = match root.get("trigger") {
            None => None,
            Some(value) => Some(self.trigger(value)?),
        };

        Ok(Campaign {
            name,
            purpose,
            route,
            window,
            ttl_seconds,
            message,
            templates,
            trigger,
            lines: self.lines,
        })
    }

    fn trigger(&mut self, value: &toml::Spanned<DeValue<'_>>) -> Result<Trigger, CampaignError> {
        let DeValue::Table(table) = value.get_ref() else {
            return Err(self.error(
                Some(&value.span()),
                "trigger",
                format!(
                    "expected a table, found {}",
                    article(value.get_ref().type_str())
                ),
            ));
        };
        self.remember("trigger", &value.span());
        self.known_keys(table, "trigger.", TRIGGER_KEYS)?;
        let event_name = |doc: &Self, item: &toml::Spanned<DeValue<'_>>, field: &str| {
            let name = doc.string(item, field)?;
            if name.trim().is_empty() || name.chars().any(char::is_whitespace) {
                return Err(doc.error(
                    Some(&item.span()),
                    field,
                    format!("`{name}` is not an event name (no spaces, not empty)"),
                ));
            }
            Ok(name)
        };
        let event = match table.get("event") {
            None => {
                return Err(self.error(
                    Some(&value.span()),
                    "trigger.event",
                    "missing: name the event that starts it, e.g. event = \"cart_abandoned\"",
                ));
            }
            Some(item) => event_name(self, item, "trigger.event")?,
        };
        let wait_ms = match table.get("wait") {
            None => 0,
            Some(item) => self.duration(item, "trigger.wait")?,
        };
        let mut cancel_on = Vec::new();
        if let Some(item) = table.get("cancel_on") {
            let DeValue::Array(items) = item.get_ref() else {
                return Err(self.error(
                    Some(&item.span()),
                    "trigger.cancel_on",
                    format!(
                        "expected a list of event names, found {}",
                        article(item.get_ref().type_str())
                    ),
                ));
            };
            for (index, name) in items.iter().enumerate() {
                let field = format!("trigger.cancel_on[{index}]");
                let name = event_name(self, name, &field)?;
                if name == event {
                    return Err(self.error(
                        Some(&item.span()),
                        &field,
                        format!("`{name}` is the event that starts the trigger; it cannot also cancel it"),
                    ));
                }
                cancel_on.push(name);
            }
        }
        let deadline_ms = match table.get("deadline") {
            None => wait_ms.saturating_add(DEFAULT_DEADLINE_AFTER_WAIT_MS),
            Some(item) => {
                let deadline = self.duration(item, "trigger.deadline")?;
                if deadline < wait_ms {
                    return Err(self.error(
                        Some(&item.span()),
                        "trigger.deadline",
                        "is shorter than `trigger.wait`: nothing could ever go out",
                    ));
                }
                deadline
            }
        };
        Ok(Trigger {
            event,
            wait_ms,
            cancel_on,
            deadline_ms,
        })
    }

    /// A duration such as `"30m"`, `"1h 30m"`, `"90s"` or `"PT30M"`, in ms.
    fn duration(
        &self,
        value: &toml::Spanned<DeValue<'_>>,
        field: &str,
    ) -> Result<i64, CampaignError> {
        let text = self.string(value, field)?;
        let invalid = |why: String| {
            self.error(
                Some(&value.span()),
                field,
                format!(
                    "`{text}` is not a duration ({why}); write e.g. \"30m\", \"1h 30m\" or \"90s\""
                ),
            )
        };
        let duration: jiff::SignedDuration = text
            .trim()
            .parse()
            .map_err(|e: jiff::Error| invalid(e.to_string()))?;
        if duration.is_negative() {
            return Err(invalid("it is negative".into()));
        }
        i64::try_from(duration.as_millis()).map_err(|_| invalid("it is too long".into()))
    }

    fn route(&mut self, value: &toml::Spanned<DeValue<'_>>) -> Result<Vec<String>, CampaignError> {
        let DeValue::Array(items) = value.get_ref() else {
            return Err(self.error(
                Some(&value.span()),
                "route",
                format!(
                    "expected a list of channel names, found {}",
                    article(value.get_ref().type_str())
                ),
            ));
        };
        if items.is_empty() {
            return Err(self.error(
                Some(&value.span()),
                "route",
                "must name at least one channel",
            ));
        }
        let mut route: Vec<String> = Vec::with_capacity(items.len());
        for (index, item) in items.iter().enumerate() {
            let field = format!("route[{index}]");
            let channel = self.string(item, &field)?;
            if channel.trim().is_empty() {
                return Err(self.error(Some(&item.span()), &field, "must not be empty"));
            }
            if let Some(first) = route.iter().position(|c| *c == channel) {
                return Err(self.error(
                    Some(&item.span()),
                    &field,
                    format!("channel `{channel}` is already route[{first}]"),
                ));
            }
            self.remember(&field, &item.span());
            route.push(channel);
        }
        self.remember("route", &value.span());
        Ok(route)
    }

    fn template(
        &mut self,
        channel: &str,
        key_span: &Range<usize>,
        value: &toml::Spanned<DeValue<'_>>,
    ) -> Result<TemplateSpec, CampaignError> {
        let prefix = format!("templates.{channel}");
        self.remember(&prefix, key_span);
        let DeValue::Table(table) = value.get_ref() else {
            return Err(self.error(
                Some(&value.span()),
                &prefix,
                format!(
                    "expected a table, found {}",
                    article(value.get_ref().type_str())
                ),
            ));
        };
        self.known_keys(table, &format!("{prefix}."), TEMPLATE_KEYS)?;

        let name_field = format!("{prefix}.name");
        let name = match table.get("name") {
            None => return Err(self.error(Some(key_span), &name_field, "missing")),
            Some(value) => {
                let name = self.string(value, &name_field)?;
                if name.trim().is_empty() {
                    return Err(self.error(Some(&value.span()), &name_field, "must not be empty"));
                }
                name
            }
        };

        let language = match table.get("language") {
            None => None,
            Some(value) => {
                let field = format!("{prefix}.language");
                let language = self.string(value, &field)?;
                if language.trim().is_empty() {
                    return Err(self.error(
                        Some(&value.span()),
                        &field,
                        "must not be empty; leave it out instead",
                    ));
                }
                Some(language)
            }
        };

        let mut parameters = Vec::new();
        if let Some(value) = table.get("parameters") {
            let field = format!("{prefix}.parameters");
            self.remember(&field, &value.span());
            match value.get_ref() {
                DeValue::Array(items) => {
                    for (index, item) in items.iter().enumerate() {
                        let item_field = format!("{field}[{index}]");
                        self.remember(&item_field, &item.span());
                        parameters
                            .push(((index + 1).to_string(), self.content(item, &item_field)?));
                    }
                }
                DeValue::Table(named) => {
                    let mut entries: Vec<Entry<'_>> = named.iter().collect();
                    entries.sort_by_key(|(key, _)| key.span().start);
                    for (key, item) in entries {
                        let item_field = format!("{field}.{}", key.get_ref());
                        self.remember(&item_field, &item.span());
                        parameters
                            .push((key.get_ref().to_string(), self.content(item, &item_field)?));
                    }
                }
                other => {
                    return Err(self.error(
                        Some(&value.span()),
                        &field,
                        format!(
                            "expected a list of values or a table of named values, found {}",
                            article(other.type_str())
                        ),
                    ));
                }
            }
        }

        let link = match table.get("link") {
            None => None,
            Some(value) => {
                let field = format!("{prefix}.link");
                self.remember(&field, &value.span());
                Some(self.content(value, &field)?)
            }
        };

        Ok(TemplateSpec {
            name,
            language,
            parameters,
            link,
        })
    }
}

/// "a string", "an integer", ...
fn article(type_name: &str) -> String {
    match type_name.chars().next() {
        Some('a' | 'e' | 'i' | 'o' | 'u') => format!("an {type_name}"),
        _ => format!("a {type_name}"),
    }
}

/// "24-hour", "30-minute" or "90-second".
fn window_length(seconds: u32) -> String {
    if seconds >= 3600 && seconds.is_multiple_of(3600) {
        format!("{}-hour", seconds / 3600)
    } else if seconds >= 60 && seconds.is_multiple_of(60) {
        format!("{}-minute", seconds / 60)
    } else {
        format!("{seconds}-second")
    }
}

/// Levenshtein distance, for "did you mean" hints on short names.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            current[j + 1] = substitution.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        previous = current;
    }
    previous[b.len()]
}

/// The closest column to `name`, if one is close enough to be a typo.
fn suggestion<'c>(name: &str, columns: &'c [String]) -> Option<&'c str> {
    if let Some(same) = columns.iter().find(|c| c.eq_ignore_ascii_case(name)) {
        return Some(same);
    }
    let limit = if name.chars().count() <= 4 { 1 } else { 2 };
    columns
        .iter()
        .map(|c| (edit_distance(name, c), c))
        .filter(|(distance, _)| *distance <= limit)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, c)| c.as_str())
}

fn purpose_list(purposes: &[Purpose]) -> String {
    purposes
        .iter()
        .map(|p| p.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

impl Campaign {
    /// Check the campaign against the loaded channels and the audience's
    /// columns, returning every problem found.
    ///
    /// - each route channel must be loaded;
    /// - a channel that sends free-form only inside a window (or never)
    ///   needs a template, unless the purpose is `service` (replies inside
    ///   the window) or `window = "ignore"` with text;
    /// - a template's purpose (the campaign's) must be one the channel has
    ///   templates for, and templates must be for route channels;
    /// - a channel that always allows free-form needs text or a template;
    /// - every placeholder must be an audience column.
    ///
    /// Text longer than a channel's limit is not an error here: placeholders
    /// change the length, and the platform's verdict is recorded per message.
    pub fn validate(
        &self,
        path_for_errors: &Path,
        channels: &BTreeMap<String, ChannelInfo>,
        audience_columns: &[String],
    ) -> Result<(), Vec<CampaignError>> {
        self.check(path_for_errors, channels, Some(audience_columns))
    }

    /// Check a triggered campaign against the loaded channels. Its
    /// placeholders name event properties, which only each event has: one
    /// an event lacks skips that profile with `missing_attribute`.
    pub fn validate_triggered(
        &self,
        path_for_errors: &Path,
        channels: &BTreeMap<String, ChannelInfo>,
    ) -> Result<(), Vec<CampaignError>> {
        self.check(path_for_errors, channels, None)
    }

    fn check(
        &self,
        path_for_errors: &Path,
        channels: &BTreeMap<String, ChannelInfo>,
        audience_columns: Option<&[String]>,
    ) -> Result<(), Vec<CampaignError>> {
        let mut errors = Vec::new();
        let error = |field: &str, message: String| CampaignError::Field {
            file: path_for_errors.to_path_buf(),
            line: self.lines.get(field).copied(),
            field: field.to_string(),
            message,
        };
        let loaded = if channels.is_empty() {
            "none".to_string()
        } else {
            channels.keys().cloned().collect::<Vec<_>>().join(", ")
        };
        let text = self.message.text.as_deref();
        let ignore_window = self.window == WindowMode::Ignore && text.is_some();

        if text.is_none() && self.templates.is_empty() {
            errors.push(error(
                "message.text",
                "missing: the campaign has nothing to send: add `message.text` or a `[templates.<channel>]` table".into(),
            ));
        }

        for (index, channel) in self.route.iter().enumerate() {
            let Some(info) = channels.get(channel) else {
                errors.push(error(
                    &format!("route[{index}]"),
                    format!("unknown channel `{channel}` (loaded: {loaded})"),
                ));
                continue;
            };
            let template = self.templates.get(channel);
            let template_field = format!("templates.{channel}");
            match &info.free_form {
                FreeFormRule::WithinWindow(rules) => {
                    if template.is_none() && self.purpose != Purpose::Service && !ignore_window {
                        let longest = rules.iter().map(|r| r.duration_seconds).max().unwrap_or(0);
                        errors.push(error(
                            &template_field,
                            format!(
                                "missing: channel `{channel}` only sends free-form inside its {} window, so recipients outside it need a template",
                                window_length(longest)
                            ),
                        ));
                    } else if template.is_none() && text.is_none() {
                        errors.push(error(
                            "message.text",
                            format!("missing: channel `{channel}` needs `message.text` or a `[{template_field}]` table"),
                        ));
                    }
                }
                FreeFormRule::Never => {
                    if template.is_none() && !ignore_window {
                        errors.push(error(
                            &template_field,
                            format!("missing: channel `{channel}` only sends templates"),
                        ));
                    }
                }
                FreeFormRule::Always => {
                    if template.is_none() && text.is_none() {
                        errors.push(error(
                            "message.text",
                            format!("missing: channel `{channel}` needs `message.text` or a `[{template_field}]` table"),
                        ));
                    }
                }
            }
            if template.is_some() && !info.template_purposes.contains(&self.purpose) {
                let message = if info.template_purposes.is_empty() {
                    format!("channel `{channel}` has no templates; remove this table")
                } else {
                    format!(
                        "channel `{channel}` has no templates for purpose `{}` (it has: {})",
                        self.purpose.as_str(),
                        purpose_list(&info.template_purposes)
                    )
                };
                errors.push(error(&template_field, message));
            }
        }

        for channel in self.templates.keys() {
            if !self.route.contains(channel) {
                errors.push(error(
                    &format!("templates.{channel}"),
                    format!(
                        "channel `{channel}` is not in the route ({})",
                        self.route.join(", ")
                    ),
                ));
            }
        }

        // Placeholders, in the order they appear in the file.
        let mut texts: Vec<(String, &str)> = Vec::new();
        if let Some(text) = text {
            texts.push(("message.text".into(), text));
        }
        for (channel, spec) in &self.templates {
            for (index, (name, value)) in spec.parameters.iter().enumerate() {
                let positional = name == &(index + 1).to_string();
                let field = if positional {
                    format!("templates.{channel}.parameters[{index}]")
                } else {
                    format!("templates.{channel}.parameters.{name}")
                };
                texts.push((field, value));
            }
            if let Some(link) = &spec.link {
                texts.push((format!("templates.{channel}.link"), link));
            }
        }
        let columns: BTreeSet<&str> = audience_columns
            .unwrap_or_default()
            .iter()
            .map(String::as_str)
            .collect();
        for (field, text) in texts {
            match template::placeholders(text) {
                Err(err) => errors.push(error(&field, err.to_string())),
                Ok(_) if audience_columns.is_none() => {}
                Ok(names) => {
                    let audience_columns = audience_columns.unwrap_or_default();
                    for name in names.iter().filter(|name| !columns.contains(name.as_str())) {
                        let hint = suggestion(name, audience_columns)
                            .map(|column| format!("; did you mean `{column}`?"))
                            .unwrap_or_default();
                        errors.push(error(
                            &field,
                            format!(
                                "placeholder `{{{{{name}}}}}` is not a column of the audience (columns: {}){hint}",
                                audience_columns.join(", ")
                            ),
                        ));
                    }
                }
            }
        }

        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use switchboard_contract::model::{
        AddressKind, Limits, ParameterRules, QuietHours, TextUnit, WindowOpener, WindowRule,
    };

    /// A WhatsApp-like channel: phone numbers, 24-hour window, templates.
    pub(crate) fn whatsapp_info() -> ChannelInfo {
        ChannelInfo {
            name: "whatsapp".into(),
            display_name: "WhatsApp".into(),
            address_kind: AddressKind::PhoneNumber,
            free_form: FreeFormRule::WithinWindow(vec![WindowRule {
                duration_seconds: 24 * 3600,
                opened_by: vec![WindowOpener::InboundMessage],
                max_messages: None,
            }]),
            template_purposes: vec![
                Purpose::Marketing,
                Purpose::Utility,
                Purpose::Authentication,
            ],
            quiet_hours: vec![],
            limits: Limits {
                max_text_length: 4096,
                text_unit: TextUnit::UnicodeScalarValues,
                template_parameters: ParameterRules {
                    max_length: Some(1024),
                    allow_newlines: false,
                    allow_tabs: false,
                    max_consecutive_spaces: Some(4),
                },
                max_batch_size: 1,
                messages_per_second: 80,
            },
            egress_hosts: vec![],
            secrets: vec![],
            settings: vec![],
            deduplicates: false,
        }
    }

    /// A LINE-like channel: platform user ids, free-form always, no templates.
    pub(crate) fn line_info() -> ChannelInfo {
        ChannelInfo {
            name: "line".into(),
            display_name: "LINE".into(),
            address_kind: AddressKind::PlatformUserId,
            free_form: FreeFormRule::Always,
            template_purposes: vec![],
            ..whatsapp_info()
        }
    }

    /// A KakaoTalk-like channel: phone numbers, templates only, Korean
    /// advertising quiet hours 20:50–08:00 for marketing.
    pub(crate) fn kakao_info() -> ChannelInfo {
        ChannelInfo {
            name: "kakaotalk".into(),
            display_name: "KakaoTalk".into(),
            free_form: FreeFormRule::Never,
            quiet_hours: vec![QuietHours {
                time_zone: "Asia/Seoul".into(),
                start_minute: 20 * 60 + 50,
                end_minute: 8 * 60,
                purposes: vec![Purpose::Marketing],
                reason: "Korean advertising ban at night".into(),
            }],
            ..whatsapp_info()
        }
    }

    fn channels(infos: &[ChannelInfo]) -> BTreeMap<String, ChannelInfo> {
        infos.iter().map(|i| (i.name.clone(), i.clone())).collect()
    }

    fn parse(text: &str) -> Result<Campaign, CampaignError> {
        parse_campaign(Path::new("campaigns/winback.toml"), text)
    }

    fn parse_err(text: &str) -> String {
        parse(text).expect_err("should fail").to_string()
    }

    fn columns(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    fn validate_errs(campaign: &Campaign, infos: &[ChannelInfo], cols: &[&str]) -> Vec<String> {
        match campaign.validate(Path::new("c.toml"), &channels(infos), &columns(cols)) {
            Ok(()) => vec![],
            Err(errors) => errors.iter().map(ToString::to_string).collect(),
        }
    }

    const FULL: &str = r#"
name = "winback-2026-11"
purpose = "marketing"
route = ["whatsapp", "line"]
ttl_seconds = 86_400

[message]
text = "Hi {{name}}, we miss you — 20% off with BACK20"

[templates.whatsapp]
name = "winback_offer"
language = "en_US"
parameters = ["{{name}}", "{{ code }}"]
link = "https://shop.example/back?u={{profile_id}}"
"#;

    #[test]
    fn loads_a_full_campaign() {
        let c = parse(FULL).unwrap();
        assert_eq!(c.name, "winback-2026-11");
        assert_eq!(c.purpose, Purpose::Marketing);
        assert_eq!(c.route, ["whatsapp", "line"]);
        assert_eq!(c.window, WindowMode::Enforce);
        assert_eq!(c.ttl_seconds, Some(86_400));
        assert_eq!(
            c.message.text.as_deref(),
            Some("Hi {{name}}, we miss you — 20% off with BACK20")
        );
        let t = &c.templates["whatsapp"];
        assert_eq!(t.name, "winback_offer");
        assert_eq!(t.language.as_deref(), Some("en_US"));
        assert_eq!(
            t.parameters,
            [
                ("1".to_string(), "{{name}}".to_string()),
                ("2".to_string(), "{{ code }}".to_string())
            ]
        );
        assert_eq!(
            t.link.as_deref(),
            Some("https://shop.example/back?u={{profile_id}}")
        );
        assert_eq!(c.lines.get("route[1]"), Some(&4));
        assert_eq!(c.lines.get("templates.whatsapp"), Some(&10));
    }

    #[test]
    fn a_trigger_reads_its_wait_cancel_events_and_deadline() {
        let base = "name = \"cart\"\npurpose = \"marketing\"\nroute = [\"whatsapp\"]\n[message]\ntext = \"hi\"\n";
        let c = parse(&format!(
            "{base}[trigger]\nevent = \"cart_abandoned\"\nwait = \"30m\"\ncancel_on = [\"order_placed\"]\ndeadline = \"1h\"\n"
        ))
        .unwrap();
        assert_eq!(
            c.trigger,
            Some(Trigger {
                event: "cart_abandoned".into(),
                wait_ms: 30 * 60_000,
                cancel_on: vec!["order_placed".into()],
                deadline_ms: 60 * 60_000,
            })
        );
        // Defaults: no wait, nothing cancels, a deadline a day after the wait.
        let c = parse(&format!("{base}[trigger]\nevent = \"signup\"\n")).unwrap();
        let trigger = c.trigger.unwrap();
        assert_eq!(
            (trigger.wait_ms, trigger.deadline_ms),
            (0, 24 * 3600 * 1000)
        );
        assert!(parse(base).unwrap().trigger.is_none());

        for (table, expected) in [
            (
                "wait = \"soon\"",
                "field `trigger.wait`: `soon` is not a duration",
            ),
            (
                "wait = \"-5m\"",
                "field `trigger.wait`: `-5m` is not a duration",
            ),
            (
                "wait = \"2h\"\ndeadline = \"1h\"",
                "field `trigger.deadline`: is shorter than `trigger.wait`",
            ),
            (
                "cancel_on = [\"signup\"]",
                "field `trigger.cancel_on[0]`: `signup` is the event that starts the trigger",
            ),
            (
                "cancel_on = \"order_placed\"",
                "field `trigger.cancel_on`: expected a list of event names, found a string",
            ),
            ("delay = \"5m\"", "field `trigger.delay`: unknown key"),
        ] {
            let text = format!("{base}[trigger]\nevent = \"signup\"\n{table}\n");
            let error = parse_err(&text);
            assert!(error.contains(expected), "{table}: {error}");
        }
        let error = parse_err(&format!("{base}[trigger]\nwait = \"5m\"\n"));
        assert!(error.contains("field `trigger.event`: missing"), "{error}");
    }

    #[test]
    fn a_trigger_key_differs_per_event_and_a_campaign_fall_back_key_keeps_its_format() {
        assert_ne!(
            trigger_key("cart", "p1", "e1", "whatsapp"),
            trigger_key("cart", "p1", "e2", "whatsapp")
        );
        let first = idempotency_key("winback", "p1", "whatsapp", 0);
        assert_eq!(
            next_channel_key("winback", "p1", "whatsapp", &first, "line"),
            idempotency_key("winback", "p1", "line", 0)
        );
        let one = trigger_key("cart", "p1", "e1", "whatsapp");
        let two = trigger_key("cart", "p1", "e2", "whatsapp");
        let next_one = next_channel_key("cart", "p1", "whatsapp", &one, "line");
        assert_ne!(
            next_one,
            next_channel_key("cart", "p1", "whatsapp", &two, "line")
        );
        assert_ne!(next_one, idempotency_key("cart", "p1", "line", 0));
    }

    #[test]
    fn named_parameters_keep_the_written_order() {
        let c = parse(
            r#"
name = "x"
purpose = "utility"
route = ["kakaotalk"]
[templates.kakaotalk]
name = "T1"
parameters = { zeta = "{{a}}", alpha = "{{b}}", mid = "c" }
"#,
        )
        .unwrap();
        let names: Vec<&str> = c.templates["kakaotalk"]
            .parameters
            .iter()
            .map(|(n, _)| n.as_str())
            .collect();
        assert_eq!(names, ["zeta", "alpha", "mid"]);
        assert_eq!(c.window, WindowMode::Enforce);
        assert_eq!(c.ttl_seconds, None);
    }

    #[test]
    fn load_errors_name_the_file_and_field() {
        let base = "name = \"x\"\npurpose = \"marketing\"\nroute = [\"whatsapp\"]\n";
        assert_eq!(
            parse_err(&format!("{base}[templates.whatsapp]\nlanguage = \"en\"\n")),
            "campaigns/winback.toml:4: field `templates.whatsapp.name`: missing"
        );
        assert_eq!(
            parse_err(
                "name = \"x\"\npurpose = \"promo\"\nroute = [\"whatsapp\"]\n[message]\ntext = \"hi\"\n"
            ),
            "campaigns/winback.toml:2: field `purpose`: unknown purpose `promo` (expected marketing, utility, authentication, service)"
        );
        assert_eq!(
            parse_err(&format!(
                "{base}colour = \"red\"\n[message]\ntext = \"hi\"\n"
            )),
            "campaigns/winback.toml:4: field `colour`: unknown key (expected one of: name, purpose, route, window, ttl_seconds, message, templates, trigger)"
        );
        assert_eq!(
            parse_err(&format!("{base}[message]\ntext = \"hi\"\nbody = \"x\"\n")),
            "campaigns/winback.toml:6: field `message.body`: unknown key (expected one of: text)"
        );
        assert_eq!(
            parse_err(&format!(
                "{base}[templates.whatsapp]\nname = \"t\"\nparams = []\n"
            )),
            "campaigns/winback.toml:6: field `templates.whatsapp.params`: unknown key (expected one of: name, language, parameters, link)"
        );
        assert_eq!(
            parse_err("purpose = \"marketing\"\nroute = [\"whatsapp\"]\n"),
            "campaigns/winback.toml: field `name`: missing"
        );
        assert_eq!(
            parse_err("name = \"Winback 1\"\n"),
            "campaigns/winback.toml:1: field `name`: `Winback 1` is not a valid campaign name: use lowercase letters, digits, `_` and `-` (it is part of every idempotency key)"
        );
        assert_eq!(
            parse_err("name = \"x\"\npurpose = \"utility\"\nroute = []\n"),
            "campaigns/winback.toml:3: field `route`: must name at least one channel"
        );
        assert_eq!(
            parse_err("name = \"x\"\npurpose = \"utility\"\nroute = [\"a\", 2]\n"),
            "campaigns/winback.toml:3: field `route[1]`: expected a string, found an integer"
        );
        assert_eq!(
            parse_err("name = \"x\"\npurpose = \"utility\"\nroute = [\"a\", \"a\"]\n"),
            "campaigns/winback.toml:3: field `route[1]`: channel `a` is already route[0]"
        );
        assert_eq!(
            parse_err(&format!("{base}window = \"loose\"\n")),
            "campaigns/winback.toml:4: field `window`: unknown mode `loose` (expected enforce, ignore)"
        );
        assert_eq!(
            parse_err(&format!("{base}ttl_seconds = -5\n")),
            "campaigns/winback.toml:4: field `ttl_seconds`: expected a whole number of seconds from 1 to 4294967295"
        );
        assert_eq!(
            parse_err(base),
            "campaigns/winback.toml: field `message.text`: missing: the campaign has nothing to send: add `message.text` or a `[templates.<channel>]` table"
        );
        assert_eq!(
            parse_err(&format!("{base}[message]\ntext = \"Hi {{{{name\"\n")),
            "campaigns/winback.toml:5: field `message.text`: `{{` at character 4 is never closed with `}}`"
        );
        assert_eq!(
            parse_err(&format!(
                "{base}[templates.whatsapp]\nname = \"t\"\nparameters = {{ a = 1 }}\n"
            )),
            "campaigns/winback.toml:6: field `templates.whatsapp.parameters.a`: expected a string, found an integer"
        );
    }

    #[test]
    fn toml_syntax_errors_have_line_and_column() {
        let err = parse("name = \"x\"\npurpose = marketing\n").unwrap_err();
        let text = err.to_string();
        assert!(
            text.starts_with("campaigns/winback.toml:2:11: invalid TOML: "),
            "{text}"
        );
        assert!(matches!(
            err,
            CampaignError::Syntax {
                line: Some(2),
                column: Some(11),
                ..
            }
        ));
    }

    #[test]
    fn unreadable_file_names_the_file() {
        let err = load_campaign(Path::new("/nonexistent/campaign.toml")).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("cannot read campaign /nonexistent/campaign.toml: "),
            "{err}"
        );
    }

    #[test]
    fn loads_from_a_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("c.toml");
        std::fs::write(&path, FULL).expect("write");
        assert_eq!(load_campaign(&path).unwrap().name, "winback-2026-11");
        std::fs::write(&path, b"name = \"\xff\"\n").expect("write");
        let err = load_campaign(&path).unwrap_err().to_string();
        assert!(
            err.ends_with(":1:9: invalid TOML: the file is not valid UTF-8"),
            "{err}"
        );
    }

    #[test]
    fn a_valid_campaign_validates() {
        let c = parse(FULL).unwrap();
        let errs = validate_errs(
            &c,
            &[whatsapp_info(), line_info()],
            &["profile_id", "name", "code", "phone"],
        );
        assert!(errs.is_empty(), "{errs:?}");
    }

    #[test]
    fn unknown_route_channel() {
        let c = parse(
            "name = \"x\"\npurpose = \"utility\"\nroute = [\"foo\"]\n[message]\ntext = \"hi\"\n",
        )
        .unwrap();
        assert_eq!(
            validate_errs(&c, &[whatsapp_info(), line_info()], &["profile_id"]),
            ["c.toml:3: field `route[0]`: unknown channel `foo` (loaded: line, whatsapp)"]
        );
        assert_eq!(
            validate_errs(&c, &[], &["profile_id"]),
            ["c.toml:3: field `route[0]`: unknown channel `foo` (loaded: none)"]
        );
    }

    #[test]
    fn window_channel_needs_a_template() {
        let c = parse("name = \"x\"\npurpose = \"marketing\"\nroute = [\"whatsapp\"]\n[message]\ntext = \"hi\"\n").unwrap();
        assert_eq!(
            validate_errs(&c, &[whatsapp_info()], &["profile_id"]),
            [
                "c.toml: field `templates.whatsapp`: missing: channel `whatsapp` only sends free-form inside its 24-hour window, so recipients outside it need a template"
            ]
        );
        // Service replies need none, nor does a run that ignores the window.
        let mut service = c.clone();
        service.purpose = Purpose::Service;
        assert!(validate_errs(&service, &[whatsapp_info()], &["profile_id"]).is_empty());
        let mut ignore = c.clone();
        ignore.window = WindowMode::Ignore;
        assert!(validate_errs(&ignore, &[whatsapp_info()], &["profile_id"]).is_empty());
    }

    #[test]
    fn template_only_channel_needs_a_template() {
        let c = parse("name = \"x\"\npurpose = \"service\"\nroute = [\"kakaotalk\"]\n[message]\ntext = \"hi\"\n").unwrap();
        assert_eq!(
            validate_errs(&c, &[kakao_info()], &["profile_id"]),
            [
                "c.toml: field `templates.kakaotalk`: missing: channel `kakaotalk` only sends templates"
            ]
        );
    }

    #[test]
    fn template_purpose_must_be_supported() {
        let c = parse(
            "name = \"x\"\npurpose = \"service\"\nroute = [\"whatsapp\", \"line\"]\n[templates.whatsapp]\nname = \"t\"\n[templates.line]\nname = \"t\"\n",
        )
        .unwrap();
        assert_eq!(
            validate_errs(&c, &[whatsapp_info(), line_info()], &["profile_id"]),
            [
                "c.toml:4: field `templates.whatsapp`: channel `whatsapp` has no templates for purpose `service` (it has: marketing, utility, authentication)",
                "c.toml:6: field `templates.line`: channel `line` has no templates; remove this table",
            ]
        );
    }

    #[test]
    fn always_channel_needs_text_or_template() {
        let c = parse("name = \"x\"\npurpose = \"utility\"\nroute = [\"whatsapp\", \"line\"]\n[templates.whatsapp]\nname = \"t\"\n").unwrap();
        assert_eq!(
            validate_errs(&c, &[whatsapp_info(), line_info()], &["profile_id"]),
            [
                "c.toml: field `message.text`: missing: channel `line` needs `message.text` or a `[templates.line]` table"
            ]
        );
    }

    #[test]
    fn templates_must_be_for_route_channels() {
        let c = parse(
            "name = \"x\"\npurpose = \"utility\"\nroute = [\"whatsapp\"]\n[templates.whatsapp]\nname = \"t\"\n[templates.whatsap]\nname = \"t\"\n",
        )
        .unwrap();
        assert_eq!(
            validate_errs(&c, &[whatsapp_info()], &["profile_id"]),
            [
                "c.toml:6: field `templates.whatsap`: channel `whatsap` is not in the route (whatsapp)"
            ]
        );
    }

    #[test]
    fn placeholders_must_be_audience_columns() {
        let c = parse(
            r#"name = "x"
purpose = "utility"
route = ["whatsapp"]
[message]
text = "Hi {{nme}}"
[templates.whatsapp]
name = "t"
parameters = { first = "{{Name}}", second = "{{city}}" }
"#,
        )
        .unwrap();
        assert_eq!(
            validate_errs(&c, &[whatsapp_info()], &["profile_id", "name", "phone"]),
            [
                "c.toml:5: field `message.text`: placeholder `{{nme}}` is not a column of the audience (columns: profile_id, name, phone); did you mean `name`?",
                "c.toml:8: field `templates.whatsapp.parameters.first`: placeholder `{{Name}}` is not a column of the audience (columns: profile_id, name, phone); did you mean `name`?",
                "c.toml:8: field `templates.whatsapp.parameters.second`: placeholder `{{city}}` is not a column of the audience (columns: profile_id, name, phone)",
            ]
        );
    }

    #[test]
    fn idempotency_key_is_stable() {
        // Pinned: changing the format would resend every message of a re-run.
        // printf 'winback-2026-11\x1fp1\x1fwhatsapp\x1f0' | sha256sum
        assert_eq!(
            idempotency_key("winback-2026-11", "p1", "whatsapp", 0),
            "ed2bc991a538acbb25374b73a42151bd44166410d4bff3d6b17faf08c58975bb"
        );
        assert_ne!(
            idempotency_key("a", "bc", "x", 0),
            idempotency_key("ab", "c", "x", 0)
        );
        assert_ne!(
            idempotency_key("a", "b", "x", 0),
            idempotency_key("a", "b", "x", 1)
        );
    }
}
