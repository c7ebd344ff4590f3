//! The simulated NHN Cloud API over real HTTP on loopback.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use reqwest::Client;
use serde_json::{Value, json};

use super::*;
use crate::{Simulator, SimulatorConfig, SimulatorHandle};

async fn start() -> (SimulatorHandle, Client) {
    let sim = Simulator::start(
        "127.0.0.1:0".parse().expect("addr"),
        SimulatorConfig::default(),
    )
    .await
    .expect("simulator starts");
    let client = Client::builder().no_proxy().build().expect("client");
    (sim, client)
}

fn url(sim: &SimulatorHandle, path: &str) -> String {
    format!(
        "{}{}",
        sim.base_url(),
        path.replace("{appkey}", DEFAULT_APP_KEY)
    )
}

const ALIMTALK: &str = "/alimtalk/v2.3/appkeys/{appkey}/messages";
const AUTH: &str = "/alimtalk/v2.3/appkeys/{appkey}/auth/messages";
const BRAND: &str = "/brand-message/v1.0/appkeys/{appkey}/freestyle-messages";

async fn post_json(
    client: &Client,
    url: &str,
    secret: Option<&str>,
    idempotency_key: Option<&str>,
    body: &Value,
) -> (u16, Value, HeaderMap) {
    let mut request = client.post(url).json(body);
    if let Some(secret) = secret {
        request = request.header("X-Secret-Key", secret);
    }
    if let Some(key) = idempotency_key {
        request = request.header("X-NC-API-IDEMPOTENCY-KEY", key);
    }
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.json::<Value>().await.expect("json body");
    (status, body, headers)
}

async fn send(client: &Client, sim: &SimulatorHandle, path: &str, body: &Value) -> (u16, Value) {
    let (status, body, _) = post_json(
        client,
        &url(sim, path),
        Some(DEFAULT_SECRET_KEY),
        None,
        body,
    )
    .await;
    (status, body)
}

fn order_shipped(recipients: Value) -> Value {
    json!({"senderKey": DEFAULT_SENDER_KEY, "templateCode": "ORDER_SHIPPED", "recipientList": recipients})
}

fn shipped_to(number: &str) -> Value {
    json!({"recipientNo": number, "templateParameter": {"name": "민지", "orderNo": "A-1"}})
}

fn header_code(body: &Value) -> i64 {
    body["header"]["resultCode"].as_i64().expect("resultCode")
}

fn result_codes(body: &Value) -> Vec<i64> {
    body["message"]["sendResults"]
        .as_array()
        .expect("sendResults")
        .iter()
        .map(|r| r["resultCode"].as_i64().expect("code"))
        .collect()
}

/// Moves the simulated clock to the next `hour:minute` KST.
fn set_kst(sim: &SimulatorHandle, hour: u32, minute: u32) {
    sim.clock().set_offset(0);
    let offset = kst::offset_to_next(sim.clock().now_unix_ms(), hour, minute);
    sim.clock().set_offset(offset);
}

/// A webhook the test receiver got: the signature header and the body.
type Hook = (Option<String>, Value);

#[derive(Clone, Default)]
struct Received {
    hooks: Arc<Mutex<Vec<Hook>>>,
}

async fn receive(State(received): State<Received>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let signature = headers
        .get("x-toast-webhook-signature")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    received
        .hooks
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push((signature, value));
    StatusCode::OK
}

async fn webhook_receiver() -> (String, Received) {
    let received = Received::default();
    let app = axum::Router::new()
        .route("/hook", post(receive))
        .with_state(received.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}/hook"), received)
}

