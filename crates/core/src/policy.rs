//! The policy gate: may this recipient be sent this campaign on this
//! channel now, and with what content?
//!
//! [`decide`] is a pure function of the campaign, the channel's declared
//! rules ([`ChannelInfo`]), what the host knows about the recipient and the
//! current time. It checks, in order:
//!
//! 1. **Address**: the recipient needs a usable address of the channel's kind.
//! 2. **Consent**: as resolved by [`crate::consent::resolve`].
//! 3. **Quiet hours**: a period the channel declares for the campaign's
//!    purpose (e.g. Korea's night-time advertising ban) defers the message
//!    to the end of the period; it is never dropped.
//! 4. **Content**: free-form text where the channel allows it (always, or
//!    inside an open conversation window below its message cap), otherwise
//!    the channel's template; placeholders are filled from the profile.
//! 5. **Platform limits**: the rendered text against the channel's length
//!    (in the unit the platform counts), and every template parameter
//!    against the channel's parameter rules (length, line breaks, tabs,
//!    runs of spaces): a value the platform would refuse is caught here.
//!
//! Every outcome carries its reason, so an operator can answer "why did this
//! person get nothing?".

use std::fmt;

use jiff::Timestamp;
use jiff::tz::TimeZone;

use switchboard_contract::model::{
    ChannelInfo, Content, FreeFormRule, ParameterRules, Purpose, QuietHours, TemplateMessage,
    TemplateParameter, TextUnit, WindowOpener, WindowRule,
};

use crate::campaign::{Campaign, TemplateSpec, WindowMode};
use crate::consent::{ConsentDecision, DenialReason};
use crate::ingest::{AddressLookup, Profile};
use crate::template::{self, TemplateError};

/// A conversation window a recipient opened on a channel, by one kind of action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenedWindow {
    /// What opened it.
    pub opener: WindowOpener,
    /// When it was last opened or refreshed, milliseconds since the Unix epoch.
    pub opened_ms: i64,
    /// Free-form messages sent in it since it was opened.
    pub free_form_sent: u32,
}

/// What the host knows about one recipient on one channel.
#[derive(Debug, Clone)]
pub struct Recipient<'a> {
    /// The audience profile.
    pub profile: &'a Profile,
    /// Consent for the campaign's purpose on this channel.
    pub consent: ConsentDecision,
    /// The windows the recipient opened on this channel, one per opener.
    pub windows: Vec<OpenedWindow>,
}

/// Why a recipient is not sent a message on a channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SkipReason {
    /// No consent for the purpose on this channel.
    NoConsent,
    /// The recipient opted out on the platform.
    OptedOut {
        /// When, milliseconds since the Unix epoch.
        at_ms: i64,
        /// Where the opt-out came from.
        source: String,
    },
    /// The audience has no address for this channel.
    NoAddress,
    /// The audience's address for this channel is unusable; holds why.
    InvalidAddress(String),
    /// The conversation window is closed and there is no template for the channel.
    WindowClosedNoTemplate,
    /// The window's free-form message cap is reached and there is no template.
    WindowMessageCapReached,
    /// A placeholder's attribute is empty or absent for this profile; holds its name.
    MissingAttribute(String),
    /// The campaign has no content this channel can send; holds why.
    NoContent(String),
    /// The campaign's content cannot be rendered (unbalanced braces); holds why.
    InvalidContent(String),
    /// The channel declared rules the host cannot apply (e.g. an unknown
    /// quiet-hours time zone); holds why. Nothing is sent rather than risk
    /// breaking the rule.
    InvalidChannelPolicy(String),
    /// The profile already had as many messages on this channel in the
    /// cap's period as the operator allows.
    FrequencyCap {
        /// Messages allowed in the period.
        max: u32,
        /// The period, in words (`day`, `week`).
        period: &'static str,
        /// Messages already sent or queued in it.
        count: u32,
    },
}

impl SkipReason {
    /// A stable snake_case code for result files and summaries.
    pub fn code(&self) -> &'static str {
        match self {
            SkipReason::NoConsent => "no_consent",
            SkipReason::OptedOut { .. } => "opted_out",
            SkipReason::NoAddress => "no_address",
            SkipReason::InvalidAddress(_) => "invalid_address",
            SkipReason::WindowClosedNoTemplate => "window_closed_no_template",
            SkipReason::WindowMessageCapReached => "window_cap_reached",
            SkipReason::MissingAttribute(_) => "missing_attribute",
            SkipReason::NoContent(_) => "no_content",
            SkipReason::InvalidContent(_) => "invalid_content",
            SkipReason::InvalidChannelPolicy(_) => "invalid_channel_policy",
            SkipReason::FrequencyCap { .. } => "frequency_cap",
        }
    }
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SkipReason::NoConsent => f.write_str(
                "no consent for this purpose on this channel: the audience column is \"no\" or empty and no opt-in was recorded",
            ),
            SkipReason::OptedOut { at_ms, source } => match Timestamp::from_millisecond(*at_ms) {
                Ok(at) => write!(f, "opted out at {at} ({source})"),
                Err(_) => write!(f, "opted out at {at_ms} ms ({source})"),
            },
            SkipReason::NoAddress => f.write_str("the audience has no address for this channel"),
            SkipReason::InvalidAddress(why) => write!(f, "invalid address: {why}"),
            SkipReason::WindowClosedNoTemplate => f.write_str(
                "the conversation window is closed and the campaign has no template for this channel",
            ),
            SkipReason::WindowMessageCapReached => f.write_str(
                "the conversation window's free-form message cap is reached and the campaign has no template for this channel",
            ),
            SkipReason::MissingAttribute(name) => write!(
                f,
                "placeholder `{{{{{name}}}}}` has no value: the profile's `{name}` attribute is empty or absent"
            ),
            SkipReason::NoContent(why) => f.write_str(why),
            SkipReason::InvalidContent(why) => write!(f, "the content cannot be rendered: {why}"),
            SkipReason::InvalidChannelPolicy(why) => write!(f, "the channel's declared rules cannot be applied: {why}"),
            SkipReason::FrequencyCap { max, period, count } => write!(
                f,
                "frequency cap: {count} message{} on this channel in the last {period} already (at most {max} per {period}, across campaigns and triggers)",
                if *count == 1 { "" } else { "s" }
            ),
        }
    }
}

