//! The simulated Telegram Bot API.
//!
//! Serves `POST /bot{token}/sendMessage` (and `/bot{token}/getMe`) like
//! `api.telegram.org` (<https://core.telegram.org/bots/api>), and posts
//! `Update`s to the host's webhook with the header
//! `X-Telegram-Bot-Api-Secret-Token` (the `secret_token` of `setWebhook`).
//!
//! ## Sending
//!
//! Every reply is the Bot API envelope: `{"ok":true,"result":…}` or
//! `{"ok":false,"error_code":N,"description":"…"[,"parameters":{"retry_after":N}]}`,
//! with `error_code` equal to the HTTP status. Checks, in order:
//!
//! | Check | HTTP | `description` |
//! |---|---|---|
//! | the token in the path is not `<digits>:<[A-Za-z0-9_-]+>` | 404 | `Not Found` |
//! | the token is not the bot's | 401 | `Unauthorized` |
//! | a method other than `sendMessage` / `getMe` (case-insensitive) | 404 | `Not Found` |
//! | injected fault (shared `/_sim/faults`) | 500 | `Internal Server Error` |
//! | over the bot's rate (token bucket, burst = one second; default 30/s, the Bots FAQ's figure) | 429 | `Too Many Requests: retry after N`, `parameters.retry_after` = `retry_after_secs` |
//! | `chat_id` missing or blank (the body is read as JSON; anything else has no parameters) | 400 | `Bad Request: chat_id is empty` |
//! | `chat_id` not an integer (e.g. `@channel`) | 400 | `Bad Request: chat not found` |
//! | `text` missing or blank | 400 | `Bad Request: message text is empty` |
//! | `text` over 4,096 UTF-16 code units | 400 | `Bad Request: message is too long` |
//! | `parse_mode` other than `HTML`, `Markdown`, `MarkdownV2` | 400 | `Bad Request: unsupported parse_mode` |
//! | the chat never started the bot | 400 | `Bad Request: chat not found` |
//! | the user blocked the bot | 403 | `Forbidden: bot was blocked by the user` |
//! | per-chat interval (`per_chat_interval_ms`, off by default; the FAQ asks for at most one message per second in a chat): a message to the chat sooner than that after the last | 429 | `Too Many Requests: retry after N` (the rest of the interval, rounded up) |
//!
//! Success: `{"ok":true,"result":{"message_id","from":<the bot>,"chat":{"id","first_name","type":"private"},"date","text"}}`.
//! Message ids count up per chat (both directions share them, as in a real
//! private chat). The message is recorded as a [`TelegramMessage`]; the
//! shared `reset_after_accept_rate` fault records it and then resets the
//! connection (counted in `reset_after_accept`).
//!
//! ## Webhooks
//!
//! `POST`ed to the configured URL as JSON `Update`s with a fresh, increasing
//! `update_id`: a `message` from the user (text; `/start` with its
//! `bot_command` entity) or a `my_chat_member` change of the bot's status in
//! the user's private chat (`member` → `kicked` when blocked, `kicked` →
//! `member` when unblocked).
//!
//! ## Control routes (`/_sim/telegram`)
//!
//! | Route | Body | Does |
//! |---|---|---|
//! | `GET /messages[?chat_id=N]`, `DELETE /messages` | | accepted messages ([`TelegramMessage`]) / forget them |
//! | `GET /stats` | | [`TelegramStats`] |
//! | `GET /recipients` | | `{"<chat id>": N}`: accepted messages per chat ([`TelegramControl::recipient_counts`]) |
//! | `GET /chats`, `POST /chats` | `{"chat_id","first_name"?,"blocked"?}` | known chats / add or change one silently (no webhook) |
//! | `POST /start` | `{"chat_id","first_name"?}` | the user starts the bot: known (and unblocked, posting `my_chat_member` `kicked` → `member` if it was blocked), then a `/start` message is posted |
//! | `POST /block`, `POST /unblock` | `{"chat_id"}` | the user blocks / unblocks the bot; posts the `my_chat_member` change |
//! | `POST /inbound` | `{"chat_id","text"}` | the user writes to the bot: a `message` update |
//! | `GET` / `PUT /webhook` | `{"url":"…"\|null}` | where updates go |
//! | `GET` / `PUT /rate` | `{"messages_per_second"?,"retry_after_secs"?,"per_chat_interval_ms"?:N\|null}` | the bot's rate (0 = unlimited), the `retry_after` of its 429s, the per-chat interval (`null` = off); a missing field is left unchanged |
//! | `POST /reset` | | clear messages, chats, counters (settings kept) |
//!
//! Webhook routes answer 200 `{"update_id":N}`, 409 when no webhook URL is
//! set (the chat's state is changed all the same), 502 when the host did
//! not accept the update, 404 for a chat that never started the bot.
//!
//! Defaults ([`TelegramConfig::default`]): bot token [`DEFAULT_BOT_TOKEN`],
//! webhook secret token [`DEFAULT_WEBHOOK_SECRET`], 30 messages/s,
//! `retry_after` 1 s, no per-chat interval.

