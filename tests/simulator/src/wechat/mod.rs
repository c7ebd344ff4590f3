//! WeChat Official Accounts (服务号).
//!
//! Serves the API paths of `api.weixin.qq.com` the adapter uses:
//!
//! | Route | Does |
//! |---|---|
//! | `POST /cgi-bin/stable_token` | `{"grant_type":"client_credential","appid","secret","force_refresh"?}` → `{"access_token","expires_in"}`; tokens live 7,200 s; the normal mode returns the current token until five minutes before it expires, `force_refresh` invalidates it. Every request is counted (`token_requests`). Errors: 47001 bad JSON, 40002 grant type, 40013 AppID, 40125 AppSecret |
//! | `POST /cgi-bin/message/custom/send?access_token=` | customer-service text `{"touser","msgtype":"text","text":{"content"}}` |
//! | `POST /cgi-bin/message/template/send?access_token=` | template `{"touser","template_id","url"?,"data":{key:{"value"}}}` → `{"errcode":0,"errmsg":"ok","msgid":N}` |
//!
//! Replies are WeChat's: HTTP 200 with `{"errcode","errmsg"}`. Checks on
//! the message APIs, in order: `access_token` missing 41001, unknown or
//! revoked 40001, expired 42001; injected fault -1; body not JSON 47001;
//! (templates) account not authorised 48001; daily quota 45009; `touser`
//! not an OpenID 40003; (templates) unfollowed 43004; user refused
//! messages 43101; then
//!
//! - text: unfollowed 45015, `msgtype` not `text` 40008, empty content
//!   44004, over 2,048 bytes 45002, no open window 45015, window allowance
//!   used 45047. A user message opens a 48-hour window of 5 messages; a
//!   follow one of 3 messages in 1 minute (it never shortens a longer one);
//! - template: unknown `template_id` 40037, a template key without a
//!   string `data.{key}.value` 47003.
//!
//! Each accepted template message is followed (when a webhook URL is set)
//! by a `TEMPLATESENDJOBFINISH` push with `Status` `success`, or the status
//! set for the user. Pushes are XML, signed with the Token
//! (`signature`, `timestamp`, `nonce`, `openid` in the query) and, in safe
//! mode (the default), encrypted with the EncodingAESKey
//! (`encrypt_type=aes`, `msg_signature`, body `<xml><ToUserName/><Encrypt/></xml>`).

mod api;
mod control;
pub mod crypto;
pub mod error;
#[cfg(test)]
mod http_tests;
mod push;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;

use crate::clock::Clock;
use crate::faults::Faults;
use crate::recorder::{Recorder, RejectionCounter};
use crate::webhook_sender::{QueueLimits, RetryPolicy, WebhookError, WebhookSender};

pub use error::{WeChatError, codes};

/// Default AppID of the simulated Official Account.
pub const DEFAULT_APP_ID: &str = "wx5f3c1a2b9d8e7f60";
/// Default AppSecret.
pub const DEFAULT_APP_SECRET: &str = "sim-wechat-app-secret-5f3c1a2b9d8e";
/// Default Token, the key of push signatures.
pub const DEFAULT_TOKEN: &str = "sim-wechat-token";
/// Default EncodingAESKey (43 characters), the safe-mode key.
pub const DEFAULT_ENCODING_AES_KEY: &str = "c2ltV2VDaGF0RW5jb2RpbmdBRVNLZXkwMTIzNDU2Nzg";
/// The account's original id, `ToUserName` in pushes.
pub const ORIGINAL_ID: &str = "gh_5f3c1a2b9d8e";
/// The customer-service window after a user message, in seconds (48 hours).
pub const WINDOW_SECS: i64 = 48 * 60 * 60;
/// Customer-service messages allowed per user-message window.
pub const WINDOW_MESSAGES: u32 = 5;
/// The allowance after a follow, in seconds.
pub const FOLLOW_WINDOW_SECS: i64 = 60;
/// Customer-service messages allowed after a follow.
pub const FOLLOW_WINDOW_MESSAGES: u32 = 3;
/// Lifetime of an access token, in seconds.
pub const TOKEN_LIFETIME_SECS: i64 = 7_200;
/// In its last five minutes, the normal stable-token mode issues a successor.
pub const TOKEN_RENEW_BEFORE_SECS: i64 = 300;
/// Longest customer-service text, in UTF-8 bytes.
pub const MAX_TEXT_BYTES: usize = 2_048;
/// The template in WeChat's documentation: keys `keyword1`…`keyword3`.
pub const ORDER_TEMPLATE_ID: &str = "ngqIpbwh8bUfcSsECmogfXcV14J0tQlEpBO27izEYtY";
/// A template with newer-style keys `thing1` and `number2`.
pub const POINTS_TEMPLATE_ID: &str = "Yx3kPq8rT2vW5nB7mL0sD4fG6hJ9aZcE1uI-oKyXwVb";

