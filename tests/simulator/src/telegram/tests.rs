//! The Telegram simulator over real HTTP: a [`Simulator`] on loopback,
//! driven with reqwest, plus a small webhook receiver.

use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::post;
use serde_json::{Value, json};

use super::*;
use crate::{FaultConfig, Simulator, SimulatorConfig, SimulatorHandle};

const ANA: i64 = 111_111_111;
const BEN: i64 = 222_222_222;

async fn simulator(config: TelegramConfig) -> SimulatorHandle {
    Simulator::start(
        "127.0.0.1:0".parse().expect("address"),
        SimulatorConfig {
            telegram: config,
            ..SimulatorConfig::default()
        },
    )
    .await
    .expect("simulator starts")
}

async fn call(sim: &SimulatorHandle, token: &str, method: &str, body: Value) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(format!("{}/bot{token}/{method}", sim.base_url()))
        .json(&body)
        .send()
        .await
        .expect("request");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn send(sim: &SimulatorHandle, chat_id: Value, text: &str) -> (u16, Value) {
    call(
        sim,
        DEFAULT_BOT_TOKEN,
        "sendMessage",
        json!({"chat_id": chat_id, "text": text}),
    )
    .await
}

fn error(status: u16, description: &str) -> Value {
    json!({"ok": false, "error_code": status, "description": description})
}

#[tokio::test]
async fn a_message_to_a_started_chat_is_accepted_and_recorded() {
    let sim = simulator(TelegramConfig::default()).await;
    let telegram = sim.telegram();
    telegram.add_chat(ANA, "Ana");

    let (status, body) = send(&sim, json!(ANA), "Hi Ana").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["ok"], true);
    assert_eq!(body["result"]["message_id"], 1);
    assert_eq!(body["result"]["chat"]["id"], ANA);
    assert_eq!(body["result"]["chat"]["type"], "private");
    assert_eq!(body["result"]["from"]["is_bot"], true);
    assert_eq!(body["result"]["text"], "Hi Ana");
    // A numeric string is the same chat; ids count up per chat.
    let (status, body) = call(
        &sim,
        DEFAULT_BOT_TOKEN,
        "sendmessage",
        json!({"chat_id": ANA.to_string(), "text": "Again", "disable_notification": true}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["result"]["message_id"], 2);

    let messages = telegram.messages_to(ANA);
    assert_eq!(messages.len(), 2);
    assert_eq!(messages[0].text, "Hi Ana");
    assert!(!messages[0].disable_notification);
    assert!(messages[1].disable_notification);
    assert_eq!(
        telegram.recipient_counts(),
        BTreeMap::from([(ANA.to_string(), 2)])
    );
    assert_eq!(sim.duplicates()["telegram"], 1);
    assert_eq!(telegram.stats().accepted, 2);
}

#[tokio::test]
async fn tokens_chats_and_texts_are_checked_like_telegram() {
    let sim = simulator(TelegramConfig::default()).await;
    let telegram = sim.telegram();
    telegram.add_chat(ANA, "Ana");
    telegram.add_chat(BEN, "Ben");
    telegram.set_blocked(BEN, true).expect("known chat");

    let body = json!({"chat_id": ANA, "text": "hi"});
    assert_eq!(
        call(&sim, "987654321:wrong-token", "sendMessage", body.clone()).await,
        (401, error(401, "Unauthorized"))
    );
    assert_eq!(
        call(&sim, "not-a-token", "sendMessage", body.clone()).await,
        (404, error(404, "Not Found"))
    );
    assert_eq!(
        call(&sim, DEFAULT_BOT_TOKEN, "sendPhoto", body).await,
        (404, error(404, "Not Found"))
    );
    assert_eq!(
        send(&sim, json!(333), "hi").await,
        (400, error(400, "Bad Request: chat not found"))
    );
    assert_eq!(
        send(&sim, json!(BEN), "hi").await,
        (403, error(403, "Forbidden: bot was blocked by the user"))
    );
    assert_eq!(
        send(&sim, json!(ANA), " ").await,
        (400, error(400, "Bad Request: message text is empty"))
    );
    assert_eq!(
        send(&sim, json!(ANA), &"a".repeat(4097)).await,
        (400, error(400, "Bad Request: message is too long"))
    );
    assert_eq!(
        call(
            &sim,
            DEFAULT_BOT_TOKEN,
            "sendMessage",
            json!({"text": "hi"})
        )
        .await,
        (400, error(400, "Bad Request: chat_id is empty"))
    );
    assert!(telegram.messages().is_empty());
    let stats = telegram.stats();
    assert_eq!(stats.rejected_total, 8);
    assert_eq!(stats.rejected[&400], 4);
    assert_eq!(stats.blocked_chats, 1);

    let (status, me) = call(&sim, DEFAULT_BOT_TOKEN, "getMe", json!({})).await;
    assert_eq!(status, 200);
    assert_eq!(me["result"]["id"], 123_456_789);
    assert_eq!(me["result"]["username"], DEFAULT_BOT_USERNAME);
}