mod api;
mod control;
pub mod error;
mod webhooks;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use axum::Router;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::task::JoinHandle;

use crate::clock::Clock;
use crate::faults::Faults;
use crate::rate_limit::TokenBucket;
use crate::recorder::{Recorder, RejectionCounter};
use crate::webhook_sender::{QueueLimits, RetryPolicy, WebhookError, WebhookSender};

pub use error::BotApiError;
pub use webhooks::SECRET_HEADER;

/// Default bot token (`/bot123456789:sim-telegram-bot-token/sendMessage`).
pub const DEFAULT_BOT_TOKEN: &str = "123456789:sim-telegram-bot-token";
/// Default webhook secret token, sent in `X-Telegram-Bot-Api-Secret-Token`.
pub const DEFAULT_WEBHOOK_SECRET: &str = "sim-telegram-webhook-secret";
/// The bot's username.
pub const DEFAULT_BOT_USERNAME: &str = "switchboard_sim_bot";
/// Longest text `sendMessage` takes, in UTF-16 code units.
pub const MAX_TEXT_UTF16: usize = 4096;
/// The first `update_id` posted.
const FIRST_UPDATE_ID: i64 = 700_000_001;

/// Configuration of the simulated Telegram Bot API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TelegramConfig {
    /// The only bot token accepted (`<bot id>:<secret>`).
    pub bot_token: String,
    /// The `secret_token` the webhook was set with; empty sends no header.
    pub webhook_secret: String,
    /// The bot's username (`getMe`, `from` of its messages).
    pub bot_username: String,
    /// Messages per second for the whole bot (burst = one second's worth); 0 = unlimited.
    pub messages_per_second: u32,
    /// `parameters.retry_after` of a 429, in seconds.
    pub retry_after_secs: u64,
    /// Least time between two messages to one chat, in ms; `None` = off.
    pub per_chat_interval_ms: Option<u64>,
    /// Where updates are posted, e.g. `http://127.0.0.1:8080/webhooks/telegram`.
    pub webhook_url: Option<String>,
}

impl Default for TelegramConfig {
    fn default() -> Self {
        Self {
            bot_token: DEFAULT_BOT_TOKEN.into(),
            webhook_secret: DEFAULT_WEBHOOK_SECRET.into(),
            bot_username: DEFAULT_BOT_USERNAME.into(),
            messages_per_second: 30,
            retry_after_secs: 1,
            per_chat_interval_ms: None,
            webhook_url: None,
        }
    }
}

/// One message the bot sent and Telegram accepted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TelegramMessage {
    /// `result.message_id`, unique within its chat.
    pub message_id: i64,
    /// The chat it went to.
    pub chat_id: i64,
    /// The text.
    pub text: String,
    /// Whether it was sent silently.
    pub disable_notification: bool,
    /// When it was accepted, in Unix milliseconds (simulated clock).
    pub received_at_ms: i64,
}

