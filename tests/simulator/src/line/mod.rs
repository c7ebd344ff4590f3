//! The simulated LINE Messaging API.
//!
//! Serves `POST /v2/bot/message/push` and `POST /v2/bot/message/multicast`
//! like `api.line.me` does (plus `GET /v2/bot/message/quota` and
//! `GET /v2/bot/message/quota/consumption`), and posts webhooks signed with
//! the channel secret (`x-line-signature`) to the host.
//!
//! ## Sending
//!
//! Every reply carries `X-Line-Request-Id`. Checks, in order:
//!
//! | Check | HTTP | `message` |
//! |---|---|---|
//! | `Authorization: Bearer` missing or wrong | 401 | `Authentication failed. Confirm that the access token in the authorization header is valid.` |
//! | `X-Line-Retry-Key` present but not a UUID | 400 | `The value for the 'X-Line-Retry-Key' header is invalid` |
//! | injected fault (shared `/_sim/faults`, or `/_sim/line/fail-next` before acceptance) | 500 | `An error occurred in the server` |
//! | over the endpoint's request rate (token bucket; push 2,000/s, multicast 200/s) | 429 | `Too Many Requests` |
//! | body: `to` (push: one user id; multicast: 1–500), `messages` (1–5, `type` `text`, `text` 1–5,000 UTF-16 units) | 400 | `The request body has N error(s)` with `details[]` (`property`, `message`) |
//! | retry key accepted in the last 24 h (simulated clock) | 409 | `The retry key is already accepted`, with `X-Line-Accepted-Request-Id` (and, for push, the original `sentMessages`) |
//! | monthly quota (counted per delivered recipient) would be exceeded | 429 | `You have reached your monthly limit.` |
//!
//! Success: push `{"sentMessages":[{"id","quoteToken"}]}`, multicast `{}`.
//! Each recipient of each message object is recorded as a [`LineMessage`];
//! users who blocked the account (unfollowed) are accepted but recorded as
//! not delivered and not counted against the quota (LINE has no
//! per-message receipts: the sender never learns). A fault injected with
//! `after_accept` records the message, remembers the retry key, and then
//! answers 500: a lost reply, which a retry with the same key turns into a
//! 409. The shared `reset_after_accept_rate` fault (`/_sim/faults`) does
//! the same but resets the connection instead of answering (the request is
//! kept with status 200, and counted in `reset_after_accept`). Every
//! request, accepted or not, is kept as a [`LineRequest`].
//!
//! ## Webhooks
//!
//! `POST`ed to the configured URL with `x-line-signature:
//! base64(HMAC-SHA256(channel secret, raw body))` (see [`line_signature`]),
//! body `{"destination": bot user id, "events": [event]}`: `follow`,
//! `unfollow`, a text `message`, a redelivery of an earlier event (same
//! `webhookEventId`, `deliveryContext.isRedelivery: true`), or an empty
//! `events` list (the console's "Verify" button).
//!
//! ## Control routes (`/_sim/line`)
//!
//! | Route | Body | Does |
//! |---|---|---|
//! | `GET /messages[?to=U…]`, `DELETE /messages` | | accepted messages ([`LineMessage`]) / forget them |
//! | `GET /requests` | | every API request with its status ([`LineRequest`]) |
//! | `GET /stats` | | [`LineStats`] |
//! | `GET /recipients` | | `{"U…": N}`: distinct accepted requests per recipient ([`LineControl::recipient_counts`]) |
//! | `POST /follow`, `POST /unfollow` | `{"user_id"}` | (un)block the account for the user and post the event |
//! | `POST /inbound` | `{"user_id","text"}` | post a text `message` event |
//! | `POST /redeliver` | `{"webhook_event_id"}` | post an earlier event again as a redelivery |
//! | `POST /verify` | | post an empty `events` list |
//! | `GET` / `PUT /webhook` | `{"url":"…"\|null}` | where webhooks go |
//! | `GET` / `PUT /rate` | `{"push_per_second"?,"multicast_per_second"?}` | request rates (0 = unlimited) |
//! | `GET` / `PUT /quota` | `{"monthly_limit"?,"used"?}` | the monthly quota and its usage |
//! | `POST /fail-next` | `{"count":N,"after_accept"?:bool}` | answer the next N send requests with 500 |
//! | `POST /reset` | | clear messages, requests, counters, retry keys, blocks, usage |
//!
//! Defaults ([`LineConfig::default`]): channel access token
//! [`DEFAULT_CHANNEL_ACCESS_TOKEN`], channel secret
//! [`DEFAULT_CHANNEL_SECRET`], push 2,000 requests/s, multicast 200/s, a
//! quota of [`DEFAULT_MONTHLY_QUOTA`] messages.

