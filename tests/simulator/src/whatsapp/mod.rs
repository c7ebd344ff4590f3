//! WhatsApp Business Platform — Cloud API.
//!
//! Serves `POST /{version}/{phone-number-id}/messages` like
//! `graph.facebook.com` does, and posts webhooks signed with the app secret
//! (`X-Hub-Signature-256`) to the host. See the crate documentation for the
//! rules enforced and the `/_sim/whatsapp` control routes.

mod api;
mod control;
pub mod error;
mod ids;
pub mod templates;
mod throttle;
pub mod validate;
mod webhooks;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
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

pub use error::{GraphError, codes};
pub use templates::{Template, TemplateCategory};

/// Default access token (`Authorization: Bearer sim-whatsapp-token`).
pub const DEFAULT_ACCESS_TOKEN: &str = "sim-whatsapp-token";
/// Default app secret, the key of the webhook signature.
pub const DEFAULT_APP_SECRET: &str = "sim-whatsapp-app-secret";
/// Default business phone number id.
pub const DEFAULT_PHONE_NUMBER_ID: &str = "100000000000001";
/// The WhatsApp Business Account id sent as `entry[].id` in webhooks.
pub const WABA_ID: &str = "200000000000001";
/// The business display phone number sent in webhook `metadata`.
pub const DISPLAY_PHONE_NUMBER: &str = "15550000001";
/// Length of the customer-service window, in seconds (24 hours).
pub const WINDOW_SECS: i64 = 24 * 60 * 60;
/// Profile name used in webhooks when the control request names none.
pub const DEFAULT_PROFILE_NAME: &str = "Simulated Customer";

/// Configuration of the simulated WhatsApp Cloud API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WhatsAppConfig {
    /// The only access token accepted (`Authorization: Bearer …`).
    pub access_token: String,
    /// App secret: the HMAC-SHA256 key of `X-Hub-Signature-256`.
    pub app_secret: String,
    /// The business phone number id in the request path.
    pub phone_number_id: String,
    /// Throughput limit in messages per second (burst = one second's
    /// worth); 0 = unlimited.
    pub messages_per_second: u32,
    /// Where signed webhooks go, e.g.
    /// `http://127.0.0.1:8080/webhooks/whatsapp`. `None`: no webhooks until
    /// one is set at run time.
    pub webhook_url: Option<String>,
    /// Delay before each of the sent, delivered and read status webhooks.
    pub status_delay_ms: u64,
    /// Whether accepted messages get sent/delivered/read status webhooks.
    pub send_statuses: bool,
    /// `Retry-After` (delta-seconds) sent with every 130429 throughput
    /// refusal. `None` (default): no header, like Meta.
    pub retry_after_secs: Option<u32>,
    /// Pair rate: minimum interval, in milliseconds of the simulated clock,
    /// between two accepted messages to the same recipient; a message sooner
    /// is refused with 131056. Meta's is about one message every 6 seconds
    /// per user (`Some(6_000)`). `None` (default): no pair rate.
    pub pair_interval_ms: Option<u64>,
    /// Messaging limit (tier): unique users that business-initiated
    /// messages (templates to users whose customer-service window is
    /// closed) may reach per moving 24 hours; a template to a new user
    /// beyond it is refused with 131048. Meta's tiers are 250, 2,000,
    /// 10,000 and 100,000. `None` (default): unlimited.
    pub daily_unique_recipients: Option<u64>,
}

impl Default for WhatsAppConfig {
    fn default() -> Self {
        Self {
            access_token: DEFAULT_ACCESS_TOKEN.into(),
            app_secret: DEFAULT_APP_SECRET.into(),
            phone_number_id: DEFAULT_PHONE_NUMBER_ID.into(),
            messages_per_second: 80,
            webhook_url: None,
            status_delay_ms: 50,
            send_statuses: true,
            retry_after_secs: None,
            pair_interval_ms: None,
            daily_unique_recipients: None,
        }
    }
}

/// A message the simulated API accepted (HTTP 200).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AcceptedMessage {
    /// The `wamid.…` id returned to the client.
    pub wamid: String,
    /// `to` exactly as the client sent it.
    pub to: String,
    /// The recipient's WhatsApp id (the digits of `to`).
    pub wa_id: String,
    /// `text` or `template`.
    #[serde(rename = "type")]
    pub message_type: String,
    /// Template name, for templates.
    pub template_name: Option<String>,
    /// Template language code, for templates.
    pub template_language: Option<String>,
    /// Template category (`MARKETING`, `UTILITY`, `AUTHENTICATION`).
    pub template_category: Option<TemplateCategory>,
    /// Template body parameters, in order (empty for text).
    pub parameters: Vec<String>,
    /// The text: `text.body`, or the template body rendered with its
    /// parameters.
    pub text: String,
    /// `biz_opaque_callback_data`, if the client sent one.
    pub callback_data: Option<String>,
    /// When it was accepted, in Unix seconds (simulated clock).
    pub received_at: i64,
    /// When it was accepted, in Unix milliseconds (simulated clock).
    pub received_at_ms: i64,
}

