//! The simulated RBM over real HTTP on loopback: OAuth, sends, errors,
//! deduplication, TTL revocation, signed webhooks and the handshake.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::post;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use reqwest::Client;
use serde_json::{Value, json};

use super::auth::RBM_SCOPE;
use super::auth::tests::sign;
use super::webhooks::goog_signature;
use super::{
    DEFAULT_AGENT_ID, DEFAULT_CLIENT_EMAIL, DEFAULT_CLIENT_TOKEN, MessageState, RcsConfig,
    RcsControlError, TEST_ONLY_OTHER_PRIVATE_KEY_PEM, TEST_ONLY_PRIVATE_KEY_PEM,
};
use crate::{Simulator, SimulatorConfig, SimulatorHandle};

const HEADER: &str = r#"{"alg":"RS256","typ":"JWT"}"#;
const PHONE: &str = "+12223334444";
const ID_1: &str = "3f1c5a0e-9b7d-4c2a-8e6f-0b1d3c5a7e9f";
const ID_2: &str = "4a2d6b1f-0c8e-4d3b-9f70-1c2e4d6b8f00";
const ID_3: &str = "5b3e7c20-1d9f-4e4c-a081-2d3f5e7c9011";

async fn start(rcs: RcsConfig) -> (SimulatorHandle, Client) {
    let sim = Simulator::start(
        "127.0.0.1:0".parse().expect("addr"),
        SimulatorConfig {
            rcs,
            ..SimulatorConfig::default()
        },
    )
    .await
    .expect("simulator starts");
    (sim, Client::builder().no_proxy().build().expect("client"))
}

fn assertion(sim: &SimulatorHandle, pem: &str, iss: &str) -> String {
    let now = sim.clock().now_unix();
    sign(
        pem,
        HEADER,
        &json!({
            "iss": iss,
            "scope": RBM_SCOPE,
            "aud": format!("{}/token", sim.base_url()),
            "iat": now,
            "exp": now + 3_600,
        }),
    )
}

async fn token_request(client: &Client, sim: &SimulatorHandle, form: &str) -> (u16, Value) {
    let response = client
        .post(format!("{}/token", sim.base_url()))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form.to_owned())
        .send()
        .await
        .expect("token request");
    let status = response.status().as_u16();
    (status, response.json().await.expect("json"))
}

fn grant(assertion: &str) -> String {
    format!(
        "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion={assertion}"
    )
}

