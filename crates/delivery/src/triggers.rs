//! Triggers: events from the brand's systems, through the same policy gate
//! into the same outbox as campaigns.
//!
//! An event is recorded once (a replayed event id does nothing), then:
//!
//! 1. every trigger it **cancels** (`cancel_on`) cancels that profile's
//!    sends not yet gone out that came from earlier events;
//! 2. every trigger it **starts** (`event`) decides the profile, read from
//!    the event's properties, at the time the message is due (the event's
//!    time plus the wait): consent, windows, quiet hours and frequency
//!    caps as for a campaign. The send goes in the outbox with that due
//!    time and a deadline, under a key made from the event's id. A
//!    cancelling event already recorded for the profile since the event,
//!    or a deadline already past, skips it with the reason.
//!
//! Nothing is held in memory: a wait is a due time in the outbox, so a
//! restart, or another node, sends it on time; a cancel reaches the send
//! wherever it waits.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;

use jiff::Timestamp;
use serde::Serialize;
use switchboard_core::campaign::{Campaign, Trigger, trigger_key};
use switchboard_core::ingest::{AddressLookup, Profile, profile_from_fields};
use switchboard_store::{DecisionRecord, Enqueued, ProfileEvent, Store};

use crate::activation::{self, Known, Outbox, Plan};

/// What one event did, per trigger, as `POST /api/events` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EventResult {
    /// The event's id.
    pub event_id: String,
    /// `accepted`, or `duplicate` when the id was seen before (nothing done).
    pub status: &'static str,
    /// What each trigger it concerned did.
    pub actions: Vec<TriggerAction>,
}

/// What one trigger did with one event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TriggerAction {
    /// The triggered campaign.
    pub trigger: String,
    /// `scheduled`, `skipped`, `cancelled` or `already_queued`.
    pub outcome: &'static str,
    /// A stable code for skips (`deadline_passed`, `cancelled_by_event`,
    /// `no_consent`, `frequency_cap`, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The reason in words.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The channel a send was put on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    /// The send's key, for `GET /api/sends/{key}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// When it is due, ms since the Unix epoch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub due_ms: Option<i64>,
    /// The keys of the sends a cancelling event cancelled.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cancelled: Vec<String>,
}

impl TriggerAction {
    fn new(trigger: &str, outcome: &'static str) -> Self {
        Self {
            trigger: trigger.to_owned(),
            outcome,
            reason: None,
            message: None,
            channel: None,
            key: None,
            due_ms: None,
            cancelled: Vec::new(),
        }
    }

    fn skipped(trigger: &str, reason: &str, message: String) -> Self {
        Self {
            reason: Some(reason.to_owned()),
            message: Some(message),
            ..Self::new(trigger, "skipped")
        }
    }
}

/// What handling a batch of events did.
#[derive(Debug, Default)]
pub struct Handled {
    /// Per event, in the order given.
    pub results: Vec<EventResult>,
    /// Channels that got new sends (their lanes should look now).
    pub channels: HashSet<String>,
}

/// Record `events` and run every trigger of `triggers` they start or
/// cancel; see the [module docs](self). `now_ms` is when they arrived.
pub async fn handle_events(
    outbox: Outbox<'_>,
    triggers: &[Campaign],
    events: Vec<ProfileEvent>,
    now_ms: i64,
) -> anyhow::Result<Handled> {
    let store = outbox.store;
    let new = store.record_profile_events(events.clone()).await?;
    let mut handled = Handled::default();
    for (index, (event, new)) in events.into_iter().zip(new).enumerate() {
        if !new {
            handled.results.push(EventResult {
                event_id: event.event_id,
                status: "duplicate",
                actions: Vec::new(),
            });
            continue;
        }
        let mut actions = Vec::new();
        for campaign in triggers {
            let Some(trigger) = &campaign.trigger else {
                continue;
            };
            if trigger.cancel_on.contains(&event.name) {
                actions.push(cancel(store, campaign, trigger, &event, now_ms).await?);
            }
            if trigger.event == event.name {
                let action = start(
                    outbox,
                    campaign,
                    trigger,
                    &event,
                    index as u64 + 1,
                    now_ms,
                    &mut handled.channels,
                )
                .await?;
                actions.push(action);
            }
        }
        handled.results.push(EventResult {
            event_id: event.event_id,
            status: "accepted",
            actions,
        });
    }
    Ok(handled)
}

