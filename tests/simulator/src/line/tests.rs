//! The LINE simulator over real HTTP: a [`Simulator`] on loopback, driven
//! with reqwest, plus a small webhook receiver.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::post;
use serde_json::{Value, json};

use super::*;
use crate::{FaultConfig, Simulator, SimulatorConfig, SimulatorHandle};

const ANA: &str = "U4af4980629a1b2c3d4e5f60718293a4b";
const BEN: &str = "U0123456789abcdef0123456789abcdef";
const CHEN: &str = "Ufedcba9876543210fedcba9876543210";
const KEY_1: &str = "123e4567-e89b-42d3-a456-426614174001";
const KEY_2: &str = "123e4567-e89b-42d3-a456-426614174002";

async fn simulator(config: LineConfig) -> SimulatorHandle {
    Simulator::start(
        "127.0.0.1:0".parse().expect("address"),
        SimulatorConfig {
            line: config,
            ..SimulatorConfig::default()
        },
    )
    .await
    .expect("simulator starts")
}

struct Sent {
    status: u16,
    request_id: Option<String>,
    accepted_request_id: Option<String>,
    body: Value,
}

async fn post_send(
    sim: &SimulatorHandle,
    endpoint: LineEndpoint,
    token: &str,
    retry_key: Option<&str>,
    body: Value,
) -> Sent {
    let mut request = reqwest::Client::new()
        .post(format!("{}{}", sim.base_url(), endpoint.path()))
        .bearer_auth(token)
        .json(&body);
    if let Some(key) = retry_key {
        request = request.header("X-Line-Retry-Key", key);
    }
    let response = request.send().await.expect("request");
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let request_id = header("x-line-request-id");
    let accepted_request_id = header("x-line-accepted-request-id");
    let status = response.status().as_u16();
    let body = response.json().await.unwrap_or(Value::Null);
    Sent {
        status,
        request_id,
        accepted_request_id,
        body,
    }
}

fn text(to: Value, text: &str) -> Value {
    json!({"to": to, "messages": [{"type": "text", "text": text}]})
}

async fn push(sim: &SimulatorHandle, to: &str, key: Option<&str>) -> Sent {
    post_send(
        sim,
        LineEndpoint::Push,
        DEFAULT_CHANNEL_ACCESS_TOKEN,
        key,
        text(json!(to), "Hi"),
    )
    .await
}

#[tokio::test]
async fn a_push_is_accepted_recorded_and_a_replay_is_a_409() {
    let sim = simulator(LineConfig::default()).await;
    let first = push(&sim, ANA, Some(KEY_1)).await;
    assert_eq!(first.status, 200, "{}", first.body);
    let request_id = first.request_id.expect("x-line-request-id");
    let sent_id = first.body["sentMessages"][0]["id"]
        .as_str()
        .expect("sentMessages[0].id")
        .to_owned();
    assert_eq!(sent_id.len(), 18);
    assert!(first.body["sentMessages"][0]["quoteToken"].is_string());

    let line = sim.line();
    let messages = line.messages();
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].id, sent_id);
    assert_eq!(messages[0].to, ANA);
    assert_eq!(messages[0].text, "Hi");
    assert_eq!(messages[0].endpoint, LineEndpoint::Push);
    assert_eq!(messages[0].retry_key.as_deref(), Some(KEY_1));
    assert_eq!(messages[0].request_id, request_id);
    assert!(messages[0].delivered);

    let replay = push(&sim, ANA, Some(KEY_1)).await;
    assert_eq!(replay.status, 409);
    assert_eq!(replay.body["message"], "The retry key is already accepted");
    assert_eq!(
        replay.accepted_request_id.as_deref(),
        Some(request_id.as_str())
    );
    assert_eq!(replay.body["sentMessages"][0]["id"], sent_id.as_str());
    assert!(replay.request_id.is_some_and(|id| id != request_id));
    assert_eq!(line.messages().len(), 1, "nothing new was sent");
    assert_eq!(line.stats().duplicates, 1);

    // Without a retry key nothing is deduplicated.
    assert_eq!(push(&sim, ANA, None).await.status, 200);
    assert_eq!(push(&sim, ANA, None).await.status, 200);
    assert_eq!(line.messages().len(), 3);
    assert_eq!(line.stats().push_accepted, 3);
}

