//! # Switchboard platform simulator
//!
//! One process that serves messaging platforms' APIs on loopback, for tests,
//! benchmarks and the demo. It enforces the platforms' paths, auth, payload
//! rules, error codes, windows and rate limits; records what it accepted;
//! signs and posts webhooks (statuses, inbound messages, opt-outs) to the
//! host; and injects faults on request.
//!
//! Platforms served today: **WhatsApp Cloud API** ([`whatsapp`]), LINE
//! ([`line`]), KakaoTalk ([`kakaotalk`]), WeChat ([`wechat`]), RCS ([`rcs`])
//! and the Telegram Bot API ([`telegram`]), one module each, sharing
//! [`webhook_sender`], [`rate_limit`], [`recorder`], [`faults`], [`clock`]
//! and the `/_sim` [`control`](crate#control-api) API.
//!
//! ## Starting it
//!
//! From a shell: `switchboard-simulator --listen 127.0.0.1:0` prints
//! `listening on http://127.0.0.1:PORT` on stdout (flushed), then serves until
//! SIGINT/SIGTERM. `--help` lists the flags (each has a `SIM_…` environment
//! variable).
//!
//! In process:
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use switchboard_simulator::{Simulator, SimulatorConfig};
//! let sim = Simulator::start("127.0.0.1:0".parse()?, SimulatorConfig::default()).await?;
//! let wa = sim.whatsapp();
//! wa.set_webhook_url(Some("http://127.0.0.1:8080/webhooks/whatsapp"))?;
//! wa.open_window("4915112345678")?;
//! // ... point the WhatsApp adapter at sim.base_url() instead of https://graph.facebook.com
//! println!("{} accepted", wa.messages().len());
//! sim.shutdown().await?;
//! # Ok(()) }
//! ```
//!
//! ## WhatsApp Cloud API
//!
//! `POST {base_url}/{version}/{phone-number-id}/messages`, with `version`
//! like `v21.0`. Checks, in order, each answering with Meta's Graph error
//! body `{"error":{"message","type","code","error_data":{"messaging_product":"whatsapp","details"},"fbtrace_id"}}`:
//!
//! | Check | HTTP | code |
//! |---|---|---|
//! | version not `vNN.N` | 400 | 2500 |
//! | `Authorization: Bearer` (or `?access_token=`) missing or wrong | 401 | 190 (`OAuthException`) |
//! | unknown phone-number-id | 400 | 100 (`GraphMethodException`, "Unsupported post request…") |
//! | injected fault (`/_sim/faults`) | 500 | 131000 |
//! | over the throughput limit (token bucket, burst = one second); with `Retry-After: <retry_after_secs>` when that is set | 400 | 130429 |
//! | body not JSON / `messaging_product` missing or not `whatsapp` / `to` missing | 400 | 100 |
//! | `to` not 7–15 digits (optional leading `+`) | 400 | 131009 |
//! | `type` other than `text` / `template` (missing = `text`) | 400 | 131051 |
//! | `text.body` missing, empty or over 4,096 characters | 400 | 100 |
//! | template `name` / `language.code` missing, component `type` not header/body/button, body parameter not `{"type":"text","text":"…"}` | 400 | 100 |
//! | template not in the registry for that language | 400 | 132001 |
//! | wrong number of body (or header) parameters | 400 | 132000 |
//! | marketing template to a user who stopped marketing messages | 400 | 131050 |
//! | `text` to a user who has not written in the last 24 h | 400 | 131047 |
//! | pair rate (`pair_interval_ms`, off by default): a message to a user who was sent one less than the interval ago (simulated clock, ms) | 400 | 131056 |
//! | messaging limit (`daily_unique_recipients`, off by default): a template to a user whose window is closed, who was not reached that way in the last 24 h, when that many users already were (Meta has no dedicated code for the tier; the simulator uses 131048 "Spam rate limit hit") | 400 | 131048 |
//!
//! The throttling settings `retry_after_secs`, `pair_interval_ms` and
//! `daily_unique_recipients` are in [`WhatsAppConfig`], on
//! [`WhatsAppControl`] and under `/_sim/whatsapp/throughput` and
//! `/_sim/whatsapp/limits`. Text replies inside a window and templates to
//! users with an open window never count toward the messaging limit;
//! refused messages count toward neither limit.
//!
//! Default templates (all `en_US`): `winback_offer` (marketing, 1 body
//! parameter), `order_update` (utility, 2), `loyalty_points` (marketing, 2).
//!
//! Success: `{"messaging_product":"whatsapp","contacts":[{"input":to,"wa_id":digits}],"messages":[{"id":"wamid.…"}]}`.
//! The message is recorded and, if statuses are on and a webhook URL is set,
//! `sent`, `delivered` and `read` status webhooks follow, `status_delay_ms`
//! apart, from a background queue (retried with backoff; failures counted).
//!
//! Webhooks are `POST`ed with `Content-Type: application/json` and
//! `X-Hub-Signature-256: sha256=<lowercase hex HMAC-SHA256(app_secret, raw body)>`,
//! in the envelope `{"object":"whatsapp_business_account","entry":[{"id":WABA_ID,"changes":[{"field":…,"value":{"messaging_product":"whatsapp","metadata":{"display_phone_number","phone_number_id"},…}}]}]}`
//! (see [`whatsapp::WABA_ID`], [`whatsapp::DISPLAY_PHONE_NUMBER`]).
//!
//! ## Control API
//!
//! JSON in, JSON out; errors are `{"error":"…"}`.
//!
//! | Route | Body | Does |
//! |---|---|---|
//! | `GET /_sim/health` | | `{"status":"ok"}` |
//! | `GET` / `PUT /_sim/faults` | `{"error_rate":0.0..1.0,"latency_ms":N,"reset_after_accept_rate":0.0..1.0,"slow_response_ms":N}` (a `PUT` replaces the whole configuration; missing fields are 0) | fault injection on platform APIs, see [Fault injection](crate#fault-injection); a rate outside 0.0–1.0 is a 400 |
//! | `GET` / `DELETE /_sim/faults/stats` | | what was injected on all platforms: `errors_injected`, `reset_after_accept`, `slow_responses` / zero them |
//! | `GET` / `PUT /_sim/clock` | `{"offset_secs":N}` | simulated clock (`now_unix`, `offset_secs`) |
//! | `POST /_sim/clock/advance` | `{"seconds":N}` | move the clock (expire windows) |
//! | `GET /_sim/whatsapp/messages[?to=wa_id]` | | accepted messages: `wamid`, `to`, `wa_id`, `type`, `template_name`, `template_language`, `template_category`, `parameters`, `text`, `callback_data`, `received_at`, `received_at_ms` |
//! | `DELETE /_sim/whatsapp/messages` | | forget accepted messages |
//! | `GET /_sim/{platform}/recipients` (every platform) | | `{"<recipient>": N}`: distinct accepted messages per recipient (WhatsApp `wa_id`, LINE user id, KakaoTalk national number, WeChat OpenID, RCS E.164); a multicast / AlimTalk request counts once per recipient, a replay the platform refused (LINE 409, NHN -1005, RCS 409) not at all |
//! | `GET /_sim/whatsapp/stats` | | `accepted`, `reset_after_accept`, `rejected` (by code), `rejected_total`, `rate_limited`, `pair_rate_limited` (131056), `messaging_limited` (131048), `unique_recipients_24h` (what the messaging limit counts), `statuses_posted`, `inbound_posted`, `preferences_posted`, `webhook_failures`, `webhook_retries`, `webhook_dropped`, `webhook_pending` |
//! | `POST /_sim/whatsapp/inbound` | `{"from":"4915112345678","text":"hi","name"?:"…","at_unix"?:N}` | open the window and post a signed inbound webhook; 200 `{"wamid",…}`, 409 if no webhook URL, 502 if the host did not accept it |
//! | `POST /_sim/whatsapp/window` | `{"wa_id":"…","at_unix"?:N}` | set the user's last-message time silently (default now; 25 h ago = closed) |
//! | `GET` / `DELETE /_sim/whatsapp/window/{wa_id}` | | window state / forget the user wrote in |
//! | `POST /_sim/whatsapp/preferences` | `{"wa_id":"…","value":"stop"\|"resume","name"?:"…"}` | record and post a `user_preferences` webhook |
//! | `GET` / `PUT /_sim/whatsapp/webhook` | `{"url":"…"\|null}` | where webhooks go |
//! | `GET` / `PUT /_sim/whatsapp/throughput` | `{"messages_per_second"?:N,"retry_after_secs"?:N\|null}` | throughput limit (0 = unlimited) and the `Retry-After` seconds of its 130429 refusals (`null` = no header); a missing field is left unchanged |
//! | `GET` / `PUT /_sim/whatsapp/limits` | `{"pair_interval_ms"?:N\|null,"daily_unique_recipients"?:N\|null}` | pair rate (131056) and messaging limit (131048); `null` = off, a missing field is left unchanged; answers with both and `unique_recipients_24h` |
//! | `PUT /_sim/whatsapp/statuses` | `{"enabled"?:bool,"delay_ms"?:N}` | status webhooks on/off, delay |
//! | `GET` / `POST /_sim/whatsapp/templates` | `{"name","language","category":"MARKETING"\|"UTILITY"\|"AUTHENTICATION","body_params":N,"header_params"?:N,"body_text":"Hi {{1}}"}` | list / add approved templates |
//! | `POST /_sim/whatsapp/reset` | | clear messages, counters, windows, opt-outs, pair-rate and messaging-limit history (settings kept) |
//!
//! ## Fault injection
//!
//! One configuration ([`FaultConfig`], `PUT /_sim/faults`,
//! [`SimulatorHandle::set_faults`]) for all five platforms; details in
//! [`faults`].
//!
//! | Field | Applies to | Does |
//! |---|---|---|
//! | `latency_ms` | every platform API request | waits before processing |
//! | `error_rate` | every platform API request | fails that fraction with the platform's server error, before processing |
//! | `reset_after_accept_rate` | accepted send requests | processes and records that fraction as a normal success (statuses scheduled, LINE retry key / NHN idempotency key / RCS `messageId` remembered), then resets the TCP connection without a status line: the client's `send()` fails, it never sees a response. Counted in each platform's stats (`reset_after_accept`) and in `/_sim/faults/stats` |
//! | `slow_response_ms` | every send request | processes (and records) it first, then waits before answering: a client timeout fires after the platform acted |
//!
//! Tests can find duplicates with each platform's `recipient_counts()`
//! (e.g. [`WhatsAppControl::recipient_counts`]) or, for all platforms at
//! once, [`SimulatorHandle::duplicates`].

