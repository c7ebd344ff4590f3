//! KakaoTalk Bizmessage through the NHN Cloud dealer API.
//!
//! Serves NHN's send APIs with the app key in the path and the
//! `X-Secret-Key` header, and posts `MESSAGE_RESULT_UPDATE` webhooks with
//! the configured `X-Toast-Webhook-Signature` string.
//!
//! | Route | |
//! |---|---|
//! | `POST /alimtalk/v2.3/appkeys/{appkey}/messages` | AlimTalk: `{"senderKey","templateCode","recipientList":[{"recipientNo","templateParameter":{…},"resendParameter"?,"recipientGroupingKey"?}],"senderGroupingKey"?}` |
//! | `POST /alimtalk/v2.3/appkeys/{appkey}/auth/messages` | the same, for authentication messages (the text must contain 인증, 비밀번호, auth, verif, password, 認証 or にんしょう: -8006) |
//! | `POST /brand-message/v1.0/appkeys/{appkey}/freestyle-messages` | Brand Message: `{"senderKey","chatBubbleType":"TEXT","content","recipientList":[{"recipientNo","targeting":"I"}],"unsubscribeNo"?}` |
//! | `POST /friendtalk/{version}/appkeys/{appkey}/messages` | retired: -9992 |
//!
//! Checks, in order. NHN documents no HTTP statuses for API errors, so
//! request-level errors are HTTP 200 with `{"header":{"resultCode","resultMessage","isSuccessful":false}}`:
//!
//! | Check | HTTP | `header.resultCode` |
//! |---|---|---|
//! | app key in the path | 200 | -1000 |
//! | `X-Secret-Key` missing or wrong | 200 | -1001 |
//! | forced (`fail-next`) or injected fault | 500 | -9999 |
//! | over the request rate (token bucket; NHN documents none) | 429 + `Retry-After: 1` | -9997 |
//! | `Content-Type` not JSON / body not a JSON object | 200 | -9996 / -3002 |
//! | `X-NC-API-IDEMPOTENCY-KEY` of a request accepted in the last 10 minutes (simulated clock) | 200 | -1005 |
//! | `senderKey` blank / unknown | 200 | -2001 / -2017 |
//! | `recipientList` empty / over 1,000 | 200 | -2001 / -2004 |
//! | AlimTalk `templateCode` blank / over 20 / unknown / not approved | 200 | -2001 / -2000 / -3003 / -3005 |
//! | Brand `chatBubbleType` not `TEXT` / `content` blank / over 1,300 / bad `unsubscribeNo` | 200 | -4000 / -2001 / -2000 / -3340 |
//! | Brand `targeting` not I/M/N / M or N (not approved) | 200 | -3298 / -4029 |
//!
//! Then each recipient gets `sendResults[{recipientSeq, recipientNo, resultCode, resultMessage}]`:
//! 0 accepted; -5000 not a number; 3008 not a Korean mobile number;
//! -3004 parameters not strings; -3010 a `#{key}` without a value; 3014
//! rendered AlimTalk over 1,000; -8006 authentication word missing;
//! -4200 bad `resendParameter`; 3022 Brand Message during 20:50–08:00 KST
//! (simulated clock); otherwise the code set for the number
//! ([`KakaoTalkControl::set_recipient_result`], e.g. 3019 not a KakaoTalk
//! user, 3020 blocked, 3005 unconfirmed). Delivery failures Kakao reports
//! at request time are answered here in `sendResults` (a simplification:
//! NHN may report them only later). When no recipient is accepted the
//! header is -1031 "All of receivers are failed to send." with the results.
//!
//! Accepted recipients are recorded ([`KakaoTalkControl::messages`]) and,
//! when results are on and a webhook URL is set, one `MESSAGE_RESULT_UPDATE`
//! per request follows after `result_delay_ms`, with result `1000` or the
//! failure set with [`KakaoTalkControl::set_delivery_failure`].
//!
//! Control routes under `/_sim/kakaotalk`: `GET|DELETE /messages[?recipient_no=]`,
//! `GET /requests`, `GET /stats`, `GET /recipients` (`{"01012345678": N}`:
//! distinct accepted requests per number, [`KakaoTalkControl::recipient_counts`]),
//! `GET|PUT /webhook {"url"}`,
//! `PUT /results {"enabled"?,"delay_ms"?}`, `GET|PUT /rate {"requests_per_second"}`,
//! `POST /recipients {"recipient_no","result_code"}`, `DELETE /recipients/{no}`,
//! `POST /delivery-failures {"recipient_no","result_code"}`,
//! `DELETE /delivery-failures/{no}`, `POST /fail-next {"requests"}`,
//! `GET|POST /templates {"code","content","status"?}`,
//! `POST /template-status {"template_code","status"}` (posts a template
//! review webhook), `POST /reset`.