/// Configuration of the simulated Official Account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WeChatConfig {
    /// The AppID the token endpoint accepts (and safe-mode frames carry).
    pub app_id: String,
    /// The AppSecret the token endpoint accepts.
    pub app_secret: String,
    /// The Token that signs pushes.
    pub token: String,
    /// The 43-character EncodingAESKey of safe mode.
    pub encoding_aes_key: String,
    /// Encrypt pushes (safe mode); `false` sends them in plain text.
    pub safe_mode: bool,
    /// Where pushes go, e.g. `http://127.0.0.1:8080/webhooks/wechat`.
    pub webhook_url: Option<String>,
    /// Customer-service messages accepted per (China-time) day.
    pub custom_daily_quota: u64,
    /// Template messages accepted per day.
    pub template_daily_quota: u64,
    /// Whether the account may send template messages (else 48001).
    pub templates_authorized: bool,
    /// Whether accepted templates get a `TEMPLATESENDJOBFINISH` push.
    pub send_template_statuses: bool,
    /// Delay before that push.
    pub status_delay_ms: u64,
}

impl Default for WeChatConfig {
    fn default() -> Self {
        Self {
            app_id: DEFAULT_APP_ID.into(),
            app_secret: DEFAULT_APP_SECRET.into(),
            token: DEFAULT_TOKEN.into(),
            encoding_aes_key: DEFAULT_ENCODING_AES_KEY.into(),
            safe_mode: true,
            webhook_url: None,
            custom_daily_quota: 500_000,
            template_daily_quota: 100_000,
            templates_authorized: true,
            send_template_statuses: true,
            status_delay_ms: 50,
        }
    }
}

/// A template the account may send.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Template {
    /// `template_id`.
    pub template_id: String,
    /// Title shown to users.
    pub title: String,
    /// The `data` keys it needs, e.g. `keyword1`.
    pub keys: Vec<String>,
    /// Content with `{{key.DATA}}` placeholders.
    pub content: String,
}

impl Template {
    /// The content with each `{{key.DATA}}` replaced.
    pub fn render(&self, data: &BTreeMap<String, String>) -> String {
        let mut text = self.content.clone();
        for (key, value) in data {
            text = text.replace(&format!("{{{{{key}.DATA}}}}"), value);
        }
        text
    }

    /// The default templates: [`ORDER_TEMPLATE_ID`] and [`POINTS_TEMPLATE_ID`].
    pub fn defaults() -> Vec<Template> {
        vec![
            Template {
                template_id: ORDER_TEMPLATE_ID.into(),
                title: "订单状态更新".into(),
                keys: vec!["keyword1".into(), "keyword2".into(), "keyword3".into()],
                content:
                    "订单：{{keyword1.DATA}}\n金额：{{keyword2.DATA}}\n时间：{{keyword3.DATA}}"
                        .into(),
            },
            Template {
                template_id: POINTS_TEMPLATE_ID.into(),
                title: "积分变动提醒".into(),
                keys: vec!["thing1".into(), "number2".into()],
                content: "{{thing1.DATA}}，积分余额：{{number2.DATA}}".into(),
            },
        ]
    }
}