#[tokio::test]
async fn alimtalk_is_accepted_recorded_and_reported_by_webhook() {
    let (sim, client) = start().await;
    let kakao = sim.kakaotalk();
    let (hook_url, received) = webhook_receiver().await;
    kakao.set_webhook_url(Some(&hook_url)).expect("url");
    kakao
        .set_delivery_failure("+821012340002", codes::CANNOT_SEND)
        .expect("number");

    let body = json!({
        "senderKey": DEFAULT_SENDER_KEY,
        "templateCode": "ORDER_SHIPPED",
        "senderGroupingKey": "group-1",
        "recipientList": [
            {"recipientNo": "01012340001", "templateParameter": {"name": "민지", "orderNo": "A-1"},
             "resendParameter": {"isResend": true, "resendType": "SMS", "resendSendNo": "0212345678"},
             "recipientGroupingKey": "k1"},
            {"recipientNo": "01012340002", "templateParameter": {"name": "Jisoo", "orderNo": "A-2"}}
        ]
    });
    let (status, reply, _) = post_json(
        &client,
        &url(&sim, ALIMTALK),
        Some(DEFAULT_SECRET_KEY),
        Some("idem-1"),
        &body,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        reply["header"],
        json!({"resultCode": 0, "resultMessage": "SUCCESS", "isSuccessful": true})
    );
    assert_eq!(result_codes(&reply), vec![0, 0]);
    let request_id = reply["message"]["requestId"]
        .as_str()
        .expect("id")
        .to_owned();
    assert_eq!(request_id.len(), 25);
    assert_eq!(reply["message"]["senderGroupingKey"], "group-1");
    assert_eq!(reply["message"]["sendResults"][0]["recipientSeq"], 1);
    assert_eq!(
        reply["message"]["sendResults"][0]["recipientGroupingKey"],
        "k1"
    );

    let messages = kakao.messages();
    assert_eq!(messages.len(), 2);
    assert_eq!(
        messages[0].content,
        "민지님, 주문하신 상품이 발송되었습니다.\n주문번호: A-1"
    );
    assert_eq!(messages[0].kind, MessageKind::AlimTalk);
    assert_eq!(messages[0].resend_send_no.as_deref(), Some("0212345678"));
    assert_eq!(messages[0].idempotency_key.as_deref(), Some("idem-1"));
    assert_eq!(messages[1].platform_message_id(), format!("{request_id}:2"));
    assert_eq!(kakao.requests().len(), 1);
    assert_eq!(kakao.messages_to("+821012340001").expect("number").len(), 1);

    assert!(kakao.wait_for_webhooks(Duration::from_secs(10)).await);
    let hooks = received
        .hooks
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    assert_eq!(hooks.len(), 1, "one webhook per request");
    let (signature, payload) = &hooks[0];
    assert_eq!(signature.as_deref(), Some(DEFAULT_WEBHOOK_SIGNATURE));
    assert_eq!(payload["event"], "MESSAGE_RESULT_UPDATE");
    assert_eq!(payload["appKey"], DEFAULT_APP_KEY);
    let list = payload["hooks"].as_array().expect("hooks");
    assert_eq!(list.len(), 2);
    assert_eq!(list[0]["requestId"], request_id.as_str());
    assert_eq!(list[0]["recipientSeq"], 1);
    assert_eq!(list[0]["resultCode"], "1000");
    assert_eq!(list[0]["kakaoMessageType"], "ALIMTALK_NORMAL");
    assert_eq!(list[0]["recipientGroupingKey"], "k1");
    assert_eq!(list[0]["senderGroupingKey"], "group-1");
    assert!(list[0]["hookId"].as_str().is_some_and(|id| !id.is_empty()));
    assert_eq!(list[1]["resultCode"], "3018");
    assert_eq!(kakao.stats().results_posted, 2);
}

#[tokio::test]
async fn credentials_are_checked_first() {
    let (sim, client) = start().await;
    let body = order_shipped(json!([shipped_to("01012340001")]));
    let wrong_app = url(&sim, ALIMTALK).replace(DEFAULT_APP_KEY, "other-app");
    let (status, reply, _) =
        post_json(&client, &wrong_app, Some(DEFAULT_SECRET_KEY), None, &body).await;
    assert_eq!((status, header_code(&reply)), (200, -1000));
    assert_eq!(reply["header"]["isSuccessful"], false);
    for secret in [None, Some("wrong")] {
        let (status, reply, _) =
            post_json(&client, &url(&sim, ALIMTALK), secret, None, &body).await;
        assert_eq!((status, header_code(&reply)), (200, -1001));
        assert_eq!(reply["header"]["resultMessage"], "Invalid secretKey.");
    }
    assert!(sim.kakaotalk().messages().is_empty());
    assert_eq!(sim.kakaotalk().rejected_count(-1001), 2);
}