mod api;
mod control;
pub mod error;
pub mod kst;
pub mod templates;
mod webhooks;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
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

pub use error::{NhnError, codes};
pub use templates::{KakaoTemplate, TemplateStatus};

/// Default app key (in every path).
pub const DEFAULT_APP_KEY: &str = "sim-kakao-appkey";
/// Default secret key (`X-Secret-Key`).
pub const DEFAULT_SECRET_KEY: &str = "sim-kakao-secret";
/// Default sender key of the simulated channel (40 characters).
pub const DEFAULT_SENDER_KEY: &str = "5f6e7d8c9bab0c1d2e3f405162738495a6b7c8d9";
/// Default webhook signature string (`X-Toast-Webhook-Signature`).
pub const DEFAULT_WEBHOOK_SIGNATURE: &str = "sim-kakao-webhook-signature";
/// Header carrying the secret key.
pub const SECRET_KEY_HEADER: &str = "x-secret-key";
/// Header carrying the idempotency key.
pub const IDEMPOTENCY_HEADER: &str = "x-nc-api-idempotency-key";
/// How long an accepted idempotency key is remembered.
pub const IDEMPOTENCY_WINDOW_SECS: i64 = 10 * 60;
/// Most recipients per request.
pub const MAX_RECIPIENTS: usize = 1_000;
/// Longest rendered AlimTalk message.
pub const MAX_ALIMTALK_CHARS: usize = 1_000;
/// Longest Brand Message `TEXT` content.
pub const MAX_BRAND_TEXT_CHARS: usize = 1_300;

/// Configuration of the simulated KakaoTalk Bizmessage (NHN Cloud).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KakaoTalkConfig {
    /// The app key in the path.
    pub app_key: String,
    /// The only accepted `X-Secret-Key`.
    pub secret_key: String,
    /// The sender key of the one simulated channel.
    pub sender_key: String,
    /// The string sent as `X-Toast-Webhook-Signature`.
    pub webhook_signature: String,
    /// Requests per second (burst = one second's worth); 0 = unlimited.
    pub requests_per_second: u32,
    /// Where result webhooks go, e.g. `http://127.0.0.1:8080/webhooks/kakaotalk`.
    pub webhook_url: Option<String>,
    /// Delay before a request's result webhook.
    pub result_delay_ms: u64,
    /// Whether accepted messages get result webhooks.
    pub send_results: bool,
}

impl Default for KakaoTalkConfig {
    fn default() -> Self {
        Self {
            app_key: DEFAULT_APP_KEY.into(),
            secret_key: DEFAULT_SECRET_KEY.into(),
            sender_key: DEFAULT_SENDER_KEY.into(),
            webhook_signature: DEFAULT_WEBHOOK_SIGNATURE.into(),
            requests_per_second: 20,
            webhook_url: None,
            result_delay_ms: 50,
            send_results: true,
        }
    }
}

/// Which API a message came through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageKind {
    /// AlimTalk (`/alimtalk/v2.3/.../messages`).
    AlimTalk,
    /// AlimTalk authentication message (`.../auth/messages`).
    AlimTalkAuth,
    /// Brand Message free-form (`/brand-message/v1.0/.../freestyle-messages`).
    BrandMessage,
}

impl MessageKind {
    /// `kakaoMessageType` in result webhooks.
    pub fn webhook_name(self) -> &'static str {
        match self {
            Self::AlimTalk => "ALIMTALK_NORMAL",
            Self::AlimTalkAuth => "ALIMTALK_AUTH",
            Self::BrandMessage => "BRAND_MESSAGE_NORMAL",
        }
    }

    /// The query-message link of one recipient (`_links.self.href`).
    pub fn link(self, app_key: &str, request_id: &str, seq: u32) -> String {
        let api = match self {
            Self::AlimTalk => format!("/alimtalk/v2.3/appkeys/{app_key}/messages"),
            Self::AlimTalkAuth => format!("/alimtalk/v2.3/appkeys/{app_key}/auth/messages"),
            Self::BrandMessage => format!("/brand-message/v1.0/appkeys/{app_key}/messages"),
        };
        format!("{api}/{request_id}/{seq}")
    }
}