/// A message the simulated API accepted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SentMessage {
    /// `text` (customer service) or `template`.
    pub msgtype: String,
    /// The recipient's OpenID.
    pub touser: String,
    /// The text, or the template content rendered with its data.
    pub text: String,
    /// The template message's `msgid`.
    pub msgid: Option<u64>,
    /// `template_id`, for templates.
    pub template_id: Option<String>,
    /// Template data values by key.
    pub data: BTreeMap<String, String>,
    /// The template's `url`.
    pub url: Option<String>,
    /// When it was accepted, Unix seconds (simulated clock).
    pub received_at: i64,
    /// When it was accepted, Unix milliseconds.
    pub received_at_ms: i64,
}

/// Counters (`GET /_sim/wechat/stats`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WeChatStats {
    /// Messages accepted.
    pub accepted: u64,
    /// Customer-service texts accepted.
    pub accepted_text: u64,
    /// Template messages accepted.
    pub accepted_templates: u64,
    /// Accepted messages answered by resetting the connection
    /// (`reset_after_accept_rate` in `/_sim/faults`): no response at all.
    pub reset_after_accept: u64,
    /// Requests rejected, by `errcode`.
    pub rejected: BTreeMap<i64, u64>,
    /// Requests rejected in total.
    pub rejected_total: u64,
    /// Requests to `/cgi-bin/stable_token`, answered or not.
    pub token_requests: u64,
    /// Of those, `force_refresh: true`.
    pub forced_token_refreshes: u64,
    /// Tokens issued.
    pub tokens_issued: u64,
    /// Inbound-message pushes the host accepted.
    pub inbound_posted: u64,
    /// `subscribe` / `unsubscribe` pushes the host accepted.
    pub follow_events_posted: u64,
    /// `TEMPLATESENDJOBFINISH` pushes the host accepted.
    pub template_statuses_posted: u64,
    /// Pushes that failed after all retries.
    pub webhook_failures: u64,
    /// Push retries.
    pub webhook_retries: u64,
    /// Queued pushes dropped (queue full).
    pub webhook_dropped: u64,
    /// Queued pushes pending.
    pub webhook_pending: u64,
}

/// A user's customer-service window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    /// When it opened, Unix seconds.
    pub opened_at: i64,
    /// How long it lasts, seconds.
    pub duration_secs: i64,
    /// Messages it allows.
    pub cap: u32,
    /// Messages sent in it so far.
    pub sent: u32,
}

impl Window {
    /// Whether it is open at `now` (whatever its allowance).
    pub fn open_at(&self, now: i64) -> bool {
        now >= self.opened_at && now - self.opened_at < self.duration_secs
    }
}

/// Errors of the WeChat control operations.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WeChatControlError {
    /// Not an OpenID.
    #[error("invalid OpenID {0:?}: expected 28 characters, `o` then letters, digits, `-` or `_`")]
    InvalidOpenId(String),
    /// The webhook URL is not an absolute http(s) URL.
    #[error("invalid webhook URL {0:?}: expected an absolute http:// or https:// URL")]
    InvalidUrl(String),
    /// A request field was invalid.
    #[error("invalid request: {0}")]
    Invalid(String),
    /// The state changed, but the push could not be delivered.
    #[error("webhook not delivered: {0}")]
    Webhook(#[from] WebhookError),
}

/// Whether `id` looks like an OpenID: 28 characters, `o` followed by
/// base64url characters.
pub fn is_openid(id: &str) -> bool {
    id.len() == 28
        && id.starts_with('o')
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// A stable OpenID for `seed` (for tests and the demo).
pub fn openid_for(seed: &str) -> String {
    use base64::Engine as _;
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(format!("{DEFAULT_APP_ID}:{seed}").as_bytes());
    let encoded = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest);
    format!("o{}", &encoded[..27])
}

#[derive(Debug, Default, Clone, Copy)]
struct User {
    unsubscribed: bool,
    refused: bool,
}

/// Which daily quota.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Api {
    Custom,
    Template,
}

/// Mutable state, behind one lock.
#[derive(Debug)]
struct Inner {
    /// Issued tokens → expiry (Unix seconds). Revoked ones are removed.
    tokens: HashMap<String, i64>,
    current_token: Option<String>,
    users: HashMap<String, User>,
    windows: HashMap<String, Window>,
    usage: HashMap<(Api, i64), u64>,
    custom_daily_quota: u64,
    template_daily_quota: u64,
    templates: BTreeMap<String, Template>,
    template_statuses: HashMap<String, String>,
    templates_authorized: bool,
    safe_mode: bool,
    webhook_url: Option<String>,
    send_template_statuses: bool,
    status_delay_ms: u64,
    next_msgid: u64,
}