#[tokio::test]
async fn idempotency_keys_are_remembered_for_ten_minutes() {
    let (sim, client) = start().await;
    let body = order_shipped(json!([shipped_to("01012340001")]));
    let target = url(&sim, ALIMTALK);
    let first = post_json(&client, &target, Some(DEFAULT_SECRET_KEY), Some("k"), &body).await;
    assert_eq!(header_code(&first.1), 0);
    let again = post_json(&client, &target, Some(DEFAULT_SECRET_KEY), Some("k"), &body).await;
    assert_eq!((again.0, header_code(&again.1)), (200, -1005));
    assert_eq!(again.1["header"]["isSuccessful"], false);
    assert_eq!(sim.kakaotalk().messages().len(), 1, "nothing new was sent");
    assert_eq!(sim.kakaotalk().stats().duplicates, 1);
    sim.advance_clock(IDEMPOTENCY_WINDOW_SECS + 1);
    let later = post_json(&client, &target, Some(DEFAULT_SECRET_KEY), Some("k"), &body).await;
    assert_eq!(header_code(&later.1), 0, "forgotten after 10 minutes");
    assert_eq!(sim.kakaotalk().messages().len(), 2);

    // A key whose request was refused (nothing accepted) is not remembered.
    let bad = order_shipped(json!([{"recipientNo": "01012340001"}]));
    let refused = post_json(&client, &target, Some(DEFAULT_SECRET_KEY), Some("r"), &bad).await;
    assert_eq!(header_code(&refused.1), -1031);
    let retried = post_json(&client, &target, Some(DEFAULT_SECRET_KEY), Some("r"), &body).await;
    assert_eq!(header_code(&retried.1), 0);
}

#[tokio::test]
async fn templates_are_checked() {
    let (sim, client) = start().await;
    let missing = json!({"senderKey": DEFAULT_SENDER_KEY, "templateCode": "NOPE", "recipientList": [shipped_to("01012340001")]});
    assert_eq!(
        header_code(&send(&client, &sim, ALIMTALK, &missing).await.1),
        -3003
    );
    let pending = json!({"senderKey": DEFAULT_SENDER_KEY, "templateCode": "PROMO_REVIEW", "recipientList": [shipped_to("01012340001")]});
    let (_, reply) = send(&client, &sim, ALIMTALK, &pending).await;
    assert_eq!(header_code(&reply), -3005);
    assert!(
        reply["header"]["resultMessage"]
            .as_str()
            .unwrap_or_default()
            .contains("TSC02")
    );

    // One recipient lacks #{orderNo}, another has a non-string value, a
    // third is not a mobile number, a fourth is fine.
    let body = order_shipped(json!([
        {"recipientNo": "01012340001", "templateParameter": {"name": "민지"}},
        {"recipientNo": "01012340002", "templateParameter": {"name": "민지", "orderNo": 7}},
        {"recipientNo": "0212345678", "templateParameter": {"name": "민지", "orderNo": "A"}},
        {"recipientNo": "+821012340004", "templateParameter": {"name": "민지", "orderNo": "A"}},
        shipped_to("01012340005")
    ]));
    let (status, reply) = send(&client, &sim, ALIMTALK, &body).await;
    assert_eq!((status, header_code(&reply)), (200, 0));
    assert_eq!(result_codes(&reply), vec![-3010, -3004, 3008, -5000, 0]);
    assert_eq!(
        reply["message"]["sendResults"][0]["resultMessage"],
        "The contents do not match the template. (no value for #{orderNo})"
    );
    assert_eq!(sim.kakaotalk().messages().len(), 1);

    // Every recipient failing makes the header -1031, results included.
    let body = order_shipped(json!([{"recipientNo": "01012340001"}]));
    let (_, reply) = send(&client, &sim, ALIMTALK, &body).await;
    assert_eq!(header_code(&reply), -1031);
    assert_eq!(reply["header"]["isSuccessful"], false);
    assert_eq!(result_codes(&reply), vec![-3010]);

    let long = "가".repeat(1_001);
    sim.kakaotalk()
        .add_template(KakaoTemplate::approved("LONG", "#{text}"))
        .expect("template");
    let body = json!({"senderKey": DEFAULT_SENDER_KEY, "templateCode": "LONG",
        "recipientList": [{"recipientNo": "01012340001", "templateParameter": {"text": long}}]});
    assert_eq!(
        result_codes(&send(&client, &sim, ALIMTALK, &body).await.1),
        vec![3014]
    );
}