/// Counters of the simulated WhatsApp API (`GET /_sim/whatsapp/stats`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WhatsAppStats {
    /// Messages accepted with HTTP 200.
    pub accepted: u64,
    /// Of those, accepted and then answered by resetting the connection
    /// (`reset_after_accept_rate` in `/_sim/faults`): the client got no
    /// response.
    pub reset_after_accept: u64,
    /// Requests rejected, by Graph error code.
    pub rejected: BTreeMap<i64, u64>,
    /// Requests rejected in total.
    pub rejected_total: u64,
    /// Requests rejected with 130429 (throughput).
    pub rate_limited: u64,
    /// Requests rejected with 131056 (pair rate, `pair_interval_ms`).
    pub pair_rate_limited: u64,
    /// Requests rejected with 131048 (messaging limit,
    /// `daily_unique_recipients`; the simulator sends 131048 for nothing
    /// else).
    pub messaging_limited: u64,
    /// Unique users reached by business-initiated messages (templates
    /// outside the customer-service window) in the last 24 hours: what the
    /// messaging limit counts.
    pub unique_recipients_24h: u64,
    /// Status webhooks (sent/delivered/read) the host accepted.
    pub statuses_posted: u64,
    /// Inbound-message webhooks the host accepted.
    pub inbound_posted: u64,
    /// `user_preferences` webhooks the host accepted.
    pub preferences_posted: u64,
    /// Webhook posts that failed after all retries.
    pub webhook_failures: u64,
    /// Webhook retries made.
    pub webhook_retries: u64,
    /// Status sequences dropped because the queue was full.
    pub webhook_dropped: u64,
    /// Status sequences queued or running now.
    pub webhook_pending: u64,
}

/// A user's marketing-message preference (`user_preferences` webhook).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MarketingPreference {
    /// The user stopped marketing messages; marketing templates now fail
    /// with 131050.
    Stop,
    /// The user resumed marketing messages.
    Resume,
}

impl MarketingPreference {
    /// `stop` or `resume`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stop => "stop",
            Self::Resume => "resume",
        }
    }
}

/// An inbound message from a WhatsApp user, as delivered through the
/// control API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InboundMessage {
    /// Sender's phone number / wa_id (digits, optional leading `+`).
    pub from: String,
    /// Message text.
    pub text: String,
    /// Sender's profile name (default [`DEFAULT_PROFILE_NAME`]).
    #[serde(default)]
    pub name: Option<String>,
    /// When the user wrote, in Unix seconds (default: now). Also the start
    /// of the customer-service window.
    #[serde(default)]
    pub at_unix: Option<i64>,
}

impl InboundMessage {
    /// A text message from `from`, sent now.
    pub fn text(from: impl Into<String>, text: impl Into<String>) -> Self {
        Self {
            from: from.into(),
            text: text.into(),
            name: None,
            at_unix: None,
        }
    }
}

/// Errors of the WhatsApp control operations.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ControlError {
    /// The wa_id is not 7–15 digits (optionally with a leading `+`).
    #[error("invalid wa_id {0:?}: expected 7 to 15 digits, optionally with a leading +")]
    InvalidWaId(String),
    /// The webhook URL is not an absolute http(s) URL.
    #[error("invalid webhook URL {0:?}: expected an absolute http:// or https:// URL")]
    InvalidUrl(String),
    /// A request field was invalid.
    #[error("invalid request: {0}")]
    Invalid(String),
    /// The state changed, but the webhook could not be posted.
    #[error("webhook not delivered: {0}")]
    Webhook(#[from] WebhookError),
}

/// Shared state of the simulated WhatsApp API.
pub(crate) struct WhatsAppState {
    access_token: String,
    app_secret: String,
    phone_number_id: String,
    webhook_url: RwLock<Option<String>>,
    status_delay_ms: AtomicU64,
    send_statuses: AtomicBool,
    bucket: TokenBucket,
    retry_after_secs: RwLock<Option<u32>>,
    throttle: Mutex<throttle::Throttle>,
    /// wa_id → Unix seconds of the user's last message.
    windows: Mutex<HashMap<String, i64>>,
    marketing_stopped: Mutex<HashSet<String>>,
    templates: Mutex<templates::TemplateRegistry>,
    messages: Recorder<AcceptedMessage>,
    rejections: RejectionCounter,
    accepted: AtomicU64,
    reset_after_accept: AtomicU64,
    statuses_posted: AtomicU64,
    inbound_posted: AtomicU64,
    preferences_posted: AtomicU64,
    sender: WebhookSender,
    clock: Arc<Clock>,
    faults: Arc<Faults>,
}