/// Shared state of the simulated Official Account.
pub(crate) struct WeChatState {
    app_id: String,
    app_secret: String,
    token: String,
    encoding_aes_key: String,
    aes_key: [u8; 32],
    inner: Mutex<Inner>,
    messages: Recorder<SentMessage>,
    rejections: RejectionCounter,
    accepted_text: AtomicU64,
    accepted_templates: AtomicU64,
    reset_after_accept: AtomicU64,
    token_requests: AtomicU64,
    forced_token_refreshes: AtomicU64,
    tokens_issued: AtomicU64,
    inbound_posted: AtomicU64,
    follow_events_posted: AtomicU64,
    template_statuses_posted: AtomicU64,
    sender: WebhookSender,
    client: reqwest::Client,
    clock: Arc<Clock>,
    faults: Arc<Faults>,
}

impl std::fmt::Debug for WeChatState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WeChatState")
            .field("app_id", &self.app_id)
            .finish_non_exhaustive()
    }
}

impl WeChatState {
    /// Start the platform: its state and its push queue.
    pub(crate) fn start(
        config: WeChatConfig,
        clock: Arc<Clock>,
        faults: Arc<Faults>,
    ) -> anyhow::Result<(Arc<Self>, Vec<JoinHandle<()>>)> {
        if let Some(url) = &config.webhook_url {
            check_url(url)?;
        }
        let aes_key = crypto::aes_key(&config.encoding_aes_key)?;
        let (sender, dispatcher) =
            WebhookSender::spawn(RetryPolicy::default(), QueueLimits::default())?;
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(10))
            .build()?;
        let templates = Template::defaults()
            .into_iter()
            .map(|t| (t.template_id.clone(), t))
            .collect();
        let state = Arc::new(Self {
            app_id: config.app_id,
            app_secret: config.app_secret,
            token: config.token,
            encoding_aes_key: config.encoding_aes_key,
            aes_key,
            inner: Mutex::new(Inner {
                tokens: HashMap::new(),
                current_token: None,
                users: HashMap::new(),
                windows: HashMap::new(),
                usage: HashMap::new(),
                custom_daily_quota: config.custom_daily_quota,
                template_daily_quota: config.template_daily_quota,
                templates,
                template_statuses: HashMap::new(),
                templates_authorized: config.templates_authorized,
                safe_mode: config.safe_mode,
                webhook_url: config.webhook_url,
                send_template_statuses: config.send_template_statuses,
                status_delay_ms: config.status_delay_ms,
                next_msgid: 200_228_332,
            }),
            messages: Recorder::new(),
            rejections: RejectionCounter::new(),
            accepted_text: AtomicU64::new(0),
            accepted_templates: AtomicU64::new(0),
            reset_after_accept: AtomicU64::new(0),
            token_requests: AtomicU64::new(0),
            forced_token_refreshes: AtomicU64::new(0),
            tokens_issued: AtomicU64::new(0),
            inbound_posted: AtomicU64::new(0),
            follow_events_posted: AtomicU64::new(0),
            template_statuses_posted: AtomicU64::new(0),
            sender,
            client,
            clock,
            faults,
        });
        Ok((state, vec![dispatcher]))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn webhook_url(&self) -> Option<String> {
        self.lock().webhook_url.clone()
    }
}

/// The day (in China Standard Time, UTC+8) that daily quotas count in.
fn china_day(unix: i64) -> i64 {
    (unix + 8 * 3600).div_euclid(86_400)
}

fn check_url(url: &str) -> Result<(), WeChatControlError> {
    if crate::webhook_sender::is_webhook_url(url) {
        Ok(())
    } else {
        Err(WeChatControlError::InvalidUrl(url.to_owned()))
    }
}