#[tokio::test]
async fn request_fields_are_checked() {
    let (sim, client) = start().await;
    let cases = [
        (
            json!({"templateCode": "ORDER_SHIPPED", "recipientList": [shipped_to("01012340001")]}),
            -2001,
        ),
        (
            json!({"senderKey": "other", "templateCode": "ORDER_SHIPPED", "recipientList": [shipped_to("01012340001")]}),
            -2017,
        ),
        (order_shipped(json!([])), -2001),
        (
            json!({"senderKey": DEFAULT_SENDER_KEY, "templateCode": "A_TEMPLATE_CODE_TOO_LONG", "recipientList": [shipped_to("01012340001")]}),
            -2000,
        ),
        (json!([1, 2]), -3002),
    ];
    for (body, expected) in cases {
        let (status, reply) = send(&client, &sim, ALIMTALK, &body).await;
        assert_eq!((status, header_code(&reply)), (200, expected), "{body}");
    }
    let many: Vec<Value> = (0..1_001)
        .map(|i| shipped_to(&format!("010{i:08}")))
        .collect();
    let (_, reply) = send(&client, &sim, ALIMTALK, &order_shipped(json!(many))).await;
    assert_eq!(header_code(&reply), -2004);
    assert_eq!(
        reply["header"]["resultMessage"],
        "The 'recipientList' must be between 1 and 1000."
    );
    // Not JSON.
    let response = client
        .post(url(&sim, ALIMTALK))
        .header("X-Secret-Key", DEFAULT_SECRET_KEY)
        .header("content-type", "text/plain")
        .body("{}")
        .send()
        .await
        .expect("request");
    let reply: Value = response.json().await.expect("json");
    assert_eq!(header_code(&reply), -9996);
}

#[tokio::test]
async fn authentication_messages_need_an_authentication_word() {
    let (sim, client) = start().await;
    let body = json!({"senderKey": DEFAULT_SENDER_KEY, "templateCode": "AUTH_CODE",
        "recipientList": [{"recipientNo": "01012340001", "templateParameter": {"code": "123456"}}]});
    let (_, reply) = send(&client, &sim, AUTH, &body).await;
    assert_eq!(result_codes(&reply), vec![0]);
    assert_eq!(
        sim.kakaotalk().messages()[0].kind,
        MessageKind::AlimTalkAuth
    );
    let body = order_shipped(json!([shipped_to("01012340001")]));
    let (_, reply) = send(&client, &sim, AUTH, &body).await;
    assert_eq!(result_codes(&reply), vec![-8006]);
}

#[tokio::test]
async fn brand_messages_obey_the_night_ban_on_the_simulated_clock() {
    let (sim, client) = start().await;
    let body = json!({"senderKey": DEFAULT_SENDER_KEY, "chatBubbleType": "TEXT", "content": "(광고) 20% 할인",
        "unsubscribeNo": "080-123-4567",
        "recipientList": [{"recipientNo": "01012340001", "targeting": "I"}, {"recipientNo": "01012340002", "targeting": "I"}]});
    set_kst(&sim, 23, 0);
    let (_, reply) = send(&client, &sim, BRAND, &body).await;
    assert_eq!(header_code(&reply), -1031);
    assert_eq!(result_codes(&reply), vec![3022, 3022]);
    // AlimTalk is informational: not restricted at night.
    let (_, reply) = send(
        &client,
        &sim,
        ALIMTALK,
        &order_shipped(json!([shipped_to("01012340001")])),
    )
    .await;
    assert_eq!(result_codes(&reply), vec![0]);

    set_kst(&sim, 20, 49);
    let (_, reply) = send(&client, &sim, BRAND, &body).await;
    assert_eq!(result_codes(&reply), vec![0, 0]);
    let brand: Vec<KakaoMessage> = sim
        .kakaotalk()
        .messages()
        .into_iter()
        .filter(|m| m.kind == MessageKind::BrandMessage)
        .collect();
    assert_eq!(brand.len(), 2);
    assert_eq!(brand[0].content, "(광고) 20% 할인");
    assert_eq!(brand[0].targeting.as_deref(), Some("I"));
    assert_eq!(brand[0].unsubscribe_no.as_deref(), Some("080-123-4567"));
    set_kst(&sim, 20, 50);
    assert_eq!(
        result_codes(&send(&client, &sim, BRAND, &body).await.1),
        vec![3022, 3022]
    );
}