/// At most `max` messages to one profile on one channel in a moving
/// `period_ms`, counted across every campaign and trigger (the operator's
/// `frequency_caps`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrequencyCap {
    /// Messages allowed in the period.
    pub max: u32,
    /// The period, ms.
    pub period_ms: i64,
    /// The period in words, for reasons (`day`, `week`).
    pub period: &'static str,
}

impl FrequencyCap {
    /// A cap per moving day.
    pub fn per_day(max: u32) -> Self {
        Self {
            max,
            period_ms: 24 * 3600 * 1000,
            period: "day",
        }
    }

    /// A cap per moving week.
    pub fn per_week(max: u32) -> Self {
        Self {
            max,
            period_ms: 7 * 24 * 3600 * 1000,
            period: "week",
        }
    }
}

/// Whether one more message at `now_ms` would break a cap, given when the
/// profile's earlier messages on the channel went out (or are due). The
/// first cap broken is the reason.
pub fn frequency_capped(
    caps: &[FrequencyCap],
    recent_ms: &[i64],
    now_ms: i64,
) -> Option<SkipReason> {
    caps.iter().find_map(|cap| {
        let since = now_ms.saturating_sub(cap.period_ms);
        let count = recent_ms.iter().filter(|at| **at > since).count();
        (count >= cap.max as usize).then(|| SkipReason::FrequencyCap {
            max: cap.max,
            period: cap.period,
            count: u32::try_from(count).unwrap_or(u32::MAX),
        })
    })
}

/// The gate's verdict for one recipient on one channel.
#[derive(Debug, Clone)]
pub enum Decision {
    /// Send now.
    Send {
        /// The recipient's address in the channel's address kind.
        to: String,
        /// The rendered content.
        content: Content,
        /// The campaign's purpose.
        purpose: Purpose,
        /// The window a free-form message is counted against, if any.
        window: Option<WindowOpener>,
    },
    /// Not now: decide again at `until`.
    Defer {
        /// When the restriction ends.
        until: Timestamp,
        /// The restriction's reason, as the channel declares it.
        reason: String,
    },
    /// Not on this channel.
    Skip(SkipReason),
}

/// Decide whether and what to send `recipient` on `channel` at `now`.
///
/// See the [module docs](self) for the order of the checks. When
/// `campaign.window` is [`WindowMode::Ignore`], text is sent whenever the
/// campaign has it, whatever the channel's window rule.
pub fn decide(
    campaign: &Campaign,
    channel: &str,
    info: &ChannelInfo,
    recipient: &Recipient<'_>,
    now: Timestamp,
) -> Decision {
    // 1. Address.
    let to = match recipient.profile.address_for(channel, info.address_kind) {
        AddressLookup::Found(to) => to,
        AddressLookup::Missing => return Decision::Skip(SkipReason::NoAddress),
        AddressLookup::Invalid(why) => return Decision::Skip(SkipReason::InvalidAddress(why)),
    };

    // 2. Consent.
    match &recipient.consent {
        ConsentDecision::Granted { .. } => {}
        ConsentDecision::Denied(DenialReason::NoConsent) => {
            return Decision::Skip(SkipReason::NoConsent);
        }
        ConsentDecision::Denied(DenialReason::OptedOut { at_ms, source }) => {
            return Decision::Skip(SkipReason::OptedOut {
                at_ms: *at_ms,
                source: source.clone(),
            });
        }
    }

    // 3. Quiet hours: defer to the latest end among the periods we are in.
    let mut defer: Option<(Timestamp, &str)> = None;
    for quiet in info
        .quiet_hours
        .iter()
        .filter(|q| q.purposes.contains(&campaign.purpose))
    {
        match quiet_until(quiet, now) {
            Ok(None) => {}
            Ok(Some(until)) => {
                if defer.is_none_or(|(latest, _)| until > latest) {
                    defer = Some((until, &quiet.reason));
                }
            }
            Err(why) => return Decision::Skip(SkipReason::InvalidChannelPolicy(why)),
        }
    }
    if let Some((until, reason)) = defer {
        return Decision::Defer {
            until,
            reason: reason.to_string(),
        };
    }

    // 4. Content.
    let (content, window) = match choose_content(campaign, channel, info, recipient, now) {
        Err(reason) => return Decision::Skip(reason),
        Ok(Choice::Text(text, window)) => (
            template::render(text, &recipient.profile.attributes).map(Content::Text),
            window,
        ),
        Ok(Choice::Template(spec)) => (
            render_template(spec, recipient.profile).map(Content::Template),
            None,
        ),
    };
    let content = match content {
        Ok(content) => content,
        Err(err) => return Decision::Skip(skip_for(err)),
    };

    // 5. What the platform accepts, checked after rendering: a personalised
    // value can outgrow a limit for one recipient only.
    if let Err(why) = check_limits(&content, channel, info) {
        return Decision::Skip(SkipReason::InvalidContent(why));
    }
    Decision::Send {
        to,
        content,
        purpose: campaign.purpose,
        window,
    }
}