mod api;
mod control;
pub mod error;
mod ids;
pub mod validate;
mod webhooks;

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use axum::Router;
use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;

use crate::clock::Clock;
use crate::faults::Faults;
use crate::rate_limit::TokenBucket;
use crate::recorder::{Recorder, RejectionCounter};
use crate::webhook_sender::{QueueLimits, RetryPolicy, WebhookError, WebhookSender};

pub use error::{Detail, LineApiError};
pub use webhooks::line_signature;

/// Default channel access token (`Authorization: Bearer sim-line-token`).
pub const DEFAULT_CHANNEL_ACCESS_TOKEN: &str = "sim-line-token";
/// Default channel secret, the key of `x-line-signature`.
pub const DEFAULT_CHANNEL_SECRET: &str = "sim-line-channel-secret";
/// The bot's user id, sent as `destination` in webhooks.
pub const DEFAULT_BOT_USER_ID: &str = "U5b1d0c2a3e4f5061728394a5b6c7d8e9";
/// Default monthly message quota: large enough never to matter unless a
/// test lowers it.
pub const DEFAULT_MONTHLY_QUOTA: u64 = 1_000_000_000;
/// How long an accepted retry key is remembered, in milliseconds (24 h).
pub const RETRY_KEY_RETENTION_MS: i64 = 24 * 60 * 60 * 1000;

/// Configuration of the simulated LINE Messaging API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineConfig {
    /// The only channel access token accepted (`Authorization: Bearer …`).
    pub channel_access_token: String,
    /// Channel secret: the HMAC-SHA256 key of `x-line-signature`.
    pub channel_secret: String,
    /// The bot's user id (`destination` of webhooks).
    pub bot_user_id: String,
    /// Push requests per second (burst = one second's worth); 0 = unlimited.
    pub push_requests_per_second: u32,
    /// Multicast requests per second; 0 = unlimited.
    pub multicast_requests_per_second: u32,
    /// Messages per month (one per delivered recipient).
    pub monthly_quota: u64,
    /// Where signed webhooks go, e.g. `http://127.0.0.1:8080/webhooks/line`.
    pub webhook_url: Option<String>,
}

impl Default for LineConfig {
    fn default() -> Self {
        Self {
            channel_access_token: DEFAULT_CHANNEL_ACCESS_TOKEN.into(),
            channel_secret: DEFAULT_CHANNEL_SECRET.into(),
            bot_user_id: DEFAULT_BOT_USER_ID.into(),
            push_requests_per_second: 2_000,
            multicast_requests_per_second: 200,
            monthly_quota: DEFAULT_MONTHLY_QUOTA,
            webhook_url: None,
        }
    }
}

/// The two sending endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LineEndpoint {
    /// `POST /v2/bot/message/push`.
    Push,
    /// `POST /v2/bot/message/multicast`.
    Multicast,
}

impl LineEndpoint {
    /// The endpoint's path.
    pub fn path(self) -> &'static str {
        match self {
            Self::Push => "/v2/bot/message/push",
            Self::Multicast => "/v2/bot/message/multicast",
        }
    }
}

/// One message object accepted for one recipient.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineMessage {
    /// The message id (for a push, the one in `sentMessages`).
    pub id: String,
    /// The `X-Line-Request-Id` of the request that carried it.
    pub request_id: String,
    /// Push or multicast.
    pub endpoint: LineEndpoint,
    /// The recipient's user id.
    pub to: String,
    /// Always `text` (the simulator serves text only).
    #[serde(rename = "type")]
    pub message_type: String,
    /// The text.
    pub text: String,
    /// The request's `X-Line-Retry-Key`, if it had one.
    pub retry_key: Option<String>,
    /// Whether it reached the user: false when the user blocked the account.
    pub delivered: bool,
    /// When it was accepted, in Unix milliseconds (simulated clock).
    pub received_at_ms: i64,
}