fn check_openid(openid: &str) -> Result<String, WeChatControlError> {
    let trimmed = openid.trim();
    if is_openid(trimmed) {
        Ok(trimmed.to_owned())
    } else {
        Err(WeChatControlError::InvalidOpenId(openid.to_owned()))
    }
}

/// The platform's API routes.
pub(crate) fn api_router(state: Arc<WeChatState>) -> Router {
    api::router(state)
}

/// The platform's `/_sim/wechat` control routes.
pub(crate) fn control_router(state: Arc<WeChatState>) -> Router {
    control::router(state)
}

/// In-process control of the simulated WeChat Official Accounts. Cheap to clone.
#[derive(Debug, Clone)]
pub struct WeChatControl {
    state: Arc<WeChatState>,
}

impl WeChatControl {
    pub(crate) fn new(state: Arc<WeChatState>) -> Self {
        Self { state }
    }

    /// The AppID.
    pub fn app_id(&self) -> &str {
        &self.state.app_id
    }

    /// The AppSecret.
    pub fn app_secret(&self) -> &str {
        &self.state.app_secret
    }

    /// The Token that signs pushes.
    pub fn token(&self) -> &str {
        &self.state.token
    }

    /// The EncodingAESKey of safe mode.
    pub fn encoding_aes_key(&self) -> &str {
        &self.state.encoding_aes_key
    }

    /// Every accepted message, oldest first.
    pub fn messages(&self) -> Vec<SentMessage> {
        self.state.messages.snapshot()
    }

    /// Accepted messages to `openid`.
    pub fn messages_to(&self, openid: &str) -> Vec<SentMessage> {
        let openid = openid.trim().to_owned();
        self.state.messages.filtered(|m| m.touser == openid)
    }

    /// Forgets the accepted messages.
    pub fn clear_messages(&self) {
        self.state.messages.clear();
    }

    /// Per OpenID, how many messages (customer-service texts and
    /// templates) were accepted for them (`GET /_sim/wechat/recipients`).
    /// WeChat has no idempotency key: every accepted request is a message.
    pub fn recipient_counts(&self) -> BTreeMap<String, u64> {
        crate::recorder::recipient_counts(
            self.state
                .messages
                .snapshot()
                .into_iter()
                .enumerate()
                .map(|(index, message)| (message.touser, index)),
        )
    }

    /// Requests made to `/cgi-bin/stable_token`.
    pub fn token_requests(&self) -> u64 {
        self.state.token_requests.load(Ordering::Relaxed)
    }

    /// Requests rejected with `errcode`.
    pub fn rejected_count(&self, errcode: i64) -> u64 {
        self.state.rejections.count(errcode)
    }

    /// All counters.
    pub fn stats(&self) -> WeChatStats {
        let s = &self.state;
        let sender = s.sender.stats();
        let text = s.accepted_text.load(Ordering::Relaxed);
        let templates = s.accepted_templates.load(Ordering::Relaxed);
        WeChatStats {
            accepted: text + templates,
            accepted_text: text,
            accepted_templates: templates,
            reset_after_accept: s.reset_after_accept.load(Ordering::Relaxed),
            rejected: s.rejections.snapshot(),
            rejected_total: s.rejections.total(),
            token_requests: s.token_requests.load(Ordering::Relaxed),
            forced_token_refreshes: s.forced_token_refreshes.load(Ordering::Relaxed),
            tokens_issued: s.tokens_issued.load(Ordering::Relaxed),
            inbound_posted: s.inbound_posted.load(Ordering::Relaxed),
            follow_events_posted: s.follow_events_posted.load(Ordering::Relaxed),
            template_statuses_posted: s.template_statuses_posted.load(Ordering::Relaxed),
            webhook_failures: sender.failures,
            webhook_retries: sender.retries,
            webhook_dropped: sender.dropped,
            webhook_pending: sender.pending,
        }
    }

    /// The user writes `text`: opens a 48-hour, 5-message window and posts
    /// the message push. Returns its `MsgId`. The window opens even when
    /// the push cannot be delivered (the error says why).
    pub async fn deliver_inbound(
        &self,
        openid: &str,
        text: &str,
    ) -> Result<String, WeChatControlError> {
        push::deliver_inbound(&self.state, openid, text, None).await
    }

