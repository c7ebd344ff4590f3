//! WeChat end to end against the simulator: real HTTP, real SQLite, real
//! Wasm, safe-mode pushes through the host's webhook server.

use std::collections::BTreeMap;
use std::time::Duration;

use switchboard_e2e::Harness;
use switchboard_e2e::platforms::wechat::{self, openid, signed_query};
use switchboard_simulator::wechat::{ORDER_TEMPLATE_ID, SentMessage, crypto};
use switchboard_simulator::{SimulatorConfig, WeChatConfig};
use switchboard_store::SendQuery;

/// Serve the host's webhooks and point the simulator's WeChat pushes at them.
async fn serve(harness: &Harness) -> String {
    let base = harness.serve().await;
    harness
        .simulator
        .wechat()
        .set_webhook_url(Some(&format!("{base}/webhooks/wechat")))
        .expect("webhook url");
    base
}

fn order_campaign(name: &str, text: bool) -> String {
    let message = if text {
        "[message]\ntext = \"Hi {{name}}, order {{order}} has shipped\"\n"
    } else {
        ""
    };
    format!(
        "name = \"{name}\"\npurpose = \"utility\"\nroute = [\"wechat\"]\n{message}\n[templates.wechat]\nname = \"{ORDER_TEMPLATE_ID}\"\nparameters = {{ keyword1 = \"{{{{order}}}}\", keyword2 = \"39.80 CNY\", keyword3 = \"2026-11-27\" }}\nlink = \"https://shop.example/orders/{{{{order}}}}\"\n"
    )
}