async fn fetch_token(client: &Client, sim: &SimulatorHandle) -> String {
    let (status, body) = token_request(
        client,
        sim,
        &grant(&assertion(
            sim,
            TEST_ONLY_PRIVATE_KEY_PEM,
            DEFAULT_CLIENT_EMAIL,
        )),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["access_token"].as_str().expect("token").to_owned()
}

async fn send(
    client: &Client,
    sim: &SimulatorHandle,
    token: Option<&str>,
    phone: &str,
    query: &str,
    body: &Value,
) -> (u16, Value, HeaderMap) {
    let mut request = client
        .post(format!(
            "{}/v1/phones/{phone}/agentMessages?{query}",
            sim.base_url()
        ))
        .json(body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.expect("send");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (status, response.json().await.expect("json"), headers)
}

fn text(text: &str) -> Value {
    json!({"contentMessage": {"text": text}, "messageTrafficType": "TRANSACTION"})
}

fn query(message_id: &str) -> String {
    format!("messageId={message_id}&agentId={DEFAULT_AGENT_ID}")
}

/// What a webhook receiver got: decoded event data, whether the signature verified.
type Received = Arc<Mutex<Vec<(Value, bool)>>>;

/// A webhook receiver on loopback that records pushes (checking their
/// signature) and answers handshakes with `echo` (the secret, or not).
async fn receiver(echo_secret: bool) -> (String, Received) {
    let received: Received = Arc::default();
    async fn hook(
        State((received, echo)): State<(Received, bool)>,
        headers: HeaderMap,
        body: Bytes,
    ) -> String {
        let value: Value = serde_json::from_slice(&body).expect("json webhook");
        if let Some(secret) = value.get("secret").and_then(Value::as_str) {
            assert_eq!(value["clientToken"], DEFAULT_CLIENT_TOKEN);
            return if echo {
                secret.to_owned()
            } else {
                "nope".into()
            };
        }
        let data = STANDARD
            .decode(value["message"]["data"].as_str().expect("data"))
            .expect("base64 data");
        let signature = headers
            .get("x-goog-signature")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let verified = signature == goog_signature(DEFAULT_CLIENT_TOKEN.as_bytes(), &data);
        let event: Value = serde_json::from_slice(&data).expect("event json");
        received.lock().expect("lock").push((event, verified));
        "ok".into()
    }
    let app = Router::new()
        .route("/hook", post(hook))
        .with_state((Arc::clone(&received), echo_secret));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}/hook"), received)
}

async fn wait_for(received: &Received, count: usize) -> Vec<(Value, bool)> {
    for _ in 0..200 {
        let got = received.lock().expect("lock").clone();
        if got.len() >= count {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    received.lock().expect("lock").clone()
}

#[tokio::test]
async fn rcs_token_endpoint_verifies_the_assertion() {
    let (sim, client) = start(RcsConfig::default()).await;
    let (status, body) = token_request(
        &client,
        &sim,
        &grant(&assertion(
            &sim,
            TEST_ONLY_PRIVATE_KEY_PEM,
            DEFAULT_CLIENT_EMAIL,
        )),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3_600);
    assert!(
        body["access_token"]
            .as_str()
            .expect("token")
            .starts_with("ya29.")
    );

    let cases = [
        (
            grant(&assertion(
                &sim,
                TEST_ONLY_OTHER_PRIVATE_KEY_PEM,
                DEFAULT_CLIENT_EMAIL,
            )),
            "invalid_grant",
            "Invalid JWT Signature.",
        ),
        (
            grant(&assertion(
                &sim,
                TEST_ONLY_PRIVATE_KEY_PEM,
                "evil@x.iam.gserviceaccount.com",
            )),
            "invalid_grant",
            "Invalid email",
        ),
        (
            "grant_type=password&username=a".to_owned(),
            "unsupported_grant_type",
            "password",
        ),
        (
            "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer".to_owned(),
            "invalid_request",
            "assertion",
        ),
    ];
    for (form, error, description) in cases {
        let (status, body) = token_request(&client, &sim, &form).await;
        assert_eq!(status, 400, "{form}");
        assert_eq!(body["error"], error, "{form}: {body}");
        assert!(
            body["error_description"]
                .as_str()
                .expect("description")
                .contains(description),
            "{body}"
        );
    }
    let stats = sim.rcs().stats();
    assert_eq!(stats.token_requests, 5);
    assert_eq!(stats.tokens_issued, 1);
    assert_eq!(stats.token_refusals, 4);
}

#[tokio::test]
async fn rcs_send_is_recorded_delivered_read_and_deduplicated() {
    let (sim, client) = start(RcsConfig::default()).await;
    let (url, received) = receiver(true).await;
    sim.rcs().set_webhook_url(Some(&url)).expect("url");
    let token = fetch_token(&client, &sim).await;

    let body = json!({"contentMessage": {"text": "Your order shipped"}, "messageTrafficType": "TRANSACTION", "ttl": "3600s"});
    let (status, reply, _) = send(&client, &sim, Some(&token), PHONE, &query(ID_1), &body).await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(
        reply["name"],
        format!("phones/{PHONE}/agentMessages/{ID_1}")
    );
    assert_eq!(reply["contentMessage"]["text"], "Your order shipped");
    assert!(reply["expireTime"].is_string());

    let events = wait_for(&received, 2).await;
    assert_eq!(events.len(), 2, "{events:?}");
    for ((event, verified), kind) in events.iter().zip(["DELIVERED", "READ"]) {
        assert!(verified, "signature of {event}");
        assert_eq!(event["eventType"], kind);
        assert_eq!(event["messageId"], ID_1);
        assert_eq!(event["senderPhoneNumber"], PHONE);
        assert_eq!(event["agentId"], DEFAULT_AGENT_ID);
    }
    assert!(sim.rcs().wait_for_webhooks(Duration::from_secs(5)).await);
    let message = sim.rcs().message(ID_1).expect("recorded");
    assert_eq!(message.state, MessageState::Read);
    assert_eq!(message.traffic_type.as_deref(), Some("TRANSACTION"));
    assert_eq!(
        message.expire_at_ms,
        Some(message.received_at_ms + 3_600_000)
    );

    // The same messageId again: nothing new is sent.
    let (status, reply, _) = send(&client, &sim, Some(&token), PHONE, &query(ID_1), &body).await;
    assert_eq!(status, 409);
    assert_eq!(reply["error"]["status"], "ALREADY_EXISTS");
    assert_eq!(sim.rcs().messages().len(), 1);
    let stats = sim.rcs().stats();
    assert_eq!(
        (stats.accepted, stats.duplicates, stats.statuses_posted),
        (1, 1, 2)
    );
}

#[tokio::test]
async fn rcs_api_errors_are_googles() {
    let (sim, client) = start(RcsConfig {
        unreachable: vec!["+15550001111".into()],
        ..RcsConfig::default()
    })
    .await;
    let token = fetch_token(&client, &sim).await;
    let ok = text("hi");
    let expect = |status: u16, canonical: &str, result: (u16, Value, HeaderMap)| {
        assert_eq!(result.0, status, "{}", result.1);
        assert_eq!(result.1["error"]["status"], canonical, "{}", result.1);
        assert_eq!(result.1["error"]["code"], status);
        result
    };

    expect(
        401,
        "UNAUTHENTICATED",
        send(&client, &sim, None, PHONE, &query(ID_1), &ok).await,
    );
    expect(
        401,
        "UNAUTHENTICATED",
        send(&client, &sim, Some("ya29.forged"), PHONE, &query(ID_1), &ok).await,
    );
    expect(
        403,
        "PERMISSION_DENIED",
        send(
            &client,
            &sim,
            Some(&token),
            PHONE,
            &format!("messageId={ID_1}&agentId=other"),
            &ok,
        )
        .await,
    );
    expect(
        400,
        "INVALID_ARGUMENT",
        send(
            &client,
            &sim,
            Some(&token),
            "12223334444",
            &query(ID_1),
            &ok,
        )
        .await,
    );
    expect(
        400,
        "INVALID_ARGUMENT",
        send(
            &client,
            &sim,
            Some(&token),
            PHONE,
            &format!("agentId={DEFAULT_AGENT_ID}"),
            &ok,
        )
        .await,
    );
    expect(
        400,
        "INVALID_ARGUMENT",
        send(
            &client,
            &sim,
            Some(&token),
            PHONE,
            &query("not-a-uuid"),
            &ok,
        )
        .await,
    );
    let (_, body, _) = expect(
        400,
        "INVALID_ARGUMENT",
        send(
            &client,
            &sim,
            Some(&token),
            PHONE,
            &query(ID_1),
            &text(&"x".repeat(3_073)),
        )
        .await,
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .expect("message")
            .contains("3073")
    );
    expect(
        404,
        "NOT_FOUND",
        send(
            &client,
            &sim,
            Some(&token),
            "+15550001111",
            &query(ID_1),
            &ok,
        )
        .await,
    );
    // Rejected requests do not use up the id.
    let (status, _, _) = send(&client, &sim, Some(&token), PHONE, &query(ID_1), &ok).await;
    assert_eq!(status, 200);

    // Capability checks.
    let capability = |phone: &str, request_id: &str| {
        client
            .get(format!(
                "{}/v1/phones/{phone}/capabilities?requestId={request_id}&agentId={DEFAULT_AGENT_ID}",
                sim.base_url()
            ))
            .bearer_auth(&token)
            .send()
    };
    let response = capability(PHONE, ID_2).await.expect("capability");
    assert_eq!(response.status(), 200);
    let features: Value = response.json().await.expect("json");
    assert!(
        features["features"]
            .as_array()
            .is_some_and(|f| !f.is_empty())
    );
    let response = capability("+15550001111", ID_2).await.expect("capability");
    assert_eq!(response.status(), 404);
    assert_eq!(
        capability(PHONE, "x").await.expect("capability").status(),
        400
    );

    // Rate limit, then faults.
    sim.rcs().set_messages_per_second(1);
    let (status, _, _) = send(&client, &sim, Some(&token), PHONE, &query(ID_2), &ok).await;
    assert_eq!(status, 200);
    let (_, _, headers) = expect(
        429,
        "RESOURCE_EXHAUSTED",
        send(&client, &sim, Some(&token), PHONE, &query(ID_3), &ok).await,
    );
    assert_eq!(headers["retry-after"], "1");
    sim.rcs().set_messages_per_second(0);
    sim.set_faults(crate::FaultConfig {
        error_rate: 1.0,
        latency_ms: 0,
        ..crate::FaultConfig::default()
    })
    .expect("faults");
    expect(
        503,
        "UNAVAILABLE",
        send(&client, &sim, Some(&token), PHONE, &query(ID_3), &ok).await,
    );
    sim.set_faults(crate::FaultConfig::default())
        .expect("faults");

    // Revoked and expired tokens.
    sim.rcs().revoke_tokens();
    expect(
        401,
        "UNAUTHENTICATED",
        send(&client, &sim, Some(&token), PHONE, &query(ID_3), &ok).await,
    );
    let fresh = fetch_token(&client, &sim).await;
    sim.advance_clock(3_601);
    expect(
        401,
        "UNAUTHENTICATED",
        send(&client, &sim, Some(&fresh), PHONE, &query(ID_3), &ok).await,
    );

    let stats = sim.rcs().stats();
    assert_eq!(stats.unauthenticated, 4);
    assert_eq!(stats.rate_limited, 1);
    assert_eq!(stats.rejected[&404], 2);
    assert_eq!(stats.capability_checks, 1);
}

#[tokio::test]
async fn rcs_waiting_messages_are_revoked_when_their_ttl_passes() {
    let (sim, client) = start(RcsConfig::default()).await;
    let (url, received) = receiver(true).await;
    let rcs = sim.rcs();
    rcs.set_webhook_url(Some(&url)).expect("url");
    rcs.set_online(PHONE, false).expect("phone");
    let token = fetch_token(&client, &sim).await;

    let with_ttl = json!({"contentMessage": {"text": "code 1234"}, "ttl": "60s"});
    assert_eq!(
        send(&client, &sim, Some(&token), PHONE, &query(ID_1), &with_ttl)
            .await
            .0,
        200
    );
    assert_eq!(
        send(
            &client,
            &sim,
            Some(&token),
            PHONE,
            &query(ID_2),
            &text("no ttl")
        )
        .await
        .0,
        200
    );
    assert_eq!(
        rcs.message(ID_1).expect("recorded").state,
        MessageState::Pending
    );
    assert!(rcs.expire_due().await.is_empty(), "not yet expired");

    sim.advance_clock(61);
    // The background sweep (every 200 ms) may get there first; either way
    // the message is revoked exactly once.
    let revoked = rcs.expire_due().await;
    assert!(revoked.is_empty() || revoked == [ID_1], "{revoked:?}");
    let events = wait_for(&received, 1).await;
    assert_eq!(events.len(), 1, "{events:?}");
    let (event, verified) = &events[0];
    assert!(verified);
    assert_eq!(event["eventType"], "TTL_EXPIRATION_REVOKED");
    assert_eq!(event["phoneNumber"], PHONE);
    assert_eq!(event["messageId"], ID_1);
    assert!(event.get("senderPhoneNumber").is_none());
    assert_eq!(
        rcs.message(ID_1).expect("recorded").state,
        MessageState::Revoked
    );
    assert!(rcs.expire_due().await.is_empty(), "revoked once");

    // The background sweep does the same without being asked.
    let short = json!({"contentMessage": {"text": "code 5678"}, "ttl": "1s"});
    assert_eq!(
        send(&client, &sim, Some(&token), PHONE, &query(ID_3), &short)
            .await
            .0,
        200
    );
    sim.advance_clock(2);
    let events = wait_for(&received, 2).await;
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(events[1].0["messageId"], ID_3);
    assert_eq!(rcs.stats().revocations_posted, 2);

    // Back online: what waited without a TTL is delivered.
    rcs.set_online(PHONE, true).expect("phone");
    let events = wait_for(&received, 4).await;
    assert_eq!(events.len(), 4, "{events:?}");
    assert_eq!(events[2].0["eventType"], "DELIVERED");
    assert_eq!(events[2].0["messageId"], ID_2);
    assert_eq!(events[3].0["eventType"], "READ");
    assert_eq!(
        rcs.message(ID_1).expect("recorded").state,
        MessageState::Revoked
    );
}

#[tokio::test]
async fn rcs_inbound_subscription_and_handshake() {
    let (sim, _client) = start(RcsConfig::default()).await;
    let rcs = sim.rcs();
    assert!(matches!(
        rcs.deliver_inbound(PHONE, "hi").await,
        Err(RcsControlError::Webhook(crate::WebhookError::NoUrl))
    ));
    let (url, received) = receiver(true).await;
    rcs.set_webhook_url(Some(&url)).expect("url");
    let message_id = rcs.deliver_inbound(PHONE, "STOP").await.expect("posted");
    rcs.post_subscription(PHONE, false).await.expect("posted");
    let events = wait_for(&received, 2).await;
    assert!(events.iter().all(|(_, verified)| *verified));
    assert_eq!(events[0].0["text"], "STOP");
    assert_eq!(events[0].0["messageId"], message_id.as_str());
    assert_eq!(events[0].0["senderPhoneNumber"], PHONE);
    assert_eq!(events[1].0["eventType"], "UNSUBSCRIBE");
    assert!(matches!(
        rcs.deliver_inbound("12345", "hi").await,
        Err(RcsControlError::InvalidPhone(_))
    ));

    rcs.verify_webhook().await.expect("handshake answered");
    let (url, _) = receiver(false).await;
    rcs.set_webhook_url(Some(&url)).expect("url");
    match rcs.verify_webhook().await {
        Err(RcsControlError::Handshake { status, body }) => {
            assert_eq!((status, body.as_str()), (200, "nope"));
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(rcs.stats().inbound_posted, 1);
    assert_eq!(rcs.stats().subscriptions_posted, 1);
}

#[tokio::test]
async fn rcs_control_routes() {
    let (sim, client) = start(RcsConfig::default()).await;
    let base = format!("{}/_sim/rcs", sim.base_url());
    let put = |path: &str, body: Value| client.put(format!("{base}{path}")).json(&body).send();
    assert_eq!(
        put("/capability", json!({"phone": PHONE, "capable": false}))
            .await
            .expect("put")
            .status(),
        200
    );
    assert_eq!(
        put("/device", json!({"phone": PHONE, "online": false}))
            .await
            .expect("put")
            .status(),
        200
    );
    let bad = put("/device", json!({"phone": "123", "online": false}))
        .await
        .expect("put");
    assert_eq!(bad.status(), 400);
    let error: Value = bad.json().await.expect("json");
    assert!(
        error["error"]
            .as_str()
            .expect("error")
            .contains("invalid phone number")
    );
    assert_eq!(
        put("/throughput", json!({"messages_per_second": 7}))
            .await
            .expect("put")
            .status(),
        200
    );
    assert_eq!(sim.rcs().messages_per_second(), 7);
    assert_eq!(
        put("/webhook", json!({"url": "ftp://x"}))
            .await
            .expect("put")
            .status(),
        400
    );
    let inbound = client
        .post(format!("{base}/inbound"))
        .json(&json!({"from": PHONE, "text": "hi"}))
        .send()
        .await
        .expect("post");
    assert_eq!(inbound.status(), 409, "no webhook URL yet");

    let token = fetch_token(&client, &sim).await;
    let (status, _, _) = send(
        &client,
        &sim,
        Some(&token),
        PHONE,
        &query(ID_1),
        &text("hi"),
    )
    .await;
    assert_eq!(status, 404, "made non-capable above");
    put("/capability", json!({"phone": PHONE, "capable": true}))
        .await
        .expect("put");
    let (status, _, _) = send(
        &client,
        &sim,
        Some(&token),
        PHONE,
        &query(ID_1),
        &text("hi"),
    )
    .await;
    assert_eq!(status, 200);
    let messages: Value = client
        .get(format!("{base}/messages?to=%2B12223334444"))
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    assert_eq!(messages[0]["message_id"], ID_1);
    assert_eq!(messages[0]["state"], "pending", "the device is offline");
    let stats: Value = client
        .get(format!("{base}/stats"))
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    assert_eq!(stats["accepted"], 1);
    assert_eq!(stats["tokens_issued"], 1);
    let reset = client
        .post(format!("{base}/reset"))
        .send()
        .await
        .expect("post");
    assert_eq!(reset.status(), 200);
    assert!(sim.rcs().messages().is_empty());
    let (status, _, _) = send(
        &client,
        &sim,
        Some(&token),
        PHONE,
        &query(ID_1),
        &text("hi"),
    )
    .await;
    assert_eq!(status, 401, "reset forgets tokens");
}

#[tokio::test]
async fn reset_after_accept_keeps_the_message_id_and_spares_the_token_endpoint() {
    let (sim, client) = start(RcsConfig::default()).await;
    let rcs = sim.rcs();
    sim.set_faults(crate::FaultConfig {
        reset_after_accept_rate: 1.0,
        ..crate::FaultConfig::default()
    })
    .expect("faults");
    // Not a send request: answered.
    let token = fetch_token(&client, &sim).await;
    let lost = client
        .post(format!(
            "{}/v1/phones/{PHONE}/agentMessages?{}",
            sim.base_url(),
            query(ID_1)
        ))
        .bearer_auth(&token)
        .json(&text("hi"))
        .send()
        .await;
    let error = lost.expect_err("no response after acceptance");
    assert!(error.status().is_none() && error.is_request(), "{error}");
    assert_eq!(rcs.messages().len(), 1);
    assert_eq!(rcs.stats().reset_after_accept, 1);

    // The retry with the same messageId is a 409, answered.
    let (status, body, _) = send(
        &client,
        &sim,
        Some(&token),
        PHONE,
        &query(ID_1),
        &text("hi"),
    )
    .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(
        rcs.recipient_counts(),
        BTreeMap::from([(PHONE.to_owned(), 1)])
    );
    let over_http: Value = client
        .get(format!("{}/_sim/rcs/recipients", sim.base_url()))
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    assert_eq!(over_http, json!({PHONE: 1}));
    assert_eq!(sim.duplicates()["rcs"], 0);
}
