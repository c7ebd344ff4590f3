//! Activation: a campaign over an audience, recipient by recipient through
//! the policy gate into the outbox.
//!
//! The audience streams through in chunks, read a few chunks ahead on a
//! thread of its own (`read_ahead.rs`): each chunk's consent and window
//! state is read in one query per channel (and only for recipients the
//! store knows anything about), every recipient is decided on every channel
//! of the route, and the chunk's sends and decisions are written in one
//! transaction. Memory stays flat whatever the audience's size.
//!
//! A recipient's first channel that may send (or defer, for quiet hours)
//! carries the message; the later channels that may send are kept with it
//! as its fall-back, used if the platform reports the recipient
//! unreachable. A recipient no channel may send to is skipped with the
//! first reason a channel that knew them gave.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use jiff::Timestamp;
use switchboard_contract::model::{ChannelInfo, OutboundMessage};
use switchboard_core::campaign::{self, Campaign};
use switchboard_core::consent;
use switchboard_core::ingest::{AddressLookup, AudienceReader, AudienceRow, Profile};
use switchboard_core::policy::{self, Decision, FrequencyCap, Recipient, SkipReason};
use switchboard_store::{
    Alternative, DecisionRecord, Enqueued, NewSend, RecipientState, SendState, Store, now_ms,
};

use crate::read_ahead::ReadAhead;
use crate::results::ResultLine;
use crate::settings::DeliverySettings;

/// Profiles decided and written per transaction.
const CHUNK: usize = 1_000;
/// Row problems kept word for word for the summary.
const SAMPLE_ERRORS: usize = 5;

/// What enqueueing an audience did.
#[derive(Debug, Clone, Default)]
pub struct EnqueueReport {
    /// Profiles read.
    pub recipients: u64,
    /// Sends put in the outbox.
    pub inserted: u64,
    /// Sends already in the outbox from an earlier run and not yet settled.
    pub already_queued: u64,
    /// Row problems reported.
    pub row_problems: u64,
    /// The first few, word for word.
    pub row_errors: Vec<String>,
    /// The channels sends were put on.
    pub channels: HashSet<String>,
    /// The campaign was cancelled while its audience was being enqueued:
    /// the rest of the audience was not read, and what was queued meanwhile
    /// was cancelled too.
    pub cancelled: bool,
}

/// The state `cancel_campaign` gives a cancelled campaign.
pub const CANCELLED: &str = "cancelled";

/// Where activation writes, and what it calls as it goes.
pub struct Sinks<'a> {
    /// Receives each recipient's line as soon as it is decided (skips,
    /// rejected rows, sends settled by an earlier run). Sends put in the
    /// outbox get their line when they settle.
    pub line: &'a mut (dyn FnMut(&ResultLine) -> std::io::Result<()> + Send),
    /// Called after each chunk with the channels it put sends on.
    pub enqueued: &'a (dyn Fn(&HashSet<String>) + Send + Sync),
}

/// Where activation puts sends and what it decides them by.
#[derive(Clone, Copy)]
pub struct Outbox<'a> {
    /// The outbox and decision log.
    pub store: &'a Arc<dyn Store>,
    /// What each loaded channel declared.
    pub infos: &'a BTreeMap<String, ChannelInfo>,
    /// The operator's delivery settings (consent policy per channel, ...).
    pub settings: &'a DeliverySettings,
}

