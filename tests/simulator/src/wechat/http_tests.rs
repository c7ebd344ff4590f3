//! The simulated WeChat API exercised over real HTTP on loopback, and its
//! pushes received, verified and decrypted by a small server.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::routing::any;
use reqwest::Client;
use serde_json::{Value, json};

use super::*;
use crate::{FaultConfig, Simulator, SimulatorConfig, SimulatorHandle};

const ALICE: &str = "oDF3iY9ffA-hqb2vVvbr7qxf6A0Q";
const BOB: &str = "oDF3iY9ffA-hqb2vVvbr7qxf6B1R";

async fn start(wechat: WeChatConfig) -> (SimulatorHandle, Client) {
    let sim = Simulator::start(
        "127.0.0.1:0".parse().expect("addr"),
        SimulatorConfig {
            wechat,
            ..SimulatorConfig::default()
        },
    )
    .await
    .expect("simulator starts");
    (sim, Client::builder().no_proxy().build().expect("client"))
}

async fn post(client: &Client, url: &str, body: &Value) -> Value {
    client
        .post(url)
        .json(body)
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("json")
}

async fn token(client: &Client, sim: &SimulatorHandle, force: bool) -> Value {
    post(
        client,
        &format!("{}/cgi-bin/stable_token", sim.base_url()),
        &json!({"grant_type": "client_credential", "appid": DEFAULT_APP_ID, "secret": DEFAULT_APP_SECRET, "force_refresh": force}),
    )
    .await
}

async fn access_token(client: &Client, sim: &SimulatorHandle) -> String {
    token(client, sim, false).await["access_token"]
        .as_str()
        .expect("token")
        .to_owned()
}

async fn text(
    client: &Client,
    sim: &SimulatorHandle,
    token: &str,
    to: &str,
    content: &str,
) -> Value {
    post(
        client,
        &format!(
            "{}/cgi-bin/message/custom/send?access_token={token}",
            sim.base_url()
        ),
        &json!({"touser": to, "msgtype": "text", "text": {"content": content}}),
    )
    .await
}

async fn template(client: &Client, sim: &SimulatorHandle, token: &str, body: &Value) -> Value {
    post(
        client,
        &format!(
            "{}/cgi-bin/message/template/send?access_token={token}",
            sim.base_url()
        ),
        body,
    )
    .await
}

fn order(to: &str) -> Value {
    json!({
        "touser": to,
        "template_id": ORDER_TEMPLATE_ID,
        "url": "https://example.com/order/1234",
        "data": {"keyword1": {"value": "#1234"}, "keyword2": {"value": "39.80"}, "keyword3": {"value": "2024-09-22"}}
    })
}

fn errcode(reply: &Value) -> i64 {
    reply["errcode"].as_i64().expect("errcode")
}