#[tokio::test]
async fn retry_keys_are_forgotten_after_24_hours() {
    let sim = simulator(LineConfig::default()).await;
    assert_eq!(push(&sim, ANA, Some(KEY_1)).await.status, 200);
    sim.advance_clock(23 * 3600);
    assert_eq!(push(&sim, ANA, Some(KEY_1)).await.status, 409);
    sim.advance_clock(2 * 3600);
    assert_eq!(push(&sim, ANA, Some(KEY_1)).await.status, 200);
    assert_eq!(sim.line().messages().len(), 2);
}

#[tokio::test]
async fn auth_and_retry_key_format_are_checked_first() {
    let sim = simulator(LineConfig::default()).await;
    let wrong = post_send(
        &sim,
        LineEndpoint::Push,
        "expired",
        Some(KEY_1),
        text(json!(ANA), "Hi"),
    )
    .await;
    assert_eq!(wrong.status, 401);
    assert_eq!(
        wrong.body,
        json!({"message": "Authentication failed. Confirm that the access token in the authorization header is valid."})
    );
    assert!(wrong.request_id.is_some(), "every reply has a request id");

    let bad_key = push(&sim, ANA, Some("retry-1")).await;
    assert_eq!(bad_key.status, 400);
    assert_eq!(
        bad_key.body["message"],
        "The value for the 'X-Line-Retry-Key' header is invalid"
    );
    assert!(sim.line().messages().is_empty());
    let requests = sim.line().requests();
    assert_eq!(
        requests.iter().map(|r| r.status).collect::<Vec<_>>(),
        vec![401, 400]
    );
    assert_eq!(sim.line().stats().rejected_total, 2);
}

#[tokio::test]
async fn multicast_reaches_friends_and_accepts_but_drops_blocked_users() {
    let sim = simulator(LineConfig::default()).await;
    let line = sim.line();
    line.set_blocked(BEN, true).expect("valid id");
    let sent = post_send(
        &sim,
        LineEndpoint::Multicast,
        DEFAULT_CHANNEL_ACCESS_TOKEN,
        Some(KEY_2),
        text(json!([ANA, BEN, CHEN]), "Sale!"),
    )
    .await;
    assert_eq!(sent.status, 200, "{}", sent.body);
    assert_eq!(sent.body, json!({}));
    let messages = line.messages();
    assert_eq!(messages.len(), 3);
    assert!(
        messages
            .iter()
            .all(|m| m.endpoint == LineEndpoint::Multicast)
    );
    assert_eq!(line.delivered_to(ANA).len(), 1);
    assert!(line.delivered_to(BEN).is_empty());
    assert_eq!(line.messages_to(BEN).len(), 1);
    let stats = line.stats();
    assert_eq!(stats.multicast_accepted, 1);
    assert_eq!(
        (
            stats.messages_accepted,
            stats.messages_delivered,
            stats.messages_blocked
        ),
        (3, 2, 1)
    );
    assert_eq!(stats.quota_used, 2, "blocked users are not counted");
    assert_eq!(line.requests()[0].recipients, vec![ANA, BEN, CHEN]);

    let replay = post_send(
        &sim,
        LineEndpoint::Multicast,
        DEFAULT_CHANNEL_ACCESS_TOKEN,
        Some(KEY_2),
        text(json!([ANA, BEN, CHEN]), "Sale!"),
    )
    .await;
    assert_eq!(replay.status, 409);
    assert_eq!(replay.accepted_request_id, sent.request_id);
    assert!(replay.body.get("sentMessages").is_none());
}