/// Decide every recipient of `reader` for `campaign` and put the sends in
/// the outbox (or, with `dry_run`, only report what would happen).
/// `started_ms` is when the run began: a send an engine settled since then
/// gets its line from that engine, not from here.
pub async fn enqueue(
    outbox: Outbox<'_>,
    campaign: &Campaign,
    reader: AudienceReader,
    dry_run: bool,
    started_ms: i64,
    sinks: Sinks<'_>,
) -> anyhow::Result<EnqueueReport> {
    let Outbox {
        store,
        infos,
        settings,
    } = outbox;
    let mut report = EnqueueReport::default();
    let mut known: HashMap<String, HashSet<String>> = HashMap::new();
    for channel in &campaign.route {
        if infos.contains_key(channel) {
            known.insert(channel.clone(), store.addresses_with_state(channel).await?);
        }
    }
    let mut reader = ReadAhead::start(reader)
        .map_err(|err| anyhow::anyhow!("cannot start the thread that reads the audience: {err}"))?;
    let mut chunk: Vec<Profile> = Vec::with_capacity(CHUNK);
    let mut done = false;
    while !done {
        chunk.clear();
        while chunk.len() < CHUNK {
            let Some(row) = reader.next_row().await else {
                done = true;
                break;
            };
            match row? {
                AudienceRow::Profile(profile, errors) => {
                    note_errors(&mut report, &errors);
                    chunk.push(profile);
                }
                AudienceRow::Rejected(errors) => {
                    note_errors(&mut report, &errors);
                    if let Some(first) = errors.first() {
                        let mut line = ResultLine::new(first.line, None, "rejected");
                        line.reason = Some(if first.field.is_empty() {
                            "invalid_row".to_owned()
                        } else {
                            format!("invalid_{}", first.field)
                        });
                        line.message = Some(first.to_string());
                        (sinks.line)(&line)?;
                    }
                }
            }
        }
        if chunk.is_empty() {
            continue;
        }
        // Cancelled meanwhile (on this host or another sharing the
        // outbox): the rest of the audience is not enqueued.
        if !dry_run && cancelled(store, &campaign.name).await? {
            report.cancelled = true;
            break;
        }
        report.recipients += chunk.len() as u64;
        let states = load_states(store, infos, campaign, &chunk, &known).await?;
        let recent = load_recent(store, infos, settings, campaign, &chunk).await?;
        let now = Timestamp::now();
        let mut sends = Vec::new();
        let mut decisions = Vec::new();
        let mut planned: Vec<(usize, &Profile)> = Vec::new();
        for profile in &chunk {
            let known = Known {
                states: &states,
                recent: &recent,
            };
            match plan(campaign, infos, settings, profile, &known, now) {
                Plan::Send(send) => {
                    if dry_run {
                        let mut line =
                            ResultLine::new(profile.line, Some(&profile.profile_id), "would_send");
                        line.channel = Some(send.channel.clone());
                        line.content = Some(send.message.content.kind().to_owned());
                        if let Some(reason) = &send.deferred_reason {
                            line.outcome = "deferred".into();
                            line.reason = Some(reason.clone());
                        }
                        (sinks.line)(&line)?;
                        continue;
                    }
                    decisions.push(decision(
                        campaign,
                        profile,
                        Some(&send.channel),
                        "enqueued",
                        None,
                        None,
                    ));
                    planned.push((sends.len(), profile));
                    sends.push(*send);
                }
                Plan::Skip { channel, reason } => {
                    let mut line =
                        ResultLine::new(profile.line, Some(&profile.profile_id), "skipped");
                    line.channel = channel.clone();
                    line.reason = Some(reason.code().to_owned());
                    line.message = Some(reason.to_string());
                    (sinks.line)(&line)?;
                    if !dry_run {
                        decisions.push(decision(
                            campaign,
                            profile,
                            channel.as_deref(),
                            "skipped",
                            Some(reason.code()),
                            Some(reason.to_string()),
                        ));
                    }
                }
                Plan::NoChannel => {
                    let mut line =
                        ResultLine::new(profile.line, Some(&profile.profile_id), "skipped");
                    line.reason = Some("no_channel".into());
                    line.message = Some("no channel of the route is loaded".into());
                    (sinks.line)(&line)?;
                }
            }
        }
        if dry_run {
            continue;
        }
        let channels: HashSet<String> = sends.iter().map(|s| s.channel.clone()).collect();
        let results = store.enqueue(sends.clone(), decisions).await?;
        for ((index, profile), result) in planned.iter().zip(&results) {
            let send = &sends[*index];
            let deferred = |line_reason: &str| {
                let mut line = ResultLine::new(profile.line, Some(&profile.profile_id), "deferred");
                line.channel = Some(send.channel.clone());
                line.content = Some(send.message.content.kind().to_owned());
                line.reason = Some(line_reason.to_owned());
                line.message = Some(format!(
                    "{}; a running `switchboard serve` sends it then",
                    send.deferred_message.clone().unwrap_or_else(|| format!(
                        "waits until {}",
                        Timestamp::from_millisecond(send.due_ms)
                            .map_or_else(|_| send.due_ms.to_string(), |t| t.to_string())
                    ))
                ));
                line
            };
            match result {
                Enqueued::Inserted => {
                    report.inserted += 1;
                    if let Some(reason) = &send.deferred_reason {
                        (sinks.line)(&deferred(reason))?;
                    }
                }
                Enqueued::Existing {
                    state: SendState::Deferred,
                    ..
                } => {
                    report.already_queued += 1;
                    (sinks.line)(&deferred("deferred"))?;
                }
                Enqueued::Existing { state, .. } if state.is_open() => report.already_queued += 1,
                Enqueued::Existing {
                    settled_ms: Some(settled),
                    ..
                } if *settled >= started_ms => report.already_queued += 1,
                Enqueued::Existing {
                    state,
                    channel,
                    platform_message_id,
                    ..
                } => {
                    let outcome = if *state == SendState::Sent {
                        "already_sent"
                    } else {
                        "already_settled"
                    };
                    let mut line =
                        ResultLine::new(profile.line, Some(&profile.profile_id), outcome);
                    line.channel = Some(channel.clone());
                    line.content = Some(send.message.content.kind().to_owned());
                    line.platform_message_id = platform_message_id.clone();
                    line.reason = Some(state.as_str().to_owned());
                    (sinks.line)(&line)?;
                }
            }
        }
        report.channels.extend(channels.iter().cloned());
        (sinks.enqueued)(&channels);
    }
    // A cancel that came while the last chunk was being written missed
    // that chunk's sends: cancel them too, before they go out.
    if !dry_run && (report.cancelled || cancelled(store, &campaign.name).await?) {
        report.cancelled = true;
        store.cancel_campaign(&campaign.name, now_ms()).await?;
    }
    Ok(report)
}

