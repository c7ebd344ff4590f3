//! Google RCS Business Messaging (RBM).
//!
//! Serves, like `rcsbusinessmessaging.googleapis.com` and
//! `oauth2.googleapis.com` do:
//!
//! - `POST /token`: the OAuth JWT-bearer grant. The assertion must be signed
//!   RS256 by the service account's key (checked against the configured
//!   public key), with `iss` = the service account, `aud` = this endpoint,
//!   the RBM scope and a current validity of at most an hour; otherwise 400
//!   `{"error":"invalid_grant"}`. Success: `{"access_token","expires_in","token_type":"Bearer"}`.
//! - `POST /v1/phones/{E.164}/agentMessages?messageId={UUID}&agentId={agent}`:
//!   checks, in order, answering with Google's error body
//!   `{"error":{"code","message","status"}}`:
//!
//! | Check | HTTP | status |
//! |---|---|---|
//! | bearer token missing, not issued here, expired or revoked | 401 | `UNAUTHENTICATED` |
//! | `agentId` missing or not the configured agent | 403 | `PERMISSION_DENIED` |
//! | injected fault (`/_sim/faults`) | 503 | `UNAVAILABLE` |
//! | over the messages-per-second limit (token bucket) | 429 | `RESOURCE_EXHAUSTED` (`Retry-After: 1`) |
//! | phone not E.164, `messageId` missing or not a UUID | 400 | `INVALID_ARGUMENT` |
//! | body not an `AgentMessage` with `contentMessage.text` (1–3,072 characters), unknown fields, bad `messageTrafficType`, `ttl` with `expireTime`, bad duration/time | 400 | `INVALID_ARGUMENT` |
//! | number not RCS-capable (configured) | 404 | `NOT_FOUND` |
//! | `messageId` used before by the agent (the real reply is undocumented; this is the simulator's choice) | 409 | `ALREADY_EXISTS` |
//!
//!   Success: 200 with the `AgentMessage` (`name`, `sendTime`, ...). The
//!   message is recorded. To an online device (the default) it is delivered:
//!   `DELIVERED` then `READ` user events follow, `status_delay_ms` apart. To a
//!   device marked offline it waits; once the shared clock passes its
//!   `ttl`/`expireTime` it is revoked and a `TTL_EXPIRATION_REVOKED` server
//!   event is posted (a background sweep every 200 ms, or
//!   [`RcsControl::expire_due`]). A device coming online gets what waited.
//! - `GET /v1/phones/{E.164}/capabilities?requestId={UUID}&agentId={agent}`:
//!   the same auth, agent, fault and phone checks; 404 `NOT_FOUND` for a
//!   non-RCS number, else `{"features":[…]}`.
//!
//! Webhooks are Pub/Sub-style pushes `{"message":{"data":base64(event JSON),"messageId","publishTime"},"subscription"}`
//! with `X-Goog-Signature: base64(HMAC-SHA512(client token, event JSON))`.
//! [`RcsControl::verify_webhook`] performs the setup handshake
//! (`{"clientToken","secret"}`, expecting the secret echoed back).
//!
//! Control routes, under `/_sim/rcs`:
//!
//! | Route | Body | Does |
//! |---|---|---|
//! | `GET` / `DELETE /messages[?to=+E164]` | | accepted messages (`message_id`, `phone`, `text`, `traffic_type`, `expire_at_ms`, `received_at_ms`, `state`) / forget them |
//! | `GET /stats` | | counters ([`RcsStats`]) |
//! | `GET /recipients` | | `{"+E164": N}`: accepted messages per phone ([`RcsControl::recipient_counts`]) |
//! | `GET` / `PUT /webhook` | `{"url":…\|null}` | where webhooks go |
//! | `POST /webhook/verify` | | run the setup handshake against the webhook |
//! | `POST /inbound` | `{"from":"+E164","text":"…"}` | post a signed inbound text message |
//! | `POST /subscription` | `{"phone":"+E164","subscribed":bool}` | post a `SUBSCRIBE` / `UNSUBSCRIBE` user event |
//! | `PUT /capability` | `{"phone":"+E164","capable":bool}` | make a number (not) RCS-capable |
//! | `PUT /device` | `{"phone":"+E164","online":bool}` | take a device offline / bring it online |
//! | `GET` / `PUT /throughput` | `{"messages_per_second":N}` | 429 limit (0 = unlimited) |
//! | `PUT /statuses` | `{"enabled"?:bool,"delay_ms"?:N}` | delivery/read webhooks on/off, delay |
//! | `POST /tokens/revoke` | | invalidate every issued access token (next API call: 401) |
//! | `POST /expire` | | revoke every waiting message whose TTL passed now, posting the events |
//! | `POST /reset` | | clear messages, tokens, counters, devices, capabilities |

