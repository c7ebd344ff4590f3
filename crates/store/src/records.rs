//! What the store keeps and returns: sends and their states, claims,
//! settlements, campaigns, recipient state and webhook events.

use serde::{Deserialize, Serialize};
use switchboard_contract::model::{Content, OutboundMessage, Purpose, WindowOpener};
use switchboard_core::consent::{LedgerChange, LedgerEntry};
use switchboard_core::events::Effect;
use switchboard_core::policy::OpenedWindow;

/// Where a send is in its life.
///
/// ```text
/// pending ─claim─► leased ─┬─► sent                      (never changes back)
/// deferred(due) ─claim─┘   ├─► failed(class)             (a dead letter; retried only by an operator)
/// retrying(due) ─claim─┘   ├─► uncertain                 (may have been delivered; retried only by an operator)
///                          ├─► deferred(due) / retrying(due)
///                          ├─► skipped(reason)           (consent withdrawn, deadline passed)
///                          └─(lease expires)─► claimable again, or uncertain if a
///                                              request was written and the platform
///                                              does not deduplicate
/// any unsettled state ─cancel─► cancelled
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SendState {
    /// Waiting to be claimed.
    Pending,
    /// Claimed by an engine until its lease expires.
    Leased,
    /// Accepted by the platform. Final.
    Sent,
    /// Given up with a class (a dead letter).
    Failed,
    /// May or may not have been delivered; not resent automatically.
    Uncertain,
    /// Put off to a due time (quiet hours, platform "not now", quota, a long retry-after).
    Deferred,
    /// Failed transiently; retried at a due time.
    Retrying,
    /// Not sent, for a reason decided when it came up (consent withdrawn, deadline passed).
    Skipped,
    /// Cancelled by an operator before it was sent.
    Cancelled,
}

impl SendState {
    /// Every state.
    /// The states a one-shot run waits on: the send has not settled yet.
    pub const UNSETTLED: [SendState; 3] =
        [SendState::Pending, SendState::Leased, SendState::Retrying];

    /// Every state.
    pub const ALL: [SendState; 9] = [
        SendState::Pending,
        SendState::Leased,
        SendState::Sent,
        SendState::Failed,
        SendState::Uncertain,
        SendState::Deferred,
        SendState::Retrying,
        SendState::Skipped,
        SendState::Cancelled,
    ];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            SendState::Pending => "pending",
            SendState::Leased => "leased",
            SendState::Sent => "sent",
            SendState::Failed => "failed",
            SendState::Uncertain => "uncertain",
            SendState::Deferred => "deferred",
            SendState::Retrying => "retrying",
            SendState::Skipped => "skipped",
            SendState::Cancelled => "cancelled",
        }
    }

    /// The state with this stored name.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|state| state.as_str() == name)
    }

    /// Whether the engine still has work to do on it now or later.
    pub fn is_open(self) -> bool {
        matches!(
            self,
            SendState::Pending | SendState::Leased | SendState::Deferred | SendState::Retrying
        )
    }
}

/// Another channel of the route, decided when the send was enqueued, to
/// try if this one cannot reach the recipient.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alternative {
    /// The channel.
    pub channel: String,
    /// The recipient's address there.
    pub address: String,
    /// What to send there.
    pub content: Content,
    /// The window free-form text counts against there.
    pub window: Option<WindowOpener>,
    /// Whether that platform deduplicates.
    pub deduplicates: bool,
    /// Not before this time (quiet hours there), ms since the Unix epoch.
    pub not_before_ms: Option<i64>,
    /// Why not before, as the channel declares it.
    #[serde(default)]
    pub not_before_reason: Option<String>,
}

/// A send to put in the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSend {
    /// The message; its idempotency key is the outbox key.
    pub message: OutboundMessage,
    /// The campaign or trigger.
    pub campaign: String,
    /// The recipient's profile.
    pub profile_id: String,
    /// The audience line it came from, for results.
    pub line: Option<u64>,
    /// The channel.
    pub channel: String,
    /// Position in the campaign's route.
    pub step: u32,
    /// The window free-form text counts against.
    pub window: Option<WindowOpener>,
    /// Whether the platform deduplicates on the idempotency key.
    pub deduplicates: bool,
    /// When it may first be claimed; later than now for a deferral.
    pub due_ms: i64,
    /// Why it waits, when `due_ms` is a deferral: a code (`quiet_hours`).
    pub deferred_reason: Option<String>,
    /// The deferral in words (the rule's reason as the channel declares it).
    pub deferred_message: Option<String>,
    /// Never send after this time (triggers): past it, skipped `deadline_passed`.
    pub deadline_ms: Option<i64>,
    /// The remaining channels of the route.
    pub fallback: Vec<Alternative>,
}

/// What happened to a send put in the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Enqueued {
    /// It is new.
    Inserted,
    /// The key was already there (a re-run): nothing changed.
    Existing {
        /// Its state.
        state: SendState,
        /// The channel it is on.
        channel: String,
        /// The platform's id, if sent.
        platform_message_id: Option<String>,
        /// When it was last settled, if it was.
        settled_ms: Option<i64>,
    },
}