/// Whether `name` was cancelled.
async fn cancelled(store: &Arc<dyn Store>, name: &str) -> anyhow::Result<bool> {
    Ok(store
        .campaign(name)
        .await?
        .is_some_and(|record| record.state == CANCELLED))
}

fn note_errors(report: &mut EnqueueReport, errors: &[switchboard_core::ingest::RowError]) {
    report.row_problems += errors.len() as u64;
    for error in errors {
        if report.row_errors.len() < SAMPLE_ERRORS {
            report.row_errors.push(error.to_string());
        }
    }
}

fn decision(
    campaign: &Campaign,
    profile: &Profile,
    channel: Option<&str>,
    outcome: &str,
    reason: Option<&str>,
    detail: Option<String>,
) -> DecisionRecord {
    DecisionRecord {
        campaign: campaign.name.clone(),
        profile_id: profile.profile_id.clone(),
        channel: channel.map(str::to_owned),
        outcome: outcome.to_owned(),
        reason: reason.map(str::to_owned),
        detail,
        decided_ms: now_ms(),
    }
}

/// Consent and window state of a chunk's recipients, per channel and address.
pub(crate) type States = HashMap<(String, String), RecipientState>;

/// Frequency caps of the route's channels that have any, with when each of
/// a chunk's profiles was last sent to there, by channel.
pub(crate) type Recent = HashMap<String, CappedChannel>;

/// One capped channel: its caps, and the chunk's recent sends by profile id.
pub(crate) struct CappedChannel {
    caps: Vec<FrequencyCap>,
    sent_ms: HashMap<String, Vec<i64>>,
}

/// What the store knows of a chunk's recipients, for the policy gate.
pub(crate) struct Known<'a> {
    pub states: &'a States,
    pub recent: &'a Recent,
}

/// The caps of every loaded channel of the route that has any, with the
/// chunk's sends there over the longest cap's period.
pub(crate) async fn load_recent(
    store: &Arc<dyn Store>,
    infos: &BTreeMap<String, ChannelInfo>,
    settings: &DeliverySettings,
    campaign: &Campaign,
    chunk: &[Profile],
) -> anyhow::Result<Recent> {
    let mut recent = Recent::new();
    for channel in &campaign.route {
        let caps = settings.lane(channel).frequency_caps;
        let Some(period) = caps.iter().map(|cap| cap.period_ms).max() else {
            continue;
        };
        if !infos.contains_key(channel) {
            continue;
        }
        let ids: Vec<String> = chunk.iter().map(|p| p.profile_id.clone()).collect();
        let sent_ms = store
            .recent_sends_to(channel, ids, now_ms().saturating_sub(period))
            .await?;
        recent.insert(channel.clone(), CappedChannel { caps, sent_ms });
    }
    Ok(recent)
}

pub(crate) async fn load_states(
    store: &Arc<dyn Store>,
    infos: &BTreeMap<String, ChannelInfo>,
    campaign: &Campaign,
    chunk: &[Profile],
    known: &HashMap<String, HashSet<String>>,
) -> anyhow::Result<States> {
    let mut states = States::new();
    for channel in &campaign.route {
        let (Some(info), Some(known)) = (infos.get(channel), known.get(channel)) else {
            continue;
        };
        if known.is_empty() {
            continue;
        }
        let addresses: Vec<String> = chunk
            .iter()
            .filter_map(|p| match p.address_for(channel, info.address_kind) {
                AddressLookup::Found(address) if known.contains(&address) => Some(address),
                _ => None,
            })
            .collect();
        if addresses.is_empty() {
            continue;
        }
        for (address, state) in store.recipient_states(channel, addresses).await? {
            states.insert((channel.clone(), address), state);
        }
    }
    Ok(states)
}

/// What to do with one recipient.
pub(crate) enum Plan {
    /// Put this send in the outbox (with its fall-back channels).
    Send(Box<NewSend>),
    /// No channel may send; the first reason a channel that knew them gave.
    Skip {
        channel: Option<String>,
        reason: SkipReason,
    },
    /// No channel of the route is loaded.
    NoChannel,
}