impl WhatsAppState {
    /// Builds the state and spawns its webhook dispatcher.
    pub(crate) fn start(
        config: WhatsAppConfig,
        clock: Arc<Clock>,
        faults: Arc<Faults>,
    ) -> anyhow::Result<(Arc<Self>, JoinHandle<()>)> {
        if let Some(url) = &config.webhook_url {
            check_url(url)?;
        }
        let (sender, dispatcher) =
            WebhookSender::spawn(RetryPolicy::default(), QueueLimits::default())?;
        let state = Arc::new(Self {
            access_token: config.access_token,
            app_secret: config.app_secret,
            phone_number_id: config.phone_number_id,
            webhook_url: RwLock::new(config.webhook_url),
            status_delay_ms: AtomicU64::new(config.status_delay_ms),
            send_statuses: AtomicBool::new(config.send_statuses),
            bucket: TokenBucket::new(config.messages_per_second),
            retry_after_secs: RwLock::new(config.retry_after_secs),
            throttle: Mutex::new(throttle::Throttle::new(
                config.pair_interval_ms,
                config.daily_unique_recipients,
            )),
            windows: Mutex::new(HashMap::new()),
            marketing_stopped: Mutex::new(HashSet::new()),
            templates: Mutex::new(templates::TemplateRegistry::with_defaults()),
            messages: Recorder::new(),
            rejections: RejectionCounter::new(),
            accepted: AtomicU64::new(0),
            reset_after_accept: AtomicU64::new(0),
            statuses_posted: AtomicU64::new(0),
            inbound_posted: AtomicU64::new(0),
            preferences_posted: AtomicU64::new(0),
            sender,
            clock,
            faults,
        });
        Ok((state, dispatcher))
    }

    fn webhook_url(&self) -> Option<String> {
        self.webhook_url
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Whether `wa_id` wrote in during the last 24 hours.
    fn window_open(&self, wa_id: &str) -> bool {
        let now = self.clock.now_unix();
        lock(&self.windows)
            .get(wa_id)
            .is_some_and(|&last| now - last <= WINDOW_SECS)
    }

    fn is_marketing_stopped(&self, wa_id: &str) -> bool {
        lock(&self.marketing_stopped).contains(wa_id)
    }

    fn retry_after_secs(&self) -> Option<u32> {
        *self
            .retry_after_secs
            .read()
            .unwrap_or_else(|e| e.into_inner())
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

fn check_url(url: &str) -> Result<(), ControlError> {
    if crate::webhook_sender::is_webhook_url(url) {
        Ok(())
    } else {
        Err(ControlError::InvalidUrl(url.to_owned()))
    }
}

fn normalize_wa_id(wa_id: &str) -> Result<String, ControlError> {
    validate::normalize_phone(wa_id.trim())
        .ok_or_else(|| ControlError::InvalidWaId(wa_id.to_owned()))
}

/// The Graph API routes (`POST /{version}/{phone-number-id}/messages`).
pub(crate) fn api_router(state: Arc<WhatsAppState>) -> Router {
    api::router(state)
}

/// The control routes, to be nested under `/_sim/whatsapp`.
pub(crate) fn control_router(state: Arc<WhatsAppState>) -> Router {
    control::router(state)
}

/// In-process control of the simulated WhatsApp API: what the
/// `/_sim/whatsapp/...` routes do, for tests in the same process. Cheap to
/// clone.
#[derive(Clone)]
pub struct WhatsAppControl {
    state: Arc<WhatsAppState>,
}

impl std::fmt::Debug for WhatsAppControl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WhatsAppControl")
            .field("phone_number_id", &self.state.phone_number_id)
            .field("webhook_url", &self.state.webhook_url())
            .finish_non_exhaustive()
    }
}

impl WhatsAppControl {
    pub(crate) fn new(state: Arc<WhatsAppState>) -> Self {
        Self { state }
    }

    /// The accepted access token.
    pub fn access_token(&self) -> &str {
        &self.state.access_token
    }

    /// The app secret that signs webhooks.
    pub fn app_secret(&self) -> &str {
        &self.state.app_secret
    }

    /// The business phone number id served.
    pub fn phone_number_id(&self) -> &str {
        &self.state.phone_number_id
    }