#![warn(missing_docs)]

pub mod clock;
mod connection;
pub mod control;
pub mod faults;
pub mod host_config;
pub mod rate_limit;
pub mod recorder;
pub mod webhook_sender;
pub mod whatsapp;

pub mod kakaotalk;
pub mod line;
pub mod rcs;
pub mod telegram;
pub mod wechat;

/// The platforms this simulator serves, by channel name.
pub const PLATFORMS: &[&str] = &["whatsapp", "line", "kakaotalk", "wechat", "rcs", "telegram"];

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use axum::Router;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde_json::json;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use clock::Clock;
pub use faults::{FaultConfig, FaultError, FaultStats};
pub use webhook_sender::WebhookError;
pub use whatsapp::{
    AcceptedMessage, ControlError, InboundMessage, MarketingPreference, Template, TemplateCategory,
    WhatsAppConfig, WhatsAppControl, WhatsAppStats,
};

pub use kakaotalk::{KakaoTalkConfig, KakaoTalkControl};
pub use line::{LineConfig, LineControl};
pub use rcs::{RcsConfig, RcsControl};
pub use telegram::{TelegramConfig, TelegramControl};
pub use wechat::{WeChatConfig, WeChatControl};

/// Configuration of every simulated platform.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SimulatorConfig {
    /// WhatsApp Cloud API.
    pub whatsapp: WhatsAppConfig,
    /// LINE Messaging API.
    pub line: LineConfig,
    /// KakaoTalk Bizmessage through NHN Cloud.
    pub kakaotalk: KakaoTalkConfig,
    /// WeChat Official Accounts.
    pub wechat: WeChatConfig,
    /// Google RCS Business Messaging.
    pub rcs: RcsConfig,
    /// Telegram Bot API.
    pub telegram: TelegramConfig,
}