    /// [`WeChatControl::deliver_inbound`] at a given time (Unix seconds).
    pub async fn deliver_inbound_at(
        &self,
        openid: &str,
        text: &str,
        at_unix: i64,
    ) -> Result<String, WeChatControlError> {
        push::deliver_inbound(&self.state, openid, text, Some(at_unix)).await
    }

    /// The user follows the account: a `subscribe` push, and a one-minute
    /// allowance of 3 messages.
    pub async fn follow(&self, openid: &str) -> Result<(), WeChatControlError> {
        push::post_follow(&self.state, openid, true).await
    }

    /// The user unfollows: an `unsubscribe` push; sends to them now fail
    /// (45015 for text, 43004 for templates).
    pub async fn unfollow(&self, openid: &str) -> Result<(), WeChatControlError> {
        push::post_follow(&self.state, openid, false).await
    }

    /// The user refuses (or accepts again) the account's messages: sends
    /// fail with 43101 while refused. No push is sent.
    pub fn set_refused(&self, openid: &str, refused: bool) -> Result<(), WeChatControlError> {
        let openid = check_openid(openid)?;
        self.state.lock().users.entry(openid).or_default().refused = refused;
        Ok(())
    }

    /// Opens a 48-hour, 5-message window for `openid` now, silently.
    pub fn open_window(&self, openid: &str) -> Result<(), WeChatControlError> {
        self.open_window_at(openid, self.state.clock.now_unix())
    }

    /// Opens a 48-hour, 5-message window as if the user wrote at `at_unix`.
    pub fn open_window_at(&self, openid: &str, at_unix: i64) -> Result<(), WeChatControlError> {
        let openid = check_openid(openid)?;
        self.state.lock().windows.insert(
            openid,
            Window {
                opened_at: at_unix,
                duration_secs: WINDOW_SECS,
                cap: WINDOW_MESSAGES,
                sent: 0,
            },
        );
        Ok(())
    }

    /// Forgets `openid`'s window. Returns whether there was one.
    pub fn close_window(&self, openid: &str) -> bool {
        self.state.lock().windows.remove(openid.trim()).is_some()
    }

    /// `openid`'s window, open or not.
    pub fn window(&self, openid: &str) -> Option<Window> {
        self.state.lock().windows.get(openid.trim()).copied()
    }

    /// Sets (or with `None` clears) where pushes are posted.
    pub fn set_webhook_url(&self, url: Option<&str>) -> Result<(), WeChatControlError> {
        if let Some(url) = url {
            check_url(url)?;
        }
        self.state.lock().webhook_url = url.map(str::to_owned);
        Ok(())
    }

    /// Where pushes are posted, if anywhere.
    pub fn webhook_url(&self) -> Option<String> {
        self.state.webhook_url()
    }

    /// Encrypt pushes (safe mode) or send them in plain text.
    pub fn set_safe_mode(&self, enabled: bool) {
        self.state.lock().safe_mode = enabled;
    }

    /// Whether pushes are encrypted.
    pub fn safe_mode(&self) -> bool {
        self.state.lock().safe_mode
    }

    /// Customer-service messages accepted per day (0: every one gets 45009).
    pub fn set_custom_daily_quota(&self, quota: u64) {
        self.state.lock().custom_daily_quota = quota;
    }

    /// Template messages accepted per day (0: every one gets 45009).
    pub fn set_template_daily_quota(&self, quota: u64) {
        self.state.lock().template_daily_quota = quota;
    }

    /// Whether the account may send template messages (else 48001).
    pub fn set_templates_authorized(&self, authorized: bool) {
        self.state.lock().templates_authorized = authorized;
    }

    /// Adds (or replaces) a template.
    pub fn add_template(&self, template: Template) {
        self.state
            .lock()
            .templates
            .insert(template.template_id.clone(), template);
    }

    /// The account's templates.
    pub fn templates(&self) -> Vec<Template> {
        self.state.lock().templates.values().cloned().collect()
    }

