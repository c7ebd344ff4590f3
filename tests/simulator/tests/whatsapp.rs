//! The simulated WhatsApp Cloud API, exercised over real HTTP on loopback.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use hmac::{Hmac, Mac};
use reqwest::Client;
use serde_json::{Value, json};
use switchboard_simulator::whatsapp::{DEFAULT_ACCESS_TOKEN, DEFAULT_APP_SECRET, WABA_ID};
use switchboard_simulator::{
    ControlError, MarketingPreference, Simulator, SimulatorConfig, SimulatorHandle, WebhookError,
    WhatsAppConfig,
};

const CUSTOMER: &str = "4915112345678";

async fn start(whatsapp: WhatsAppConfig) -> (SimulatorHandle, Client) {
    let sim = Simulator::start(
        "127.0.0.1:0".parse().expect("addr"),
        SimulatorConfig {
            whatsapp,
            ..SimulatorConfig::default()
        },
    )
    .await
    .expect("simulator starts");
    let client = Client::builder().no_proxy().build().expect("client");
    (sim, client)
}

fn messages_url(sim: &SimulatorHandle) -> String {
    format!(
        "{}/v21.0/{}/messages",
        sim.base_url(),
        sim.whatsapp().phone_number_id()
    )
}

async fn send(client: &Client, url: &str, token: Option<&str>, body: &Value) -> (u16, Value) {
    let mut request = client.post(url).json(body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    let body = response.json::<Value>().await.expect("json body");
    (status, body)
}

async fn send_ok(client: &Client, sim: &SimulatorHandle, body: &Value) -> (u16, Value) {
    send(client, &messages_url(sim), Some(DEFAULT_ACCESS_TOKEN), body).await
}

async fn control(
    client: &Client,
    sim: &SimulatorHandle,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let url = format!("{}{}", sim.base_url(), path);
    let mut request = match method {
        "GET" => client.get(&url),
        "POST" => client.post(&url),
        "PUT" => client.put(&url),
        "DELETE" => client.delete(&url),
        other => panic!("unsupported method {other}"),
    };
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("control request");
    let status = response.status().as_u16();
    (
        status,
        response.json::<Value>().await.expect("control json"),
    )
}

fn text(to: &str, body: &str) -> Value {
    json!({"messaging_product": "whatsapp", "recipient_type": "individual", "to": to,
           "type": "text", "text": {"preview_url": false, "body": body}})
}

fn template(to: &str, name: &str, lang: &str, params: &[&str]) -> Value {
    let parameters: Vec<Value> = params
        .iter()
        .map(|p| json!({"type": "text", "text": p}))
        .collect();
    json!({"messaging_product": "whatsapp", "to": to, "type": "template",
           "template": {"name": name, "language": {"code": lang},
                        "components": [{"type": "body", "parameters": parameters}]}})
}

fn code(body: &Value) -> i64 {
    body["error"]["code"].as_i64().unwrap_or(-1)
}

fn now_unix() -> i64 {
    i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("time")
            .as_secs(),
    )
    .expect("fits")
}

/// A webhook receiver standing in for the host.
#[derive(Clone, Default)]
struct Receiver {
    received: Arc<Mutex<Vec<(HeaderMap, Bytes)>>>,
    fail_with: Arc<Mutex<Option<StatusCode>>>,
}