#[tokio::test]
async fn brand_message_fields_are_checked() {
    let (sim, client) = start().await;
    set_kst(&sim, 12, 0);
    let base = |patch: Value| {
        let mut body = json!({"senderKey": DEFAULT_SENDER_KEY, "chatBubbleType": "TEXT", "content": "hi",
            "recipientList": [{"recipientNo": "01012340001", "targeting": "I"}]});
        if let (Some(object), Some(patch)) = (body.as_object_mut(), patch.as_object()) {
            object.extend(patch.clone());
        }
        body
    };
    let cases = [
        (base(json!({"chatBubbleType": "IMAGE"})), -4000),
        (base(json!({"content": " "})), -2001),
        (base(json!({"content": "x".repeat(1_301)})), -2000),
        (base(json!({"unsubscribeNo": "02-123"})), -3340),
        (
            base(json!({"recipientList": [{"recipientNo": "01012340001", "targeting": "M"}]})),
            -4029,
        ),
        (
            base(json!({"recipientList": [{"recipientNo": "01012340001"}]})),
            -3298,
        ),
    ];
    for (body, expected) in cases {
        let (_, reply) = send(&client, &sim, BRAND, &body).await;
        assert_eq!(header_code(&reply), expected, "{body}");
    }
    let (_, reply) = send(
        &client,
        &sim,
        BRAND,
        &base(json!({"content": "가".repeat(1_300)})),
    )
    .await;
    assert_eq!(result_codes(&reply), vec![0]);
}

#[tokio::test]
async fn configured_recipients_rate_limits_and_faults() {
    let (sim, client) = start().await;
    let kakao = sim.kakaotalk();
    kakao.set_not_kakao_user("+821012340001").expect("number");
    kakao.set_blocked("01012340002").expect("number");
    kakao
        .set_recipient_result("010-1234-0003", codes::UNCONFIRMED)
        .expect("number");
    let body = order_shipped(json!([
        shipped_to("01012340001"),
        shipped_to("01012340002"),
        shipped_to("01012340003"),
        shipped_to("01012340004")
    ]));
    let (_, reply) = send(&client, &sim, ALIMTALK, &body).await;
    assert_eq!(result_codes(&reply), vec![3019, 3020, 3005, 0]);
    assert_eq!(
        reply["message"]["sendResults"][0]["resultMessage"],
        "Unable to send message. Not a KakaoTalk user."
    );
    assert!(kakao.clear_recipient_result("01012340001").expect("number"));
    assert!(kakao.set_recipient_result("01012340001", 0).is_err());
    assert!(kakao.set_recipient_result("+4915112345678", 3019).is_err());

    kakao.fail_next_requests(2);
    let one = order_shipped(json!([shipped_to("01012340004")]));
    for _ in 0..2 {
        let (status, reply) = send(&client, &sim, ALIMTALK, &one).await;
        assert_eq!((status, header_code(&reply)), (500, -9999));
    }
    assert_eq!(send(&client, &sim, ALIMTALK, &one).await.0, 200);

    kakao.set_requests_per_second(1);
    let (status, _) = send(&client, &sim, ALIMTALK, &one).await;
    assert_eq!(status, 200);
    let (status, reply, headers) = post_json(
        &client,
        &url(&sim, ALIMTALK),
        Some(DEFAULT_SECRET_KEY),
        None,
        &one,
    )
    .await;
    assert_eq!((status, header_code(&reply)), (429, -9997));
    assert_eq!(
        headers.get("retry-after").map(|v| v.as_bytes()),
        Some(&b"1"[..])
    );
    assert_eq!(kakao.stats().rate_limited, 1);
    kakao.set_requests_per_second(0);

    let (_, reply, _) = post_json(
        &client,
        &url(&sim, "/friendtalk/v2.4/appkeys/{appkey}/messages"),
        Some(DEFAULT_SECRET_KEY),
        None,
        &json!({}),
    )
    .await;
    assert_eq!(header_code(&reply), -9992);
}

#[tokio::test]
async fn control_routes_over_http() {
    let (sim, client) = start().await;
    let base = format!("{}/_sim/kakaotalk", sim.base_url());
    let reply: Value = client
        .post(format!("{base}/recipients"))
        .json(&json!({"recipient_no": "+821012340009", "result_code": 3019}))
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("json");
    assert_eq!(
        reply,
        json!({"recipient_no": "01012340009", "result_code": 3019})
    );
    let response = client
        .post(format!("{base}/recipients"))
        .json(&json!({"recipient_no": "12", "result_code": 3019}))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 400);

    let (_, reply) = send(
        &client,
        &sim,
        ALIMTALK,
        &order_shipped(json!([
            shipped_to("01012340009"),
            shipped_to("01012340008")
        ])),
    )
    .await;
    assert_eq!(result_codes(&reply), vec![3019, 0]);

    let messages: Vec<KakaoMessage> = client
        .get(format!("{base}/messages?recipient_no=01012340008"))
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("json");
    assert_eq!(messages.len(), 1);
    let stats: KakaoStats = client
        .get(format!("{base}/stats"))
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("json");
    assert_eq!((stats.accepted, stats.requests), (1, 1));
    assert_eq!(stats.rejected.get(&3019), Some(&1));

    let response = client
        .post(format!("{base}/templates"))
        .json(&json!({"code": "NEW_ONE", "content": "#{a}"}))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 200);
    assert!(
        sim.kakaotalk()
            .templates()
            .iter()
            .any(|t| t.code == "NEW_ONE")
    );
    let response = client
        .put(format!("{base}/webhook"))
        .json(&json!({"url": "not a url"}))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 400);
    let response = client
        .post(format!("{base}/template-status"))
        .json(&json!({"template_code": "NEW_ONE", "status": "TSC03"}))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 409, "no webhook URL");

    client
        .post(format!("{base}/reset"))
        .send()
        .await
        .expect("request");
    assert!(sim.kakaotalk().messages().is_empty());
    let (_, reply) = send(
        &client,
        &sim,
        ALIMTALK,
        &order_shipped(json!([shipped_to("01012340009")])),
    )
    .await;
    assert_eq!(
        result_codes(&reply),
        vec![0],
        "per-number results were reset"
    );
}