/// Starts simulators. See [`Simulator::start`].
#[derive(Debug, Clone, Copy)]
pub struct Simulator;

impl Simulator {
    /// Binds `addr` (use port 0 for any free port), starts serving every
    /// platform and the `/_sim` control API, and returns a handle.
    pub async fn start(
        addr: SocketAddr,
        config: SimulatorConfig,
    ) -> anyhow::Result<SimulatorHandle> {
        let clock = Arc::new(Clock::new());
        let faults = Arc::new(faults::Faults::new());
        let (whatsapp_state, whatsapp_dispatcher) = whatsapp::WhatsAppState::start(
            config.whatsapp,
            Arc::clone(&clock),
            Arc::clone(&faults),
        )
        .context("starting the WhatsApp simulator")?;
        let mut background = vec![whatsapp_dispatcher];
        let (line_state, tasks) =
            line::LineState::start(config.line, Arc::clone(&clock), Arc::clone(&faults))
                .context("starting the LINE simulator")?;
        background.extend(tasks);
        let (kakaotalk_state, tasks) = kakaotalk::KakaoTalkState::start(
            config.kakaotalk,
            Arc::clone(&clock),
            Arc::clone(&faults),
        )
        .context("starting the KakaoTalk simulator")?;
        background.extend(tasks);
        let (wechat_state, tasks) =
            wechat::WeChatState::start(config.wechat, Arc::clone(&clock), Arc::clone(&faults))
                .context("starting the WeChat simulator")?;
        background.extend(tasks);
        let (rcs_state, tasks) =
            rcs::RcsState::start(config.rcs, Arc::clone(&clock), Arc::clone(&faults))
                .context("starting the RCS simulator")?;
        background.extend(tasks);
        let (telegram_state, tasks) = telegram::TelegramState::start(
            config.telegram,
            Arc::clone(&clock),
            Arc::clone(&faults),
        )
        .context("starting the Telegram simulator")?;
        background.extend(tasks);

        let app = Router::new()
            .merge(whatsapp::api_router(Arc::clone(&whatsapp_state)))
            .merge(line::api_router(Arc::clone(&line_state)))
            .merge(kakaotalk::api_router(Arc::clone(&kakaotalk_state)))
            .merge(wechat::api_router(Arc::clone(&wechat_state)))
            .merge(rcs::api_router(Arc::clone(&rcs_state)))
            .merge(telegram::api_router(Arc::clone(&telegram_state)))
            .nest(
                "/_sim",
                control::router(
                    Arc::clone(&clock),
                    Arc::clone(&faults),
                    vec![
                        (
                            "whatsapp",
                            whatsapp::control_router(Arc::clone(&whatsapp_state)),
                        ),
                        ("line", line::control_router(Arc::clone(&line_state))),
                        (
                            "kakaotalk",
                            kakaotalk::control_router(Arc::clone(&kakaotalk_state)),
                        ),
                        ("wechat", wechat::control_router(Arc::clone(&wechat_state))),
                        ("rcs", rcs::control_router(Arc::clone(&rcs_state))),
                        (
                            "telegram",
                            telegram::control_router(Arc::clone(&telegram_state)),
                        ),
                    ],
                ),
            )
            .fallback(not_found)
            // Turns a send handler's `connection::reset_reply()` into a
            // connection reset (`reset_after_accept_rate`).
            .layer(axum::middleware::from_fn(connection::reset_layer));

        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding {addr}"))?;
        let local_addr = listener.local_addr().context("reading the bound address")?;
        let listener = connection::ResettableListener::new(listener);
        let (shutdown_tx, shutdown_rx) = oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            axum::serve(
                listener,
                app.into_make_service_with_connect_info::<connection::ConnectionHandle>(),
            )
            .with_graceful_shutdown(async {
                let _ = shutdown_rx.await;
            })
            .await
        });
        tracing::info!(%local_addr, "simulator listening");

        Ok(SimulatorHandle {
            addr: local_addr,
            shutdown_tx: Some(shutdown_tx),
            server: Some(server),
            background,
            whatsapp: WhatsAppControl::new(whatsapp_state),
            line: LineControl::new(line_state),
            kakaotalk: KakaoTalkControl::new(kakaotalk_state),
            wechat: WeChatControl::new(wechat_state),
            rcs: RcsControl::new(rcs_state),
            telegram: TelegramControl::new(telegram_state),
            clock,
            faults,
        })
    }
}