#[tokio::test]
async fn rate_limits_answer_429_with_retry_after() {
    let sim = simulator(TelegramConfig {
        messages_per_second: 2,
        retry_after_secs: 7,
        ..TelegramConfig::default()
    })
    .await;
    let telegram = sim.telegram();
    telegram.add_chat(ANA, "Ana");
    telegram.add_chat(BEN, "Ben");
    assert_eq!(send(&sim, json!(ANA), "1").await.0, 200);
    assert_eq!(send(&sim, json!(BEN), "2").await.0, 200);
    let (status, body) = send(&sim, json!(ANA), "3").await;
    assert_eq!(status, 429);
    assert_eq!(
        body,
        json!({"ok": false, "error_code": 429, "description": "Too Many Requests: retry after 7", "parameters": {"retry_after": 7}})
    );

    // One message per second in a chat.
    telegram.set_messages_per_second(0);
    telegram.set_per_chat_interval_ms(Some(1_000));
    let (status, body) = send(&sim, json!(ANA), "4").await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["parameters"]["retry_after"], 1);
    sim.advance_clock(2);
    assert_eq!(send(&sim, json!(ANA), "5").await.0, 200);
    assert_eq!(telegram.stats().rate_limited, 2);
}

#[tokio::test]
async fn shared_faults_answer_500_and_lost_replies_are_recorded() {
    let sim = simulator(TelegramConfig::default()).await;
    let telegram = sim.telegram();
    telegram.add_chat(ANA, "Ana");
    sim.set_faults(FaultConfig {
        error_rate: 1.0,
        ..FaultConfig::default()
    })
    .expect("faults");
    assert_eq!(
        send(&sim, json!(ANA), "hi").await,
        (500, error(500, "Internal Server Error"))
    );
    sim.set_faults(FaultConfig {
        reset_after_accept_rate: 1.0,
        ..FaultConfig::default()
    })
    .expect("faults");
    let lost = reqwest::Client::new()
        .post(format!(
            "{}/bot{DEFAULT_BOT_TOKEN}/sendMessage",
            sim.base_url()
        ))
        .json(&json!({"chat_id": ANA, "text": "hi"}))
        .send()
        .await;
    assert!(lost.is_err(), "{lost:?}");
    assert_eq!(telegram.messages_to(ANA).len(), 1, "Telegram has it");
    let stats = telegram.stats();
    assert_eq!((stats.faults, stats.reset_after_accept), (1, 1));
}

type Received = Arc<Mutex<Vec<(Option<String>, Value)>>>;

async fn receiver() -> (String, Received) {
    async fn receive(
        State(received): State<Received>,
        headers: HeaderMap,
        body: Bytes,
    ) -> &'static str {
        let secret = headers
            .get(SECRET_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let update = serde_json::from_slice(&body).unwrap_or(Value::Null);
        received.lock().expect("lock").push((secret, update));
        ""
    }
    let received: Received = Arc::default();
    let app = axum::Router::new()
        .route("/hook", post(receive))
        .with_state(Arc::clone(&received));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{address}/hook"), received)
}

#[tokio::test]
async fn start_block_unblock_and_messages_are_posted_with_the_secret_token() {
    let sim = simulator(TelegramConfig::default()).await;
    let telegram = sim.telegram();
    let (url, received) = receiver().await;
    assert!(matches!(
        telegram.send_text(ANA, "hi").await,
        Err(TelegramControlError::UnknownChat(ANA))
    ));
    // No URL: the chat is started all the same.
    assert!(matches!(
        telegram.start(ANA, "Ana").await,
        Err(TelegramControlError::Webhook(WebhookError::NoUrl))
    ));
    assert!(telegram.is_started(ANA));
    telegram.set_webhook_url(Some(&url)).expect("url");

    let start = telegram.start(BEN, "Ben").await.expect("start");
    let block = telegram.block(BEN).await.expect("block");
    assert_eq!(send(&sim, json!(BEN), "hi").await.0, 403);
    let restart = telegram.start(BEN, "Ben").await.expect("restart");
    let text = telegram
        .send_text(BEN, "Is the sale on? 😀")
        .await
        .expect("text");
    assert!(start < block && block < restart && restart < text);

    let received = received.lock().expect("lock").clone();
    assert!(
        received
            .iter()
            .all(|(secret, _)| secret.as_deref() == Some(DEFAULT_WEBHOOK_SECRET)),
        "{received:?}"
    );
    let updates: Vec<&Value> = received.iter().map(|(_, update)| update).collect();
    assert_eq!(updates.len(), 5, "{updates:?}");
    assert_eq!(updates[0]["update_id"], start);
    assert_eq!(updates[0]["message"]["text"], "/start");
    assert_eq!(updates[0]["message"]["chat"]["id"], BEN);
    assert_eq!(updates[0]["message"]["chat"]["type"], "private");
    assert_eq!(
        updates[0]["message"]["entities"],
        json!([{"offset": 0, "length": 6, "type": "bot_command"}])
    );
    let blocked = &updates[1]["my_chat_member"];
    assert_eq!(blocked["chat"]["id"], BEN);
    assert_eq!(blocked["old_chat_member"]["status"], "member");
    assert_eq!(blocked["new_chat_member"]["status"], "kicked");
    assert_eq!(blocked["new_chat_member"]["user"]["is_bot"], true);
    // Starting a blocked chat unblocks it first.
    assert_eq!(
        updates[2]["my_chat_member"]["old_chat_member"]["status"],
        "kicked"
    );
    assert_eq!(
        updates[2]["my_chat_member"]["new_chat_member"]["status"],
        "member"
    );
    assert_eq!(updates[3]["message"]["text"], "/start");
    assert_eq!(updates[4]["message"]["text"], "Is the sale on? 😀");
    assert!(updates[4]["message"].get("entities").is_none());
    assert!(!telegram.is_blocked(BEN));
    // The bot's reply shares the chat's message ids.
    let (_, reply) = send(&sim, json!(BEN), "Yes!").await;
    assert_eq!(
        reply["result"]["message_id"],
        updates[4]["message"]["message_id"].as_i64().expect("id") + 1
    );
    let stats = telegram.stats();
    assert_eq!((stats.inbound_posted, stats.member_updates_posted), (3, 2));
    assert_eq!(stats.webhooks_posted, 5);
}