/// One request to a sending endpoint, accepted or not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineRequest {
    /// The `X-Line-Request-Id` answered.
    pub request_id: String,
    /// Push or multicast.
    pub endpoint: LineEndpoint,
    /// The `X-Line-Retry-Key` sent, if any.
    pub retry_key: Option<String>,
    /// The user ids in `to`, when the body could be read.
    pub recipients: Vec<String>,
    /// The HTTP status answered.
    pub status: u16,
    /// LINE's `message` for errors.
    pub error: Option<String>,
    /// When it arrived, in Unix milliseconds (simulated clock).
    pub received_at_ms: i64,
}

/// Counters of the simulated LINE API (`GET /_sim/line/stats`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineStats {
    /// Push requests accepted.
    pub push_accepted: u64,
    /// Multicast requests accepted.
    pub multicast_accepted: u64,
    /// Messages accepted (recipients × message objects).
    pub messages_accepted: u64,
    /// Of those, delivered.
    pub messages_delivered: u64,
    /// Of those, not delivered because the user blocked the account.
    pub messages_blocked: u64,
    /// Requests rejected, by HTTP status (409s are counted in `duplicates`).
    pub rejected: BTreeMap<i64, u64>,
    /// Requests rejected in total.
    pub rejected_total: u64,
    /// 429s for the request rate.
    pub rate_limited: u64,
    /// 429s for the monthly quota.
    pub quota_exceeded: u64,
    /// 409s: replays of an accepted retry key.
    pub duplicates: u64,
    /// Injected 500s (before or after acceptance).
    pub faults: u64,
    /// Accepted requests answered by resetting the connection
    /// (`reset_after_accept_rate` in `/_sim/faults`): no response at all.
    pub reset_after_accept: u64,
    /// Messages counted against the quota this month.
    pub quota_used: u64,
    /// The monthly quota.
    pub monthly_quota: u64,
    /// Webhooks the host accepted.
    pub webhooks_posted: u64,
    /// Webhook posts that failed after all retries.
    pub webhook_failures: u64,
    /// Webhook retries made.
    pub webhook_retries: u64,
}

/// How a scripted failure (`fail_next`) fails a send request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailMode {
    /// Answer 500 before accepting: nothing is sent.
    BeforeAccept,
    /// Accept (record, remember the retry key) and then answer 500, as if
    /// the reply were lost.
    AfterAccept,
}

/// Errors of the LINE control operations.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LineControlError {
    /// Not a LINE user id.
    #[error("invalid user id {0:?}: expected U followed by 32 lowercase hex digits")]
    InvalidUserId(String),
    /// The webhook URL is not an absolute http(s) URL.
    #[error("invalid webhook URL {0:?}: expected an absolute http:// or https:// URL")]
    InvalidUrl(String),
    /// A request field was invalid.
    #[error("invalid request: {0}")]
    Invalid(String),
    /// No event with this `webhookEventId` was posted.
    #[error("no webhook event {0:?} was posted")]
    UnknownEvent(String),
    /// The state changed, but the webhook could not be posted.
    #[error("webhook not delivered: {0}")]
    Webhook(#[from] WebhookError),
}

/// A retry key LINE accepted.
#[derive(Debug, Clone)]
struct AcceptedKey {
    request_id: String,
    at_ms: i64,
    /// `sentMessages` of a push, to repeat on a 409.
    sent_messages: Option<serde_json::Value>,
}

/// Shared state of the simulated LINE API.
pub struct LineState {
    access_token: String,
    channel_secret: String,
    bot_user_id: String,
    webhook_url: RwLock<Option<String>>,
    push_bucket: TokenBucket,
    multicast_bucket: TokenBucket,
    monthly_quota: AtomicU64,
    quota_used: AtomicU64,
    retry_keys: Mutex<HashMap<String, AcceptedKey>>,
    blocked: Mutex<HashSet<String>>,
    scripted: Mutex<VecDeque<FailMode>>,
    /// Posted webhook events by `webhookEventId`, for redelivery.
    events: Mutex<HashMap<String, serde_json::Value>>,
    messages: Recorder<LineMessage>,
    requests: Recorder<LineRequest>,
    rejections: RejectionCounter,
    push_accepted: AtomicU64,
    multicast_accepted: AtomicU64,
    messages_accepted: AtomicU64,
    messages_delivered: AtomicU64,
    messages_blocked: AtomicU64,
    rate_limited: AtomicU64,
    quota_exceeded: AtomicU64,
    duplicates: AtomicU64,
    faults_injected: AtomicU64,
    reset_after_accept: AtomicU64,
    sender: WebhookSender,
    clock: Arc<Clock>,
    faults: Arc<Faults>,
}