/// Cancel the profile's sends of `campaign` that came from events no later
/// than this one.
async fn cancel(
    store: &std::sync::Arc<dyn Store>,
    campaign: &Campaign,
    trigger: &Trigger,
    event: &ProfileEvent,
    now_ms: i64,
) -> anyhow::Result<TriggerAction> {
    let reason = format!(
        "cancelled: `{}` (event {}) arrived for this profile before the message went out",
        event.name, event.event_id
    );
    let cancelled = store
        .cancel_profile_sends(
            &campaign.name,
            &event.profile_id,
            event.occurred_ms.saturating_add(trigger.deadline_ms),
            &reason,
            now_ms,
        )
        .await?;
    Ok(TriggerAction {
        message: (!cancelled.is_empty()).then_some(reason),
        cancelled,
        ..TriggerAction::new(&campaign.name, "cancelled")
    })
}

/// Decide and enqueue the message `event` starts.
async fn start(
    outbox: Outbox<'_>,
    campaign: &Campaign,
    trigger: &Trigger,
    event: &ProfileEvent,
    index: u64,
    now_ms: i64,
    channels: &mut HashSet<String>,
) -> anyhow::Result<TriggerAction> {
    let store = outbox.store;
    let name = campaign.name.as_str();
    let decide =
        |outcome: &str, channel: Option<&str>, reason: Option<&str>, detail| DecisionRecord {
            campaign: name.to_owned(),
            profile_id: event.profile_id.clone(),
            channel: channel.map(str::to_owned),
            outcome: outcome.to_owned(),
            reason: reason.map(str::to_owned),
            detail,
            decided_ms: now_ms,
        };
    let skip = |reason: String, message: String, channel: Option<String>| {
        let decision = decide(
            "skipped",
            channel.as_deref(),
            Some(&reason),
            Some(message.clone()),
        );
        async move {
            store.enqueue(Vec::new(), vec![decision]).await?;
            anyhow::Ok(TriggerAction {
                channel,
                ..TriggerAction::skipped(name, &reason, message)
            })
        }
    };

    let due_ms = event.occurred_ms.saturating_add(trigger.wait_ms);
    let deadline_ms = event.occurred_ms.saturating_add(trigger.deadline_ms);
    if now_ms > deadline_ms {
        return skip(
            "deadline_passed".into(),
            format!(
                "the event arrived {} after it happened, past the trigger's deadline of {}",
                minutes(now_ms - event.occurred_ms),
                minutes(trigger.deadline_ms)
            ),
            None,
        )
        .await;
    }
    let cancelling = store
        .profile_events(
            &event.profile_id,
            trigger.cancel_on.clone(),
            event.occurred_ms,
            i64::MAX,
        )
        .await?;
    if let Some(first) = cancelling.first() {
        return skip(
            "cancelled_by_event".into(),
            format!(
                "`{}` (event {}) for this profile came after this event",
                first.name, first.event_id
            ),
            None,
        )
        .await;
    }
    let source = PathBuf::from(format!("event {}", event.event_id));
    let profile = match profile_from_fields(&source, index, &event.profile_id, &event.properties) {
        Ok((profile, _field_problems)) => profile,
        Err(problems) => {
            let message = problems
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ");
            return skip("invalid_event".into(), message, None).await;
        }
    };
    let states = load_states(outbox, campaign, &profile).await?;
    let chunk = std::slice::from_ref(&profile);
    let recent =
        activation::load_recent(store, outbox.infos, outbox.settings, campaign, chunk).await?;
    let at = Timestamp::from_millisecond(due_ms.max(now_ms)).unwrap_or_else(|_| Timestamp::now());
    let known = Known {
        states: &states,
        recent: &recent,
    };
    match activation::plan(
        campaign,
        outbox.infos,
        outbox.settings,
        &profile,
        &known,
        at,
    ) {
        Plan::Skip { channel, reason } => {
            skip(reason.code().into(), reason.to_string(), channel).await
        }
        Plan::NoChannel => {
            skip(
                "no_channel".into(),
                "no channel of the route is loaded".into(),
                None,
            )
            .await
        }
        Plan::Send(send) => {
            let mut send = *send;
            send.message.idempotency_key =
                trigger_key(name, &event.profile_id, &event.event_id, &send.channel);
            send.line = None;
            send.due_ms = send.due_ms.max(due_ms);
            send.deadline_ms = Some(deadline_ms);
            let channel = send.channel.clone();
            let key = send.message.idempotency_key.clone();
            let due = send.due_ms;
            let decision = decide("enqueued", Some(&channel), None, None);
            let enqueued = store.enqueue(vec![send], vec![decision]).await?;
            channels.insert(channel.clone());
            let outcome = match enqueued.first() {
                Some(Enqueued::Existing { .. }) => "already_queued",
                _ => "scheduled",
            };
            Ok(TriggerAction {
                channel: Some(channel),
                key: Some(key),
                due_ms: Some(due),
                ..TriggerAction::new(name, outcome)
            })
        }
    }
}