/// A private chat with the bot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TelegramChat {
    /// The chat id (the user's id).
    pub chat_id: i64,
    /// The user's first name.
    pub first_name: String,
    /// Whether the user blocked the bot.
    pub blocked: bool,
}

/// Counters of the simulated Bot API (`GET /_sim/telegram/stats`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TelegramStats {
    /// `sendMessage` requests accepted.
    pub accepted: u64,
    /// Requests rejected, by `error_code`.
    pub rejected: BTreeMap<i64, u64>,
    /// Requests rejected in total.
    pub rejected_total: u64,
    /// 429s (the bot's rate or a chat's interval).
    pub rate_limited: u64,
    /// Injected 500s.
    pub faults: u64,
    /// Accepted requests answered by resetting the connection
    /// (`reset_after_accept_rate` in `/_sim/faults`).
    pub reset_after_accept: u64,
    /// Chats that started the bot.
    pub chats: u64,
    /// Of those, blocked.
    pub blocked_chats: u64,
    /// `message` updates the host accepted.
    pub inbound_posted: u64,
    /// `my_chat_member` updates the host accepted.
    pub member_updates_posted: u64,
    /// Updates the host accepted.
    pub webhooks_posted: u64,
    /// Update posts that failed after all retries.
    pub webhook_failures: u64,
    /// Update post retries made.
    pub webhook_retries: u64,
}

/// Errors of the Telegram control operations.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TelegramControlError {
    /// The chat never started the bot.
    #[error("chat {0} has not started the bot")]
    UnknownChat(i64),
    /// The webhook URL is not an absolute http(s) URL.
    #[error("invalid webhook URL {0:?}: expected an absolute http:// or https:// URL")]
    InvalidUrl(String),
    /// A request field was invalid.
    #[error("invalid request: {0}")]
    Invalid(String),
    /// The state changed, but the update could not be posted.
    #[error("webhook not delivered: {0}")]
    Webhook(#[from] WebhookError),
}

/// What the simulator keeps per chat.
#[derive(Debug, Clone)]
struct ChatState {
    first_name: String,
    blocked: bool,
    last_message_id: i64,
    last_sent_ms: Option<i64>,
}

impl ChatState {
    fn new(first_name: &str) -> Self {
        Self {
            first_name: first_name.to_owned(),
            blocked: false,
            last_message_id: 0,
            last_sent_ms: None,
        }
    }

    fn next_message_id(chat: &mut Self) -> i64 {
        chat.last_message_id += 1;
        chat.last_message_id
    }
}

/// Shared state of the simulated Bot API.
pub struct TelegramState {
    bot_token: String,
    bot_id: i64,
    bot_username: String,
    webhook_secret: String,
    webhook_url: RwLock<Option<String>>,
    bucket: TokenBucket,
    retry_after_secs: AtomicU64,
    /// 0 = off.
    per_chat_interval_ms: AtomicU64,
    chats: Mutex<BTreeMap<i64, ChatState>>,
    next_update_id: AtomicI64,
    messages: Recorder<TelegramMessage>,
    rejections: RejectionCounter,
    accepted: AtomicU64,
    rate_limited: AtomicU64,
    faults_injected: AtomicU64,
    reset_after_accept: AtomicU64,
    inbound_posted: AtomicU64,
    member_updates_posted: AtomicU64,
    sender: WebhookSender,
    clock: Arc<Clock>,
    faults: Arc<Faults>,
}

impl std::fmt::Debug for TelegramState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TelegramState")
            .field("bot_username", &self.bot_username)
            .field("webhook_url", &self.webhook_url())
            .finish_non_exhaustive()
    }
}