impl std::fmt::Debug for LineState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LineState")
            .field("bot_user_id", &self.bot_user_id)
            .field("webhook_url", &self.webhook_url())
            .finish_non_exhaustive()
    }
}

impl LineState {
    /// Start the platform: its state and its webhook dispatcher.
    pub(crate) fn start(
        config: LineConfig,
        clock: Arc<Clock>,
        faults: Arc<Faults>,
    ) -> anyhow::Result<(Arc<Self>, Vec<JoinHandle<()>>)> {
        if let Some(url) = &config.webhook_url {
            check_url(url)?;
        }
        let (sender, dispatcher) =
            WebhookSender::spawn(RetryPolicy::default(), QueueLimits::default())?;
        let state = Arc::new(Self {
            access_token: config.channel_access_token,
            channel_secret: config.channel_secret,
            bot_user_id: config.bot_user_id,
            webhook_url: RwLock::new(config.webhook_url),
            push_bucket: TokenBucket::new(config.push_requests_per_second),
            multicast_bucket: TokenBucket::new(config.multicast_requests_per_second),
            monthly_quota: AtomicU64::new(config.monthly_quota),
            quota_used: AtomicU64::new(0),
            retry_keys: Mutex::new(HashMap::new()),
            blocked: Mutex::new(HashSet::new()),
            scripted: Mutex::new(VecDeque::new()),
            events: Mutex::new(HashMap::new()),
            messages: Recorder::new(),
            requests: Recorder::new(),
            rejections: RejectionCounter::new(),
            push_accepted: AtomicU64::new(0),
            multicast_accepted: AtomicU64::new(0),
            messages_accepted: AtomicU64::new(0),
            messages_delivered: AtomicU64::new(0),
            messages_blocked: AtomicU64::new(0),
            rate_limited: AtomicU64::new(0),
            quota_exceeded: AtomicU64::new(0),
            duplicates: AtomicU64::new(0),
            faults_injected: AtomicU64::new(0),
            reset_after_accept: AtomicU64::new(0),
            sender,
            clock,
            faults,
        });
        Ok((state, vec![dispatcher]))
    }