#[tokio::test]
async fn invalid_bodies_get_400_with_details() {
    let sim = simulator(LineConfig::default()).await;
    let sent = post_send(
        &sim,
        LineEndpoint::Multicast,
        DEFAULT_CHANNEL_ACCESS_TOKEN,
        None,
        json!({"to": [ANA, "+4915112345678"], "messages": [{"type": "text", "text": "a".repeat(5_001)}]}),
    )
    .await;
    assert_eq!(sent.status, 400);
    assert_eq!(
        sent.body,
        json!({"message": "The request body has 2 error(s)", "details": [
            {"message": "Invalid user ID", "property": "to[1]"},
            {"message": "Length must be between 0 and 5000", "property": "messages[0].text"}
        ]})
    );
    assert!(sim.line().messages().is_empty());
}

#[tokio::test]
async fn rate_limit_and_monthly_quota_are_told_apart() {
    let sim = simulator(LineConfig {
        push_requests_per_second: 1,
        ..LineConfig::default()
    })
    .await;
    let line = sim.line();
    assert_eq!(push(&sim, ANA, None).await.status, 200);
    let limited = push(&sim, ANA, None).await;
    assert_eq!(limited.status, 429);
    assert_eq!(limited.body, json!({"message": "Too Many Requests"}));
    assert_eq!(line.stats().rate_limited, 1);
    line.set_push_rate(0);

    line.set_monthly_quota(3);
    let over = post_send(
        &sim,
        LineEndpoint::Multicast,
        DEFAULT_CHANNEL_ACCESS_TOKEN,
        None,
        text(json!([ANA, BEN, CHEN]), "x"),
    )
    .await;
    assert_eq!(over.status, 429);
    assert_eq!(
        over.body,
        json!({"message": "You have reached your monthly limit."})
    );
    let stats = line.stats();
    assert_eq!((stats.quota_used, stats.quota_exceeded), (1, 1));
    assert_eq!(line.messages().len(), 1);

    // The quota endpoints report it.
    let client = reqwest::Client::new();
    let quota: Value = client
        .get(format!("{}/v2/bot/message/quota", sim.base_url()))
        .bearer_auth(DEFAULT_CHANNEL_ACCESS_TOKEN)
        .send()
        .await
        .expect("quota")
        .json()
        .await
        .expect("json");
    assert_eq!(quota, json!({"type": "limited", "value": 3}));
    let usage: Value = client
        .get(format!(
            "{}/v2/bot/message/quota/consumption",
            sim.base_url()
        ))
        .bearer_auth(DEFAULT_CHANNEL_ACCESS_TOKEN)
        .send()
        .await
        .expect("consumption")
        .json()
        .await
        .expect("json");
    assert_eq!(usage, json!({"totalUsage": 1}));
    let denied = client
        .get(format!("{}/v2/bot/message/quota", sim.base_url()))
        .send()
        .await
        .expect("quota");
    assert_eq!(denied.status(), 401);
}

#[tokio::test]
async fn scripted_failures_before_and_after_acceptance() {
    let sim = simulator(LineConfig::default()).await;
    let line = sim.line();
    line.fail_next(1, FailMode::BeforeAccept);
    let failed = push(&sim, ANA, Some(KEY_1)).await;
    assert_eq!(failed.status, 500);
    assert_eq!(
        failed.body,
        json!({"message": "An error occurred in the server"})
    );
    assert!(line.messages().is_empty());
    // Nothing was accepted, so the retry with the same key is delivered.
    assert_eq!(push(&sim, ANA, Some(KEY_1)).await.status, 200);
    assert_eq!(line.messages().len(), 1);

    line.fail_next(1, FailMode::AfterAccept);
    let lost = push(&sim, BEN, Some(KEY_2)).await;
    assert_eq!(lost.status, 500);
    assert_eq!(line.messages_to(BEN).len(), 1, "accepted before the 500");
    // The retry with the same key is a 409: delivered once.
    let retry = push(&sim, BEN, Some(KEY_2)).await;
    assert_eq!(retry.status, 409);
    assert_eq!(retry.accepted_request_id, lost.request_id);
    assert_eq!(line.messages_to(BEN).len(), 1);
    let stats = line.stats();
    assert_eq!((stats.faults, stats.duplicates), (2, 1));
    let keys: Vec<Option<String>> = line
        .requests()
        .into_iter()
        .filter(|r| r.recipients == vec![BEN.to_owned()])
        .map(|r| r.retry_key)
        .collect();
    assert_eq!(keys, vec![Some(KEY_2.to_owned()), Some(KEY_2.to_owned())]);
}