/// Check rendered content against the channel's declared limits.
fn check_limits(content: &Content, channel: &str, info: &ChannelInfo) -> Result<(), String> {
    let unit = info.limits.text_unit;
    match content {
        Content::Text(text) => {
            let length = unit.length(text);
            if length > info.limits.max_text_length as usize {
                return Err(format!(
                    "the text is {length} {} after filling in the placeholders; `{channel}` takes at most {}",
                    unit.describe(),
                    info.limits.max_text_length
                ));
            }
            Ok(())
        }
        Content::Template(template) => {
            for parameter in &template.parameters {
                check_parameter(parameter, channel, unit, &info.limits.template_parameters)?;
            }
            Ok(())
        }
    }
}

/// Check one template parameter value against the channel's rules.
fn check_parameter(
    parameter: &TemplateParameter,
    channel: &str,
    unit: TextUnit,
    rules: &ParameterRules,
) -> Result<(), String> {
    let name = &parameter.name;
    let value = &parameter.value;
    if let Some(max) = rules.max_length {
        let length = unit.length(value);
        if length > max as usize {
            return Err(format!(
                "template parameter `{name}` is {length} {} after filling in the placeholders; `{channel}` takes at most {max}",
                unit.describe()
            ));
        }
    }
    if !rules.allow_newlines && value.contains(['\n', '\r']) {
        return Err(format!(
            "template parameter `{name}` contains a line break, which `{channel}` does not allow in template parameters"
        ));
    }
    if !rules.allow_tabs && value.contains('\t') {
        return Err(format!(
            "template parameter `{name}` contains a tab, which `{channel}` does not allow in template parameters"
        ));
    }
    if let Some(max) = rules.max_consecutive_spaces {
        let longest = value.split(|c| c != ' ').map(str::len).max().unwrap_or(0);
        if longest > max as usize {
            return Err(format!(
                "template parameter `{name}` has {longest} consecutive spaces; `{channel}` allows at most {max}"
            ));
        }
    }
    Ok(())
}

/// Which content a recipient gets, and the window free-form text counts against.
enum Choice<'c> {
    Text(&'c str, Option<WindowOpener>),
    Template(&'c TemplateSpec),
}

fn choose_content<'c>(
    campaign: &'c Campaign,
    channel: &str,
    info: &ChannelInfo,
    recipient: &Recipient<'_>,
    now: Timestamp,
) -> Result<Choice<'c>, SkipReason> {
    let text = campaign.message.text.as_deref();
    let template = campaign.templates.get(channel);
    if campaign.window == WindowMode::Ignore
        && let Some(text) = text
    {
        return Ok(Choice::Text(text, None));
    }
    let no_content = || {
        SkipReason::NoContent("the campaign has no text and no template for this channel".into())
    };
    match &info.free_form {
        // A template written for this very channel is more specific than
        // the campaign's generic text (KakaoTalk: AlimTalk, not a Brand
        // Message), so it wins where free-form would also be allowed.
        FreeFormRule::Always => match (text, template) {
            (_, Some(template)) => Ok(Choice::Template(template)),
            (Some(text), None) => Ok(Choice::Text(text, None)),
            (None, None) => Err(no_content()),
        },
        FreeFormRule::WithinWindow(rules) => {
            let window = usable_window(rules, &recipient.windows, now);
            match (text, template, window) {
                (Some(text), _, WindowState::Usable(opener)) => {
                    Ok(Choice::Text(text, Some(opener)))
                }
                (_, Some(template), _) => Ok(Choice::Template(template)),
                (None, None, _) => Err(no_content()),
                (Some(_), None, WindowState::Closed) => Err(SkipReason::WindowClosedNoTemplate),
                (Some(_), None, WindowState::Capped) => Err(SkipReason::WindowMessageCapReached),
            }
        }
        FreeFormRule::Never => match template {
            Some(template) => Ok(Choice::Template(template)),
            None => Err(SkipReason::NoContent(
                "this channel only sends templates and the campaign has none for it".into(),
            )),
        },
    }
}

/// Whether free-form may go out now, and in which window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WindowState {
    /// Open and below its cap; the opener to count the message against.
    Usable(WindowOpener),
    /// Open, but every open window's cap is reached.
    Capped,
    /// No window is open.
    Closed,
}

/// The window a free-form message may use: of the rules whose window is
/// open and below its cap, the one that closes soonest (its capacity would
/// be lost first). A rule's window is the latest one any of its openers
/// opened; the messages counted against that opener are its messages.
fn usable_window(rules: &[WindowRule], opened: &[OpenedWindow], now: Timestamp) -> WindowState {
    let now = now.as_millisecond();
    let mut best: Option<(i64, WindowOpener)> = None;
    let mut any_open = false;
    for rule in rules {
        let latest = opened
            .iter()
            .filter(|w| rule.opened_by.contains(&w.opener))
            .max_by_key(|w| w.opened_ms);
        let Some(window) = latest else { continue };
        let closes = window
            .opened_ms
            .saturating_add(i64::from(rule.duration_seconds) * 1000);
        if now >= closes {
            continue;
        }
        any_open = true;
        if rule
            .max_messages
            .is_some_and(|max| window.free_form_sent >= max)
        {
            continue;
        }
        if best.is_none_or(|(soonest, _)| closes < soonest) {
            best = Some((closes, window.opener));
        }
    }
    match best {
        Some((_, opener)) => WindowState::Usable(opener),
        None if any_open => WindowState::Capped,
        None => WindowState::Closed,
    }
}