/// One recipient the simulated API accepted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KakaoMessage {
    /// NHN's request id.
    pub request_id: String,
    /// The recipient's position in the request, from 1.
    pub recipient_seq: u32,
    /// The national number (`01012345678`).
    pub recipient_no: String,
    /// The API.
    pub kind: MessageKind,
    /// The template code, for AlimTalk.
    pub template_code: Option<String>,
    /// `templateParameter`, for AlimTalk.
    pub parameters: BTreeMap<String, String>,
    /// The rendered AlimTalk text, or the Brand Message content.
    pub content: String,
    /// Brand Message targeting.
    pub targeting: Option<String>,
    /// Brand Message `unsubscribeNo`.
    pub unsubscribe_no: Option<String>,
    /// AlimTalk SMS fallback sender number.
    pub resend_send_no: Option<String>,
    /// `X-NC-API-IDEMPOTENCY-KEY` of the request.
    pub idempotency_key: Option<String>,
    /// `senderGroupingKey` of the request.
    pub sender_grouping_key: Option<String>,
    /// `recipientGroupingKey` of the recipient.
    pub recipient_grouping_key: Option<String>,
    /// When it was accepted, Unix milliseconds (simulated clock).
    pub received_at_ms: i64,
}

impl KakaoMessage {
    /// `{requestId}:{recipientSeq}`, the id an adapter reports.
    pub fn platform_message_id(&self) -> String {
        format!("{}:{}", self.request_id, self.recipient_seq)
    }
}

/// One request the simulated API processed (at least its recipients were
/// looked at; request-level rejections are not listed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KakaoRequest {
    /// NHN's request id.
    pub request_id: String,
    /// The API.
    pub kind: MessageKind,
    /// The template code, for AlimTalk.
    pub template_code: Option<String>,
    /// Recipients in the request.
    pub recipients: usize,
    /// Recipients accepted.
    pub accepted: usize,
    /// `X-NC-API-IDEMPOTENCY-KEY`.
    pub idempotency_key: Option<String>,
    /// When, Unix milliseconds (simulated clock).
    pub received_at_ms: i64,
}

/// Counters (`GET /_sim/kakaotalk/stats`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KakaoStats {
    /// Recipients accepted.
    pub accepted: u64,
    /// Requests processed.
    pub requests: u64,
    /// Rejections by code (request-level and per-recipient).
    pub rejected: BTreeMap<i64, u64>,
    /// Rejections in total.
    pub rejected_total: u64,
    /// Requests answered 429.
    pub rate_limited: u64,
    /// Requests answered -1005.
    pub duplicates: u64,
    /// Accepted requests answered by resetting the connection
    /// (`reset_after_accept_rate` in `/_sim/faults`): no response at all.
    pub reset_after_accept: u64,
    /// Delivery results posted in webhooks the host accepted.
    pub results_posted: u64,
    /// Webhook posts that failed after all retries.
    pub webhook_failures: u64,
    /// Webhook retries made.
    pub webhook_retries: u64,
    /// Result webhooks dropped because the queue was full.
    pub webhook_dropped: u64,
    /// Result webhooks queued or running now.
    pub webhook_pending: u64,
}

/// Errors of the control operations.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KakaoControlError {
    /// Not a Korean mobile number.
    #[error(
        "invalid number {0:?}: expected a Korean mobile number such as 01012345678 or +821012345678"
    )]
    InvalidNumber(String),
    /// The webhook URL is not an absolute http(s) URL.
    #[error("invalid webhook URL {0:?}: expected an absolute http:// or https:// URL")]
    InvalidUrl(String),
    /// A request field was invalid.
    #[error("invalid request: {0}")]
    Invalid(String),
    /// The webhook could not be posted.
    #[error("webhook not delivered: {0}")]
    Webhook(#[from] WebhookError),
}