#[tokio::test]
async fn wechat_stable_token_checks_credentials_and_counts_requests() {
    let (sim, client) = start(WeChatConfig::default()).await;
    let url = format!("{}/cgi-bin/stable_token", sim.base_url());
    let bad_appid = post(
        &client,
        &url,
        &json!({"grant_type": "client_credential", "appid": "wx0", "secret": DEFAULT_APP_SECRET}),
    )
    .await;
    assert_eq!(errcode(&bad_appid), 40013);
    assert!(
        bad_appid["errmsg"]
            .as_str()
            .expect("msg")
            .starts_with("invalid appid rid: ")
    );
    let bad_secret = post(
        &client,
        &url,
        &json!({"grant_type": "client_credential", "appid": DEFAULT_APP_ID, "secret": "x"}),
    )
    .await;
    assert_eq!(errcode(&bad_secret), 40125);
    let bad_grant = post(
        &client,
        &url,
        &json!({"grant_type": "password", "appid": DEFAULT_APP_ID, "secret": DEFAULT_APP_SECRET}),
    )
    .await;
    assert_eq!(errcode(&bad_grant), 40002);
    let garbage = client
        .post(&url)
        .body("nope")
        .send()
        .await
        .expect("request");
    assert_eq!(garbage.status(), 200, "WeChat answers errors with HTTP 200");
    assert_eq!(errcode(&garbage.json().await.expect("json")), 47001);

    let first = token(&client, &sim, false).await;
    assert_eq!(first["expires_in"], 7200);
    let again = token(&client, &sim, false).await;
    assert_eq!(
        again["access_token"], first["access_token"],
        "normal mode returns the current token"
    );
    let wechat = sim.wechat();
    assert_eq!(wechat.token_requests(), 6);
    assert_eq!(wechat.stats().tokens_issued, 1);

    // Forcing a refresh invalidates the old token.
    let old = first["access_token"].as_str().expect("token").to_owned();
    let forced = token(&client, &sim, true).await;
    let new = forced["access_token"].as_str().expect("token").to_owned();
    assert_ne!(new, old);
    wechat.open_window(ALICE).expect("window");
    assert_eq!(
        errcode(&text(&client, &sim, &old, ALICE, "hi").await),
        40001
    );
    assert_eq!(errcode(&text(&client, &sim, &new, ALICE, "hi").await), 0);
    assert_eq!(wechat.stats().forced_token_refreshes, 1);

    // Five minutes before expiry the normal mode hands out a successor;
    // the old token works until it expires.
    sim.advance_clock(TOKEN_LIFETIME_SECS - 200);
    let successor = access_token(&client, &sim).await;
    assert_ne!(successor, new);
    wechat.open_window(ALICE).expect("window");
    assert_eq!(
        errcode(&text(&client, &sim, &new, ALICE, "still valid").await),
        0
    );
    sim.advance_clock(300);
    assert_eq!(
        errcode(&text(&client, &sim, &new, ALICE, "expired").await),
        42001
    );
    assert_eq!(
        errcode(&text(&client, &sim, &successor, ALICE, "ok").await),
        0
    );

    let missing = post(
        &client,
        &format!("{}/cgi-bin/message/custom/send", sim.base_url()),
        &json!({}),
    )
    .await;
    assert_eq!(errcode(&missing), 41001);
    wechat.revoke_tokens();
    assert_eq!(
        errcode(&text(&client, &sim, &successor, ALICE, "revoked").await),
        40001
    );
}