#[tokio::test]
async fn control_routes_over_http() {
    let sim = simulator(TelegramConfig::default()).await;
    let (url, received) = receiver().await;
    let client = reqwest::Client::new();
    let base = format!("{}/_sim/telegram", sim.base_url());
    let put = |path: &str, body: Value| client.put(format!("{base}{path}")).json(&body).send();
    let post = |path: &str, body: Value| client.post(format!("{base}{path}")).json(&body).send();

    let response = post("/start", json!({"chat_id": ANA}))
        .await
        .expect("start");
    assert_eq!(response.status(), 409, "no webhook URL yet");
    let response = put("/webhook", json!({"url": url})).await.expect("webhook");
    assert_eq!(response.status(), 200);
    let response = put("/webhook", json!({"url": "not a url"}))
        .await
        .expect("webhook");
    assert_eq!(response.status(), 400);
    let started: Value = post("/start", json!({"chat_id": BEN, "first_name": "Ben"}))
        .await
        .expect("start")
        .json()
        .await
        .expect("json");
    assert!(started["update_id"].is_i64(), "{started}");
    assert_eq!(
        post("/inbound", json!({"chat_id": BEN, "text": "hi"}))
            .await
            .expect("inbound")
            .status(),
        200
    );
    assert_eq!(
        post("/inbound", json!({"chat_id": 5, "text": "hi"}))
            .await
            .expect("inbound")
            .status(),
        404
    );
    assert_eq!(
        post("/block", json!({"chat_id": BEN}))
            .await
            .expect("block")
            .status(),
        200
    );
    assert_eq!(
        post("/unblock", json!({"chat_id": BEN}))
            .await
            .expect("unblock")
            .status(),
        200
    );
    assert_eq!(received.lock().expect("lock").len(), 4);
    let chat: Value = post("/chats", json!({"chat_id": 42, "blocked": true}))
        .await
        .expect("chat")
        .json()
        .await
        .expect("json");
    assert_eq!(chat, json!({"chat_id": 42, "blocked": true}));

    let rate: Value = put(
        "/rate",
        json!({"messages_per_second": 5, "per_chat_interval_ms": 1000}),
    )
    .await
    .expect("rate")
    .json()
    .await
    .expect("json");
    assert_eq!(
        rate,
        json!({"messages_per_second": 5, "retry_after_secs": 1, "per_chat_interval_ms": 1000})
    );
    let rate: Value = put("/rate", json!({"per_chat_interval_ms": null}))
        .await
        .expect("rate")
        .json()
        .await
        .expect("json");
    assert_eq!(rate["per_chat_interval_ms"], Value::Null);
    assert_eq!(rate["messages_per_second"], 5);

    assert_eq!(send(&sim, json!(BEN), "Hi Ben").await.0, 200);
    let messages: Vec<TelegramMessage> = client
        .get(format!("{base}/messages?chat_id={BEN}"))
        .send()
        .await
        .expect("messages")
        .json()
        .await
        .expect("json");
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].text, "Hi Ben");
    let recipients: Value = client
        .get(format!("{base}/recipients"))
        .send()
        .await
        .expect("recipients")
        .json()
        .await
        .expect("json");
    assert_eq!(recipients, json!({BEN.to_string(): 1}));
    let chats: Vec<TelegramChat> = client
        .get(format!("{base}/chats"))
        .send()
        .await
        .expect("chats")
        .json()
        .await
        .expect("json");
    assert_eq!(chats.len(), 3, "{chats:?}");
    let stats: TelegramStats = client
        .get(format!("{base}/stats"))
        .send()
        .await
        .expect("stats")
        .json()
        .await
        .expect("json");
    assert_eq!(stats.accepted, 1);
    assert_eq!(stats.chats, 3);

    assert_eq!(
        post("/reset", json!({})).await.expect("reset").status(),
        200
    );
    assert!(sim.telegram().messages().is_empty());
    assert!(sim.telegram().chats().is_empty());
    assert_eq!(sim.telegram().webhook_url(), Some(url));
}