/// What an engine asks to claim.
#[derive(Debug, Clone)]
pub struct ClaimRequest {
    /// The channel whose sends to claim.
    pub channel: String,
    /// The engine claiming (a lease belongs to one owner).
    pub owner: String,
    /// The most sends to claim.
    pub limit: u32,
    /// Now, ms since the Unix epoch.
    pub now_ms: i64,
    /// How long the lease lasts.
    pub lease_ms: i64,
    /// Only this campaign's sends (a one-shot run works its own campaign).
    pub campaign: Option<String>,
}

/// A send claimed under a lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedSend {
    /// The message, `attempt` counting this one.
    pub message: OutboundMessage,
    /// The campaign or trigger.
    pub campaign: String,
    /// The profile.
    pub profile_id: String,
    /// The audience line.
    pub line: Option<u64>,
    /// The channel.
    pub channel: String,
    /// Position in the route.
    pub step: u32,
    /// The window free-form text counts against.
    pub window: Option<WindowOpener>,
    /// Whether the platform deduplicates.
    pub deduplicates: bool,
    /// Never send after this.
    pub deadline_ms: Option<i64>,
    /// Rate-limit answers this send has had so far.
    pub rate_limited: u32,
    /// When it was enqueued.
    pub created_ms: i64,
}

/// Why a claimed send is not sent after all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipReason {
    /// The recipient opted out after the send was enqueued.
    OptedOut,
    /// Its deadline passed before it could go out.
    DeadlinePassed,
}

impl SkipReason {
    /// The stored code.
    pub fn code(self) -> &'static str {
        match self {
            SkipReason::OptedOut => "opted_out",
            SkipReason::DeadlinePassed => "deadline_passed",
        }
    }
}

/// How a claimed send ended (this time).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The platform accepted it.
    Sent {
        /// The platform's id.
        platform_message_id: Option<String>,
        /// The platform had already accepted this key: nothing new was sent.
        duplicate: bool,
    },
    /// Given up.
    Failed {
        /// The class, e.g. `window_closed`, `transient`.
        class: String,
        /// What the platform or adapter said.
        message: String,
    },
    /// May or may not have been delivered.
    Uncertain {
        /// Why.
        message: String,
    },
    /// Put off to `due_ms`.
    Deferred {
        /// When it may be tried again.
        due_ms: i64,
        /// Why (`quiet_hours`, `platform_deferred`, `quota`, `rate_limited`, `pair_rate`, `daily_limit`).
        reason: String,
        /// Details.
        message: String,
    },
    /// Failed transiently: try again at `due_ms`.
    Retrying {
        /// When.
        due_ms: i64,
        /// The class of the failure.
        class: String,
        /// What was said.
        message: String,
    },
    /// Never attempted (e.g. the call failed before its request left):
    /// claimable again at `due_ms`, this attempt not counted.
    Released {
        /// When.
        due_ms: i64,
    },
    /// Not sent after all.
    Skipped {
        /// Why.
        reason: SkipReason,
        /// Details.
        message: String,
    },
}

/// A claimed send's outcome, with what else it changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settlement {
    /// The send.
    pub key: String,
    /// How it ended.
    pub outcome: Outcome,
    /// An opt-out the platform reported while refusing it.
    pub consent: Option<LedgerChange>,
    /// Whether the outcome counts a rate-limit answer (sender or recipient scope).
    pub rate_limited: bool,
    /// Try the next channel of the route (the recipient is unreachable here).
    pub fall_back: bool,
}

/// What settling one send did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settle {
    /// The engine no longer held the send (its lease passed to another):
    /// nothing changed.
    NotHeld,
    /// Settled as asked.
    Applied,
    /// Settled, and the next channel of the route was enqueued.
    FellBack,
}

/// A stored send, for reports and the admin API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SendRecord {
    /// The idempotency key.
    pub idempotency_key: String,
    /// Campaign or trigger.
    pub campaign: String,
    /// Profile.
    pub profile_id: String,
    /// Audience line.
    pub line: Option<u64>,
    /// Channel.
    pub channel: String,
    /// Address.
    pub address: String,
    /// Position in the route.
    pub step: u32,
    /// State name.
    pub state: String,
    /// Attempts made.
    pub attempts: u32,
    /// `text` or `template`.
    pub content_kind: String,
    /// When it is due, for pending, deferred and retrying sends.
    pub due_ms: Option<i64>,
    /// Platform message id.
    pub platform_message_id: Option<String>,
    /// Latest delivery state from webhooks.
    pub delivery_state: Option<String>,
    /// Class (failures) or reason (deferrals, skips).
    pub error_class: Option<String>,
    /// Details of the last failure.
    pub error_message: Option<String>,
    /// Whether the recipient moved on to the next channel of the route
    /// (this send is not their outcome).
    pub fell_back: bool,
    /// The engine that settled it last.
    pub settled_by: Option<String>,
    /// When it was last settled.
    pub settled_ms: Option<i64>,
    /// When it last changed.
    pub updated_ms: i64,
}