#[tokio::test]
async fn shared_faults_answer_500() {
    let sim = simulator(LineConfig::default()).await;
    sim.set_faults(FaultConfig {
        error_rate: 1.0,
        latency_ms: 0,
        ..FaultConfig::default()
    })
    .expect("faults");
    let failed = push(&sim, ANA, Some(KEY_1)).await;
    assert_eq!(failed.status, 500);
    assert!(sim.line().messages().is_empty());
    sim.set_faults(FaultConfig::default()).expect("faults");
    assert_eq!(push(&sim, ANA, Some(KEY_1)).await.status, 200);
}

/// What a webhook receiver got: (signature header, body).
type Received = Arc<Mutex<Vec<(Option<String>, Bytes)>>>;

async fn receiver() -> (String, Received) {
    let received: Received = Arc::default();
    let app = axum::Router::new()
        .route(
            "/webhooks/line",
            post(
                |State(received): State<Received>, headers: HeaderMap, body: Bytes| async move {
                    let signature = headers
                        .get("x-line-signature")
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned);
                    received
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push((signature, body));
                    "ok"
                },
            ),
        )
        .with_state(Arc::clone(&received));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{address}/webhooks/line"), received)
}

fn events(received: &Received) -> Vec<Value> {
    let received = received.lock().unwrap_or_else(|e| e.into_inner());
    received
        .iter()
        .map(|(signature, body)| {
            let expected = line_signature(DEFAULT_CHANNEL_SECRET.as_bytes(), body);
            assert_eq!(signature.as_deref(), Some(expected.as_str()));
            serde_json::from_slice::<Value>(body).expect("json body")
        })
        .collect()
}

#[tokio::test]
async fn follow_unfollow_message_and_redelivery_webhooks_are_signed() {
    let sim = simulator(LineConfig::default()).await;
    let line = sim.line();
    let (url, received) = receiver().await;
    line.set_webhook_url(Some(&url)).expect("url");

    let unfollow = line.unfollow(ANA).await.expect("unfollow posted");
    assert!(line.is_blocked(ANA));
    let follow = line.follow(ANA).await.expect("follow posted");
    assert!(!line.is_blocked(ANA));
    let message = line
        .deliver_text(ANA, "Is the sale on?")
        .await
        .expect("message");
    line.redeliver(&unfollow).await.expect("redelivery");
    line.verify_webhook().await.expect("verify");

    let bodies = events(&received);
    assert_eq!(bodies.len(), 5);
    for body in &bodies {
        assert_eq!(body["destination"], DEFAULT_BOT_USER_ID);
    }
    let event = |i: usize| &bodies[i]["events"][0];
    assert_eq!(event(0)["type"], "unfollow");
    assert_eq!(event(0)["webhookEventId"], unfollow.as_str());
    assert_eq!(event(0)["source"], json!({"type": "user", "userId": ANA}));
    assert_eq!(event(0)["deliveryContext"]["isRedelivery"], false);
    assert_eq!(event(0)["mode"], "active");
    assert!(
        event(0)["timestamp"]
            .as_i64()
            .is_some_and(|t| t > 1_700_000_000_000)
    );
    assert!(event(0).get("replyToken").is_none());
    assert_eq!(event(1)["type"], "follow");
    assert_eq!(event(1)["webhookEventId"], follow.as_str());
    assert_eq!(event(1)["follow"]["isUnblocked"], true);
    assert!(event(1)["replyToken"].is_string());
    assert_eq!(event(2)["type"], "message");
    assert_eq!(event(2)["webhookEventId"], message.as_str());
    assert_eq!(event(2)["message"]["type"], "text");
    assert_eq!(event(2)["message"]["text"], "Is the sale on?");
    assert_eq!(event(3)["type"], "unfollow");
    assert_eq!(event(3)["webhookEventId"], unfollow.as_str());
    assert_eq!(event(3)["timestamp"], event(0)["timestamp"]);
    assert_eq!(event(3)["deliveryContext"]["isRedelivery"], true);
    assert_eq!(bodies[4]["events"], json!([]));
    assert_eq!(line.stats().webhooks_posted, 5);

    assert!(matches!(
        line.redeliver("01NOSUCHEVENT").await,
        Err(LineControlError::UnknownEvent(_))
    ));
    assert!(matches!(
        line.follow("not-a-user").await,
        Err(LineControlError::InvalidUserId(_))
    ));
}