#[tokio::test]
async fn wechat_customer_service_messages_need_a_window_and_stop_at_five() {
    let (sim, client) = start(WeChatConfig::default()).await;
    let wechat = sim.wechat();
    let token = access_token(&client, &sim).await;
    assert_eq!(
        errcode(&text(&client, &sim, &token, ALICE, "no window").await),
        45015
    );
    wechat.open_window(ALICE).expect("window");
    for i in 0..5 {
        assert_eq!(
            errcode(&text(&client, &sim, &token, ALICE, &format!("#{i}")).await),
            0,
            "message {i}"
        );
    }
    let sixth = text(&client, &sim, &token, ALICE, "#5").await;
    assert_eq!(errcode(&sixth), 45047);
    assert!(
        sixth["errmsg"]
            .as_str()
            .expect("msg")
            .starts_with("out of response count limit")
    );
    assert_eq!(wechat.messages_to(ALICE).len(), 5);
    assert_eq!(wechat.window(ALICE).expect("window").sent, 5);

    // A new user message opens a fresh allowance; 48 hours later it is gone.
    wechat.open_window(ALICE).expect("window");
    assert_eq!(
        errcode(&text(&client, &sim, &token, ALICE, "fresh").await),
        0
    );
    sim.advance_clock(WINDOW_SECS);
    let token = access_token(&client, &sim).await;
    assert_eq!(
        errcode(&text(&client, &sim, &token, ALICE, "late").await),
        45015
    );

    wechat.open_window(BOB).expect("window");
    assert_eq!(errcode(&text(&client, &sim, &token, BOB, "").await), 44004);
    assert_eq!(
        errcode(&text(&client, &sim, &token, BOB, &"x".repeat(2049)).await),
        45002
    );
    assert_eq!(
        errcode(&text(&client, &sim, &token, BOB, &"好".repeat(682)).await),
        0
    );
    assert_eq!(
        errcode(&text(&client, &sim, &token, "not-an-openid", "hi").await),
        40003
    );
    let image = post(
        &client,
        &format!(
            "{}/cgi-bin/message/custom/send?access_token={token}",
            sim.base_url()
        ),
        &json!({"touser": BOB, "msgtype": "image", "image": {"media_id": "m"}}),
    )
    .await;
    assert_eq!(errcode(&image), 40008);
    wechat.set_refused(BOB, true).expect("refuse");
    assert_eq!(
        errcode(&text(&client, &sim, &token, BOB, "hi").await),
        43101
    );

    // One text went out today (two days after the first six): a quota of
    // one is used up, and the next day it is fresh again.
    wechat.set_refused(BOB, false).expect("accept");
    wechat.set_custom_daily_quota(1);
    assert_eq!(
        errcode(&text(&client, &sim, &token, BOB, "over quota").await),
        45009
    );
    sim.advance_clock(86_400);
    let token = access_token(&client, &sim).await;
    wechat.open_window(BOB).expect("window");
    assert_eq!(
        errcode(&text(&client, &sim, &token, BOB, "new day").await),
        0
    );
    let stats = wechat.stats();
    assert_eq!(stats.rejected[&45047], 1);
    assert_eq!(stats.rejected[&45009], 1);
    assert_eq!(stats.accepted_text, 8);
}

#[tokio::test]
async fn wechat_templates_check_the_registry_data_and_account() {
    let (sim, client) = start(WeChatConfig::default()).await;
    let wechat = sim.wechat();
    let token = access_token(&client, &sim).await;
    let ok = template(&client, &sim, &token, &order(ALICE)).await;
    assert_eq!(errcode(&ok), 0);
    assert_eq!(ok["errmsg"], "ok");
    let msgid = ok["msgid"].as_u64().expect("msgid");
    let sent = &wechat.messages_to(ALICE)[0];
    assert_eq!(sent.msgid, Some(msgid));
    assert_eq!(sent.text, "订单：#1234\n金额：39.80\n时间：2024-09-22");
    assert_eq!(sent.url.as_deref(), Some("https://example.com/order/1234"));
    let next = template(&client, &sim, &token, &order(BOB)).await;
    assert_eq!(next["msgid"].as_u64(), Some(msgid + 1));

    let mut unknown = order(ALICE);
    unknown["template_id"] = json!("nope");
    assert_eq!(
        errcode(&template(&client, &sim, &token, &unknown).await),
        40037
    );
    let mut missing = order(ALICE);
    missing["data"] = json!({"keyword1": {"value": "#1"}});
    let reply = template(&client, &sim, &token, &missing).await;
    assert_eq!(errcode(&reply), 47003);
    assert!(reply["errmsg"].as_str().expect("msg").contains("keyword2"));
    assert_eq!(
        errcode(&template(&client, &sim, &token, &order("o-short")).await),
        40003
    );

    wechat
        .unfollow(ALICE)
        .await
        .expect_err("no webhook URL, but the state changed");
    assert_eq!(
        errcode(&template(&client, &sim, &token, &order(ALICE)).await),
        43004
    );
    wechat.set_refused(BOB, true).expect("refuse");
    assert_eq!(
        errcode(&template(&client, &sim, &token, &order(BOB)).await),
        43101
    );

    wechat.set_template_daily_quota(0);
    assert_eq!(
        errcode(&template(&client, &sim, &token, &order(BOB)).await),
        45009
    );
    wechat.set_templates_authorized(false);
    assert_eq!(
        errcode(&template(&client, &sim, &token, &order(BOB)).await),
        48001
    );

    sim.set_faults(FaultConfig {
        error_rate: 1.0,
        latency_ms: 0,
        ..FaultConfig::default()
    })
    .expect("faults");
    let busy = template(&client, &sim, &token, &order(BOB)).await;
    assert_eq!(errcode(&busy), -1);
    assert_eq!(errcode(&token_reply(&client, &sim).await), -1);
    assert_eq!(wechat.rejected_count(-1), 2);
}