    fn webhook_url(&self) -> Option<String> {
        self.webhook_url
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn bucket(&self, endpoint: LineEndpoint) -> &TokenBucket {
        match endpoint {
            LineEndpoint::Push => &self.push_bucket,
            LineEndpoint::Multicast => &self.multicast_bucket,
        }
    }

    fn is_blocked(&self, user_id: &str) -> bool {
        lock(&self.blocked).contains(user_id)
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

fn check_url(url: &str) -> Result<(), LineControlError> {
    if crate::webhook_sender::is_webhook_url(url) {
        Ok(())
    } else {
        Err(LineControlError::InvalidUrl(url.to_owned()))
    }
}

fn check_user_id(user_id: &str) -> Result<String, LineControlError> {
    let trimmed = user_id.trim();
    if validate::is_user_id(trimmed) {
        Ok(trimmed.to_owned())
    } else {
        Err(LineControlError::InvalidUserId(user_id.to_owned()))
    }
}

/// The platform's API routes.
pub(crate) fn api_router(state: Arc<LineState>) -> Router {
    api::router(state)
}

/// The platform's `/_sim/line` control routes.
pub(crate) fn control_router(state: Arc<LineState>) -> Router {
    control::router(state)
}

/// In-process control of the simulated LINE Messaging API: what the
/// `/_sim/line/...` routes do, for tests in the same process. Cheap to
/// clone.
#[derive(Debug, Clone)]
pub struct LineControl {
    state: Arc<LineState>,
}

impl LineControl {
    pub(crate) fn new(state: Arc<LineState>) -> Self {
        Self { state }
    }

    /// The accepted channel access token.
    pub fn channel_access_token(&self) -> &str {
        &self.state.access_token
    }

    /// The channel secret that signs webhooks.
    pub fn channel_secret(&self) -> &str {
        &self.state.channel_secret
    }

    /// The bot's user id (`destination` of webhooks).
    pub fn bot_user_id(&self) -> &str {
        &self.state.bot_user_id
    }

    /// Every accepted message (one per recipient and message object),
    /// oldest first.
    pub fn messages(&self) -> Vec<LineMessage> {
        self.state.messages.snapshot()
    }

    /// Accepted messages to `user_id`.
    pub fn messages_to(&self, user_id: &str) -> Vec<LineMessage> {
        self.state.messages.filtered(|m| m.to == user_id)
    }

    /// Messages that reached `user_id` (not blocked).
    pub fn delivered_to(&self, user_id: &str) -> Vec<LineMessage> {
        self.state
            .messages
            .filtered(|m| m.to == user_id && m.delivered)
    }

    /// Forgets the accepted messages.
    pub fn clear_messages(&self) {
        self.state.messages.clear();
    }

    /// Per recipient user id, how many distinct accepted requests (push or
    /// multicast) were for them (`GET /_sim/line/recipients`): several
    /// message objects in one request count once, and a replay answered
    /// 409 is not counted. Blocked users' messages count (LINE accepted
    /// them).
    pub fn recipient_counts(&self) -> BTreeMap<String, u64> {
        self.state
            .messages
            .recipient_counts(|m| (m.to.clone(), m.request_id.clone()))
    }

    /// Every request to a sending endpoint, accepted or not, oldest first.
    pub fn requests(&self) -> Vec<LineRequest> {
        self.state.requests.snapshot()
    }

    /// All counters.
    pub fn stats(&self) -> LineStats {
        let s = &self.state;
        let sender = s.sender.stats();
        LineStats {
            push_accepted: s.push_accepted.load(Ordering::Relaxed),
            multicast_accepted: s.multicast_accepted.load(Ordering::Relaxed),
            messages_accepted: s.messages_accepted.load(Ordering::Relaxed),
            messages_delivered: s.messages_delivered.load(Ordering::Relaxed),
            messages_blocked: s.messages_blocked.load(Ordering::Relaxed),
            rejected: s.rejections.snapshot(),
            rejected_total: s.rejections.total(),
            rate_limited: s.rate_limited.load(Ordering::Relaxed),
            quota_exceeded: s.quota_exceeded.load(Ordering::Relaxed),
            duplicates: s.duplicates.load(Ordering::Relaxed),
            faults: s.faults_injected.load(Ordering::Relaxed),
            reset_after_accept: s.reset_after_accept.load(Ordering::Relaxed),
            quota_used: s.quota_used.load(Ordering::Relaxed),
            monthly_quota: s.monthly_quota.load(Ordering::Relaxed),
            webhooks_posted: sender.posted,
            webhook_failures: sender.failures,
            webhook_retries: sender.retries,
        }
    }

    /// The user adds (or unblocks) the account: messages reach them again,
    /// and a signed `follow` event is posted. Returns its `webhookEventId`.
    pub async fn follow(&self, user_id: &str) -> Result<String, LineControlError> {
        webhooks::follow(&self.state, user_id).await
    }

    /// The user blocks the account: messages to them are accepted but not
    /// delivered, and a signed `unfollow` event is posted. Returns its
    /// `webhookEventId`.
    pub async fn unfollow(&self, user_id: &str) -> Result<String, LineControlError> {
        webhooks::unfollow(&self.state, user_id).await
    }

    /// The user writes `text` to the account: a signed text `message`
    /// event is posted. Returns its `webhookEventId`.
    pub async fn deliver_text(
        &self,
        user_id: &str,
        text: &str,
    ) -> Result<String, LineControlError> {
        webhooks::text_message(&self.state, user_id, text).await
    }

    /// Posts an earlier event again, as LINE's redelivery does: the same
    /// `webhookEventId`, with `deliveryContext.isRedelivery` true.
    pub async fn redeliver(&self, webhook_event_id: &str) -> Result<(), LineControlError> {
        webhooks::redeliver(&self.state, webhook_event_id).await
    }

    /// Posts an empty `events` list, as the console's "Verify" button does.
    pub async fn verify_webhook(&self) -> Result<(), LineControlError> {
        webhooks::verify(&self.state).await
    }

    /// Blocks (or unblocks) the account for `user_id` without a webhook.
    pub fn set_blocked(&self, user_id: &str, blocked: bool) -> Result<(), LineControlError> {
        let user_id = check_user_id(user_id)?;
        let mut set = lock(&self.state.blocked);
        if blocked {
            set.insert(user_id);
        } else {
            set.remove(&user_id);
        }
        Ok(())
    }

    /// Whether `user_id` blocked the account.
    pub fn is_blocked(&self, user_id: &str) -> bool {
        self.state.is_blocked(user_id)
    }

    /// Sets (or with `None` clears) where webhooks are posted.
    pub fn set_webhook_url(&self, url: Option<&str>) -> Result<(), LineControlError> {
        if let Some(url) = url {
            check_url(url)?;
        }
        *self
            .state
            .webhook_url
            .write()
            .unwrap_or_else(|e| e.into_inner()) = url.map(str::to_owned);
        Ok(())
    }

    /// Where webhooks are posted, if anywhere.
    pub fn webhook_url(&self) -> Option<String> {
        self.state.webhook_url()
    }

    /// Changes the push request rate (0 = unlimited) and refills its bucket.
    pub fn set_push_rate(&self, requests_per_second: u32) {
        self.state.push_bucket.set_rate(requests_per_second);
    }

    /// Changes the multicast request rate (0 = unlimited).
    pub fn set_multicast_rate(&self, requests_per_second: u32) {
        self.state.multicast_bucket.set_rate(requests_per_second);
    }

    /// The push request rate (0 = unlimited).
    pub fn push_rate(&self) -> u32 {
        self.state.push_bucket.rate()
    }

    /// The multicast request rate (0 = unlimited).
    pub fn multicast_rate(&self) -> u32 {
        self.state.multicast_bucket.rate()
    }

    /// Sets the monthly quota, in messages.
    pub fn set_monthly_quota(&self, messages: u64) {
        self.state.monthly_quota.store(messages, Ordering::Relaxed);
    }

    /// Sets how much of the quota is used this month.
    pub fn set_quota_used(&self, messages: u64) {
        self.state.quota_used.store(messages, Ordering::Relaxed);
    }

    /// How much of the quota is used this month.
    pub fn quota_used(&self) -> u64 {
        self.state.quota_used.load(Ordering::Relaxed)
    }

    /// Fails the next `count` send requests (that pass authentication) with
    /// a 500, before or after accepting them.
    pub fn fail_next(&self, count: usize, mode: FailMode) {
        lock(&self.state.scripted).extend(std::iter::repeat_n(mode, count));
    }

    /// Scripted failures not used yet.
    pub fn pending_failures(&self) -> usize {
        lock(&self.state.scripted).len()
    }

    /// Waits until no webhook is being posted, or `timeout` passes. Returns
    /// whether the sender became idle.
    pub async fn wait_for_webhooks(&self, timeout: Duration) -> bool {
        self.state.sender.wait_idle(timeout).await
    }

    /// Clears messages, requests, counters, accepted retry keys, blocks,
    /// scripted failures, remembered events and quota usage. Configuration
    /// (token, secret, webhook URL, rates, quota) is kept.
    pub fn reset(&self) {
        let s = &self.state;
        s.messages.clear();
        s.requests.clear();
        s.rejections.clear();
        for counter in [
            &s.push_accepted,
            &s.multicast_accepted,
            &s.messages_accepted,
            &s.messages_delivered,
            &s.messages_blocked,
            &s.rate_limited,
            &s.quota_exceeded,
            &s.duplicates,
            &s.faults_injected,
            &s.reset_after_accept,
            &s.quota_used,
        ] {
            counter.store(0, Ordering::Relaxed);
        }
        s.sender.reset_stats();
        lock(&s.retry_keys).clear();
        lock(&s.blocked).clear();
        lock(&s.scripted).clear();
        lock(&s.events).clear();
    }

    /// The shared state (for this module's own helpers).
    #[allow(dead_code)]
    pub(crate) fn state(&self) -> &Arc<LineState> {
        &self.state
    }
}

#[cfg(test)]
mod tests;
