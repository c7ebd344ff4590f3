//! Telegram in the cross-crate tests. The adapter is the JavaScript one
//! (`plugins/telegram`, built with ComponentizeJS).

use futures::FutureExt as _;
use switchboard_contract::model::{Content, OutboundMessage, Purpose};
use switchboard_simulator::telegram::SECRET_HEADER;
use switchboard_simulator::{FaultConfig, SimulatorConfig, SimulatorHandle};

use super::{Platform, class_of};
use crate::Harness;

/// The `[channels.telegram]` table pointing the adapter at the simulator.
pub fn config_section(simulator: &SimulatorHandle) -> String {
    section(simulator, simulator.telegram().bot_token())
}

fn section(simulator: &SimulatorHandle, bot_token: &str) -> String {
    switchboard_simulator::host_config::telegram_section(simulator, bot_token)
}

/// A private chat id made from `n` (a user id, as Telegram issues them).
pub fn chat_id(n: u32) -> i64 {
    5_000_000_000 + i64::from(n)
}

/// A text message to chat `to` with its own idempotency key.
pub fn text(to: i64, body: &str) -> OutboundMessage {
    OutboundMessage {
        idempotency_key: format!("contract-telegram-{to}-{body}"),
        to: to.to_string(),
        purpose: Purpose::Marketing,
        content: Content::Text(body.to_owned()),
        ttl_seconds: None,
        attempt: 1,
    }
}

/// A webhook request to the host at `base` carrying `secret` in
/// `X-Telegram-Bot-Api-Secret-Token` (none: no header).
pub fn webhook(base: &str, secret: Option<&str>, update: &str) -> reqwest::RequestBuilder {
    let mut request = reqwest::Client::new()
        .post(format!("{base}/webhooks/telegram"))
        .header("content-type", "application/json")
        .body(update.to_owned());
    if let Some(secret) = secret {
        request = request.header(SECRET_HEADER, secret);
    }
    request
}

/// A `my_chat_member` update in which the user of `chat` blocks the bot.
pub fn blocked_update(update_id: i64, chat: i64) -> String {
    format!(
        r#"{{"update_id":{update_id},"my_chat_member":{{"chat":{{"id":{chat},"first_name":"Ana","type":"private"}},"from":{{"id":{chat},"is_bot":false,"first_name":"Ana"}},"date":1767000000,"old_chat_member":{{"user":{{"id":123456789,"is_bot":true,"first_name":"Switchboard Simulator","username":"switchboard_sim_bot"}},"status":"member"}},"new_chat_member":{{"user":{{"id":123456789,"is_bot":true,"first_name":"Switchboard Simulator","username":"switchboard_sim_bot"}},"status":"kicked","until_date":0}}}}}}"#
    )
}

/// The contract suite's view of Telegram.
pub fn platform() -> Platform {
    Platform {
        channel: "telegram",
        config_section,
        outcome_classes: |harness| outcome_classes(harness).boxed(),
        forged_webhook: |_harness, base| {
            webhook(
                base,
                Some("not-the-secret-token"),
                &blocked_update(1, chat_id(1)),
            )
        },
        // Telegram has no handshake: `setWebhook` is a call the bot makes.
        handshake: None,
    }
}

async fn outcome_classes(harness: &Harness) -> Vec<(&'static str, String)> {
    let adapter = harness
        .host
        .runtime
        .get("telegram")
        .expect("telegram adapter");
    let telegram = harness.simulator.telegram();
    let mut seen = Vec::new();
    let send = async |message: OutboundMessage| {
        let results = adapter.send(&[message]).await.expect("adapter call");
        class_of(&results[0])
    };
    for n in 1..=20 {
        telegram.add_chat(chat_id(n), &format!("User {n}"));
    }

    seen.push(("receipt", send(text(chat_id(1), "Hi Ana")).await));
    // 4,097 UTF-16 code units: refused before any request.
    seen.push((
        "invalid-content",
        send(text(chat_id(2), &"a".repeat(4_097))).await,
    ));
    // 2,049 emoji are 4,098 code units (2,049 characters): Telegram's unit.
    seen.push((
        "invalid-content",
        send(text(chat_id(2), &"😀".repeat(2_049))).await,
    ));
    seen.push(("receipt", send(text(chat_id(2), &"😀".repeat(2_048))).await));
    // A chat that never started the bot: 400 "chat not found".
    seen.push((
        "recipient-unreachable",
        send(text(chat_id(999), "Hi")).await,
    ));
    // Not a chat id at all: refused without a request.
    for address in ["+4915112345678", "@someone"] {
        seen.push((
            "recipient-unreachable",
            send(OutboundMessage {
                to: address.into(),
                ..text(0, "Hi")
            })
            .await,
        ));
    }
    telegram.set_blocked(chat_id(3), true).expect("known chat");
    seen.push(("opted-out", send(text(chat_id(3), "Hi Chen")).await));

    harness
        .simulator
        .set_faults(FaultConfig {
            error_rate: 1.0,
            ..FaultConfig::default()
        })
        .expect("faults");
    seen.push(("transient", send(text(chat_id(4), "Hi Dee")).await));
    // Telegram took it, then the connection was reset before the reply.
    harness
        .simulator
        .set_faults(FaultConfig {
            reset_after_accept_rate: 1.0,
            ..FaultConfig::default()
        })
        .expect("faults");
    seen.push(("uncertain", send(text(chat_id(5), "Hi Eve")).await));
    harness
        .simulator
        .set_faults(FaultConfig::default())
        .expect("faults");

    telegram.set_messages_per_second(1);
    let burst: Vec<OutboundMessage> = (0..3)
        .map(|i| text(chat_id(10 + i), &format!("Hi {i}")))
        .collect();
    let results = adapter.send(&burst).await.expect("adapter call");
    let limited = results
        .iter()
        .map(class_of)
        .find(|c| c == "rate-limited")
        .unwrap_or_else(|| class_of(&results[2]));
    seen.push(("rate-limited", limited));
    telegram.set_messages_per_second(0);

    // A template: Telegram bots have none.
    seen.push((
        "invalid-content",
        send(OutboundMessage {
            content: Content::Template(switchboard_contract::model::TemplateMessage {
                name: "winback_offer".into(),
                language: None,
                parameters: Vec::new(),
                link: None,
            }),
            ..text(chat_id(6), "")
        })
        .await,
    ));

    // A host whose bot token Telegram does not know.
    let wrong = Harness::start_with_section(SimulatorConfig::default(), "telegram", |simulator| {
        section(simulator, "987654321:revoked-token")
    })
    .await;
    wrong.simulator.telegram().add_chat(chat_id(7), "Fay");
    let adapter = wrong
        .host
        .runtime
        .get("telegram")
        .expect("telegram adapter");
    let results = adapter
        .send(&[text(chat_id(7), "Hi Fay")])
        .await
        .expect("adapter call");
    seen.push(("auth-failed", class_of(&results[0])));
    seen
}