/// Which sends to list.
#[derive(Debug, Clone, Default)]
pub struct SendQuery {
    /// Only this campaign.
    pub campaign: Option<String>,
    /// Only sends settled at or after this time by an engine other than this one.
    pub settled_by_others_since: Option<(String, i64)>,
    /// Only this state.
    pub state: Option<SendState>,
    /// Only this class or reason.
    pub class: Option<String>,
    /// At most this many (newest first when set).
    pub limit: Option<u32>,
}

/// A campaign as submitted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CampaignRecord {
    /// Its name (the id).
    pub name: String,
    /// The campaign file's text.
    pub definition: String,
    /// Where the audience came from.
    pub audience: String,
    /// `running`, `enqueued`, `cancelled`.
    pub state: String,
    /// When it was submitted.
    pub created_ms: i64,
}

/// Counts for a campaign, by state and by class or reason.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CampaignCounts {
    /// Sends by state.
    pub by_state: std::collections::BTreeMap<String, u64>,
    /// Sends by `state:class` for failures, deferrals, skips and uncertainty.
    pub by_reason: std::collections::BTreeMap<String, u64>,
    /// Sends by delivery state reported in webhooks.
    pub by_delivery: std::collections::BTreeMap<String, u64>,
    /// Failed sends whose recipient went on to the next channel of the
    /// campaign's route: counted in `by_state` as failed, yet not a
    /// recipient the campaign failed to reach.
    pub fell_back: u64,
    /// Recipients by decision outcome (`sent`, `skipped:no_consent`, ...).
    pub decisions: std::collections::BTreeMap<String, u64>,
}

impl CampaignCounts {
    /// Sends the engine still has to work on now or later.
    pub fn open(&self) -> u64 {
        SendState::ALL
            .iter()
            .filter(|state| state.is_open())
            .map(|state| self.by_state.get(state.as_str()).copied().unwrap_or(0))
            .sum()
    }

    /// Sends that still need work soon: everything open except deferrals.
    pub fn unsettled(&self) -> u64 {
        SendState::UNSETTLED
            .iter()
            .map(|state| self.by_state.get(state.as_str()).copied().unwrap_or(0))
            .sum()
    }
}

/// What the store knows of one recipient on one channel, for the policy gate.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecipientState {
    /// Consent events from the ledger.
    pub ledger: Vec<LedgerEntry>,
    /// The windows they opened.
    pub windows: Vec<OpenedWindow>,
}

/// One recipient's decision in a campaign, for "why did this person get nothing?".
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DecisionRecord {
    /// Campaign or trigger.
    pub campaign: String,
    /// Profile.
    pub profile_id: String,
    /// The channel that decided it.
    pub channel: Option<String>,
    /// `sent`, `skipped`, `deferred`, `failed`, `uncertain`, `enqueued`, ...
    pub outcome: String,
    /// A stable code.
    pub reason: Option<String>,
    /// Details.
    pub detail: Option<String>,
    /// When.
    pub decided_ms: i64,
}

/// One webhook event to apply, with what it changes.
#[derive(Debug, Clone)]
pub struct EventRecord {
    /// The platform's event id (redeliveries are dropped on it).
    pub event_id: String,
    /// When it happened by the platform's clock.
    pub occurred_ms: i64,
    /// When the host received it (consent is ordered by this).
    pub received_ms: i64,
    /// What it changes.
    pub effects: Vec<Effect>,
}

/// A consent event from the ledger, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentRecord {
    /// Opted in (true) or out (false).
    pub opted_in: bool,
    /// The purpose, or `None` for every purpose.
    pub purpose: Option<Purpose>,
    /// When the platform says it happened.
    pub occurred_ms: i64,
    /// When the host received it.
    pub received_ms: i64,
    /// Where it came from.
    pub source: String,
}

/// An adapter's durable value to store.
#[derive(Debug, Clone)]
pub struct KvEntry {
    /// The channel whose space it is in.
    pub channel: String,
    /// The key.
    pub key: String,
    /// The value.
    pub value: String,
    /// When it expires, ms since the Unix epoch.
    pub expires_ms: i64,
    /// The most entries the channel may hold.
    pub max_entries: u64,
    /// The most bytes (keys and values) the channel may hold.
    pub max_bytes: u64,
}

/// An event from the brand's own systems about one profile (`POST
/// /api/events`): what triggers listen for (`cart_abandoned`) and cancel on
/// (`order_placed`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProfileEvent {
    /// The sender's id for the event; a second event with the same id is a
    /// replay and changes nothing.
    pub event_id: String,
    /// Whom it is about.
    pub profile_id: String,
    /// What happened, e.g. `cart_abandoned`.
    pub name: String,
    /// When it happened by the sender's clock, ms since the Unix epoch.
    pub occurred_ms: i64,
    /// When the host received it.
    pub received_ms: i64,
    /// Its properties, for templates and addresses (`phone`, `cart_url`).
    pub properties: std::collections::BTreeMap<String, String>,
}