/// The profile's consent and window state on every channel of the route.
async fn load_states(
    outbox: Outbox<'_>,
    campaign: &Campaign,
    profile: &Profile,
) -> anyhow::Result<activation::States> {
    let mut states = activation::States::new();
    for channel in &campaign.route {
        let Some(info) = outbox.infos.get(channel) else {
            continue;
        };
        let AddressLookup::Found(address) = profile.address_for(channel, info.address_kind) else {
            continue;
        };
        let found = outbox
            .store
            .recipient_states(channel, vec![address])
            .await?;
        for (address, state) in found {
            states.insert((channel.clone(), address), state);
        }
    }
    Ok(states)
}

/// A duration in whole minutes, or seconds when under one, for messages.
fn minutes(ms: i64) -> String {
    if ms < 60_000 {
        format!("{} s", ms / 1_000)
    } else {
        format!("{} min", ms / 60_000)
    }
}

/// The triggers among recorded campaigns: those with a `[trigger]` that are
/// listening (not cancelled), parsed. A definition that no longer parses
/// is reported and left out.
pub fn listening(records: &[switchboard_store::CampaignRecord]) -> Vec<Campaign> {
    records
        .iter()
        .filter(|record| record.state == LISTENING)
        .filter_map(|record| {
            let source = PathBuf::from(format!("trigger {}", record.name));
            match switchboard_core::campaign::parse_campaign(&source, &record.definition) {
                Ok(campaign) if campaign.trigger.is_some() => Some(campaign),
                Ok(_) => None,
                Err(error) => {
                    tracing::error!(%error, "a recorded trigger no longer parses; ignored");
                    None
                }
            }
        })
        .collect()
}

/// The state of a triggered campaign that acts on events.
pub const LISTENING: &str = "listening";

/// Event properties as given, for [`ProfileEvent::properties`]: strings
/// as they are, numbers and booleans written out, anything else refused.
pub fn properties_from_json(
    value: &serde_json::Map<String, serde_json::Value>,
) -> Result<BTreeMap<String, String>, String> {
    value
        .iter()
        .filter(|(_, value)| !value.is_null())
        .map(|(name, value)| match value {
            serde_json::Value::String(text) => Ok((name.clone(), text.clone())),
            serde_json::Value::Number(number) => Ok((name.clone(), number.to_string())),
            serde_json::Value::Bool(flag) => Ok((name.clone(), flag.to_string())),
            _ => Err(format!(
                "property `{name}` is {}: give strings, numbers or booleans",
                if value.is_array() {
                    "a list"
                } else {
                    "an object"
                }
            )),
        })
        .collect()
}