    /// The `Status` of the `TEMPLATESENDJOBFINISH` push for templates to
    /// `openid` (`None`: `success`), e.g. `failed:user block`.
    pub fn set_template_status(&self, openid: &str, status: Option<&str>) {
        let mut inner = self.state.lock();
        match status {
            Some(status) => inner
                .template_statuses
                .insert(openid.trim().to_owned(), status.to_owned()),
            None => inner.template_statuses.remove(openid.trim()),
        };
    }

    /// Turns `TEMPLATESENDJOBFINISH` pushes on or off.
    pub fn set_send_template_statuses(&self, enabled: bool) {
        self.state.lock().send_template_statuses = enabled;
    }

    /// Changes the delay before each `TEMPLATESENDJOBFINISH` push.
    pub fn set_status_delay(&self, delay: Duration) {
        self.state.lock().status_delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
    }

    /// Invalidates every issued access token (calls then get 40001).
    pub fn revoke_tokens(&self) {
        let mut inner = self.state.lock();
        inner.tokens.clear();
        inner.current_token = None;
    }

    /// Verifies the server URL as WeChat does: a signed `GET` with an
    /// `echostr`, which must come back as the body. Returns whether it did.
    pub async fn verify_url(&self) -> Result<bool, WeChatControlError> {
        push::verify_url(&self.state).await
    }

    /// Waits until every queued push was posted (or gave up), or `timeout`
    /// passes. Returns whether the queue drained.
    pub async fn wait_for_webhooks(&self, timeout: Duration) -> bool {
        self.state.sender.wait_idle(timeout).await
    }

    /// Clears messages, counters, windows, users, quota usage and tokens.
    /// Configuration (URL, mode, quotas, templates) is kept.
    pub fn reset(&self) {
        let s = &self.state;
        s.messages.clear();
        s.rejections.clear();
        for counter in [
            &s.accepted_text,
            &s.accepted_templates,
            &s.reset_after_accept,
            &s.token_requests,
            &s.forced_token_refreshes,
            &s.tokens_issued,
            &s.inbound_posted,
            &s.follow_events_posted,
            &s.template_statuses_posted,
        ] {
            counter.store(0, Ordering::Relaxed);
        }
        s.sender.reset_stats();
        let mut inner = s.lock();
        inner.tokens.clear();
        inner.current_token = None;
        inner.users.clear();
        inner.windows.clear();
        inner.usage.clear();
        inner.template_statuses.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openids() {
        assert!(is_openid("oDF3iY9ffA-hqb2vVvbr7qxf6A0Q"));
        assert!(!is_openid("DF3iY9ffA-hqb2vVvbr7qxf6A0Qo"));
        assert!(!is_openid("oDF3iY9ffA-hqb2vVvbr7qxf6A0"));
        assert!(!is_openid("oDF3iY9ffA+hqb2vVvbr7qxf6A0Q"));
        let a = openid_for("alice");
        assert!(is_openid(&a), "{a}");
        assert_eq!(a, openid_for("alice"));
        assert_ne!(a, openid_for("bob"));
    }

    #[test]
    fn default_key_is_43_characters_and_decodes() {
        assert_eq!(DEFAULT_ENCODING_AES_KEY.len(), 43);
        assert!(crypto::aes_key(DEFAULT_ENCODING_AES_KEY).is_ok());
    }

    #[test]
    fn windows_and_days() {
        let w = Window {
            opened_at: 1000,
            duration_secs: 60,
            cap: 3,
            sent: 0,
        };
        assert!(w.open_at(1000) && w.open_at(1059));
        assert!(!w.open_at(1060) && !w.open_at(999));
        // 16:00 UTC is midnight in China.
        assert_eq!(china_day(16 * 3600 - 1), 0);
        assert_eq!(china_day(16 * 3600), 1);
    }

    #[test]
    fn templates_render() {
        let t = &Template::defaults()[0];
        let data = BTreeMap::from([
            ("keyword1".to_owned(), "#1234".to_owned()),
            ("keyword2".to_owned(), "39.80".to_owned()),
            ("keyword3".to_owned(), "2024-09-22".to_owned()),
        ]);
        assert_eq!(
            t.render(&data),
            "订单：#1234\n金额：39.80\n时间：2024-09-22"
        );
    }
}