mod api;
pub mod auth;
mod control;
pub mod error;
#[cfg(test)]
mod tests;
pub mod validate;
mod webhooks;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use anyhow::Context as _;
use axum::Router;
use rsa::pkcs1v15::VerifyingKey;
use rsa::sha2::Sha256;
use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;

use crate::clock::Clock;
use crate::faults::Faults;
use crate::rate_limit::TokenBucket;
use crate::recorder::RejectionCounter;
use crate::webhook_sender::{QueueLimits, RetryPolicy, WebhookError, WebhookSender};

/// Default agent id (`agentId`).
pub const DEFAULT_AGENT_ID: &str = "sim-agent";
/// Default service-account email (the assertion's `iss`).
pub const DEFAULT_CLIENT_EMAIL: &str = "sim-agent@sim-project.iam.gserviceaccount.com";
/// Default webhook client token (handshake and HMAC-SHA512 key).
pub const DEFAULT_CLIENT_TOKEN: &str = "sim-rcs-client-token";
/// TEST-ONLY private key of the default service account (PKCS#8 PEM). It is
/// committed on purpose and protects nothing; see `TEST_ONLY_KEYS.md`.
pub const TEST_ONLY_PRIVATE_KEY_PEM: &str = include_str!("test_only_private_key.pem");
/// The public half of [`TEST_ONLY_PRIVATE_KEY_PEM`] (SPKI PEM), the default
/// key assertions are checked against.
pub const TEST_ONLY_PUBLIC_KEY_PEM: &str = include_str!("test_only_public_key.pem");
/// TEST-ONLY unrelated private key, for assertions that must not verify.
pub const TEST_ONLY_OTHER_PRIVATE_KEY_PEM: &str = include_str!("test_only_other_private_key.pem");
/// How often waiting messages are checked for an expired TTL.
pub const TTL_SWEEP_INTERVAL: Duration = Duration::from_millis(200);

/// Configuration of the simulated RBM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RcsConfig {
    /// The agent messages must be sent for (`agentId`).
    pub agent_id: String,
    /// The service account whose assertions are accepted (`iss`).
    pub client_email: String,
    /// The service account's public key (SPKI or PKCS#1 PEM).
    pub public_key_pem: String,
    /// Webhook client token: handshake token and HMAC-SHA512 key.
    pub client_token: String,
    /// `expires_in` of issued access tokens, seconds.
    pub token_lifetime_secs: u32,
    /// Messages per second before 429 (burst = one second); 0 = unlimited.
    pub messages_per_second: u32,
    /// Numbers that are not RCS-capable: 404 on send and capability check.
    pub unreachable: Vec<String>,
    /// Where signed webhooks go; `None` until set at run time.
    pub webhook_url: Option<String>,
    /// Delay before the delivered and the read webhook.
    pub status_delay_ms: u64,
    /// Whether delivered messages get `DELIVERED` / `READ` webhooks.
    pub send_statuses: bool,
}

impl Default for RcsConfig {
    fn default() -> Self {
        Self {
            agent_id: DEFAULT_AGENT_ID.into(),
            client_email: DEFAULT_CLIENT_EMAIL.into(),
            public_key_pem: TEST_ONLY_PUBLIC_KEY_PEM.into(),
            client_token: DEFAULT_CLIENT_TOKEN.into(),
            token_lifetime_secs: 3_600,
            messages_per_second: 100,
            unreachable: Vec::new(),
            webhook_url: None,
            status_delay_ms: 20,
            send_statuses: true,
        }
    }
}

