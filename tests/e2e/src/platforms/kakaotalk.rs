//! KakaoTalk (NHN Cloud Bizmessage) in the cross-crate tests.

use futures::FutureExt as _;
use switchboard_contract::model::{
    Content, OutboundMessage, Purpose, TemplateMessage, TemplateParameter,
};
use switchboard_simulator::kakaotalk::{codes, kst};
use switchboard_simulator::{SimulatorConfig, SimulatorHandle};

use super::{Platform, class_of};
use crate::Harness;

/// The `[channels.kakaotalk]` table pointing the adapter at the simulator.
pub fn config_section(simulator: &SimulatorHandle) -> String {
    section(simulator, simulator.kakaotalk().secret_key())
}

fn section(simulator: &SimulatorHandle, secret_key: &str) -> String {
    switchboard_simulator::host_config::kakaotalk_section(simulator, secret_key)
}

/// Point the simulator's result webhooks at the host served at `base`
/// (what `Harness::serve` does for WhatsApp).
pub fn serve_webhooks(simulator: &SimulatorHandle, base: &str) {
    simulator
        .kakaotalk()
        .set_webhook_url(Some(&format!("{base}/webhooks/kakaotalk")))
        .expect("set the KakaoTalk webhook URL");
}

/// An AlimTalk message with the approved `ORDER_SHIPPED` template (or
/// `code`), purpose utility.
pub fn alimtalk(to: &str, code: &str) -> OutboundMessage {
    OutboundMessage {
        idempotency_key: format!("contract-kakaotalk-{to}-{code}"),
        to: to.to_owned(),
        purpose: Purpose::Utility,
        content: Content::Template(TemplateMessage {
            name: code.to_owned(),
            language: None,
            parameters: vec![
                TemplateParameter {
                    name: "name".into(),
                    value: "민지".into(),
                },
                TemplateParameter {
                    name: "orderNo".into(),
                    value: "A-1001".into(),
                },
                TemplateParameter {
                    name: "points".into(),
                    value: "300".into(),
                },
            ],
            link: None,
        }),
        ttl_seconds: None,
        attempt: 1,
    }
}

/// A free-form marketing text (a Brand Message).
pub fn brand_message(to: &str, text: &str) -> OutboundMessage {
    OutboundMessage {
        idempotency_key: format!("contract-kakaotalk-{to}-text"),
        to: to.to_owned(),
        purpose: Purpose::Marketing,
        content: Content::Text(text.to_owned()),
        ttl_seconds: None,
        attempt: 1,
    }
}

/// Move the simulator's clock to the next `hour:minute` in Korea.
pub fn set_korean_time(simulator: &SimulatorHandle, hour: u32, minute: u32) {
    simulator.clock().set_offset(0);
    let offset = kst::offset_to_next(simulator.clock().now_unix_ms(), hour, minute);
    simulator.clock().set_offset(offset);
}

/// The contract suite's view of KakaoTalk.
pub fn platform() -> Platform {
    Platform {
        channel: "kakaotalk",
        config_section,
        outcome_classes: |harness| outcome_classes(harness).boxed(),
        forged_webhook: |_harness, base| {
            let body = r#"{"hooksId":"h","event":"MESSAGE_RESULT_UPDATE","hooks":[{"requestId":"R","recipientSeq":1,"resultCode":"1000","hookId":"forged"}]}"#;
            reqwest::Client::new()
                .post(format!("{base}/webhooks/kakaotalk"))
                .header("x-toast-webhook-signature", "not-the-configured-signature")
                .header("content-type", "application/json")
                .body(body)
        },
        handshake: None,
    }
}

async fn outcome_classes(harness: &Harness) -> Vec<(&'static str, String)> {
    let adapter = harness
        .host
        .runtime
        .get("kakaotalk")
        .expect("kakaotalk adapter");
    let kakao = harness.simulator.kakaotalk();
    let mut seen = Vec::new();
    let send = async |message: OutboundMessage| {
        let results = adapter.send(&[message]).await.expect("adapter call");
        class_of(&results[0])
    };

    let first = alimtalk("+821012349001", "ORDER_SHIPPED");
    seen.push(("receipt", send(first.clone()).await));
    // The same request again within 10 minutes: NHN answers -1005.
    seen.push(("duplicate", send(first).await));
    seen.push((
        "invalid-content",
        send(alimtalk("+821012349002", "NO_SUCH_TEMPLATE")).await,
    ));
    kakao
        .set_not_kakao_user("+821012349003")
        .expect("simulator number");
    seen.push((
        "recipient-unreachable",
        send(alimtalk("+821012349003", "ORDER_SHIPPED")).await,
    ));
    seen.push((
        "recipient-unreachable",
        send(alimtalk("+4915112349004", "ORDER_SHIPPED")).await,
    ));
    kakao
        .set_recipient_result("+821012349005", codes::UNCONFIRMED)
        .expect("simulator number");
    seen.push((
        "uncertain",
        send(alimtalk("+821012349005", "ORDER_SHIPPED")).await,
    ));
    // Channel sanctioned (1025): an operator must act.
    kakao
        .set_recipient_result("+821012349006", 1025)
        .expect("simulator number");
    seen.push((
        "permanent",
        send(alimtalk("+821012349006", "ORDER_SHIPPED")).await,
    ));
    kakao.fail_next_requests(1);
    seen.push((
        "transient",
        send(alimtalk("+821012349008", "ORDER_SHIPPED")).await,
    ));

    // Two templates are two requests; the second meets the rate limit.
    kakao.set_requests_per_second(1);
    let results = adapter
        .send(&[
            alimtalk("+821012349009", "ORDER_SHIPPED"),
            alimtalk("+821012349010", "POINTS_BALANCE"),
        ])
        .await
        .expect("adapter call");
    seen.push(("rate-limited", class_of(&results[1])));
    kakao.set_requests_per_second(0);

    // Brand Messages, in the simulator's daytime and night in Korea.
    set_korean_time(&harness.simulator, 14, 0);
    kakao
        .set_recipient_result("+821012349007", -3301)
        .expect("simulator number");
    seen.push((
        "opted-out",
        send(brand_message("+821012349007", "주말 특가")).await,
    ));
    // The night ban (3022) defers until the morning.
    set_korean_time(&harness.simulator, 23, 0);
    seen.push((
        "deferred",
        send(brand_message("+821012349011", "오늘 밤 특가")).await,
    ));
    harness.simulator.clock().set_offset(0);

    // A host whose secret key NHN rejects.
    let wrong = Harness::start_with_section(SimulatorConfig::default(), "kakaotalk", |simulator| {
        section(simulator, "expired-secret")
    })
    .await;
    let adapter = wrong
        .host
        .runtime
        .get("kakaotalk")
        .expect("kakaotalk adapter");
    let results = adapter
        .send(&[alimtalk("+821012349012", "ORDER_SHIPPED")])
        .await
        .expect("adapter call");
    seen.push(("auth-failed", class_of(&results[0])));
    seen
}