fn skip_for(err: TemplateError) -> SkipReason {
    match err {
        TemplateError::MissingAttribute(name) => SkipReason::MissingAttribute(name),
        TemplateError::Syntax(why) => SkipReason::InvalidContent(why),
    }
}

fn render_template(
    spec: &TemplateSpec,
    profile: &Profile,
) -> Result<TemplateMessage, TemplateError> {
    let parameters = spec
        .parameters
        .iter()
        .map(|(name, value)| {
            Ok(TemplateParameter {
                name: name.clone(),
                value: template::render(value, &profile.attributes)?,
            })
        })
        .collect::<Result<Vec<_>, TemplateError>>()?;
    let link = spec
        .link
        .as_deref()
        .map(|link| template::render(link, &profile.attributes))
        .transpose()?;
    Ok(TemplateMessage {
        name: spec.name.clone(),
        language: spec.language.clone(),
        parameters,
        link,
    })
}

/// Minutes in a day.
const DAY_MINUTES: u16 = 24 * 60;

/// When `now` falls inside the quiet period, the end of the period;
/// `Ok(None)` outside it. A period whose end is before its start spans
/// midnight; one whose start equals its end is empty. Minute 1440 (24:00)
/// is accepted as midnight.
pub fn quiet_until(quiet: &QuietHours, now: Timestamp) -> Result<Option<Timestamp>, String> {
    if quiet.start_minute > DAY_MINUTES || quiet.end_minute > DAY_MINUTES {
        return Err(format!(
            "quiet hours {}–{} are not minutes of a day (0 to 1440)",
            quiet.start_minute, quiet.end_minute
        ));
    }
    let start = quiet.start_minute % DAY_MINUTES;
    let end = quiet.end_minute % DAY_MINUTES;
    if start == end {
        return Ok(None);
    }
    let tz = TimeZone::get(&quiet.time_zone)
        .map_err(|err| format!("unknown quiet-hours time zone `{}`: {err}", quiet.time_zone))?;
    let local = now.to_zoned(tz.clone());
    // Both are small non-negative numbers (hour 0..=23, minute 0..=59).
    let minute = local.hour().unsigned_abs() as u16 * 60 + local.minute().unsigned_abs() as u16;
    let inside = if start < end {
        start <= minute && minute < end
    } else {
        minute >= start || minute < end
    };
    if !inside {
        return Ok(None);
    }
    let end_of = |date: jiff::civil::Date| -> Result<Timestamp, String> {
        let hour = i8::try_from(end / 60).map_err(|err| err.to_string())?;
        let minute = i8::try_from(end % 60).map_err(|err| err.to_string())?;
        date.at(hour, minute, 0, 0)
            .to_zoned(tz.clone())
            .map(|zoned| zoned.timestamp())
            .map_err(|err| {
                format!(
                    "cannot compute the end of quiet hours in `{}`: {err}",
                    quiet.time_zone
                )
            })
    };
    let today = end_of(local.date())?;
    if today > now {
        return Ok(Some(today));
    }
    let tomorrow = local
        .date()
        .tomorrow()
        .map_err(|err| format!("cannot compute the end of quiet hours: {err}"))?;
    end_of(tomorrow).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::campaign::parse_campaign;
    use crate::campaign::tests::{kakao_info, whatsapp_info};
    use crate::consent::SOURCE_AUDIENCE;
    use std::collections::BTreeMap;
    use std::path::Path;

    fn campaign(text: &str) -> Campaign {
        parse_campaign(Path::new("c.toml"), text).expect("campaign parses")
    }

    fn winback() -> Campaign {
        campaign(
            r#"name = "winback"
purpose = "marketing"
route = ["whatsapp", "kakaotalk"]
[message]
text = "Hi {{name}}, 20% off with BACK20"
[templates.whatsapp]
name = "winback_offer"
language = "en_US"
parameters = ["{{name}}"]
link = "https://shop.example/back?u={{profile_id}}"
[templates.kakaotalk]
name = "KA01"
parameters = { customer = "{{name}}", code = "BACK20" }
"#,
        )
    }

    fn profile(phone: Option<Result<&str, &str>>, attributes: &[(&str, &str)]) -> Profile {
        Profile {
            profile_id: "p1".into(),
            line: 2,
            phone: phone.map(|p| p.map(str::to_string).map_err(str::to_string)),
            country: None,
            consents: Vec::new(),
            platform_ids: BTreeMap::new(),
            attributes: attributes
                .iter()
                .copied()
                .chain([("profile_id", "p1")])
                .collect(),
        }
    }

    fn mina() -> Profile {
        profile(Some(Ok("+821012345678")), &[("name", "Mina")])
    }

    fn granted() -> ConsentDecision {
        ConsentDecision::Granted {
            source: SOURCE_AUDIENCE.into(),
        }
    }

    fn recipient(profile: &Profile, last_inbound_ms: Option<i64>) -> Recipient<'_> {
        Recipient {
            profile,
            consent: granted(),
            windows: last_inbound_ms
                .map(|opened_ms| OpenedWindow {
                    opener: WindowOpener::InboundMessage,
                    opened_ms,
                    free_form_sent: 0,
                })
                .into_iter()
                .collect(),
        }
    }

    fn ts(text: &str) -> Timestamp {
        text.parse().expect("timestamp")
    }

    /// A daytime instant in Seoul (14:00 KST), outside quiet hours.
    fn noon() -> Timestamp {
        ts("2026-11-10T05:00:00Z")
    }

    const HOUR_MS: i64 = 3_600_000;

    fn sent_text(decision: Decision) -> String {
        match decision {
            Decision::Send {
                content: Content::Text(text),
                ..
            } => text,
            other => panic!("expected a text send, got {other:?}"),
        }
    }

    fn sent_template(decision: Decision) -> (String, TemplateMessage) {
        match decision {
            Decision::Send {
                to,
                content: Content::Template(template),
                ..
            } => (to, template),
            other => panic!("expected a template send, got {other:?}"),
        }
    }

    fn skipped(decision: Decision) -> SkipReason {
        match decision {
            Decision::Skip(reason) => reason,
            other => panic!("expected a skip, got {other:?}"),
        }
    }

    fn deferred(decision: Decision) -> (Timestamp, String) {
        match decision {
            Decision::Defer { until, reason } => (until, reason),
            other => panic!("expected a deferral, got {other:?}"),
        }
    }

    #[test]
    fn inside_the_window_sends_text() {
        let p = mina();
        let now = noon();
        let r = recipient(&p, Some(now.as_millisecond() - 23 * HOUR_MS));
        let decision = decide(&winback(), "whatsapp", &whatsapp_info(), &r, now);
        let Decision::Send {
            ref to, purpose, ..
        } = decision
        else {
            panic!("expected a send, got {decision:?}");
        };
        assert_eq!(to, "+821012345678");
        assert_eq!(purpose, Purpose::Marketing);
        assert_eq!(sent_text(decision), "Hi Mina, 20% off with BACK20");
    }

    #[test]
    fn outside_the_window_sends_the_template() {
        let p = mina();
        let now = noon();
        for last in [None, Some(now.as_millisecond() - 24 * HOUR_MS)] {
            let (to, template) = sent_template(decide(
                &winback(),
                "whatsapp",
                &whatsapp_info(),
                &recipient(&p, last),
                now,
            ));
            assert_eq!(to, "+821012345678");
            assert_eq!(template.name, "winback_offer");
            assert_eq!(template.language.as_deref(), Some("en_US"));
            assert_eq!(template.parameters.len(), 1);
            assert_eq!(template.parameters[0].name, "1");
            assert_eq!(template.parameters[0].value, "Mina");
            assert_eq!(
                template.link.as_deref(),
                Some("https://shop.example/back?u=p1")
            );
        }
    }

    #[test]
    fn outside_the_window_without_template_is_skipped() {
        let mut c = winback();
        c.templates.clear();
        let p = mina();
        let reason = skipped(decide(
            &c,
            "whatsapp",
            &whatsapp_info(),
            &recipient(&p, None),
            noon(),
        ));
        assert_eq!(reason, SkipReason::WindowClosedNoTemplate);
        assert_eq!(reason.code(), "window_closed_no_template");
        assert_eq!(
            reason.to_string(),
            "the conversation window is closed and the campaign has no template for this channel"
        );
    }

    #[test]
    fn window_message_cap() {
        let mut info = whatsapp_info();
        info.free_form = FreeFormRule::WithinWindow(vec![WindowRule {
            duration_seconds: 48 * 3600,
            opened_by: vec![WindowOpener::InboundMessage],
            max_messages: Some(5),
        }]);
        let p = mina();
        let now = noon();
        let mut r = recipient(&p, Some(now.as_millisecond() - HOUR_MS));
        r.windows[0].free_form_sent = 4;
        assert_eq!(
            sent_text(decide(&winback(), "whatsapp", &info, &r, now)),
            "Hi Mina, 20% off with BACK20"
        );
        r.windows[0].free_form_sent = 5;
        assert_eq!(
            sent_template(decide(&winback(), "whatsapp", &info, &r, now))
                .1
                .name,
            "winback_offer"
        );
        let mut c = winback();
        c.templates.clear();
        let reason = skipped(decide(&c, "whatsapp", &info, &r, now));
        assert_eq!(reason, SkipReason::WindowMessageCapReached);
        assert_eq!(reason.code(), "window_cap_reached");
    }

    #[test]
    fn no_consent_and_opt_out_are_skipped() {
        let p = mina();
        let now = noon();
        let mut r = recipient(&p, Some(now.as_millisecond()));
        r.consent = ConsentDecision::Denied(DenialReason::NoConsent);
        let reason = skipped(decide(&winback(), "whatsapp", &whatsapp_info(), &r, now));
        assert_eq!(reason, SkipReason::NoConsent);
        assert_eq!(reason.code(), "no_consent");

        r.consent = ConsentDecision::Denied(DenialReason::OptedOut {
            at_ms: 1_700_000_000_000,
            source: "whatsapp webhook".into(),
        });
        let reason = skipped(decide(&winback(), "whatsapp", &whatsapp_info(), &r, now));
        assert_eq!(reason.code(), "opted_out");
        assert_eq!(
            reason.to_string(),
            "opted out at 2023-11-14T22:13:20Z (whatsapp webhook)"
        );
    }

    #[test]
    fn address_problems_come_first() {
        let now = noon();
        let invalid = profile(
            Some(Err("`+4912` is not a valid phone number")),
            &[("name", "A")],
        );
        let mut r = recipient(&invalid, None);
        r.consent = ConsentDecision::Denied(DenialReason::NoConsent);
        let reason = skipped(decide(&winback(), "whatsapp", &whatsapp_info(), &r, now));
        assert_eq!(reason.code(), "invalid_address");
        assert_eq!(
            reason.to_string(),
            "invalid address: `+4912` is not a valid phone number"
        );

        let none = profile(None, &[("name", "A")]);
        let reason = skipped(decide(
            &winback(),
            "whatsapp",
            &whatsapp_info(),
            &recipient(&none, None),
            now,
        ));
        assert_eq!(reason, SkipReason::NoAddress);
        assert_eq!(reason.code(), "no_address");
    }

    #[test]
    fn missing_attribute_is_skipped() {
        let p = profile(Some(Ok("+821012345678")), &[]);
        let now = noon();
        let reason = skipped(decide(
            &winback(),
            "whatsapp",
            &whatsapp_info(),
            &recipient(&p, None),
            now,
        ));
        assert_eq!(reason, SkipReason::MissingAttribute("name".into()));
        assert_eq!(reason.code(), "missing_attribute");
        assert_eq!(
            reason.to_string(),
            "placeholder `{{name}}` has no value: the profile's `name` attribute is empty or absent"
        );
    }

    #[test]
    fn quiet_hours_defer_to_the_end_of_the_period() {
        let p = mina();
        let c = winback();
        let info = kakao_info();
        // 21:30 KST: until 08:00 the next morning.
        let (until, reason) = deferred(decide(
            &c,
            "kakaotalk",
            &info,
            &recipient(&p, None),
            ts("2026-11-10T21:30:00+09:00"),
        ));
        assert_eq!(until, ts("2026-11-11T08:00:00+09:00"));
        assert_eq!(reason, "Korean advertising ban at night");
        // 20:50 KST exactly: inside.
        let (until, _) = deferred(decide(
            &c,
            "kakaotalk",
            &info,
            &recipient(&p, None),
            ts("2026-11-10T20:50:00+09:00"),
        ));
        assert_eq!(until, ts("2026-11-11T08:00:00+09:00"));
        // 07:59:59 KST: until 08:00 the same day.
        let (until, _) = deferred(decide(
            &c,
            "kakaotalk",
            &info,
            &recipient(&p, None),
            ts("2026-11-11T07:59:59+09:00"),
        ));
        assert_eq!(until, ts("2026-11-11T08:00:00+09:00"));
        // 08:00 KST: send.
        let (_, template) = sent_template(decide(
            &c,
            "kakaotalk",
            &info,
            &recipient(&p, None),
            ts("2026-11-11T08:00:00+09:00"),
        ));
        assert_eq!(template.name, "KA01");
        let names: Vec<(&str, &str)> = template
            .parameters
            .iter()
            .map(|p| (p.name.as_str(), p.value.as_str()))
            .collect();
        assert_eq!(names, [("customer", "Mina"), ("code", "BACK20")]);
        assert_eq!(template.link, None);
        // 20:49 KST: send.
        sent_template(decide(
            &c,
            "kakaotalk",
            &info,
            &recipient(&p, None),
            ts("2026-11-10T20:49:00+09:00"),
        ));
    }

    #[test]
    fn quiet_hours_only_restrict_their_purposes() {
        let p = mina();
        let mut c = winback();
        c.purpose = Purpose::Utility;
        let decision = decide(
            &c,
            "kakaotalk",
            &kakao_info(),
            &recipient(&p, None),
            ts("2026-11-10T21:30:00+09:00"),
        );
        assert_eq!(sent_template(decision).1.name, "KA01");
    }

    #[test]
    fn consent_is_checked_before_quiet_hours() {
        let p = mina();
        let mut r = recipient(&p, None);
        r.consent = ConsentDecision::Denied(DenialReason::NoConsent);
        let decision = decide(
            &winback(),
            "kakaotalk",
            &kakao_info(),
            &r,
            ts("2026-11-10T21:30:00+09:00"),
        );
        assert_eq!(skipped(decision), SkipReason::NoConsent);
    }

    #[test]
    fn quiet_hours_not_spanning_midnight_and_bad_declarations() {
        let quiet = QuietHours {
            time_zone: "Asia/Tokyo".into(),
            start_minute: 12 * 60,
            end_minute: 13 * 60,
            purposes: vec![Purpose::Marketing],
            reason: "lunch".into(),
        };
        assert_eq!(
            quiet_until(&quiet, ts("2026-11-10T12:30:00+09:00")),
            Ok(Some(ts("2026-11-10T13:00:00+09:00")))
        );
        assert_eq!(
            quiet_until(&quiet, ts("2026-11-10T13:00:00+09:00")),
            Ok(None)
        );
        assert_eq!(
            quiet_until(&quiet, ts("2026-11-10T11:59:00+09:00")),
            Ok(None)
        );

        let empty = QuietHours {
            end_minute: 12 * 60,
            ..quiet.clone()
        };
        assert_eq!(
            quiet_until(&empty, ts("2026-11-10T12:00:00+09:00")),
            Ok(None)
        );

        let bad_zone = QuietHours {
            time_zone: "Mars/Olympus".into(),
            ..quiet.clone()
        };
        let err = quiet_until(&bad_zone, noon()).unwrap_err();
        assert!(
            err.starts_with("unknown quiet-hours time zone `Mars/Olympus`"),
            "{err}"
        );
        let mut info = kakao_info();
        info.quiet_hours = vec![bad_zone];
        let p = mina();
        let reason = skipped(decide(
            &winback(),
            "kakaotalk",
            &info,
            &recipient(&p, None),
            noon(),
        ));
        assert_eq!(reason.code(), "invalid_channel_policy");

        let bad_minutes = QuietHours {
            start_minute: 1500,
            ..quiet
        };
        assert_eq!(
            quiet_until(&bad_minutes, noon()),
            Err("quiet hours 1500–780 are not minutes of a day (0 to 1440)".to_string())
        );
    }

    #[test]
    fn window_ignore_sends_text_outside_the_window() {
        let mut c = winback();
        c.window = WindowMode::Ignore;
        let p = mina();
        let decision = decide(
            &c,
            "whatsapp",
            &whatsapp_info(),
            &recipient(&p, None),
            noon(),
        );
        assert_eq!(sent_text(decision), "Hi Mina, 20% off with BACK20");
        // Even on a template-only channel.
        let decision = decide(&c, "kakaotalk", &kakao_info(), &recipient(&p, None), noon());
        assert_eq!(sent_text(decision), "Hi Mina, 20% off with BACK20");
    }

    #[test]
    fn always_channel_prefers_its_own_template_then_text() {
        let mut info = whatsapp_info();
        info.free_form = FreeFormRule::Always;
        let p = mina();
        assert_eq!(
            sent_template(decide(
                &winback(),
                "whatsapp",
                &info,
                &recipient(&p, None),
                noon()
            ))
            .1
            .name,
            "winback_offer"
        );
        let mut c = winback();
        c.templates.clear();
        assert_eq!(
            sent_text(decide(&c, "whatsapp", &info, &recipient(&p, None), noon())),
            "Hi Mina, 20% off with BACK20"
        );
        c.message.text = None;
        assert_eq!(
            skipped(decide(&c, "whatsapp", &info, &recipient(&p, None), noon())).code(),
            "no_content"
        );
    }

    #[test]
    fn text_longer_than_the_channel_takes_is_skipped_with_the_numbers() {
        let mut info = whatsapp_info();
        info.free_form = FreeFormRule::Always;
        info.limits.max_text_length = 10;
        let p = mina();
        let mut c = winback();
        c.templates.clear();
        let reason = skipped(decide(&c, "whatsapp", &info, &recipient(&p, None), noon()));
        assert_eq!(reason.code(), "invalid_content");
        assert!(reason.to_string().contains("at most 10"), "{reason}");
        info.limits.max_text_length = 4_096;
        sent_text(decide(&c, "whatsapp", &info, &recipient(&p, None), noon()));
    }

    #[test]
    fn template_only_channel_without_template_is_skipped() {
        let mut c = winback();
        c.templates.remove("kakaotalk");
        let p = mina();
        let reason = skipped(decide(
            &c,
            "kakaotalk",
            &kakao_info(),
            &recipient(&p, None),
            noon(),
        ));
        assert_eq!(reason.code(), "no_content");
        assert_eq!(
            reason.to_string(),
            "this channel only sends templates and the campaign has none for it"
        );
    }

    /// WeChat: 5 messages in the 48 h after a customer's message, 3 in the
    /// minute after a follow.
    fn wechat_info() -> ChannelInfo {
        let mut info = whatsapp_info();
        info.free_form = FreeFormRule::WithinWindow(vec![
            WindowRule {
                duration_seconds: 48 * 3600,
                opened_by: vec![WindowOpener::InboundMessage],
                max_messages: Some(5),
            },
            WindowRule {
                duration_seconds: 60,
                opened_by: vec![WindowOpener::Follow, WindowOpener::Interaction],
                max_messages: Some(3),
            },
        ]);
        info
    }

    fn sent_window(decision: Decision) -> Option<WindowOpener> {
        match decision {
            Decision::Send { window, .. } => window,
            other => panic!("expected a send, got {other:?}"),
        }
    }

    #[test]
    fn window_rules_apply_per_opener() {
        let p = mina();
        let now = noon();
        let info = wechat_info();
        let c = winback();
        let at = |ago_ms: i64| now.as_millisecond() - ago_ms;
        let mut r = recipient(&p, None);

        // Followed 30 s ago: the 1-minute follow window carries free-form.
        r.windows = vec![OpenedWindow {
            opener: WindowOpener::Follow,
            opened_ms: at(30_000),
            free_form_sent: 0,
        }];
        assert_eq!(
            sent_window(decide(&c, "whatsapp", &info, &r, now)),
            Some(WindowOpener::Follow)
        );
        // Its 3 are used: without a message window, the template goes.
        r.windows[0].free_form_sent = 3;
        assert_eq!(
            sent_template(decide(&c, "whatsapp", &info, &r, now)).1.name,
            "winback_offer"
        );
        // Followed 2 minutes ago: closed.
        r.windows[0] = OpenedWindow {
            opener: WindowOpener::Follow,
            opened_ms: at(120_000),
            free_form_sent: 0,
        };
        let mut no_template = c.clone();
        no_template.templates.clear();
        assert_eq!(
            skipped(decide(&no_template, "whatsapp", &info, &r, now)),
            SkipReason::WindowClosedNoTemplate
        );
        // A message 47 h ago opens the 48 h window; with the follow window
        // also open, the one closing first is used.
        r.windows = vec![
            OpenedWindow {
                opener: WindowOpener::InboundMessage,
                opened_ms: at(47 * HOUR_MS),
                free_form_sent: 2,
            },
            OpenedWindow {
                opener: WindowOpener::Interaction,
                opened_ms: at(10_000),
                free_form_sent: 0,
            },
        ];
        assert_eq!(
            sent_window(decide(&c, "whatsapp", &info, &r, now)),
            Some(WindowOpener::Interaction)
        );
        r.windows[1].free_form_sent = 3;
        assert_eq!(
            sent_window(decide(&c, "whatsapp", &info, &r, now)),
            Some(WindowOpener::InboundMessage)
        );
        r.windows[0].free_form_sent = 5;
        assert_eq!(
            skipped(decide(&no_template, "whatsapp", &info, &r, now)),
            SkipReason::WindowMessageCapReached
        );
    }

    #[test]
    fn text_length_counts_in_the_channels_unit() {
        let mut info = whatsapp_info();
        info.free_form = FreeFormRule::Always;
        info.limits.max_text_length = 30;
        info.limits.text_unit = TextUnit::Utf16CodeUnits;
        let mut c = winback();
        c.templates.clear();
        // "Hi Mina, 20% off with BACK20" is 28 units; each emoji is 2 UTF-16 units.
        c.message.text = Some("Hi {{name}}, 20% off with BACK20😀".into());
        sent_text(decide(
            &c,
            "whatsapp",
            &info,
            &recipient(&mina(), None),
            noon(),
        ));
        c.message.text = Some("Hi {{name}}, 20% off with BACK20😀😀".into());
        let reason = skipped(decide(
            &c,
            "whatsapp",
            &info,
            &recipient(&mina(), None),
            noon(),
        ));
        assert_eq!(
            reason.to_string(),
            "the content cannot be rendered: the text is 32 UTF-16 code units after filling in the placeholders; `whatsapp` takes at most 30"
        );
    }

    #[test]
    fn template_parameters_follow_the_channels_rules() {
        let c = winback();
        let info = whatsapp_info();
        let skip_for_name = |name: &str| {
            let p = profile(Some(Ok("+821012345678")), &[("name", name)]);
            match decide(&c, "whatsapp", &info, &recipient(&p, None), noon()) {
                Decision::Skip(reason) => Some(reason.to_string()),
                _ => None,
            }
        };
        assert_eq!(skip_for_name("Mina   Kim"), None);
        assert_eq!(
            skip_for_name("Mina\nKim").as_deref(),
            Some(
                "the content cannot be rendered: template parameter `1` contains a line break, which `whatsapp` does not allow in template parameters"
            )
        );
        assert_eq!(
            skip_for_name("Mina\tKim").as_deref(),
            Some(
                "the content cannot be rendered: template parameter `1` contains a tab, which `whatsapp` does not allow in template parameters"
            )
        );
        assert_eq!(
            skip_for_name("Mina     Kim").as_deref(),
            Some(
                "the content cannot be rendered: template parameter `1` has 5 consecutive spaces; `whatsapp` allows at most 4"
            )
        );
        let huge = "x".repeat(1_048_576);
        assert_eq!(
            skip_for_name(&huge).as_deref(),
            Some(
                "the content cannot be rendered: template parameter `1` is 1048576 characters after filling in the placeholders; `whatsapp` takes at most 1024"
            )
        );
        // A channel without rules of its own takes them.
        let mut lenient = whatsapp_info();
        lenient.limits.template_parameters = ParameterRules::default();
        let p = profile(Some(Ok("+821012345678")), &[("name", "a\n\tb")]);
        sent_template(decide(
            &c,
            "whatsapp",
            &lenient,
            &recipient(&p, None),
            noon(),
        ));
    }

    #[test]
    fn frequency_caps_count_the_moving_period_and_name_the_first_broken() {
        let hour = 3600 * 1000;
        let now = 1_000 * hour;
        let caps = [FrequencyCap::per_day(2), FrequencyCap::per_week(3)];
        // One today, one 2 days ago: under both caps.
        assert_eq!(
            frequency_capped(&caps, &[now - hour, now - 48 * hour], now),
            None
        );
        // Two today: the daily cap.
        let reason =
            frequency_capped(&caps, &[now - hour, now - 2 * hour], now).expect("capped by the day");
        assert_eq!(reason.code(), "frequency_cap");
        assert_eq!(
            reason.to_string(),
            "frequency cap: 2 messages on this channel in the last day already (at most 2 per day, across campaigns and triggers)"
        );
        // One today, two earlier this week: the weekly cap.
        match frequency_capped(&caps, &[now - hour, now - 50 * hour, now - 100 * hour], now) {
            Some(SkipReason::FrequencyCap { period, count, .. }) => {
                assert_eq!((period, count), ("week", 3));
            }
            other => panic!("expected the weekly cap, got {other:?}"),
        }
        // A send still queued for later counts too; one older than a week does not.
        assert!(frequency_capped(&caps, &[now + hour, now - hour], now).is_some());
        assert_eq!(
            frequency_capped(&caps, &[now - 8 * 24 * hour; 5], now),
            None
        );
    }
}
