//! WeChat Official Accounts in the cross-crate tests.

use futures::FutureExt as _;
use switchboard_contract::model::{
    Content, OutboundMessage, Purpose, TemplateMessage, TemplateParameter,
};
use switchboard_simulator::wechat::{ORDER_TEMPLATE_ID, crypto, openid_for};
use switchboard_simulator::{FaultConfig, SimulatorConfig, SimulatorHandle};

use super::{Platform, class_of};
use crate::Harness;

/// The `[channels.wechat]` table pointing the adapter at the simulator.
pub fn config_section(simulator: &SimulatorHandle) -> String {
    section(simulator, simulator.wechat().app_secret(), None)
}

/// The table with an operator rate override (messages per second).
pub fn config_section_with_rate(simulator: &SimulatorHandle, messages_per_second: u32) -> String {
    section(
        simulator,
        simulator.wechat().app_secret(),
        Some(messages_per_second),
    )
}

fn section(simulator: &SimulatorHandle, app_secret: &str, rate: Option<u32>) -> String {
    switchboard_simulator::host_config::wechat_section(simulator, app_secret, rate)
}

/// The OpenID the simulator gives `seed` (28 characters, `o…`).
pub fn openid(seed: &str) -> String {
    openid_for(seed)
}

/// The order-status template (`keyword1`…`keyword3`) to `to`.
pub fn template(to: &str, template_id: &str) -> OutboundMessage {
    OutboundMessage {
        idempotency_key: format!("contract-{to}-{template_id}"),
        to: to.to_owned(),
        purpose: Purpose::Utility,
        content: Content::Template(TemplateMessage {
            name: template_id.to_owned(),
            language: None,
            parameters: ["#1234", "39.80 CNY", "2026-11-27"]
                .iter()
                .enumerate()
                .map(|(i, value)| TemplateParameter {
                    name: format!("keyword{}", i + 1),
                    value: (*value).to_owned(),
                })
                .collect(),
            link: Some("https://shop.example/orders/1234".into()),
        }),
        ttl_seconds: None,
        attempt: 1,
    }
}

/// A customer-service text to `to`.
pub fn text(to: &str, body: &str) -> OutboundMessage {
    OutboundMessage {
        idempotency_key: format!("contract-{to}-text-{body}"),
        to: to.to_owned(),
        purpose: Purpose::Service,
        content: Content::Text(body.to_owned()),
        ttl_seconds: None,
        attempt: 1,
    }
}

/// `signature`, `timestamp` and `nonce` query parameters signed with `token`.
pub fn signed_query(token: &str, timestamp: &str, nonce: &str) -> String {
    format!(
        "signature={}&timestamp={timestamp}&nonce={nonce}",
        crypto::sorted_sha1(&[token, timestamp, nonce])
    )
}

/// The contract suite's view of WeChat.
pub fn platform() -> Platform {
    Platform {
        channel: "wechat",
        config_section,
        outcome_classes: |harness| outcome_classes(harness).boxed(),
        forged_webhook: |_harness, base| {
            let openid = openid("forger");
            let body = format!(
                "<xml><ToUserName><![CDATA[gh_5f3c1a2b9d8e]]></ToUserName><FromUserName><![CDATA[{openid}]]></FromUserName><CreateTime>1735689600</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[hi]]></Content><MsgId>24581234567890123</MsgId></xml>"
            );
            reqwest::Client::new()
                .post(format!(
                    "{base}/webhooks/wechat?{}&openid={openid}",
                    signed_query("wrong-token", "1735689601", "1320562132")
                ))
                .header("content-type", "text/xml")
                .body(body)
        },
        handshake: Some(|harness, base| {
            let token = harness.simulator.wechat().token().to_owned();
            (
                reqwest::Client::new().get(format!(
                    "{base}/webhooks/wechat?{}&echostr=4643203441536297263",
                    signed_query(&token, "1409659813", "1372623149")
                )),
                "4643203441536297263".to_owned(),
            )
        }),
    }
}

async fn outcome_classes(harness: &Harness) -> Vec<(&'static str, String)> {
    let adapter = harness.host.runtime.get("wechat").expect("wechat adapter");
    let wechat = harness.simulator.wechat();
    let mut seen = Vec::new();
    let send = async |message: OutboundMessage| {
        let results = adapter.send(&[message]).await.expect("adapter call");
        class_of(&results[0])
    };

    seen.push((
        "receipt",
        send(template(&openid("c1"), ORDER_TEMPLATE_ID)).await,
    ));
    // Free-form text without a window: 45015.
    seen.push(("window-closed", send(text(&openid("c2"), "hello")).await));
    // Five texts in a window, then 45047.
    let writer = openid("c3");
    wechat.open_window(&writer).expect("window");
    for i in 0..5 {
        seen.push(("receipt", send(text(&writer, &format!("#{i}"))).await));
    }
    seen.push(("window-closed", send(text(&writer, "#5")).await));
    // Unknown template (40037), missing data (47003).
    seen.push((
        "invalid-content",
        send(template(&openid("c4"), "no_such_template")).await,
    ));
    let mut missing = template(&openid("c4"), ORDER_TEMPLATE_ID);
    if let Content::Template(t) = &mut missing.content {
        t.parameters.truncate(1);
    }
    seen.push(("invalid-content", send(missing).await));
    // Not an OpenID of this account (40003); unfollowed (43004).
    seen.push((
        "recipient-unreachable",
        send(template("o-not-an-openid", ORDER_TEMPLATE_ID)).await,
    ));
    // No webhook URL: the unfollow is recorded, its push fails.
    let _ = wechat.unfollow(&openid("c5")).await;
    seen.push((
        "recipient-unreachable",
        send(template(&openid("c5"), ORDER_TEMPLATE_ID)).await,
    ));
    // The user refused the account's messages (43101).
    wechat.set_refused(&openid("c6"), true).expect("refuse");
    seen.push((
        "opted-out",
        send(template(&openid("c6"), ORDER_TEMPLATE_ID)).await,
    ));
    // Template messages not authorised for the account (48001).
    wechat.set_templates_authorized(false);
    seen.push((
        "permanent",
        send(template(&openid("c7"), ORDER_TEMPLATE_ID)).await,
    ));
    wechat.set_templates_authorized(true);
    // A revoked token (40001) is replaced and the message retried.
    wechat.revoke_tokens();
    seen.push((
        "receipt",
        send(template(&openid("c8"), ORDER_TEMPLATE_ID)).await,
    ));

    harness
        .simulator
        .set_faults(FaultConfig {
            error_rate: 1.0,
            latency_ms: 0,
            ..FaultConfig::default()
        })
        .expect("faults");
    seen.push((
        "transient",
        send(template(&openid("c9"), ORDER_TEMPLATE_ID)).await,
    ));
    harness
        .simulator
        .set_faults(FaultConfig::default())
        .expect("faults");

    // The daily template quota is used up (45009).
    wechat.set_template_daily_quota(0);
    seen.push((
        "rate-limited",
        send(template(&openid("c10"), ORDER_TEMPLATE_ID)).await,
    ));
    wechat.set_template_daily_quota(100_000);

    // A host with the wrong AppSecret: the token endpoint says 40125.
    let wrong = Harness::start_with_section(SimulatorConfig::default(), "wechat", |simulator| {
        section(simulator, "wrong-app-secret", None)
    })
    .await;
    let adapter = wrong.host.runtime.get("wechat").expect("wechat adapter");
    let results = adapter
        .send(&[template(&openid("c11"), ORDER_TEMPLATE_ID)])
        .await
        .expect("adapter call");
    seen.push(("auth-failed", class_of(&results[0])));
    seen
}