    /// Every accepted message, oldest first.
    pub fn messages(&self) -> Vec<AcceptedMessage> {
        self.state.messages.snapshot()
    }

    /// Accepted messages to `wa_id` (digits, optional leading `+`).
    pub fn messages_to(&self, wa_id: &str) -> Vec<AcceptedMessage> {
        let digits = wa_id.trim_start_matches('+').to_owned();
        self.state.messages.filtered(|m| m.wa_id == digits)
    }

    /// Forgets the accepted messages.
    pub fn clear_messages(&self) {
        self.state.messages.clear();
    }

    /// Per recipient (`wa_id`), how many distinct messages were accepted
    /// for them (`GET /_sim/whatsapp/recipients`); more than one is a
    /// duplicate unless the test sent several on purpose.
    pub fn recipient_counts(&self) -> BTreeMap<String, u64> {
        self.state
            .messages
            .recipient_counts(|m| (m.wa_id.clone(), m.wamid.clone()))
    }

    /// Opens (or refreshes) the customer-service window of `wa_id` now, as
    /// if the user had written in, without posting a webhook.
    pub fn open_window(&self, wa_id: &str) -> Result<(), ControlError> {
        self.open_window_at(wa_id, self.state.clock.now_unix())
    }

    /// Records the user's last message at `at_unix` (Unix seconds), without
    /// posting a webhook. A time more than 24 h ago leaves the window closed.
    pub fn open_window_at(&self, wa_id: &str, at_unix: i64) -> Result<(), ControlError> {
        let wa_id = normalize_wa_id(wa_id)?;
        lock(&self.state.windows).insert(wa_id, at_unix);
        Ok(())
    }

    /// Forgets that `wa_id` ever wrote in. Returns whether it had.
    pub fn close_window(&self, wa_id: &str) -> bool {
        let digits = wa_id.trim_start_matches('+');
        lock(&self.state.windows).remove(digits).is_some()
    }

    /// Whether `wa_id`'s customer-service window is open now.
    pub fn window_open(&self, wa_id: &str) -> bool {
        self.state.window_open(wa_id.trim_start_matches('+'))
    }

    /// Delivers a text message from `from`: opens the window and posts a
    /// signed inbound-message webhook. Returns the inbound message's wamid.
    pub async fn deliver_inbound(&self, from: &str, text: &str) -> Result<String, ControlError> {
        self.deliver_inbound_message(InboundMessage::text(from, text))
            .await
    }

    /// [`WhatsAppControl::deliver_inbound`] with a profile name and time.
    /// The window is opened even when the webhook cannot be posted (the
    /// error then says why).
    pub async fn deliver_inbound_message(
        &self,
        message: InboundMessage,
    ) -> Result<String, ControlError> {
        webhooks::deliver_inbound(&self.state, message).await
    }

    /// Records a marketing stop/resume for `wa_id` and posts the
    /// `user_preferences` webhook. After `Stop`, marketing templates to the
    /// user fail with 131050.
    pub async fn post_marketing_preference(
        &self,
        wa_id: &str,
        preference: MarketingPreference,
    ) -> Result<(), ControlError> {
        webhooks::post_preference(&self.state, wa_id, preference, None).await
    }

    /// Whether `wa_id` stopped marketing messages.
    pub fn marketing_stopped(&self, wa_id: &str) -> bool {
        self.state
            .is_marketing_stopped(wa_id.trim_start_matches('+'))
    }