pub(crate) fn plan(
    campaign: &Campaign,
    infos: &BTreeMap<String, ChannelInfo>,
    settings: &DeliverySettings,
    profile: &Profile,
    known: &Known<'_>,
    now: Timestamp,
) -> Plan {
    let states = known.states;
    let mut primary: Option<NewSend> = None;
    let mut first_skip: Option<(String, SkipReason)> = None;
    let empty = RecipientState::default();
    for (step, channel) in campaign.route.iter().enumerate() {
        let Some(info) = infos.get(channel) else {
            continue;
        };
        let address = match profile.address_for(channel, info.address_kind) {
            AddressLookup::Found(address) => Some(address),
            _ => None,
        };
        let state = address
            .as_ref()
            .and_then(|a| states.get(&(channel.clone(), a.clone())))
            .unwrap_or(&empty);
        let view = Recipient {
            profile,
            consent: consent::resolve(
                profile.consent(channel, campaign.purpose),
                &state.ledger,
                campaign.purpose,
                settings.consent(channel).platform_overrides_cdp_no,
            ),
            windows: state.windows.clone(),
        };
        let capped = known.recent.get(channel).and_then(|capped| {
            policy::frequency_capped(
                &capped.caps,
                capped
                    .sent_ms
                    .get(&profile.profile_id)
                    .map_or(&[][..], Vec::as_slice),
                now.as_millisecond(),
            )
        });
        let verdict = match capped {
            Some(reason) => Decision::Skip(reason),
            None => policy::decide(campaign, channel, info, &view, now),
        };
        let (to, content, window, not_before, deferred_reason) = match verdict {
            Decision::Skip(reason) => {
                // Report the first channel that knew the person; "no
                // address" only when none did.
                let replace = match &first_skip {
                    None => true,
                    Some((_, first)) => {
                        first.code() == "no_address" && reason.code() != "no_address"
                    }
                };
                if replace {
                    first_skip = Some((channel.clone(), reason));
                }
                continue;
            }
            Decision::Defer { until, reason } => {
                // Decide the content now; it goes out when the period ends.
                let later = policy::decide(
                    &Campaign {
                        route: vec![channel.clone()],
                        ..campaign.clone()
                    },
                    channel,
                    &ChannelInfo {
                        quiet_hours: Vec::new(),
                        ..info.clone()
                    },
                    &view,
                    until,
                );
                match later {
                    Decision::Send {
                        to,
                        content,
                        window,
                        ..
                    } => (
                        to,
                        content,
                        window,
                        Some(until.as_millisecond()),
                        Some(reason),
                    ),
                    Decision::Skip(reason) => {
                        first_skip.get_or_insert((channel.clone(), reason));
                        continue;
                    }
                    Decision::Defer { .. } => continue,
                }
            }
            Decision::Send {
                to,
                content,
                window,
                ..
            } => (to, content, window, None, None),
        };
        match &mut primary {
            None => {
                primary = Some(NewSend {
                    message: OutboundMessage {
                        idempotency_key: campaign::idempotency_key(
                            &campaign.name,
                            &profile.profile_id,
                            channel,
                            0,
                        ),
                        to,
                        purpose: campaign.purpose,
                        content,
                        ttl_seconds: campaign.ttl_seconds,
                        attempt: 1,
                    },
                    campaign: campaign.name.clone(),
                    profile_id: profile.profile_id.clone(),
                    line: Some(profile.line),
                    channel: channel.clone(),
                    step: step as u32,
                    window,
                    deduplicates: info.deduplicates,
                    due_ms: not_before.unwrap_or(0),
                    deferred_reason: deferred_reason.as_ref().map(|_| "quiet_hours".to_owned()),
                    deferred_message: deferred_reason.map(|reason| {
                        format!(
                            "{reason}; until {}",
                            not_before
                                .and_then(|t| Timestamp::from_millisecond(t).ok())
                                .map_or_else(String::new, |t| t.to_string())
                        )
                    }),
                    deadline_ms: None,
                    fallback: Vec::new(),
                });
            }
            Some(send) => send.fallback.push(Alternative {
                channel: channel.clone(),
                address: to,
                content,
                window,
                deduplicates: info.deduplicates,
                not_before_ms: not_before,
                not_before_reason: deferred_reason,
            }),
        }
    }
    match (primary, first_skip) {
        (Some(send), _) => Plan::Send(Box::new(send)),
        (None, Some((channel, reason))) => Plan::Skip {
            channel: Some(channel),
            reason,
        },
        (None, None) => Plan::NoChannel,
    }
}