#[test]
fn numbers_normalise() {
    assert_eq!(
        normalize_number("+821012345678").as_deref(),
        Ok("01012345678")
    );
    assert_eq!(
        normalize_number("821012345678").as_deref(),
        Ok("01012345678")
    );
    assert_eq!(
        normalize_number("010-1234-5678").as_deref(),
        Ok("01012345678")
    );
    assert_eq!(
        normalize_number("+82 010 1234 5678").as_deref(),
        Ok("01012345678")
    );
    assert!(normalize_number("0212345678").is_err());
    assert!(normalize_number("+4915112345678").is_err());
    assert!(is_korean_mobile("0161234567"));
    assert!(!is_korean_mobile("0101234567"));
}

#[tokio::test]
async fn reset_after_accept_keeps_the_idempotency_key_and_counts_recipients_once() {
    let (sim, client) = start().await;
    let kakao = sim.kakaotalk();
    sim.set_faults(crate::FaultConfig {
        reset_after_accept_rate: 1.0,
        ..crate::FaultConfig::default()
    })
    .expect("faults");
    // One AlimTalk request to two numbers, one of them listed twice.
    let body = order_shipped(json!([
        shipped_to("01012340001"),
        shipped_to("01012340002"),
        shipped_to("01012340001"),
    ]));
    let target = url(&sim, ALIMTALK);
    let lost = client
        .post(&target)
        .header("X-Secret-Key", DEFAULT_SECRET_KEY)
        .header("X-NC-API-IDEMPOTENCY-KEY", "idem-reset")
        .json(&body)
        .send()
        .await;
    let error = lost.expect_err("no response after acceptance");
    assert!(error.status().is_none() && error.is_request(), "{error}");
    assert_eq!(kakao.messages().len(), 3, "every recipient was accepted");
    assert_eq!(kakao.stats().reset_after_accept, 1);

    // The client's retry is refused as a replay (answered: not accepted).
    let again = post_json(
        &client,
        &target,
        Some(DEFAULT_SECRET_KEY),
        Some("idem-reset"),
        &body,
    )
    .await;
    assert_eq!((again.0, header_code(&again.1)), (200, -1005));
    assert_eq!(kakao.messages().len(), 3);
    let counts = kakao.recipient_counts();
    assert_eq!(
        counts,
        BTreeMap::from([("01012340001".to_owned(), 1), ("01012340002".to_owned(), 1)])
    );
    let over_http: Value = client
        .get(format!("{}/_sim/kakaotalk/recipients", sim.base_url()))
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    assert_eq!(over_http, json!({"01012340001": 1, "01012340002": 1}));

    // A request with no recipient accepted (-1031) is answered, not reset.
    let refused = send(
        &client,
        &sim,
        ALIMTALK,
        &order_shipped(json!([{"recipientNo": "01012340003"}])),
    )
    .await;
    assert_eq!((refused.0, header_code(&refused.1)), (200, -1031));

    sim.set_faults(crate::FaultConfig::default())
        .expect("faults");
    let second = send(
        &client,
        &sim,
        ALIMTALK,
        &order_shipped(json!([shipped_to("01012340002")])),
    )
    .await;
    assert_eq!(header_code(&second.1), 0);
    assert_eq!(kakao.recipient_counts()["01012340002"], 2);
    assert_eq!(sim.duplicates()["kakaotalk"], 1);
    kakao.reset();
    assert_eq!(kakao.stats().reset_after_accept, 0);
    assert!(kakao.recipient_counts().is_empty());
}