/// Where an accepted message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageState {
    /// Waiting for an offline device.
    Pending,
    /// On the device.
    Delivered,
    /// Read by the user.
    Read,
    /// Not delivered before its TTL: revoked.
    Revoked,
}

/// A message the simulated API accepted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RcsMessage {
    /// The client's `messageId`.
    pub message_id: String,
    /// The recipient (E.164).
    pub phone: String,
    /// `contentMessage.text`.
    pub text: String,
    /// `messageTrafficType`, if given.
    pub traffic_type: Option<String>,
    /// When it expires undelivered (from `ttl` or `expireTime`), Unix ms.
    pub expire_at_ms: Option<i64>,
    /// When it was accepted, Unix ms (simulated clock).
    pub received_at_ms: i64,
    /// Where it is now.
    pub state: MessageState,
}

/// Counters of the simulated RBM (`GET /_sim/rcs/stats`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RcsStats {
    /// Requests to the token endpoint.
    pub token_requests: u64,
    /// Access tokens issued.
    pub tokens_issued: u64,
    /// Token requests refused (bad assertion or grant).
    pub token_refusals: u64,
    /// Capability checks answered 200.
    pub capability_checks: u64,
    /// Messages accepted with 200.
    pub accepted: u64,
    /// API requests rejected, by HTTP status (409 duplicates included).
    pub rejected: BTreeMap<i64, u64>,
    /// Requests rejected with 401.
    pub unauthenticated: u64,
    /// Requests rejected with 429.
    pub rate_limited: u64,
    /// Sends answered 409 `ALREADY_EXISTS`.
    pub duplicates: u64,
    /// Accepted messages answered by resetting the connection
    /// (`reset_after_accept_rate` in `/_sim/faults`): no response at all.
    pub reset_after_accept: u64,
    /// `DELIVERED` / `READ` webhooks the host accepted.
    pub statuses_posted: u64,
    /// `TTL_EXPIRATION_REVOKED` webhooks the host accepted.
    pub revocations_posted: u64,
    /// Inbound-message webhooks the host accepted.
    pub inbound_posted: u64,
    /// `SUBSCRIBE` / `UNSUBSCRIBE` webhooks the host accepted.
    pub subscriptions_posted: u64,
    /// Webhook posts that failed after all retries.
    pub webhook_failures: u64,
    /// Background webhook jobs queued or running now.
    pub webhook_pending: u64,
}

/// Errors of the RBM control operations.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RcsControlError {
    /// Not an E.164 number.
    #[error("invalid phone number {0:?}: expected + and 8 to 15 digits")]
    InvalidPhone(String),
    /// The webhook URL is not an absolute http(s) URL.
    #[error("invalid webhook URL {0:?}: expected an absolute http:// or https:// URL")]
    InvalidUrl(String),
    /// A request field was invalid.
    #[error("invalid request: {0}")]
    Invalid(String),
    /// The setup handshake was not answered with the secret.
    #[error("webhook handshake failed: HTTP {status}, body {body:?}")]
    Handshake {
        /// The reply's status.
        status: u16,
        /// The reply's body.
        body: String,
    },
    /// The webhook could not be posted.
    #[error("webhook not delivered: {0}")]
    Webhook(#[from] WebhookError),
}

/// Shared state of the simulated RBM.
pub struct RcsState {
    agent_id: String,
    client_email: String,
    client_token: String,
    verifying_key: VerifyingKey<Sha256>,
    token_lifetime_secs: u32,
    webhook_url: RwLock<Option<String>>,
    status_delay_ms: AtomicU64,
    send_statuses: AtomicBool,
    bucket: TokenBucket,
    /// Issued access token → expiry, Unix ms (simulated clock).
    tokens: Mutex<HashMap<String, i64>>,
    unreachable: Mutex<HashSet<String>>,
    offline: Mutex<HashSet<String>>,
    used_ids: Mutex<HashSet<String>>,
    messages: Mutex<Vec<RcsMessage>>,
    rejections: RejectionCounter,
    token_requests: AtomicU64,
    tokens_issued: AtomicU64,
    token_refusals: AtomicU64,
    capability_checks: AtomicU64,
    accepted: AtomicU64,
    reset_after_accept: AtomicU64,
    statuses_posted: AtomicU64,
    revocations_posted: AtomicU64,
    inbound_posted: AtomicU64,
    subscriptions_posted: AtomicU64,
    sender: WebhookSender,
    clock: Arc<Clock>,
    faults: Arc<Faults>,
}