async fn not_found(uri: axum::http::Uri) -> impl IntoResponse {
    (
        StatusCode::NOT_FOUND,
        axum::Json(json!({"error": format!("no simulated endpoint at {}", uri.path())})),
    )
}

/// A running simulator. Dropping it stops the background webhook tasks and
/// asks the server to stop; [`SimulatorHandle::shutdown`] also waits for it.
#[derive(Debug)]
pub struct SimulatorHandle {
    addr: SocketAddr,
    shutdown_tx: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<std::io::Result<()>>>,
    background: Vec<JoinHandle<()>>,
    whatsapp: WhatsAppControl,
    line: LineControl,
    kakaotalk: KakaoTalkControl,
    wechat: WeChatControl,
    rcs: RcsControl,
    telegram: TelegramControl,
    clock: Arc<Clock>,
    faults: Arc<faults::Faults>,
}

impl SimulatorHandle {
    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://IP:PORT`, the base URL that replaces each platform's API host
    /// (e.g. `https://graph.facebook.com`).
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Control of the simulated WhatsApp Cloud API.
    pub fn whatsapp(&self) -> WhatsAppControl {
        self.whatsapp.clone()
    }

    /// Control of the simulated LINE Messaging API.
    pub fn line(&self) -> LineControl {
        self.line.clone()
    }