impl TelegramState {
    /// Start the platform: its state and its webhook dispatcher.
    pub(crate) fn start(
        config: TelegramConfig,
        clock: Arc<Clock>,
        faults: Arc<Faults>,
    ) -> anyhow::Result<(Arc<Self>, Vec<JoinHandle<()>>)> {
        if !is_bot_token(&config.bot_token) {
            anyhow::bail!(
                "the Telegram bot token {:?} is not `<bot id>:<secret>`",
                config.bot_token
            );
        }
        if let Some(url) = &config.webhook_url {
            check_url(url)?;
        }
        let bot_id = config
            .bot_token
            .split(':')
            .next()
            .and_then(|id| id.parse().ok())
            .unwrap_or_default();
        let (sender, dispatcher) =
            WebhookSender::spawn(RetryPolicy::default(), QueueLimits::default())?;
        let state = Arc::new(Self {
            bot_token: config.bot_token,
            bot_id,
            bot_username: config.bot_username,
            webhook_secret: config.webhook_secret,
            webhook_url: RwLock::new(config.webhook_url),
            bucket: TokenBucket::new(config.messages_per_second),
            retry_after_secs: AtomicU64::new(config.retry_after_secs),
            per_chat_interval_ms: AtomicU64::new(config.per_chat_interval_ms.unwrap_or(0)),
            chats: Mutex::new(BTreeMap::new()),
            next_update_id: AtomicI64::new(FIRST_UPDATE_ID),
            messages: Recorder::new(),
            rejections: RejectionCounter::new(),
            accepted: AtomicU64::new(0),
            rate_limited: AtomicU64::new(0),
            faults_injected: AtomicU64::new(0),
            reset_after_accept: AtomicU64::new(0),
            inbound_posted: AtomicU64::new(0),
            member_updates_posted: AtomicU64::new(0),
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

    fn retry_after_secs(&self) -> u64 {
        self.retry_after_secs.load(Ordering::Relaxed)
    }

    /// How long `chat` must still wait under the per-chat interval, if any.
    fn per_chat_wait_ms(&self, chat: &ChatState, now_ms: i64) -> Option<u64> {
        let interval = self.per_chat_interval_ms.load(Ordering::Relaxed);
        let last = chat.last_sent_ms?;
        let elapsed = u64::try_from(now_ms.saturating_sub(last)).unwrap_or(0);
        (interval > 0 && elapsed < interval).then(|| interval - elapsed)
    }

    /// The bot as a `User` (`getMe` adds what only `getMe` returns).
    fn bot_user(&self, get_me: bool) -> Value {
        let mut user = json!({
            "id": self.bot_id,
            "is_bot": true,
            "first_name": "Switchboard Simulator",
            "username": self.bot_username,
        });
        if get_me && let Some(obj) = user.as_object_mut() {
            obj.insert("can_join_groups".into(), json!(true));
            obj.insert("can_read_all_group_messages".into(), json!(false));
            obj.insert("supports_inline_queries".into(), json!(false));
        }
        user
    }
}

/// Whether `token` is shaped like a bot token: `<digits>:<[A-Za-z0-9_-]+>`.
fn is_bot_token(token: &str) -> bool {
    token.split_once(':').is_some_and(|(id, secret)| {
        !id.is_empty()
            && id.bytes().all(|b| b.is_ascii_digit())
            && !secret.is_empty()
            && secret
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    })
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

fn check_url(url: &str) -> Result<(), TelegramControlError> {
    if crate::webhook_sender::is_webhook_url(url) {
        Ok(())
    } else {
        Err(TelegramControlError::InvalidUrl(url.to_owned()))
    }
}

/// The platform's API routes.
pub(crate) fn api_router(state: Arc<TelegramState>) -> Router {
    api::router(state)
}

/// The platform's `/_sim/telegram` control routes.
pub(crate) fn control_router(state: Arc<TelegramState>) -> Router {
    control::router(state)
}

/// In-process control of the simulated Telegram Bot API: what the
/// `/_sim/telegram/...` routes do, for tests in the same process. Cheap to
/// clone.
#[derive(Debug, Clone)]
pub struct TelegramControl {
    state: Arc<TelegramState>,
}

impl TelegramControl {
    pub(crate) fn new(state: Arc<TelegramState>) -> Self {
        Self { state }
    }

    /// The accepted bot token.
    pub fn bot_token(&self) -> &str {
        &self.state.bot_token
    }

    /// The webhook secret token sent with every update.
    pub fn webhook_secret(&self) -> &str {
        &self.state.webhook_secret
    }

    /// The bot's user id (the digits before the token's colon).
    pub fn bot_id(&self) -> i64 {
        self.state.bot_id
    }

    /// Every accepted message, oldest first.
    pub fn messages(&self) -> Vec<TelegramMessage> {
        self.state.messages.snapshot()
    }

    /// Accepted messages to `chat_id`.
    pub fn messages_to(&self, chat_id: i64) -> Vec<TelegramMessage> {
        self.state.messages.filtered(|m| m.chat_id == chat_id)
    }

    /// Forgets the accepted messages.
    pub fn clear_messages(&self) {
        self.state.messages.clear();
    }

    /// Per chat id (in decimal), how many messages were accepted for it
    /// (`GET /_sim/telegram/recipients`). Telegram does not deduplicate,
    /// so a resend is a second message.
    pub fn recipient_counts(&self) -> BTreeMap<String, u64> {
        self.state
            .messages
            .recipient_counts(|m| (m.chat_id.to_string(), m.message_id))
    }

    /// All counters.
    pub fn stats(&self) -> TelegramStats {
        let s = &self.state;
        let sender = s.sender.stats();
        let (chats, blocked_chats) = {
            let chats = lock(&s.chats);
            (
                chats.len() as u64,
                chats.values().filter(|chat| chat.blocked).count() as u64,
            )
        };
        TelegramStats {
            accepted: s.accepted.load(Ordering::Relaxed),
            rejected: s.rejections.snapshot(),
            rejected_total: s.rejections.total(),
            rate_limited: s.rate_limited.load(Ordering::Relaxed),
            faults: s.faults_injected.load(Ordering::Relaxed),
            reset_after_accept: s.reset_after_accept.load(Ordering::Relaxed),
            chats,
            blocked_chats,
            inbound_posted: s.inbound_posted.load(Ordering::Relaxed),
            member_updates_posted: s.member_updates_posted.load(Ordering::Relaxed),
            webhooks_posted: sender.posted,
            webhook_failures: sender.failures,
            webhook_retries: sender.retries,
        }
    }

    /// The chats that started the bot.
    pub fn chats(&self) -> Vec<TelegramChat> {
        lock(&self.state.chats)
            .iter()
            .map(|(&chat_id, chat)| TelegramChat {
                chat_id,
                first_name: chat.first_name.clone(),
                blocked: chat.blocked,
            })
            .collect()
    }

    /// The user of `chat_id` has started the bot, silently (no update is
    /// posted): messages to the chat are accepted. An existing chat keeps
    /// its state and takes the new name.
    pub fn add_chat(&self, chat_id: i64, first_name: &str) {
        lock(&self.state.chats)
            .entry(chat_id)
            .and_modify(|chat| chat.first_name = first_name.to_owned())
            .or_insert_with(|| ChatState::new(first_name));
    }

    /// Whether the user of `chat_id` started the bot.
    pub fn is_started(&self, chat_id: i64) -> bool {
        lock(&self.state.chats).contains_key(&chat_id)
    }

    /// Whether the user of `chat_id` blocked the bot.
    pub fn is_blocked(&self, chat_id: i64) -> bool {
        lock(&self.state.chats)
            .get(&chat_id)
            .is_some_and(|chat| chat.blocked)
    }

    /// Blocks or unblocks the bot for a started chat, silently.
    pub fn set_blocked(&self, chat_id: i64, blocked: bool) -> Result<(), TelegramControlError> {
        lock(&self.state.chats)
            .get_mut(&chat_id)
            .map(|chat| chat.blocked = blocked)
            .ok_or(TelegramControlError::UnknownChat(chat_id))
    }

    /// The user presses Start: the chat becomes known (and unblocked: a
    /// `my_chat_member` `kicked` → `member` update is posted first if it
    /// was blocked), then the `/start` message is posted. Returns the
    /// message's `update_id`.
    pub async fn start(&self, chat_id: i64, first_name: &str) -> Result<i64, TelegramControlError> {
        let was_blocked = {
            let mut chats = lock(&self.state.chats);
            let chat = chats
                .entry(chat_id)
                .or_insert_with(|| ChatState::new(first_name));
            std::mem::replace(&mut chat.blocked, false)
        };
        if was_blocked {
            webhooks::member_change(&self.state, chat_id, "kicked", "member").await?;
        }
        webhooks::message(&self.state, chat_id, "/start").await
    }

    /// The user blocks the bot: messages to the chat get 403, and a
    /// `my_chat_member` `member` → `kicked` update is posted. Returns its
    /// `update_id`.
    pub async fn block(&self, chat_id: i64) -> Result<i64, TelegramControlError> {
        self.set_blocked(chat_id, true)?;
        webhooks::member_change(&self.state, chat_id, "member", "kicked").await
    }

    /// The user unblocks the bot: a `my_chat_member` `kicked` → `member`
    /// update is posted. Returns its `update_id`.
    pub async fn unblock(&self, chat_id: i64) -> Result<i64, TelegramControlError> {
        self.set_blocked(chat_id, false)?;
        webhooks::member_change(&self.state, chat_id, "kicked", "member").await
    }

    /// The user of a started chat writes `text` to the bot: a `message`
    /// update is posted. Returns its `update_id`.
    pub async fn send_text(&self, chat_id: i64, text: &str) -> Result<i64, TelegramControlError> {
        webhooks::message(&self.state, chat_id, text).await
    }

    /// Sets (or with `None` clears) where updates are posted.
    pub fn set_webhook_url(&self, url: Option<&str>) -> Result<(), TelegramControlError> {
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

    /// Where updates are posted, if anywhere.
    pub fn webhook_url(&self) -> Option<String> {
        self.state.webhook_url()
    }

    /// Changes the bot's rate (0 = unlimited) and refills its bucket.
    pub fn set_messages_per_second(&self, rate: u32) {
        self.state.bucket.set_rate(rate);
    }

    /// The bot's rate (0 = unlimited).
    pub fn messages_per_second(&self) -> u32 {
        self.state.bucket.rate()
    }

    /// Sets the `retry_after` of 429s for the bot's rate, in seconds.
    pub fn set_retry_after_secs(&self, secs: u64) {
        self.state.retry_after_secs.store(secs, Ordering::Relaxed);
    }

    /// The `retry_after` of 429s for the bot's rate, in seconds.
    pub fn retry_after_secs(&self) -> u64 {
        self.state.retry_after_secs()
    }

    /// Sets (or with `None` turns off) the least interval between two
    /// messages to one chat.
    pub fn set_per_chat_interval_ms(&self, interval_ms: Option<u64>) {
        self.state
            .per_chat_interval_ms
            .store(interval_ms.unwrap_or(0), Ordering::Relaxed);
    }

    /// The per-chat interval, if on.
    pub fn per_chat_interval_ms(&self) -> Option<u64> {
        Some(self.state.per_chat_interval_ms.load(Ordering::Relaxed)).filter(|&ms| ms > 0)
    }

    /// Waits until no update is being posted, or `timeout` passes.
    pub async fn wait_for_webhooks(&self, timeout: Duration) -> bool {
        self.state.sender.wait_idle(timeout).await
    }

    /// Clears messages, chats and counters. Configuration (token, secret,
    /// webhook URL, rates) is kept.
    pub fn reset(&self) {
        let s = &self.state;
        s.messages.clear();
        s.rejections.clear();
        lock(&s.chats).clear();
        for counter in [
            &s.accepted,
            &s.rate_limited,
            &s.faults_injected,
            &s.reset_after_accept,
            &s.inbound_posted,
            &s.member_updates_posted,
        ] {
            counter.store(0, Ordering::Relaxed);
        }
        s.sender.reset_stats();
    }
}

#[cfg(test)]
mod tests;
