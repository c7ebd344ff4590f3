//! WhatsApp in the cross-crate tests.

use futures::FutureExt as _;
use switchboard_contract::model::{
    Content, OutboundMessage, Purpose, TemplateMessage, TemplateParameter,
};
use switchboard_simulator::{FaultConfig, MarketingPreference, SimulatorConfig, SimulatorHandle};

use super::{Platform, class_of};
use crate::{Harness, sign_hex_sha256};

/// The verify token the harness configures.
pub const VERIFY_TOKEN: &str = "verify-me";

/// A simulator whose WhatsApp has no throughput limit and posts no status
/// webhooks: what tests of the host's own pace and durability want.
pub fn unlimited() -> SimulatorConfig {
    at_rate(0)
}

/// A simulator whose WhatsApp takes `messages_per_second` (0: no limit) and
/// posts no status webhooks.
pub fn at_rate(messages_per_second: u32) -> SimulatorConfig {
    SimulatorConfig {
        whatsapp: switchboard_simulator::WhatsAppConfig {
            messages_per_second,
            send_statuses: false,
            ..Default::default()
        },
        ..SimulatorConfig::default()
    }
}

/// The `[channels.whatsapp]` table pointing the adapter at the simulator.
pub fn config_section(simulator: &SimulatorHandle) -> String {
    section(simulator, simulator.whatsapp().access_token())
}

fn section(simulator: &SimulatorHandle, access_token: &str) -> String {
    switchboard_simulator::host_config::whatsapp_section(simulator, access_token, VERIFY_TOKEN)
}

/// A template message (the approved `winback_offer`, or `name`).
pub fn template(to: &str, name: &str) -> OutboundMessage {
    OutboundMessage {
        idempotency_key: format!("contract-{to}-{name}"),
        to: to.to_owned(),
        purpose: Purpose::Marketing,
        content: Content::Template(TemplateMessage {
            name: name.to_owned(),
            language: Some("en_US".into()),
            parameters: vec![TemplateParameter {
                name: "1".into(),
                value: "Ana".into(),
            }],
            link: None,
        }),
        ttl_seconds: None,
        attempt: 1,
    }
}

/// The contract suite's view of WhatsApp.
pub fn platform() -> Platform {
    Platform {
        channel: "whatsapp",
        config_section,
        outcome_classes: |harness| outcome_classes(harness).boxed(),
        forged_webhook: |_harness, base| {
            let body = r#"{"object":"whatsapp_business_account","entry":[]}"#;
            reqwest::Client::new()
                .post(format!("{base}/webhooks/whatsapp"))
                .header(
                    "x-hub-signature-256",
                    format!("sha256={}", sign_hex_sha256("wrong-secret", body)),
                )
                .body(body)
        },
        handshake: Some(|_, base| {
            (
                reqwest::Client::new().get(format!(
                    "{base}/webhooks/whatsapp?hub.mode=subscribe&hub.verify_token={VERIFY_TOKEN}&hub.challenge=8217"
                )),
                "8217".to_owned(),
            )
        }),
    }
}

async fn outcome_classes(harness: &Harness) -> Vec<(&'static str, String)> {
    let adapter = harness
        .host
        .runtime
        .get("whatsapp")
        .expect("whatsapp adapter");
    let whatsapp = harness.simulator.whatsapp();
    let mut seen = Vec::new();
    let send = async |message: OutboundMessage| {
        let results = adapter.send(&[message]).await.expect("adapter call");
        class_of(&results[0])
    };

    seen.push((
        "receipt",
        send(template("+4915112349001", "winback_offer")).await,
    ));
    let mut text = template("+4915112349002", "unused");
    text.content = Content::Text("hello".into());
    seen.push(("window-closed", send(text).await));
    seen.push((
        "invalid-content",
        send(template("+4915112349003", "no_such_template")).await,
    ));
    whatsapp
        .post_marketing_preference("4915112349004", MarketingPreference::Stop)
        .await
        .ok();
    seen.push((
        "opted-out",
        send(template("+4915112349004", "winback_offer")).await,
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
        send(template("+4915112349005", "winback_offer")).await,
    ));
    harness
        .simulator
        .set_faults(FaultConfig {
            error_rate: 0.0,
            latency_ms: 0,
            ..FaultConfig::default()
        })
        .expect("faults");

    whatsapp.set_messages_per_second(1);
    let burst: Vec<OutboundMessage> = (0..4)
        .map(|i| template(&format!("+49151123491{i:02}"), "winback_offer"))
        .collect();
    let results = adapter.send(&burst).await.expect("adapter call");
    let limited = results
        .iter()
        .map(class_of)
        .find(|c| c == "rate-limited")
        .unwrap_or_else(|| class_of(&results[3]));
    seen.push(("rate-limited", limited));
    whatsapp.set_messages_per_second(0);

    // A host whose token the platform rejects.
    let wrong = Harness::start_with_section(SimulatorConfig::default(), "whatsapp", |simulator| {
        section(simulator, "expired-token")
    })
    .await;
    let adapter = wrong
        .host
        .runtime
        .get("whatsapp")
        .expect("whatsapp adapter");
    let results = adapter
        .send(&[template("+4915112349006", "winback_offer")])
        .await
        .expect("adapter call");
    seen.push(("auth-failed", class_of(&results[0])));
    seen
}