/// Shared state of the simulated KakaoTalk Bizmessage (NHN Cloud).
#[derive(Debug)]
pub struct KakaoTalkState {
    app_key: String,
    secret_key: String,
    sender_key: String,
    webhook_signature: String,
    webhook_url: RwLock<Option<String>>,
    result_delay_ms: AtomicU64,
    send_results: AtomicBool,
    bucket: TokenBucket,
    templates: Mutex<templates::TemplateRegistry>,
    /// National number → result code answered in `sendResults`.
    recipient_results: Mutex<HashMap<String, i64>>,
    /// National number → failure code reported in the result webhook.
    delivery_failures: Mutex<HashMap<String, i64>>,
    /// Accepted idempotency key → Unix ms when it is forgotten.
    idempotency_keys: Mutex<HashMap<String, i64>>,
    fail_next: AtomicU32,
    messages: Recorder<KakaoMessage>,
    requests: Recorder<KakaoRequest>,
    rejections: RejectionCounter,
    accepted: AtomicU64,
    duplicates: AtomicU64,
    rate_limited: AtomicU64,
    results_posted: AtomicU64,
    reset_after_accept: AtomicU64,
    sender: WebhookSender,
    clock: Arc<Clock>,
    faults: Arc<Faults>,
}

impl KakaoTalkState {
    /// Start the platform: its state and its webhook dispatcher.
    pub(crate) fn start(
        config: KakaoTalkConfig,
        clock: Arc<Clock>,
        faults: Arc<Faults>,
    ) -> anyhow::Result<(Arc<Self>, Vec<JoinHandle<()>>)> {
        if let Some(url) = &config.webhook_url {
            check_url(url)?;
        }
        let (sender, dispatcher) =
            WebhookSender::spawn(RetryPolicy::default(), QueueLimits::default())?;
        let state = Arc::new(Self {
            app_key: config.app_key,
            secret_key: config.secret_key,
            sender_key: config.sender_key,
            webhook_signature: config.webhook_signature,
            webhook_url: RwLock::new(config.webhook_url),
            result_delay_ms: AtomicU64::new(config.result_delay_ms),
            send_results: AtomicBool::new(config.send_results),
            bucket: TokenBucket::new(config.requests_per_second),
            templates: Mutex::new(templates::TemplateRegistry::with_defaults()),
            recipient_results: Mutex::new(HashMap::new()),
            delivery_failures: Mutex::new(HashMap::new()),
            idempotency_keys: Mutex::new(HashMap::new()),
            fail_next: AtomicU32::new(0),
            messages: Recorder::new(),
            requests: Recorder::new(),
            rejections: RejectionCounter::new(),
            accepted: AtomicU64::new(0),
            duplicates: AtomicU64::new(0),
            rate_limited: AtomicU64::new(0),
            results_posted: AtomicU64::new(0),
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
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

fn check_url(url: &str) -> Result<(), KakaoControlError> {
    if crate::webhook_sender::is_webhook_url(url) {
        Ok(())
    } else {
        Err(KakaoControlError::InvalidUrl(url.to_owned()))
    }
}

/// Whether a national number is a Korean mobile number (`010` + 8 digits,
/// or a legacy `011`/`016`–`019` number of 10 or 11 digits).
pub fn is_korean_mobile(national: &str) -> bool {
    national.bytes().all(|b| b.is_ascii_digit())
        && match national.get(..3) {
            Some("010") => national.len() == 11,
            Some("011" | "016" | "017" | "018" | "019") => (10..=11).contains(&national.len()),
            _ => false,
        }
}

/// The national form of `01012345678`, `010-1234-5678`, `+821012345678`
/// or `821012345678`.
pub fn normalize_number(number: &str) -> Result<String, KakaoControlError> {
    let compact: String = number
        .trim()
        .chars()
        .filter(|c| !matches!(c, ' ' | '-'))
        .collect();
    let national = if let Some(rest) = compact.strip_prefix("+82") {
        format!("0{}", rest.trim_start_matches('0'))
    } else if compact.starts_with("82") && !compact.starts_with("820") && compact.len() >= 11 {
        format!("0{}", &compact[2..])
    } else {
        compact
    };
    if is_korean_mobile(&national) {
        Ok(national)
    } else {
        Err(KakaoControlError::InvalidNumber(number.to_owned()))
    }
}

/// The NHN API routes.
pub(crate) fn api_router(state: Arc<KakaoTalkState>) -> Router {
    api::router(state)
}

/// The `/_sim/kakaotalk` control routes.
pub(crate) fn control_router(state: Arc<KakaoTalkState>) -> Router {
    control::router(state)
}

/// In-process control of the simulated KakaoTalk Bizmessage (NHN Cloud):
/// what the `/_sim/kakaotalk/...` routes do, for tests in the same
/// process. Cheap to clone.
#[derive(Debug, Clone)]
pub struct KakaoTalkControl {
    state: Arc<KakaoTalkState>,
}

impl KakaoTalkControl {
    pub(crate) fn new(state: Arc<KakaoTalkState>) -> Self {
        Self { state }
    }

    /// The accepted app key.
    pub fn app_key(&self) -> &str {
        &self.state.app_key
    }

    /// The accepted secret key.
    pub fn secret_key(&self) -> &str {
        &self.state.secret_key
    }

    /// The simulated channel's sender key.
    pub fn sender_key(&self) -> &str {
        &self.state.sender_key
    }

    /// The string sent as `X-Toast-Webhook-Signature`.
    pub fn webhook_signature(&self) -> &str {
        &self.state.webhook_signature
    }

    /// Every accepted recipient, oldest first.
    pub fn messages(&self) -> Vec<KakaoMessage> {
        self.state.messages.snapshot()
    }

    /// Accepted messages to `number` (national or E.164).
    pub fn messages_to(&self, number: &str) -> Result<Vec<KakaoMessage>, KakaoControlError> {
        let national = normalize_number(number)?;
        Ok(self
            .state
            .messages
            .filtered(|message| message.recipient_no == national))
    }

    /// Forgets accepted messages and processed requests.
    pub fn clear_messages(&self) {
        self.state.messages.clear();
        self.state.requests.clear();
    }

    /// Per national number, how many distinct accepted requests were for
    /// it (`GET /_sim/kakaotalk/recipients`): a number listed twice in one
    /// request counts once, and a request refused as a replay of its
    /// idempotency key (-1005) is not counted.
    pub fn recipient_counts(&self) -> BTreeMap<String, u64> {
        self.state
            .messages
            .recipient_counts(|m| (m.recipient_no.clone(), m.request_id.clone()))
    }

    /// Every processed request, oldest first.
    pub fn requests(&self) -> Vec<KakaoRequest> {
        self.state.requests.snapshot()
    }

    /// Answers `code` in `sendResults` for `number` from now on (e.g. 3019
    /// not a KakaoTalk user, 3020 blocked, 3018 inactive, 3005
    /// unconfirmed, 3006 internal error). Returns the national number.
    pub fn set_recipient_result(
        &self,
        number: &str,
        code: i64,
    ) -> Result<String, KakaoControlError> {
        if code == codes::SUCCESS {
            return Err(KakaoControlError::Invalid(
                "result_code 0 is the default; clear the number instead".into(),
            ));
        }
        let national = normalize_number(number)?;
        lock(&self.state.recipient_results).insert(national.clone(), code);
        Ok(national)
    }

    /// `number` is not a KakaoTalk user (3019).
    pub fn set_not_kakao_user(&self, number: &str) -> Result<String, KakaoControlError> {
        self.set_recipient_result(number, codes::NOT_KAKAO_USER)
    }

    /// `number` blocked AlimTalk / the channel (3020).
    pub fn set_blocked(&self, number: &str) -> Result<String, KakaoControlError> {
        self.set_recipient_result(number, codes::BLOCKED)
    }

    /// Accept `number` normally again. Returns whether a result was set.
    pub fn clear_recipient_result(&self, number: &str) -> Result<bool, KakaoControlError> {
        let national = normalize_number(number)?;
        Ok(lock(&self.state.recipient_results)
            .remove(&national)
            .is_some())
    }

    /// Accept messages to `number`, then report `code` (e.g. 3018) instead
    /// of 1000 in their result webhook.
    pub fn set_delivery_failure(
        &self,
        number: &str,
        code: i64,
    ) -> Result<String, KakaoControlError> {
        let national = normalize_number(number)?;
        lock(&self.state.delivery_failures).insert(national.clone(), code);
        Ok(national)
    }

    /// Report 1000 for `number` again. Returns whether a failure was set.
    pub fn clear_delivery_failure(&self, number: &str) -> Result<bool, KakaoControlError> {
        let national = normalize_number(number)?;
        Ok(lock(&self.state.delivery_failures)
            .remove(&national)
            .is_some())
    }

    /// Answer the next `requests` API requests with HTTP 500 / -9999
    /// (after authentication), deterministically.
    pub fn fail_next_requests(&self, requests: u32) {
        self.state.fail_next.store(requests, Ordering::Relaxed);
    }

    /// Sets (or with `None` clears) where webhooks are posted.
    pub fn set_webhook_url(&self, url: Option<&str>) -> Result<(), KakaoControlError> {
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

    /// Turns result webhooks on or off.
    pub fn set_send_results(&self, enabled: bool) {
        self.state.send_results.store(enabled, Ordering::Relaxed);
    }

    /// Whether result webhooks are on.
    pub fn send_results(&self) -> bool {
        self.state.send_results.load(Ordering::Relaxed)
    }

    /// Changes the delay before a request's result webhook.
    pub fn set_result_delay(&self, delay: Duration) {
        let ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
        self.state.result_delay_ms.store(ms, Ordering::Relaxed);
    }

    /// The delay before a request's result webhook.
    pub fn result_delay(&self) -> Duration {
        Duration::from_millis(self.state.result_delay_ms.load(Ordering::Relaxed))
    }

    /// Changes the request rate limit (0 = unlimited) and refills the bucket.
    pub fn set_requests_per_second(&self, requests_per_second: u32) {
        self.state.bucket.set_rate(requests_per_second);
    }

    /// The request rate limit (0 = unlimited).
    pub fn requests_per_second(&self) -> u32 {
        self.state.bucket.rate()
    }

    /// Adds (or replaces) a template.
    pub fn add_template(&self, template: KakaoTemplate) -> Result<(), KakaoControlError> {
        if template.code.trim().is_empty() || template.content.trim().is_empty() {
            return Err(KakaoControlError::Invalid(
                "template code and content must not be empty".into(),
            ));
        }
        lock(&self.state.templates).insert(template);
        Ok(())
    }

    /// The registered templates.
    pub fn templates(&self) -> Vec<KakaoTemplate> {
        lock(&self.state.templates).all()
    }

    /// Posts a template review webhook (`TSC01`–`TSC04`) now; it carries
    /// no delivery results.
    pub async fn post_template_status(
        &self,
        template_code: &str,
        status: &str,
    ) -> Result<(), KakaoControlError> {
        webhooks::post_template_status(&self.state, template_code, status).await?;
        Ok(())
    }

    /// How many requests or recipients were rejected with `code`.
    pub fn rejected_count(&self, code: i64) -> u64 {
        self.state.rejections.count(code)
    }

    /// All counters.
    pub fn stats(&self) -> KakaoStats {
        let s = &self.state;
        let sender = s.sender.stats();
        KakaoStats {
            accepted: s.accepted.load(Ordering::Relaxed),
            requests: s.requests.len() as u64,
            rejected: s.rejections.snapshot(),
            rejected_total: s.rejections.total(),
            rate_limited: s.rate_limited.load(Ordering::Relaxed),
            duplicates: s.duplicates.load(Ordering::Relaxed),
            reset_after_accept: s.reset_after_accept.load(Ordering::Relaxed),
            results_posted: s.results_posted.load(Ordering::Relaxed),
            webhook_failures: sender.failures,
            webhook_retries: sender.retries,
            webhook_dropped: sender.dropped,
            webhook_pending: sender.pending,
        }
    }

    /// Waits until every queued result webhook was posted (or gave up), or
    /// `timeout` passes. Returns whether the queue drained.
    pub async fn wait_for_webhooks(&self, timeout: Duration) -> bool {
        self.state.sender.wait_idle(timeout).await
    }

    /// Clears messages, requests, counters, per-number results, delivery
    /// failures, remembered idempotency keys and forced failures.
    /// Configuration (webhook URL, rate, templates) is kept.
    pub fn reset(&self) {
        let s = &self.state;
        s.messages.clear();
        s.requests.clear();
        s.rejections.clear();
        s.accepted.store(0, Ordering::Relaxed);
        s.duplicates.store(0, Ordering::Relaxed);
        s.rate_limited.store(0, Ordering::Relaxed);
        s.results_posted.store(0, Ordering::Relaxed);
        s.reset_after_accept.store(0, Ordering::Relaxed);
        s.fail_next.store(0, Ordering::Relaxed);
        s.sender.reset_stats();
        lock(&s.recipient_results).clear();
        lock(&s.delivery_failures).clear();
        lock(&s.idempotency_keys).clear();
    }

    /// The shared state (for this module's own helpers).
    #[allow(dead_code)]
    pub(crate) fn state(&self) -> &Arc<KakaoTalkState> {
        &self.state
    }
}

#[cfg(test)]
mod tests;