#[tokio::test]
async fn control_routes_over_http() {
    let sim = simulator(LineConfig::default()).await;
    let client = reqwest::Client::new();
    let base = format!("{}/_sim/line", sim.base_url());

    // Without a webhook URL the block still happens, and the reply says why.
    let response = client
        .post(format!("{base}/unfollow"))
        .json(&json!({"user_id": BEN}))
        .send()
        .await
        .expect("unfollow");
    assert_eq!(response.status(), 409);
    let body: Value = response.json().await.expect("json");
    assert_eq!(
        body["error"],
        "webhook not delivered: no webhook URL is configured"
    );
    assert!(sim.line().is_blocked(BEN));

    let response = client
        .post(format!("{base}/fail-next"))
        .json(&json!({"count": 2, "after_accept": true}))
        .send()
        .await
        .expect("fail-next");
    assert_eq!(
        response.json::<Value>().await.expect("json"),
        json!({"pending": 2, "mode": "after_accept"})
    );
    assert_eq!(push(&sim, ANA, Some(KEY_1)).await.status, 500);

    let messages: Vec<LineMessage> = client
        .get(format!("{base}/messages?to={ANA}"))
        .send()
        .await
        .expect("messages")
        .json()
        .await
        .expect("json");
    assert_eq!(messages.len(), 1);
    let requests: Vec<LineRequest> = client
        .get(format!("{base}/requests"))
        .send()
        .await
        .expect("requests")
        .json()
        .await
        .expect("json");
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].status, 500);
    let stats: LineStats = client
        .get(format!("{base}/stats"))
        .send()
        .await
        .expect("stats")
        .json()
        .await
        .expect("json");
    assert_eq!(stats.push_accepted, 1);

    let rate: Value = client
        .put(format!("{base}/rate"))
        .json(&json!({"multicast_per_second": 7}))
        .send()
        .await
        .expect("rate")
        .json()
        .await
        .expect("json");
    assert_eq!(
        rate,
        json!({"push_per_second": 2000, "multicast_per_second": 7})
    );
    let quota: Value = client
        .put(format!("{base}/quota"))
        .json(&json!({"monthly_limit": 10, "used": 4}))
        .send()
        .await
        .expect("quota")
        .json()
        .await
        .expect("json");
    assert_eq!(quota, json!({"monthly_limit": 10, "used": 4}));
    let bad = client
        .put(format!("{base}/webhook"))
        .json(&json!({"url": "ftp://nowhere"}))
        .send()
        .await
        .expect("webhook");
    assert_eq!(bad.status(), 400);

    client
        .post(format!("{base}/reset"))
        .send()
        .await
        .expect("reset");
    let line = sim.line();
    assert!(line.messages().is_empty() && line.requests().is_empty());
    assert!(!line.is_blocked(BEN));
    assert_eq!(line.pending_failures(), 0);
    assert_eq!(line.quota_used(), 0);
    assert!(line.wait_for_webhooks(Duration::from_secs(1)).await);
}