async fn token_reply(client: &Client, sim: &SimulatorHandle) -> Value {
    token(client, sim, false).await
}

/// One received request: its query parameters and body.
type Push = (HashMap<String, String>, String);

/// A receiver that records every push and echoes `echostr` on GET.
#[derive(Clone, Default)]
struct Received(Arc<Mutex<Vec<Push>>>);

async fn receive(
    State(received): State<Received>,
    Query(query): Query<HashMap<String, String>>,
    body: Bytes,
) -> String {
    let echo = query.get("echostr").cloned();
    received
        .0
        .lock()
        .expect("lock")
        .push((query, String::from_utf8_lossy(&body).into_owned()));
    echo.unwrap_or_else(|| "success".into())
}

async fn receiver() -> (String, Received) {
    let received = Received::default();
    let app = Router::new()
        .route("/webhooks/wechat", any(receive))
        .with_state(received.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{address}/webhooks/wechat"), received)
}

/// Verify a push as the adapter does and return the plaintext XML.
fn open(query: &HashMap<String, String>, body: &str) -> String {
    let q = |k: &str| query.get(k).cloned().unwrap_or_default();
    assert_eq!(
        crypto::sorted_sha1(&[DEFAULT_TOKEN, &q("timestamp"), &q("nonce")]),
        q("signature")
    );
    if q("encrypt_type") != "aes" {
        return body.to_owned();
    }
    let start = body.find("<Encrypt><![CDATA[").expect("Encrypt") + "<Encrypt><![CDATA[".len();
    let end = body[start..].find("]]>").expect("end") + start;
    let encrypted = &body[start..end];
    assert_eq!(
        crypto::sorted_sha1(&[DEFAULT_TOKEN, &q("timestamp"), &q("nonce"), encrypted]),
        q("msg_signature")
    );
    let key = crypto::aes_key(DEFAULT_ENCODING_AES_KEY).expect("key");
    crypto::decrypt(&key, DEFAULT_APP_ID, encrypted).expect("decrypts")
}

#[tokio::test]
async fn wechat_pushes_are_signed_encrypted_and_open_windows() {
    let (sim, client) = start(WeChatConfig::default()).await;
    let wechat = sim.wechat();
    assert!(matches!(
        wechat.deliver_inbound(ALICE, "hi").await,
        Err(WeChatControlError::Webhook(WebhookError::NoUrl))
    ));
    let (url, received) = receiver().await;
    wechat.set_webhook_url(Some(&url)).expect("url");
    assert!(wechat.verify_url().await.expect("verify"));

    let msg_id = wechat
        .deliver_inbound(ALICE, "我的订单 ]]> <到了吗>")
        .await
        .expect("push");
    let token = access_token(&client, &sim).await;
    assert_eq!(errcode(&text(&client, &sim, &token, ALICE, "yes").await), 0);
    wechat.follow(BOB).await.expect("follow");
    assert_eq!(
        errcode(&text(&client, &sim, &token, BOB, "welcome").await),
        0,
        "a follow allows 3 messages in a minute"
    );
    wechat.set_template_status(BOB, Some("failed:user block"));
    let sent = template(&client, &sim, &token, &order(BOB)).await;
    assert!(wechat.wait_for_webhooks(Duration::from_secs(5)).await);

    let pushes = received.0.lock().expect("lock").clone();
    // GET verification, inbound, subscribe, template status.
    assert_eq!(pushes.len(), 4, "{pushes:?}");
    assert!(pushes[0].0.contains_key("echostr"));
    let inbound = open(&pushes[1].0, &pushes[1].1);
    assert!(
        inbound.contains("<Content><![CDATA[我的订单 ]]]]><![CDATA[> <到了吗>]]></Content>"),
        "{inbound}"
    );
    assert!(inbound.contains(&format!("<MsgId>{msg_id}</MsgId>")));
    assert!(inbound.contains(&format!("<FromUserName><![CDATA[{ALICE}]]></FromUserName>")));
    assert_eq!(pushes[1].0["openid"], ALICE);
    assert!(
        pushes[1]
            .1
            .starts_with("<xml><ToUserName><![CDATA[gh_5f3c1a2b9d8e]]></ToUserName><Encrypt>")
    );
    let follow = open(&pushes[2].0, &pushes[2].1);
    assert!(
        follow.contains("<Event><![CDATA[subscribe]]></Event>"),
        "{follow}"
    );
    let status = open(&pushes[3].0, &pushes[3].1);
    assert!(
        status.contains("<Event><![CDATA[TEMPLATESENDJOBFINISH]]></Event>"),
        "{status}"
    );
    assert!(
        status.contains(&format!("<MsgID>{}</MsgID>", sent["msgid"])),
        "{status}"
    );
    assert!(
        status.contains("<Status><![CDATA[failed:user block]]></Status>"),
        "{status}"
    );

    // Plain mode: the XML itself, still signed.
    wechat.set_safe_mode(false);
    wechat.unfollow(BOB).await.expect("unfollow");
    let pushes = received.0.lock().expect("lock").clone();
    let (query, body) = &pushes[4];
    assert!(!query.contains_key("encrypt_type"));
    let plain = open(query, body);
    assert!(
        plain.contains("<Event><![CDATA[unsubscribe]]></Event>"),
        "{plain}"
    );
    assert_eq!(
        errcode(&text(&client, &sim, &token, BOB, "gone").await),
        45015
    );
    let stats = wechat.stats();
    assert_eq!(
        (
            stats.inbound_posted,
            stats.follow_events_posted,
            stats.template_statuses_posted
        ),
        (1, 2, 1)
    );
}

#[tokio::test]
async fn wechat_reset_after_accept_records_the_template_and_spares_tokens() {
    let (sim, client) = start(WeChatConfig::default()).await;
    let wechat = sim.wechat();
    sim.set_faults(FaultConfig {
        reset_after_accept_rate: 1.0,
        ..FaultConfig::default()
    })
    .expect("faults");
    // The token endpoint is not a send request: answered.
    let token = access_token(&client, &sim).await;
    let lost = client
        .post(format!(
            "{}/cgi-bin/message/template/send?access_token={token}",
            sim.base_url()
        ))
        .json(&order(BOB))
        .send()
        .await;
    let error = lost.expect_err("no response after acceptance");
    assert!(error.status().is_none() && error.is_request(), "{error}");
    assert_eq!(wechat.messages_to(BOB).len(), 1);
    assert_eq!(wechat.stats().reset_after_accept, 1);
    // A refused send (no window for a text) is answered.
    let refused = text(&client, &sim, &token, ALICE, "hi").await;
    assert_eq!(errcode(&refused), 45015);

    sim.set_faults(FaultConfig::default()).expect("faults");
    let again = template(&client, &sim, &token, &order(BOB)).await;
    assert_eq!(errcode(&again), 0);
    assert_eq!(
        wechat.recipient_counts(),
        BTreeMap::from([(BOB.to_owned(), 2)])
    );
    let over_http: Value = client
        .get(format!("{}/_sim/wechat/recipients", sim.base_url()))
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    assert_eq!(over_http, json!({BOB: 2}));
    assert_eq!(sim.duplicates()["wechat"], 1);
}