    /// Control of the simulated KakaoTalk Bizmessage API (NHN Cloud).
    pub fn kakaotalk(&self) -> KakaoTalkControl {
        self.kakaotalk.clone()
    }

    /// Control of the simulated WeChat Official Accounts API.
    pub fn wechat(&self) -> WeChatControl {
        self.wechat.clone()
    }

    /// Control of the simulated RCS Business Messaging API.
    pub fn rcs(&self) -> RcsControl {
        self.rcs.clone()
    }

    /// Control of the simulated Telegram Bot API.
    pub fn telegram(&self) -> TelegramControl {
        self.telegram.clone()
    }

    /// The simulated clock (shared by all platforms).
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// Moves the simulated clock by `secs` seconds (e.g. 25 h to close
    /// every customer-service window).
    pub fn advance_clock(&self, secs: i64) {
        self.clock.advance(secs);
    }

    /// The current fault injection.
    pub fn faults(&self) -> FaultConfig {
        self.faults.get()
    }

    /// Sets fault injection on every platform API (all of [`FaultConfig`]:
    /// `error_rate`, `latency_ms`, `reset_after_accept_rate`,
    /// `slow_response_ms`). A rate outside 0.0..=1.0 (or NaN) is refused
    /// and the previous configuration kept.
    pub fn set_faults(&self, config: FaultConfig) -> Result<(), FaultError> {
        self.faults.set(config)
    }

    /// What the shared fault injection did so far, on all platforms
    /// (`GET /_sim/faults/stats`).
    pub fn fault_stats(&self) -> FaultStats {
        self.faults.stats()
    }

    /// Resets the counters of [`SimulatorHandle::fault_stats`] to zero.
    pub fn clear_fault_stats(&self) {
        self.faults.clear_stats();
    }

    /// Per platform (every name in [`PLATFORMS`], zeros included), how many
    /// recipients got more than one distinct accepted message, from each
    /// platform's `recipient_counts()` (`GET /_sim/<platform>/recipients`).
    /// Idempotent replays the platform refused (LINE 409, NHN -1005, RCS
    /// 409) are not messages; forgetting a platform's messages
    /// (`clear_messages`, `reset`) forgets its counts.
    pub fn duplicates(&self) -> BTreeMap<String, u64> {
        [
            ("whatsapp", self.whatsapp.recipient_counts()),
            ("line", self.line.recipient_counts()),
            ("kakaotalk", self.kakaotalk.recipient_counts()),
            ("wechat", self.wechat.recipient_counts()),
            ("rcs", self.rcs.recipient_counts()),
            ("telegram", self.telegram.recipient_counts()),
        ]
        .into_iter()
        .map(|(platform, counts)| (platform.to_owned(), recorder::duplicates(&counts)))
        .collect()
    }

    /// Stops serving: finishes in-flight requests, stops the webhook
    /// queues (pending status webhooks are dropped) and waits for the
    /// server to exit.
    pub async fn shutdown(mut self) -> anyhow::Result<()> {
        if let Some(tx) = self.shutdown_tx.take() {
            let _ = tx.send(());
        }
        for task in self.background.drain(..) {
            task.abort();
        }
        if let Some(server) = self.server.take() {
            server
                .await
                .context("the simulator server task panicked")?
                .context("the simulator server failed")?;
        }
        Ok(())
    }
}

impl Drop for SimulatorHandle {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown_tx.take() {
            let _ = tx.send(());
        }
        for task in &self.background {
            task.abort();
        }
    }
}