impl std::fmt::Debug for RcsState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RcsState")
            .field("agent_id", &self.agent_id)
            .field("client_email", &self.client_email)
            .field("webhook_url", &self.webhook_url())
            .finish_non_exhaustive()
    }
}

impl RcsState {
    /// Start the platform: its state, its webhook dispatcher and the TTL sweep.
    pub(crate) fn start(
        config: RcsConfig,
        clock: Arc<Clock>,
        faults: Arc<Faults>,
    ) -> anyhow::Result<(Arc<Self>, Vec<JoinHandle<()>>)> {
        if let Some(url) = &config.webhook_url {
            check_url(url)?;
        }
        let verifying_key = auth::load_public_key(&config.public_key_pem)
            .context("the RCS simulator's public_key_pem")?;
        let unreachable = config
            .unreachable
            .iter()
            .map(|phone| normalize_phone(phone))
            .collect::<Result<HashSet<_>, _>>()?;
        let (sender, dispatcher) =
            WebhookSender::spawn(RetryPolicy::default(), QueueLimits::default())?;
        let state = Arc::new(Self {
            agent_id: config.agent_id,
            client_email: config.client_email,
            client_token: config.client_token,
            verifying_key,
            token_lifetime_secs: config.token_lifetime_secs.max(1),
            webhook_url: RwLock::new(config.webhook_url),
            status_delay_ms: AtomicU64::new(config.status_delay_ms),
            send_statuses: AtomicBool::new(config.send_statuses),
            bucket: TokenBucket::new(config.messages_per_second),
            tokens: Mutex::new(HashMap::new()),
            unreachable: Mutex::new(unreachable),
            offline: Mutex::new(HashSet::new()),
            used_ids: Mutex::new(HashSet::new()),
            messages: Mutex::new(Vec::new()),
            rejections: RejectionCounter::new(),
            token_requests: AtomicU64::new(0),
            tokens_issued: AtomicU64::new(0),
            token_refusals: AtomicU64::new(0),
            capability_checks: AtomicU64::new(0),
            accepted: AtomicU64::new(0),
            reset_after_accept: AtomicU64::new(0),
            statuses_posted: AtomicU64::new(0),
            revocations_posted: AtomicU64::new(0),
            inbound_posted: AtomicU64::new(0),
            subscriptions_posted: AtomicU64::new(0),
            sender,
            clock,
            faults,
        });
        let sweeper = tokio::spawn(webhooks::sweep_forever(Arc::downgrade(&state)));
        Ok((state, vec![dispatcher, sweeper]))
    }