impl Receiver {
    async fn start(&self) -> String {
        let app = axum::Router::new()
            .route("/webhooks/whatsapp", post(receive))
            .with_state(self.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        format!("http://{addr}/webhooks/whatsapp")
    }

    fn all(&self) -> Vec<(HeaderMap, Bytes)> {
        self.received.lock().expect("lock").clone()
    }

    async fn wait_for(&self, count: usize) -> Vec<(HeaderMap, Bytes)> {
        for _ in 0..500 {
            let all = self.all();
            if all.len() >= count {
                return all;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("expected {count} webhooks, got {}", self.all().len());
    }
}

async fn receive(State(receiver): State<Receiver>, headers: HeaderMap, body: Bytes) -> StatusCode {
    if let Some(status) = *receiver.fail_with.lock().expect("lock") {
        return status;
    }
    receiver
        .received
        .lock()
        .expect("lock")
        .push((headers, body));
    StatusCode::OK
}

/// Verifies `X-Hub-Signature-256` independently of the simulator's code.
fn signature_valid(secret: &str, headers: &HeaderMap, body: &[u8]) -> bool {
    let Some(header) = headers
        .get("x-hub-signature-256")
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let Some(hex_sig) = header.strip_prefix("sha256=") else {
        return false;
    };
    if hex_sig.len() != 64 || hex_sig.chars().any(|c| c.is_ascii_uppercase()) {
        return false;
    }
    let Ok(expected) = hex::decode(hex_sig) else {
        return false;
    };
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("hmac key");
    mac.update(body);
    mac.verify_slice(&expected).is_ok()
}

fn change(body: &[u8]) -> (String, Value) {
    let payload: Value = serde_json::from_slice(body).expect("webhook json");
    assert_eq!(payload["object"], "whatsapp_business_account");
    assert_eq!(payload["entry"][0]["id"], WABA_ID);
    let change = &payload["entry"][0]["changes"][0];
    let value = change["value"].clone();
    assert_eq!(value["messaging_product"], "whatsapp");
    assert_eq!(value["metadata"]["phone_number_id"], "100000000000001");
    assert!(value["metadata"]["display_phone_number"].is_string());
    (change["field"].as_str().expect("field").to_owned(), value)
}

#[tokio::test]
async fn bearer_token_and_phone_number_id_are_checked() {
    let (sim, client) = start(WhatsAppConfig::default()).await;
    sim.whatsapp().open_window(CUSTOMER).expect("window");
    let url = messages_url(&sim);
    let body = text(CUSTOMER, "hello");

    let (status, reply) = send(&client, &url, None, &body).await;
    assert_eq!(status, 401);
    assert_eq!(code(&reply), 190);
    assert_eq!(reply["error"]["type"], "OAuthException");
    assert!(
        reply["error"]["message"]
            .as_str()
            .expect("message")
            .contains("Invalid OAuth access token")
    );
    assert!(reply["error"]["fbtrace_id"].is_string());

    let (status, reply) = send(&client, &url, Some("not-the-token"), &body).await;
    assert_eq!((status, code(&reply)), (401, 190));

    let wrong_phone = format!("{}/v21.0/999999999/messages", sim.base_url());
    let (status, reply) = send(&client, &wrong_phone, Some(DEFAULT_ACCESS_TOKEN), &body).await;
    assert_eq!((status, code(&reply)), (400, 100));
    assert!(
        reply["error"]["message"]
            .as_str()
            .expect("message")
            .starts_with("Unsupported post request")
    );

    let bad_version = format!(
        "{}/latest/{}/messages",
        sim.base_url(),
        sim.whatsapp().phone_number_id()
    );
    let (status, _) = send(&client, &bad_version, Some(DEFAULT_ACCESS_TOKEN), &body).await;
    assert_eq!(status, 400);

    let (status, _) = send(&client, &url, Some(DEFAULT_ACCESS_TOKEN), &body).await;
    assert_eq!(status, 200);
    assert_eq!(sim.whatsapp().rejected_count(190), 2);
    assert_eq!(sim.whatsapp().messages().len(), 1);
    sim.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn text_inside_window_is_accepted_and_recorded() {
    let (sim, client) = start(WhatsAppConfig::default()).await;
    let (status, reply) = control(
        &client,
        &sim,
        "POST",
        "/_sim/whatsapp/window",
        Some(json!({"wa_id": CUSTOMER})),
    )
    .await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["window_open"], true);

    let to = format!("+{CUSTOMER}");
    let (status, reply) = send_ok(&client, &sim, &text(&to, "Your order shipped")).await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["messaging_product"], "whatsapp");
    assert_eq!(reply["contacts"][0]["input"], to);
    assert_eq!(reply["contacts"][0]["wa_id"], CUSTOMER);
    let wamid = reply["messages"][0]["id"]
        .as_str()
        .expect("wamid")
        .to_owned();
    assert!(wamid.starts_with("wamid.") && wamid.len() > 20, "{wamid}");

    let (status, listed) = control(&client, &sim, "GET", "/_sim/whatsapp/messages", None).await;
    assert_eq!(status, 200);
    let listed = listed.as_array().expect("array").clone();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["wamid"], wamid.as_str());
    assert_eq!(listed[0]["to"], to);
    assert_eq!(listed[0]["type"], "text");
    assert_eq!(listed[0]["text"], "Your order shipped");
    let received_at = listed[0]["received_at"].as_i64().expect("received_at");
    assert!((received_at - now_unix()).abs() < 5);

    let recorded = sim.whatsapp().messages_to(CUSTOMER);
    assert_eq!(recorded.len(), 1);
    assert_eq!(recorded[0].wamid, wamid);

    // A second message gets a different wamid.
    let (_, again) = send_ok(&client, &sim, &text(CUSTOMER, "Another")).await;
    assert_ne!(again["messages"][0]["id"], wamid.as_str());

    let (_, stats) = control(&client, &sim, "GET", "/_sim/whatsapp/stats", None).await;
    assert_eq!(stats["accepted"], 2);
    assert_eq!(stats["rejected_total"], 0);
}

#[tokio::test]
async fn text_outside_window_gets_131047() {
    let (sim, client) = start(WhatsAppConfig::default()).await;

    // Never wrote in.
    let (status, reply) = send_ok(&client, &sim, &text(CUSTOMER, "hi")).await;
    assert_eq!((status, code(&reply)), (400, 131047));
    assert_eq!(reply["error"]["message"], "(#131047) Re-engagement message");
    assert_eq!(
        reply["error"]["error_data"]["messaging_product"],
        "whatsapp"
    );
    assert!(
        reply["error"]["error_data"]["details"]
            .as_str()
            .expect("details")
            .contains("24 hours")
    );

    // Last wrote 25 hours ago.
    let (status, _) = control(
        &client,
        &sim,
        "POST",
        "/_sim/whatsapp/window",
        Some(json!({"wa_id": CUSTOMER, "at_unix": now_unix() - 25 * 3600})),
    )
    .await;
    assert_eq!(status, 200);
    let (status, reply) = send_ok(&client, &sim, &text(CUSTOMER, "hi")).await;
    assert_eq!((status, code(&reply)), (400, 131047));

    // 23 hours ago: still open...
    control(
        &client,
        &sim,
        "POST",
        "/_sim/whatsapp/window",
        Some(json!({"wa_id": CUSTOMER, "at_unix": now_unix() - 23 * 3600})),
    )
    .await;
    let (status, _) = send_ok(&client, &sim, &text(CUSTOMER, "hi")).await;
    assert_eq!(status, 200);

    // ...until the clock moves two hours on.
    let (status, _) = control(
        &client,
        &sim,
        "POST",
        "/_sim/clock/advance",
        Some(json!({"seconds": 7200})),
    )
    .await;
    assert_eq!(status, 200);
    let (status, reply) = send_ok(&client, &sim, &text(CUSTOMER, "hi")).await;
    assert_eq!((status, code(&reply)), (400, 131047));

    // Templates are allowed any time.
    let (status, reply) = send_ok(
        &client,
        &sim,
        &template(CUSTOMER, "winback_offer", "en_US", &["Jane"]),
    )
    .await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(sim.whatsapp().rejected_count(131047), 3);
}

#[tokio::test]
async fn templates_and_text_are_validated() {
    let (sim, client) = start(WhatsAppConfig::default()).await;
    sim.whatsapp().open_window(CUSTOMER).expect("window");

    let (status, reply) = send_ok(
        &client,
        &sim,
        &template(CUSTOMER, "no_such_template", "en_US", &["x"]),
    )
    .await;
    assert_eq!((status, code(&reply)), (400, 132001));
    assert_eq!(
        reply["error"]["message"],
        "(#132001) Template name does not exist in the translation"
    );

    let (status, reply) = send_ok(
        &client,
        &sim,
        &template(CUSTOMER, "order_update", "de_DE", &["a", "b"]),
    )
    .await;
    assert_eq!((status, code(&reply)), (400, 132001));

    let (status, reply) = send_ok(
        &client,
        &sim,
        &template(CUSTOMER, "order_update", "en_US", &["Jane"]),
    )
    .await;
    assert_eq!((status, code(&reply)), (400, 132000));
    assert!(
        reply["error"]["error_data"]["details"]
            .as_str()
            .expect("details")
            .contains("(1)")
    );

    let (status, reply) = send_ok(
        &client,
        &sim,
        &template(CUSTOMER, "winback_offer", "en_US", &[]),
    )
    .await;
    assert_eq!((status, code(&reply)), (400, 132000));

    let empty_param = json!({"messaging_product": "whatsapp", "to": CUSTOMER, "type": "template",
        "template": {"name": "winback_offer", "language": {"code": "en_US"},
                     "components": [{"type": "body", "parameters": [{"type": "text", "text": ""}]}]}});
    let (status, reply) = send_ok(&client, &sim, &empty_param).await;
    assert_eq!((status, code(&reply)), (400, 100));

    let (status, reply) = send_ok(&client, &sim, &text(CUSTOMER, &"a".repeat(4097))).await;
    assert_eq!((status, code(&reply)), (400, 100));
    assert!(
        reply["error"]["error_data"]["details"]
            .as_str()
            .expect("details")
            .contains("4096")
    );
    let (status, _) = send_ok(&client, &sim, &text(CUSTOMER, &"a".repeat(4096))).await;
    assert_eq!(status, 200);

    let image = json!({"messaging_product": "whatsapp", "to": CUSTOMER, "type": "image", "image": {"id": "1"}});
    let (status, reply) = send_ok(&client, &sim, &image).await;
    assert_eq!((status, code(&reply)), (400, 131051));

    let (status, reply) = send_ok(&client, &sim, &text("12-34", "hi")).await;
    assert_eq!((status, code(&reply)), (400, 131009));

    let no_product = json!({"to": CUSTOMER, "type": "text", "text": {"body": "hi"}});
    let (status, reply) = send_ok(&client, &sim, &no_product).await;
    assert_eq!((status, code(&reply)), (400, 100));

    let (status, reply) = send_ok(
        &client,
        &sim,
        &template(CUSTOMER, "order_update", "en_US", &["Jane", "#1234"]),
    )
    .await;
    assert_eq!(status, 200, "{reply}");
    let recorded = sim.whatsapp().messages();
    let last = recorded.last().expect("recorded");
    assert_eq!(last.message_type, "template");
    assert_eq!(last.template_name.as_deref(), Some("order_update"));
    assert_eq!(last.parameters, vec!["Jane".to_owned(), "#1234".to_owned()]);
    assert_eq!(last.text, "Hi Jane, your order #1234 has shipped.");

    let stats = sim.whatsapp().stats();
    assert_eq!(stats.accepted, 2);
    assert_eq!(stats.rejected.get(&132001), Some(&2));
    assert_eq!(stats.rejected.get(&132000), Some(&2));
}

#[tokio::test]
async fn throughput_limit_answers_130429() {
    let (sim, client) = start(WhatsAppConfig {
        messages_per_second: 5,
        ..WhatsAppConfig::default()
    })
    .await;
    let body = template(CUSTOMER, "winback_offer", "en_US", &["Jane"]);
    let mut accepted = 0;
    let mut limited = 0;
    for _ in 0..20 {
        let (status, reply) = send_ok(&client, &sim, &body).await;
        match status {
            200 => accepted += 1,
            400 if code(&reply) == 130429 => {
                assert_eq!(reply["error"]["message"], "(#130429) Rate limit hit");
                limited += 1;
            }
            other => panic!("unexpected {other}: {reply}"),
        }
    }
    assert!((5..=12).contains(&accepted), "accepted {accepted}");
    assert!(limited >= 8, "limited {limited}");
    assert_eq!(accepted + limited, 20);
    assert_eq!(sim.whatsapp().rate_limited_count(), limited);
    let (_, stats) = control(&client, &sim, "GET", "/_sim/whatsapp/stats", None).await;
    assert_eq!(stats["rejected"]["130429"], limited);
    assert_eq!(stats["rate_limited"], limited);

    // Lifting the limit through the control API lets everything through.
    let (status, _) = control(
        &client,
        &sim,
        "PUT",
        "/_sim/whatsapp/throughput",
        Some(json!({"messages_per_second": 0})),
    )
    .await;
    assert_eq!(status, 200);
    for _ in 0..20 {
        let (status, _) = send_ok(&client, &sim, &body).await;
        assert_eq!(status, 200);
    }
}

#[tokio::test]
async fn status_webhooks_are_signed_and_ordered() {
    let (sim, client) = start(WhatsAppConfig {
        status_delay_ms: 10,
        ..WhatsAppConfig::default()
    })
    .await;
    let receiver = Receiver::default();
    let url = receiver.start().await;
    // The host starts after the simulator: set the URL at run time.
    let (status, _) = control(
        &client,
        &sim,
        "PUT",
        "/_sim/whatsapp/webhook",
        Some(json!({"url": url})),
    )
    .await;
    assert_eq!(status, 200);

    let (status, reply) = send_ok(
        &client,
        &sim,
        &template(CUSTOMER, "loyalty_points", "en_US", &["Jane", "120"]),
    )
    .await;
    assert_eq!(status, 200, "{reply}");
    let wamid = reply["messages"][0]["id"]
        .as_str()
        .expect("wamid")
        .to_owned();

    let received = receiver.wait_for(3).await;
    let mut statuses = Vec::new();
    for (headers, body) in &received {
        assert!(
            signature_valid(DEFAULT_APP_SECRET, headers, body),
            "signature must verify"
        );
        assert!(
            !signature_valid("some-other-secret", headers, body),
            "wrong secret must not verify"
        );
        assert_eq!(
            headers.get("content-type").and_then(|v| v.to_str().ok()),
            Some("application/json")
        );
        let (field, value) = change(body);
        assert_eq!(field, "messages");
        let status = &value["statuses"][0];
        assert_eq!(status["id"], wamid.as_str());
        assert_eq!(status["recipient_id"], CUSTOMER);
        let ts = status["timestamp"].as_str().expect("timestamp is a string");
        assert!((ts.parse::<i64>().expect("digits") - now_unix()).abs() < 5);
        statuses.push(status.clone());
    }
    let order: Vec<&str> = statuses
        .iter()
        .map(|s| s["status"].as_str().expect("status"))
        .collect();
    assert_eq!(order, ["sent", "delivered", "read"]);
    assert_eq!(statuses[0]["pricing"]["category"], "marketing");
    assert_eq!(statuses[0]["pricing"]["billable"], true);
    assert!(statuses[0]["conversation"]["id"].is_string());

    assert!(
        sim.whatsapp()
            .wait_for_webhooks(Duration::from_secs(5))
            .await
    );
    let stats = sim.whatsapp().stats();
    assert_eq!(stats.statuses_posted, 3);
    assert_eq!(stats.webhook_failures, 0);
}

#[tokio::test]
async fn inbound_message_posts_a_signed_webhook_and_opens_the_window() {
    let (sim, client) = start(WhatsAppConfig {
        send_statuses: false,
        ..WhatsAppConfig::default()
    })
    .await;
    let receiver = Receiver::default();
    let url = receiver.start().await;
    sim.whatsapp().set_webhook_url(Some(&url)).expect("url");

    let (status, reply) = send_ok(&client, &sim, &text(CUSTOMER, "before")).await;
    assert_eq!((status, code(&reply)), (400, 131047));

    let (status, reply) = control(
        &client,
        &sim,
        "POST",
        "/_sim/whatsapp/inbound",
        Some(json!({"from": CUSTOMER, "text": "hi", "name": "Jane"})),
    )
    .await;
    assert_eq!(status, 200, "{reply}");
    let inbound_id = reply["wamid"].as_str().expect("wamid").to_owned();

    let received = receiver.wait_for(1).await;
    let (headers, body) = &received[0];
    assert!(signature_valid(DEFAULT_APP_SECRET, headers, body));
    let (field, value) = change(body);
    assert_eq!(field, "messages");
    assert_eq!(value["contacts"][0]["wa_id"], CUSTOMER);
    assert_eq!(value["contacts"][0]["profile"]["name"], "Jane");
    let message = &value["messages"][0];
    assert_eq!(message["from"], CUSTOMER);
    assert_eq!(message["id"], inbound_id.as_str());
    assert_eq!(message["type"], "text");
    assert_eq!(message["text"]["body"], "hi");
    assert!(
        message["timestamp"]
            .as_str()
            .expect("string")
            .parse::<i64>()
            .is_ok()
    );

    let (status, reply) = send_ok(&client, &sim, &text(CUSTOMER, "after")).await;
    assert_eq!(status, 200, "{reply}");

    // The in-process API does the same.
    let other = "16505551234";
    let wamid = sim
        .whatsapp()
        .deliver_inbound(other, "hello")
        .await
        .expect("delivered");
    assert!(wamid.starts_with("wamid."));
    assert!(sim.whatsapp().window_open(other));
    assert_eq!(receiver.wait_for(2).await.len(), 2);
    assert_eq!(sim.whatsapp().stats().inbound_posted, 2);
    // Statuses are off: nothing else arrives.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(receiver.all().len(), 2);
}

#[tokio::test]
async fn marketing_opt_out_posts_user_preferences_and_blocks_marketing() {
    let (sim, client) = start(WhatsAppConfig {
        send_statuses: false,
        ..WhatsAppConfig::default()
    })
    .await;
    let receiver = Receiver::default();
    let url = receiver.start().await;
    sim.whatsapp().set_webhook_url(Some(&url)).expect("url");

    let (status, reply) = control(
        &client,
        &sim,
        "POST",
        "/_sim/whatsapp/preferences",
        Some(json!({"wa_id": CUSTOMER, "value": "stop"})),
    )
    .await;
    assert_eq!(status, 200, "{reply}");
    let received = receiver.wait_for(1).await;
    let (headers, body) = &received[0];
    assert!(signature_valid(DEFAULT_APP_SECRET, headers, body));
    let (field, value) = change(body);
    assert_eq!(field, "user_preferences");
    let preference = &value["user_preferences"][0];
    assert_eq!(preference["wa_id"], CUSTOMER);
    assert_eq!(preference["category"], "marketing_messages");
    assert_eq!(preference["value"], "stop");
    assert_eq!(
        preference["detail"],
        "User requested to stop marketing messages"
    );
    assert!(preference["timestamp"].is_i64());

    let (status, reply) = send_ok(
        &client,
        &sim,
        &template(CUSTOMER, "winback_offer", "en_US", &["Jane"]),
    )
    .await;
    assert_eq!((status, code(&reply)), (400, 131050));
    let (status, _) = send_ok(
        &client,
        &sim,
        &template(CUSTOMER, "order_update", "en_US", &["Jane", "#1"]),
    )
    .await;
    assert_eq!(status, 200, "utility templates are not marketing");

    sim.whatsapp()
        .post_marketing_preference(CUSTOMER, MarketingPreference::Resume)
        .await
        .expect("resume posted");
    let received = receiver.wait_for(2).await;
    let (_, value) = change(&received[1].1);
    assert_eq!(value["user_preferences"][0]["value"], "resume");
    let (status, _) = send_ok(
        &client,
        &sim,
        &template(CUSTOMER, "winback_offer", "en_US", &["Jane"]),
    )
    .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn webhook_problems_are_reported_and_counted() {
    let (sim, client) = start(WhatsAppConfig::default()).await;

    // No URL: the window still opens, the caller learns the webhook was not posted.
    let (status, reply) = control(
        &client,
        &sim,
        "POST",
        "/_sim/whatsapp/inbound",
        Some(json!({"from": CUSTOMER, "text": "hi"})),
    )
    .await;
    assert_eq!(status, 409, "{reply}");
    assert_eq!(reply["webhook_posted"], false);
    assert!(sim.whatsapp().window_open(CUSTOMER));

    // The host answers 500: retried, then reported and counted.
    let receiver = Receiver::default();
    *receiver.fail_with.lock().expect("lock") = Some(StatusCode::INTERNAL_SERVER_ERROR);
    let url = receiver.start().await;
    sim.whatsapp().set_webhook_url(Some(&url)).expect("url");
    let result = sim.whatsapp().deliver_inbound(CUSTOMER, "hi").await;
    assert!(
        matches!(
            result,
            Err(ControlError::Webhook(WebhookError::Rejected {
                status: 500,
                ..
            }))
        ),
        "{result:?}"
    );
    let stats = sim.whatsapp().stats();
    assert_eq!(stats.webhook_failures, 1);
    assert!(stats.webhook_retries >= 1);
    assert_eq!(stats.inbound_posted, 0);

    // Bad control input is a JSON 400, not a crash.
    let (status, reply) = control(
        &client,
        &sim,
        "POST",
        "/_sim/whatsapp/window",
        Some(json!({"wa_id": "abc"})),
    )
    .await;
    assert_eq!(status, 400);
    assert!(reply["error"].is_string());
    let (status, _) = control(
        &client,
        &sim,
        "PUT",
        "/_sim/whatsapp/webhook",
        Some(json!({"url": "not a url"})),
    )
    .await;
    assert_eq!(status, 400);
    let (status, _) = control(
        &client,
        &sim,
        "POST",
        "/_sim/whatsapp/preferences",
        Some(json!({"wa_id": CUSTOMER, "value": "maybe"})),
    )
    .await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn injected_faults_answer_131000() {
    let (sim, client) = start(WhatsAppConfig::default()).await;
    let body = template(CUSTOMER, "winback_offer", "en_US", &["Jane"]);
    let (status, _) = control(
        &client,
        &sim,
        "PUT",
        "/_sim/faults",
        Some(json!({"error_rate": 1.0, "latency_ms": 0})),
    )
    .await;
    assert_eq!(status, 200);
    let (status, reply) = send_ok(&client, &sim, &body).await;
    assert_eq!((status, code(&reply)), (500, 131000));
    let (status, _) = control(
        &client,
        &sim,
        "PUT",
        "/_sim/faults",
        Some(json!({"error_rate": 2.0})),
    )
    .await;
    assert_eq!(status, 400);
    control(
        &client,
        &sim,
        "PUT",
        "/_sim/faults",
        Some(json!({"error_rate": 0.0})),
    )
    .await;
    let (status, _) = send_ok(&client, &sim, &body).await;
    assert_eq!(status, 200);
}

/// Sends `body` until the simulator answers 130429; returns that answer's
/// `Retry-After` header, if any.
async fn retry_after_of_rate_limit(
    client: &Client,
    sim: &SimulatorHandle,
    body: &Value,
) -> Option<String> {
    for _ in 0..20 {
        let response = client
            .post(messages_url(sim))
            .bearer_auth(DEFAULT_ACCESS_TOKEN)
            .json(body)
            .send()
            .await
            .expect("request");
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().expect("ascii header").to_owned());
        let reply = response.json::<Value>().await.expect("json body");
        match status {
            200 => assert_eq!(retry_after, None, "no Retry-After on success"),
            400 if code(&reply) == 130429 => return retry_after,
            other => panic!("unexpected {other}: {reply}"),
        }
    }
    panic!("no 130429 in 20 sends");
}

#[tokio::test]
async fn rate_limit_carries_the_configured_retry_after() {
    let (sim, client) = start(WhatsAppConfig {
        messages_per_second: 1,
        retry_after_secs: Some(7),
        ..WhatsAppConfig::default()
    })
    .await;
    let body = template(CUSTOMER, "winback_offer", "en_US", &["Jane"]);
    assert_eq!(
        retry_after_of_rate_limit(&client, &sim, &body)
            .await
            .as_deref(),
        Some("7")
    );
    let (status, throughput) =
        control(&client, &sim, "GET", "/_sim/whatsapp/throughput", None).await;
    assert_eq!(status, 200);
    assert_eq!(
        throughput,
        json!({"messages_per_second": 1, "retry_after_secs": 7})
    );

    // `null` removes the header and leaves the rate alone.
    let (status, throughput) = control(
        &client,
        &sim,
        "PUT",
        "/_sim/whatsapp/throughput",
        Some(json!({"retry_after_secs": null})),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        throughput,
        json!({"messages_per_second": 1, "retry_after_secs": null})
    );
    assert_eq!(retry_after_of_rate_limit(&client, &sim, &body).await, None);

    // Set again over HTTP; the Rust handle sees it.
    let (status, _) = control(
        &client,
        &sim,
        "PUT",
        "/_sim/whatsapp/throughput",
        Some(json!({"retry_after_secs": 2})),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(sim.whatsapp().retry_after_secs(), Some(2));
    assert_eq!(
        retry_after_of_rate_limit(&client, &sim, &body)
            .await
            .as_deref(),
        Some("2")
    );
    sim.whatsapp().set_retry_after_secs(Some(30));
    assert_eq!(
        retry_after_of_rate_limit(&client, &sim, &body)
            .await
            .as_deref(),
        Some("30")
    );

    // A misspelt field is refused rather than ignored.
    let (status, _) = control(
        &client,
        &sim,
        "PUT",
        "/_sim/whatsapp/throughput",
        Some(json!({"retry_after": 5})),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(sim.whatsapp().retry_after_secs(), Some(30));
}

#[tokio::test]
async fn pair_rate_refuses_a_second_message_to_one_user_with_131056() {
    const OTHER: &str = "4915187654321";
    let (sim, client) = start(WhatsAppConfig {
        pair_interval_ms: Some(6_000),
        ..WhatsAppConfig::default()
    })
    .await;
    let wa = sim.whatsapp();
    assert_eq!(wa.pair_interval_ms(), Some(6_000));
    wa.open_window(CUSTOMER).expect("window");

    let (status, reply) = send_ok(&client, &sim, &text(CUSTOMER, "first")).await;
    assert_eq!(status, 200, "{reply}");
    let (status, reply) = send_ok(
        &client,
        &sim,
        &template(CUSTOMER, "order_update", "en_US", &["Jane", "#1"]),
    )
    .await;
    assert_eq!((status, code(&reply)), (400, 131056));
    assert_eq!(
        reply["error"]["message"],
        "(#131056) (Business Account, Consumer Account) pair rate limit hit"
    );
    assert_eq!(reply["error"]["type"], "OAuthException");
    assert_eq!(
        reply["error"]["error_data"]["messaging_product"],
        "whatsapp"
    );
    assert!(reply["error"]["fbtrace_id"].is_string());

    // Another user is not affected.
    let (status, reply) = send_ok(
        &client,
        &sim,
        &template(OTHER, "winback_offer", "en_US", &["Max"]),
    )
    .await;
    assert_eq!(status, 200, "{reply}");

    // Still inside the interval three seconds on...
    sim.advance_clock(3);
    let (status, reply) = send_ok(&client, &sim, &text(CUSTOMER, "second")).await;
    assert_eq!((status, code(&reply)), (400, 131056));
    // ...and past it six seconds after the first message.
    sim.advance_clock(3);
    let (status, reply) = send_ok(&client, &sim, &text(CUSTOMER, "second")).await;
    assert_eq!(status, 200, "{reply}");

    assert_eq!(wa.messages_to(CUSTOMER).len(), 2);
    let stats = wa.stats();
    assert_eq!(stats.pair_rate_limited, 2);
    assert_eq!(stats.rejected.get(&131056), Some(&2));
    assert_eq!(stats.accepted, 3);
    let (_, stats) = control(&client, &sim, "GET", "/_sim/whatsapp/stats", None).await;
    assert_eq!(stats["pair_rate_limited"], 2);

    // Turned off at run time, back-to-back messages go through.
    wa.set_pair_interval_ms(None);
    let (status, _) = send_ok(&client, &sim, &text(CUSTOMER, "third")).await;
    assert_eq!(status, 200);
    // And on again over HTTP.
    let (status, limits) = control(
        &client,
        &sim,
        "PUT",
        "/_sim/whatsapp/limits",
        Some(json!({"pair_interval_ms": 60_000})),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(limits["pair_interval_ms"], 60_000);
    assert_eq!(limits["daily_unique_recipients"], Value::Null);
    let (status, reply) = send_ok(&client, &sim, &text(CUSTOMER, "fourth")).await;
    assert_eq!((status, code(&reply)), (400, 131056));
}

#[tokio::test]
async fn messaging_limit_refuses_new_recipients_beyond_it_with_131048() {
    const A: &str = "4915100000001";
    const B: &str = "4915100000002";
    const C: &str = "4915100000003";
    let (sim, client) = start(WhatsAppConfig::default()).await;
    let wa = sim.whatsapp();
    assert_eq!(wa.daily_unique_recipients(), None);
    let (status, limits) = control(
        &client,
        &sim,
        "PUT",
        "/_sim/whatsapp/limits",
        Some(json!({"daily_unique_recipients": 2})),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        limits,
        json!({"pair_interval_ms": null, "daily_unique_recipients": 2, "unique_recipients_24h": 0})
    );
    assert_eq!(wa.daily_unique_recipients(), Some(2));

    let winback = |to: &str| template(to, "winback_offer", "en_US", &["Jane"]);
    for to in [A, B] {
        let (status, reply) = send_ok(&client, &sim, &winback(to)).await;
        assert_eq!(status, 200, "{reply}");
    }
    // A third new user is beyond the limit.
    let (status, reply) = send_ok(&client, &sim, &winback(C)).await;
    assert_eq!((status, code(&reply)), (400, 131048));
    assert_eq!(reply["error"]["message"], "(#131048) Spam rate limit hit");
    assert_eq!(
        reply["error"]["error_data"]["messaging_product"],
        "whatsapp"
    );
    // A third template to a user already reached is fine.
    let (status, reply) = send_ok(
        &client,
        &sim,
        &template(A, "order_update", "en_US", &["Jane", "#2"]),
    )
    .await;
    assert_eq!(status, 200, "{reply}");

    // Once C writes in, replies and templates inside the window do not
    // count.
    wa.open_window(C).expect("window");
    let (status, reply) = send_ok(&client, &sim, &text(C, "thanks for writing")).await;
    assert_eq!(status, 200, "{reply}");
    let (status, reply) = send_ok(&client, &sim, &winback(C)).await;
    assert_eq!(status, 200, "{reply}");

    let stats = wa.stats();
    assert_eq!(stats.messaging_limited, 1);
    assert_eq!(stats.rejected.get(&131048), Some(&1));
    assert_eq!(stats.unique_recipients_24h, 2);
    assert_eq!(stats.accepted, 5);
    let (_, stats) = control(&client, &sim, "GET", "/_sim/whatsapp/stats", None).await;
    assert_eq!(stats["messaging_limited"], 1);
    assert_eq!(stats["unique_recipients_24h"], 2);

    // A day later (C's window closed too) A and B have dropped out of the
    // moving 24 hours.
    sim.advance_clock(25 * 3600);
    assert_eq!(wa.unique_recipients_24h(), 0);
    let (status, reply) = send_ok(&client, &sim, &winback(C)).await;
    assert_eq!(status, 200, "{reply}");
    let (_, limits) = control(&client, &sim, "GET", "/_sim/whatsapp/limits", None).await;
    assert_eq!(limits["unique_recipients_24h"], 1);

    // Lifted with null.
    let (status, _) = control(
        &client,
        &sim,
        "PUT",
        "/_sim/whatsapp/limits",
        Some(json!({"daily_unique_recipients": null})),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(wa.daily_unique_recipients(), None);
    for to in [A, B, "4915100000004"] {
        let (status, reply) = send_ok(&client, &sim, &winback(to)).await;
        assert_eq!(status, 200, "{reply}");
    }
    assert_eq!(wa.unique_recipients_24h(), 4);

    // Reset forgets who was reached but keeps the setting.
    wa.set_daily_unique_recipients(Some(1));
    wa.reset();
    assert_eq!(wa.unique_recipients_24h(), 0);
    assert_eq!(wa.daily_unique_recipients(), Some(1));
    let (status, _) = send_ok(&client, &sim, &winback(A)).await;
    assert_eq!(status, 200);
    let (status, reply) = send_ok(&client, &sim, &winback(B)).await;
    assert_eq!((status, code(&reply)), (400, 131048));
}