/// How many conversation windows the host has recorded for `address` on WeChat.
async fn windows(harness: &Harness, address: &str) -> usize {
    harness
        .host
        .store
        .recipient_states("wechat", vec![address.to_owned()])
        .await
        .unwrap()
        .get(address)
        .map_or(0, |state| state.windows.len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn who_wrote_in_gets_text_the_rest_templates_once_and_statuses_come_back() {
    let harness = Harness::start(SimulatorConfig::default(), "").await;
    let wechat = harness.simulator.wechat();
    assert!(wechat.safe_mode(), "pushes are encrypted");
    serve(&harness).await;
    assert!(
        wechat.verify_url().await.expect("verification request"),
        "the host answers WeChat's URL verification through the adapter"
    );

    let [ana, ben, chen, eve, fay] = ["ana", "ben", "chen", "eve", "fay"].map(openid);
    let audience = harness.write(
        "audience.csv",
        &format!(
            "profile_id,name,wechat_openid,consent_wechat_utility,order\n\
             w1,Ana,{ana},yes,#1001\n\
             w2,Ben,{ben},yes,#1002\n\
             w3,Chen,{chen},no,#1003\n\
             w4,Dan,,yes,#1004\n\
             w5,Eve,{eve},yes,#1005\n\
             w6,Fay,{fay},yes,#1006\n"
        ),
    );
    // Ana writes in (an encrypted push opens her window in the host); Eve
    // unfollows (an opt-out); Fay refused the account's messages on WeChat.
    wechat
        .deliver_inbound(&ana, "我的订单到了吗？")
        .await
        .expect("inbound push accepted");
    wechat
        .unfollow(&eve)
        .await
        .expect("unsubscribe push accepted");
    wechat.set_refused(&fay, true).expect("refuse");

    let campaign = harness.write("campaign.toml", &order_campaign("order-update", true));
    let report = harness.send(&campaign, &audience).await.unwrap();

    let w1 = report.line_of("w1");
    assert_eq!(
        (w1.outcome.as_str(), w1.content.as_deref()),
        ("sent", Some("text")),
        "{w1:?}"
    );
    let w2 = report.line_of("w2");
    assert_eq!(
        (w2.outcome.as_str(), w2.content.as_deref()),
        ("sent", Some("template")),
        "{w2:?}"
    );
    let w3 = report.line_of("w3");
    assert_eq!(
        (w3.outcome.as_str(), w3.reason.as_deref()),
        ("skipped", Some("no_consent"))
    );
    let w4 = report.line_of("w4");
    assert_eq!(
        (w4.outcome.as_str(), w4.reason.as_deref()),
        ("skipped", Some("no_address"))
    );
    let w5 = report.line_of("w5");
    assert_eq!(
        (w5.outcome.as_str(), w5.reason.as_deref()),
        ("skipped", Some("opted_out")),
        "{w5:?}"
    );
    let w6 = report.line_of("w6");
    assert_eq!(
        (w6.outcome.as_str(), w6.class.as_deref()),
        ("failed", Some("opted_out")),
        "{w6:?}"
    );
    assert!(w6.message.as_deref().unwrap().contains("43101"), "{w6:?}");
    assert_eq!(report.count("sent"), 2, "{}", report.summary());

    let sent: BTreeMap<String, SentMessage> = wechat
        .messages()
        .into_iter()
        .map(|m| (m.touser.clone(), m))
        .collect();
    assert_eq!(sent.len(), 2, "{sent:?}");
    assert_eq!(sent[&ana].msgtype, "text");
    assert_eq!(sent[&ana].text, "Hi Ana, order #1001 has shipped");
    let template = &sent[&ben];
    assert_eq!(template.msgtype, "template");
    assert_eq!(template.template_id.as_deref(), Some(ORDER_TEMPLATE_ID));
    assert_eq!(template.data["keyword1"], "#1002");
    assert_eq!(
        template.url.as_deref(),
        Some("https://shop.example/orders/#1002")
    );
    assert_eq!(
        wechat.token_requests(),
        1,
        "one access token for the campaign"
    );

    // The template's TEMPLATESENDJOBFINISH push marks it delivered.
    assert!(wechat.wait_for_webhooks(Duration::from_secs(10)).await);
    assert_eq!(wechat.stats().template_statuses_posted, 1);
    let sends = harness
        .host
        .store
        .sends(SendQuery {
            campaign: Some("order-update".into()),
            ..SendQuery::default()
        })
        .await
        .unwrap();
    let ben_send = sends.iter().find(|s| s.profile_id == "w2").unwrap();
    assert_eq!(
        ben_send.platform_message_id.as_deref(),
        template.msgid.map(|id| id.to_string()).as_deref()
    );
    assert_eq!(
        ben_send.delivery_state.as_deref(),
        Some("delivered"),
        "{ben_send:?}"
    );
    // Customer-service messages get no id from WeChat, and none is made up.
    let ana_send = sends.iter().find(|s| s.profile_id == "w1").unwrap();
    assert_eq!(ana_send.state, "sent", "{ana_send:?}");
    assert_eq!(ana_send.platform_message_id, None, "{ana_send:?}");

    // A re-run sends nothing new.
    let rerun = harness.send(&campaign, &audience).await.unwrap();
    assert_eq!(rerun.count("sent"), 0, "{}", rerun.summary());
    assert_eq!(rerun.count("already_sent"), 2, "{}", rerun.summary());
    assert_eq!(wechat.messages().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_sends_share_one_access_token() {
    let simulator = SimulatorConfig {
        wechat: WeChatConfig {
            send_template_statuses: false,
            ..WeChatConfig::default()
        },
        ..SimulatorConfig::default()
    };
    // The operator lets the host send fast; the dispatcher runs batches of
    // 20 in concurrent adapter calls, which all wait for one token fetch.
    let harness = Harness::start_with_section(simulator, "wechat", |simulator| {
        wechat::config_section_with_rate(simulator, 5_000)
    })
    .await;
    let mut csv = String::from("profile_id,wechat_openid,consent_wechat_utility,order\n");
    for i in 0..1_000 {
        csv.push_str(&format!(
            "t{i:04},{},yes,#{i}\n",
            openid(&format!("bulk-{i}"))
        ));
    }
    let audience = harness.write("audience.csv", &csv);
    let campaign = harness.write("campaign.toml", &order_campaign("bulk-order", false));

    let report = tokio::time::timeout(Duration::from_secs(120), harness.send(&campaign, &audience))
        .await
        .expect("the campaign finishes")
        .unwrap();

    assert_eq!(report.count("sent"), 1_000, "{}", report.summary());
    let stats = harness.simulator.wechat().stats();
    assert_eq!(stats.accepted_templates, 1_000);
    assert_eq!(stats.token_requests, 1, "{stats:?}");
    assert_eq!(stats.tokens_issued, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_window_allows_five_free_form_messages_then_the_host_stops() {
    let harness = Harness::start(SimulatorConfig::default(), "").await;
    let wechat = harness.simulator.wechat();
    serve(&harness).await;
    let ana = openid("window-ana");
    wechat
        .deliver_inbound(&ana, "hello?")
        .await
        .expect("inbound push accepted");
    let audience = harness.write(
        "audience.csv",
        &format!("profile_id,name,wechat_openid\nq1,Ana,{ana}\n"),
    );
    let reply = |n: u32, window: &str| {
        harness.write(
            &format!("care-{n}.toml"),
            &format!(
                "name = \"care-{n}\"\npurpose = \"service\"\nroute = [\"wechat\"]\n{window}[message]\ntext = \"Reply {n} to {{{{name}}}}\"\n"
            ),
        )
    };
    for n in 1..=5 {
        let report = harness.send(&reply(n, ""), &audience).await.unwrap();
        let q1 = report.line_of("q1");
        assert_eq!(
            (q1.outcome.as_str(), q1.content.as_deref()),
            ("sent", Some("text")),
            "reply {n}: {q1:?}"
        );
    }
    let sixth = harness.send(&reply(6, ""), &audience).await.unwrap();
    let q1 = sixth.line_of("q1");
    assert_eq!(
        (q1.outcome.as_str(), q1.reason.as_deref()),
        ("skipped", Some("window_cap_reached")),
        "{q1:?}"
    );
    assert_eq!(wechat.messages_to(&ana).len(), 5);

    // Forced past the policy, WeChat refuses it with 45047.
    let forced = harness
        .send(&reply(7, "window = \"ignore\"\n"), &audience)
        .await
        .unwrap();
    let q1 = forced.line_of("q1");
    assert_eq!(
        (q1.outcome.as_str(), q1.class.as_deref()),
        ("failed", Some("window_closed")),
        "{q1:?}"
    );
    assert!(q1.message.as_deref().unwrap().contains("45047"), "{q1:?}");
    assert_eq!(wechat.messages_to(&ana).len(), 5);

    // Writing in again opens a fresh window. WeChat's CreateTime counts
    // seconds, so the new message must come in a later second to be newer.
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    wechat
        .deliver_inbound(&ana, "one more thing")
        .await
        .expect("inbound push accepted");
    let report = harness.send(&reply(8, ""), &audience).await.unwrap();
    assert_eq!(report.line_of("q1").outcome, "sent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_pushes_are_refused_and_change_nothing() {
    let harness = Harness::start(SimulatorConfig::default(), "").await;
    let base = serve(&harness).await;
    let wechat = harness.simulator.wechat();
    let client = reqwest::Client::new();
    let victim = openid("victim");
    let plaintext = format!(
        "<xml><ToUserName><![CDATA[gh_5f3c1a2b9d8e]]></ToUserName><FromUserName><![CDATA[{victim}]]></FromUserName><CreateTime>{}</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[hi]]></Content><MsgId>24581234567890123</MsgId></xml>",
        harness.simulator.clock().now_unix()
    );
    let key = crypto::aes_key(wechat.encoding_aes_key()).unwrap();
    // Pushes must be fresh (within five minutes of the host's clock) and a
    // timestamp and nonce are accepted once: each attempt below gets its own.
    let now = jiff::Timestamp::now().as_second().to_string();
    let timestamp = now.as_str();
    let nonces = std::sync::atomic::AtomicU32::new(1_320_562_132);
    let token = wechat.token().to_owned();
    // `signature` with `query_token`; `msg_signature` with the real token
    // unless a forged one is given.
    let push = |query_token: &str, encrypted: &str, forged_msg_signature: Option<&str>| {
        let nonce = nonces
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
            .to_string();
        let msg_signature = forged_msg_signature.map_or_else(
            || crypto::sorted_sha1(&[&token, timestamp, &nonce, encrypted]),
            str::to_owned,
        );
        client
            .post(format!(
                "{base}/webhooks/wechat?{}&openid={victim}&encrypt_type=aes&msg_signature={msg_signature}",
                signed_query(query_token, timestamp, &nonce)
            ))
            .header("content-type", "text/xml")
            .body(format!(
                "<xml><ToUserName><![CDATA[gh_5f3c1a2b9d8e]]></ToUserName><Encrypt><![CDATA[{encrypted}]]></Encrypt></xml>"
            ))
            .send()
    };
    let genuine = crypto::encrypt(&key, wechat.app_id(), b"0123456789abcdef", &plaintext);

    // Wrong Token for `signature`.
    let forged = push("wrong-token", &genuine, None).await.unwrap();
    assert_eq!(forged.status(), 401);
    // Right `signature`, forged `msg_signature`.
    let forged = push(&token, &genuine, Some(&"0".repeat(40))).await.unwrap();
    assert_eq!(forged.status(), 401);
    // Correctly signed, but encrypted with another key.
    let other_key = crypto::aes_key("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopq").unwrap();
    let foreign = crypto::encrypt(&other_key, wechat.app_id(), b"0123456789abcdef", &plaintext);
    let forged = push(&token, &foreign, None).await.unwrap();
    assert_eq!(forged.status(), 401);
    // Correctly signed and encrypted, but for another Official Account.
    let elsewhere = crypto::encrypt(&key, "wx0000000000000000", b"0123456789abcdef", &plaintext);
    let forged = push(&token, &elsewhere, None).await.unwrap();
    assert_eq!(forged.status(), 401);
    assert_eq!(windows(&harness, &victim).await, 0);

    // The genuine push opens the window.
    let accepted = push(&token, &genuine, None).await.unwrap();
    assert_eq!(accepted.status(), 200);
    assert_eq!(accepted.text().await.unwrap(), "success");
    assert!(windows(&harness, &victim).await > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_or_stale_plain_mode_push_is_refused() {
    let harness = Harness::start(SimulatorConfig::default(), "").await;
    let base = serve(&harness).await;
    let wechat = harness.simulator.wechat();
    let client = reqwest::Client::new();
    let token = wechat.token().to_owned();
    let now = jiff::Timestamp::now().as_second();
    // In plain mode the signature covers the token, timestamp and nonce only,
    // not the body: a captured query can be replayed with any body.
    let event = |who: &str, event: &str| {
        format!(
            "<xml><ToUserName><![CDATA[gh_5f3c1a2b9d8e]]></ToUserName><FromUserName><![CDATA[{who}]]></FromUserName><CreateTime>{now}</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[{event}]]></Event></xml>"
        )
    };
    let push = |timestamp: i64, nonce: &str, body: String| {
        client
            .post(format!(
                "{base}/webhooks/wechat?{}",
                signed_query(&token, &timestamp.to_string(), nonce)
            ))
            .header("content-type", "text/xml")
            .body(body)
            .send()
    };
    let ana = openid("ana");
    let mallory = openid("mallory");

    let genuine = push(now, "700001", event(&ana, "unsubscribe"))
        .await
        .unwrap();
    assert_eq!(genuine.status(), 200);
    // The captured query replayed with a subscribe for someone else.
    let replayed = push(now, "700001", event(&mallory, "subscribe"))
        .await
        .unwrap();
    assert_eq!(replayed.status(), 401);
    // A correctly signed push from twenty minutes ago.
    let stale = push(now - 1_200, "700002", event(&mallory, "subscribe"))
        .await
        .unwrap();
    assert_eq!(stale.status(), 401);

    let store = &harness.host.store;
    assert!(
        store
            .consent_history("wechat", &mallory)
            .await
            .unwrap()
            .is_empty()
    );
    let ana_history = store.consent_history("wechat", &ana).await.unwrap();
    assert_eq!(ana_history.len(), 1, "{ana_history:?}");
    assert!(!ana_history[0].opted_in);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_or_revoked_token_is_replaced_and_the_message_retried() {
    let harness = Harness::start(SimulatorConfig::default(), "").await;
    let wechat = harness.simulator.wechat();
    let adapter = harness.host.runtime.get("wechat").unwrap();
    let send = async |seed: &str| {
        let results = adapter
            .send(&[wechat::template(&openid(seed), ORDER_TEMPLATE_ID)])
            .await
            .unwrap();
        switchboard_e2e::platforms::class_of(&results[0])
    };
    assert_eq!(send("r1").await, "receipt");
    assert_eq!(wechat.token_requests(), 1);

    // The simulator's clock passes the token's two hours; the host's cache
    // still holds it, WeChat answers 42001, the adapter fetches a new one.
    harness.simulator.advance_clock(7_200);
    assert_eq!(send("r2").await, "receipt");
    assert_eq!(wechat.rejected_count(42_001), 1);
    assert_eq!(wechat.token_requests(), 2);

    // Revoked (40001): the same.
    wechat.revoke_tokens();
    assert_eq!(send("r3").await, "receipt");
    assert_eq!(wechat.rejected_count(40_001), 1);
    assert_eq!(wechat.token_requests(), 3);
    assert_eq!(wechat.stats().forced_token_refreshes, 0);
    assert_eq!(wechat.messages().len(), 3);
}