    /// Sets (or with `None` clears) where webhooks are posted.
    pub fn set_webhook_url(&self, url: Option<&str>) -> Result<(), ControlError> {
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

    /// Changes the throughput limit (0 = unlimited) and refills the bucket.
    pub fn set_messages_per_second(&self, messages_per_second: u32) {
        self.state.bucket.set_rate(messages_per_second);
    }

    /// The throughput limit (0 = unlimited).
    pub fn messages_per_second(&self) -> u32 {
        self.state.bucket.rate()
    }

    /// Sets (or with `None` removes) the `Retry-After` header, in seconds,
    /// of 130429 throughput refusals.
    pub fn set_retry_after_secs(&self, secs: Option<u32>) {
        *self
            .state
            .retry_after_secs
            .write()
            .unwrap_or_else(|e| e.into_inner()) = secs;
    }

    /// The `Retry-After` of 130429 refusals, in seconds, if any.
    pub fn retry_after_secs(&self) -> Option<u32> {
        self.state.retry_after_secs()
    }

    /// Sets (or with `None` turns off) the pair rate: the minimum interval,
    /// in milliseconds of the simulated clock, between two accepted messages
    /// to the same recipient. Sooner messages get 131056. Messages sent
    /// before the change count.
    pub fn set_pair_interval_ms(&self, interval_ms: Option<u64>) {
        lock(&self.state.throttle).set_pair_interval_ms(interval_ms);
    }

    /// The pair-rate interval in milliseconds, if on.
    pub fn pair_interval_ms(&self) -> Option<u64> {
        lock(&self.state.throttle).pair_interval_ms()
    }

    /// Sets (or with `None` lifts) the messaging limit: unique users that
    /// templates outside the customer-service window may reach per moving
    /// 24 hours. A template to a new user beyond it gets 131048. Users
    /// reached before the change count.
    pub fn set_daily_unique_recipients(&self, limit: Option<u64>) {
        lock(&self.state.throttle).set_daily_unique_recipients(limit);
    }

    /// The messaging limit, if any.
    pub fn daily_unique_recipients(&self) -> Option<u64> {
        lock(&self.state.throttle).daily_unique_recipients()
    }

    /// Unique users reached by business-initiated messages (templates
    /// outside the customer-service window) in the last 24 hours of the
    /// simulated clock: what the messaging limit counts.
    pub fn unique_recipients_24h(&self) -> u64 {
        let now_ms = self.state.clock.now_unix_ms();
        lock(&self.state.throttle).unique_recipients(now_ms)
    }

    /// Turns status webhooks for accepted messages on or off.
    pub fn set_send_statuses(&self, enabled: bool) {
        self.state.send_statuses.store(enabled, Ordering::Relaxed);
    }

    /// Changes the delay before each status webhook.
    pub fn set_status_delay(&self, delay: Duration) {
        let ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
        self.state.status_delay_ms.store(ms, Ordering::Relaxed);
    }

    /// Adds (or replaces) an approved template.
    pub fn add_template(&self, template: Template) {
        lock(&self.state.templates).insert(template);
    }

    /// The approved templates.
    pub fn templates(&self) -> Vec<Template> {
        lock(&self.state.templates).all()
    }

    /// How many requests were rejected with 130429 (throughput).
    pub fn rate_limited_count(&self) -> u64 {
        self.state.rejections.count(codes::RATE_LIMIT_HIT)
    }

    /// How many requests were rejected with Graph error `code`.
    pub fn rejected_count(&self, code: i64) -> u64 {
        self.state.rejections.count(code)
    }

    /// All counters.
    pub fn stats(&self) -> WhatsAppStats {
        let s = &self.state;
        let sender = s.sender.stats();
        WhatsAppStats {
            accepted: s.accepted.load(Ordering::Relaxed),
            reset_after_accept: s.reset_after_accept.load(Ordering::Relaxed),
            rejected: s.rejections.snapshot(),
            rejected_total: s.rejections.total(),
            rate_limited: s.rejections.count(codes::RATE_LIMIT_HIT),
            pair_rate_limited: s.rejections.count(codes::PAIR_RATE_LIMIT_HIT),
            messaging_limited: s.rejections.count(codes::SPAM_RATE_LIMIT_HIT),
            unique_recipients_24h: self.unique_recipients_24h(),
            statuses_posted: s.statuses_posted.load(Ordering::Relaxed),
            inbound_posted: s.inbound_posted.load(Ordering::Relaxed),
            preferences_posted: s.preferences_posted.load(Ordering::Relaxed),
            webhook_failures: sender.failures,
            webhook_retries: sender.retries,
            webhook_dropped: sender.dropped,
            webhook_pending: sender.pending,
        }
    }

    /// Waits until every queued status webhook was posted (or gave up), or
    /// `timeout` passes. Returns whether the queue drained.
    pub async fn wait_for_webhooks(&self, timeout: Duration) -> bool {
        self.state.sender.wait_idle(timeout).await
    }

    /// Clears recorded messages, counters, windows, marketing opt-outs and
    /// what the pair rate and messaging limit remember (who was sent what
    /// when). Configuration (webhook URL, throughput, `Retry-After`, pair
    /// interval, messaging limit, templates) is kept.
    pub fn reset(&self) {
        let s = &self.state;
        s.messages.clear();
        s.rejections.clear();
        s.accepted.store(0, Ordering::Relaxed);
        s.reset_after_accept.store(0, Ordering::Relaxed);
        s.statuses_posted.store(0, Ordering::Relaxed);
        s.inbound_posted.store(0, Ordering::Relaxed);
        s.preferences_posted.store(0, Ordering::Relaxed);
        s.sender.reset_stats();
        lock(&s.windows).clear();
        lock(&s.marketing_stopped).clear();
        lock(&s.throttle).clear();
    }
}