    fn webhook_url(&self) -> Option<String> {
        self.webhook_url
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn is_offline(&self, phone: &str) -> bool {
        lock(&self.offline).contains(phone)
    }

    fn is_unreachable(&self, phone: &str) -> bool {
        lock(&self.unreachable).contains(phone)
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

fn check_url(url: &str) -> Result<(), RcsControlError> {
    if crate::webhook_sender::is_webhook_url(url) {
        Ok(())
    } else {
        Err(RcsControlError::InvalidUrl(url.to_owned()))
    }
}

/// `phone` trimmed, if it is E.164.
fn normalize_phone(phone: &str) -> Result<String, RcsControlError> {
    let trimmed = phone.trim();
    if validate::is_e164(trimmed) {
        Ok(trimmed.to_owned())
    } else {
        Err(RcsControlError::InvalidPhone(phone.to_owned()))
    }
}

/// A push as RBM would post it for the event `data` (a user event, server
/// event or user message), signed with `client_token`: the JSON body and the
/// `X-Goog-Signature` value. For tests that post or forge webhooks themselves.
pub fn signed_push(
    client_token: &str,
    agent_id: &str,
    data: &serde_json::Value,
) -> (String, String) {
    webhooks::push_body(client_token, agent_id, data, 1_772_366_400_000)
}

/// The RBM and OAuth routes.
pub(crate) fn api_router(state: Arc<RcsState>) -> Router {
    api::router(state)
}

/// The platform's `/_sim/rcs` control routes.
pub(crate) fn control_router(state: Arc<RcsState>) -> Router {
    control::router(state)
}

/// In-process control of the simulated RBM: what the `/_sim/rcs/...` routes
/// do, for tests in the same process. Cheap to clone.
#[derive(Debug, Clone)]
pub struct RcsControl {
    state: Arc<RcsState>,
}

impl RcsControl {
    pub(crate) fn new(state: Arc<RcsState>) -> Self {
        Self { state }
    }

    /// The agent served.
    pub fn agent_id(&self) -> &str {
        &self.state.agent_id
    }

    /// The service account whose assertions are accepted.
    pub fn client_email(&self) -> &str {
        &self.state.client_email
    }

    /// The webhook client token.
    pub fn client_token(&self) -> &str {
        &self.state.client_token
    }

    /// The TEST-ONLY private key matching the default public key.
    pub fn test_only_private_key_pem(&self) -> &'static str {
        TEST_ONLY_PRIVATE_KEY_PEM
    }

    /// Every accepted message, oldest first.
    pub fn messages(&self) -> Vec<RcsMessage> {
        lock(&self.state.messages).clone()
    }

    /// Accepted messages to `phone` (E.164).
    pub fn messages_to(&self, phone: &str) -> Vec<RcsMessage> {
        let phone = phone.trim();
        lock(&self.state.messages)
            .iter()
            .filter(|m| m.phone == phone)
            .cloned()
            .collect()
    }

    /// The accepted message with `message_id`.
    pub fn message(&self, message_id: &str) -> Option<RcsMessage> {
        lock(&self.state.messages)
            .iter()
            .find(|m| m.message_id == message_id)
            .cloned()
    }

    /// Forgets the accepted messages (their ids stay used).
    pub fn clear_messages(&self) {
        lock(&self.state.messages).clear();
    }

    /// Per phone (E.164), how many messages were accepted for it
    /// (`GET /_sim/rcs/recipients`); a send refused because its
    /// `messageId` was used before (409 `ALREADY_EXISTS`) is not counted.
    pub fn recipient_counts(&self) -> BTreeMap<String, u64> {
        crate::recorder::recipient_counts(
            lock(&self.state.messages)
                .iter()
                .map(|m| (m.phone.clone(), m.message_id.clone())),
        )
    }

    /// Sets (or with `None` clears) where webhooks are posted.
    pub fn set_webhook_url(&self, url: Option<&str>) -> Result<(), RcsControlError> {
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

    /// Makes `phone` RCS-capable or not (404 `NOT_FOUND` on send and capability check).
    pub fn set_rcs_capable(&self, phone: &str, capable: bool) -> Result<(), RcsControlError> {
        let phone = normalize_phone(phone)?;
        let mut unreachable = lock(&self.state.unreachable);
        if capable {
            unreachable.remove(&phone);
        } else {
            unreachable.insert(phone);
        }
        Ok(())
    }

    /// Takes `phone`'s device offline (messages wait, and expire with their
    /// TTL) or brings it online (waiting messages are delivered now).
    pub fn set_online(&self, phone: &str, online: bool) -> Result<(), RcsControlError> {
        let phone = normalize_phone(phone)?;
        if online {
            lock(&self.state.offline).remove(&phone);
            webhooks::deliver_waiting(&self.state, &phone);
        } else {
            lock(&self.state.offline).insert(phone);
        }
        Ok(())
    }

    /// Changes the messages-per-second limit (0 = unlimited) and refills the bucket.
    pub fn set_messages_per_second(&self, messages_per_second: u32) {
        self.state.bucket.set_rate(messages_per_second);
    }

    /// The messages-per-second limit (0 = unlimited).
    pub fn messages_per_second(&self) -> u32 {
        self.state.bucket.rate()
    }

    /// Turns delivered/read webhooks on or off.
    pub fn set_send_statuses(&self, enabled: bool) {
        self.state.send_statuses.store(enabled, Ordering::Relaxed);
    }

    /// Changes the delay before each delivered/read webhook.
    pub fn set_status_delay(&self, delay: Duration) {
        let ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
        self.state.status_delay_ms.store(ms, Ordering::Relaxed);
    }

    /// Invalidates every access token issued so far: the next API call with
    /// one gets 401 `UNAUTHENTICATED`.
    pub fn revoke_tokens(&self) {
        lock(&self.state.tokens).clear();
    }

    /// Posts a signed inbound text message from `from`; returns its `messageId`.
    pub async fn deliver_inbound(&self, from: &str, text: &str) -> Result<String, RcsControlError> {
        webhooks::deliver_inbound(&self.state, from, text).await
    }

    /// Posts a signed `SUBSCRIBE` (or `UNSUBSCRIBE`) user event for `phone`.
    pub async fn post_subscription(
        &self,
        phone: &str,
        subscribed: bool,
    ) -> Result<(), RcsControlError> {
        webhooks::post_subscription(&self.state, phone, subscribed).await
    }

    /// Runs the webhook setup handshake: posts `{"clientToken","secret"}` to
    /// the webhook URL and checks the secret comes back as the body.
    pub async fn verify_webhook(&self) -> Result<(), RcsControlError> {
        webhooks::verify_webhook(&self.state).await
    }

    /// Revokes every waiting message whose TTL has passed on the shared
    /// clock, posting `TTL_EXPIRATION_REVOKED` for each before returning;
    /// returns their ids. (The background sweep does the same every 200 ms.)
    pub async fn expire_due(&self) -> Vec<String> {
        webhooks::expire_due(&self.state).await
    }

    /// All counters.
    pub fn stats(&self) -> RcsStats {
        let s = &self.state;
        let sender = s.sender.stats();
        RcsStats {
            token_requests: s.token_requests.load(Ordering::Relaxed),
            tokens_issued: s.tokens_issued.load(Ordering::Relaxed),
            token_refusals: s.token_refusals.load(Ordering::Relaxed),
            capability_checks: s.capability_checks.load(Ordering::Relaxed),
            accepted: s.accepted.load(Ordering::Relaxed),
            rejected: s.rejections.snapshot(),
            unauthenticated: s.rejections.count(401),
            rate_limited: s.rejections.count(429),
            duplicates: s.rejections.count(409),
            reset_after_accept: s.reset_after_accept.load(Ordering::Relaxed),
            statuses_posted: s.statuses_posted.load(Ordering::Relaxed),
            revocations_posted: s.revocations_posted.load(Ordering::Relaxed),
            inbound_posted: s.inbound_posted.load(Ordering::Relaxed),
            subscriptions_posted: s.subscriptions_posted.load(Ordering::Relaxed),
            webhook_failures: sender.failures,
            webhook_pending: sender.pending,
        }
    }

    /// Waits until every queued webhook was posted (or gave up), or
    /// `timeout` passes. Returns whether the queue drained.
    pub async fn wait_for_webhooks(&self, timeout: Duration) -> bool {
        self.state.sender.wait_idle(timeout).await
    }

    /// Clears messages, used ids, tokens, counters, offline devices and
    /// non-capable numbers. Configuration (webhook URL, limits) is kept.
    pub fn reset(&self) {
        let s = &self.state;
        lock(&s.messages).clear();
        lock(&s.used_ids).clear();
        lock(&s.tokens).clear();
        lock(&s.offline).clear();
        lock(&s.unreachable).clear();
        s.rejections.clear();
        for counter in [
            &s.token_requests,
            &s.tokens_issued,
            &s.token_refusals,
            &s.capability_checks,
            &s.accepted,
            &s.reset_after_accept,
            &s.statuses_posted,
            &s.revocations_posted,
            &s.inbound_posted,
            &s.subscriptions_posted,
        ] {
            counter.store(0, Ordering::Relaxed);
        }
        s.sender.reset_stats();
    }
}
