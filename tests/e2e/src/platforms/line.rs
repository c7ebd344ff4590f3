//! LINE in the cross-crate tests.

use futures::FutureExt as _;
use switchboard_contract::model::{Content, OutboundMessage, Purpose};
use switchboard_simulator::line::line_signature;
use switchboard_simulator::{FaultConfig, SimulatorConfig, SimulatorHandle};

use super::{Platform, class_of};
use crate::Harness;

/// The `[channels.line]` table pointing the adapter at the simulator.
pub fn config_section(simulator: &SimulatorHandle) -> String {
    section(simulator, simulator.line().channel_access_token())
}

fn section(simulator: &SimulatorHandle, access_token: &str) -> String {
    switchboard_simulator::host_config::line_section(simulator, access_token)
}

/// A LINE user id made from `n`: `U` and 32 hex digits.
pub fn user_id(n: u32) -> String {
    format!("U{n:032x}")
}

/// A text message to `to` with its own idempotency key.
pub fn text(to: &str, body: &str) -> OutboundMessage {
    OutboundMessage {
        idempotency_key: format!("contract-line-{to}-{body}"),
        to: to.to_owned(),
        purpose: Purpose::Marketing,
        content: Content::Text(body.to_owned()),
        ttl_seconds: None,
        attempt: 1,
    }
}

/// A signed webhook request to the host at `base`.
fn signed_webhook(secret: &str, base: &str, body: &'static str) -> reqwest::RequestBuilder {
    reqwest::Client::new()
        .post(format!("{base}/webhooks/line"))
        .header("content-type", "application/json")
        .header(
            "x-line-signature",
            line_signature(secret.as_bytes(), body.as_bytes()),
        )
        .body(body)
}

/// The contract suite's view of LINE.
pub fn platform() -> Platform {
    Platform {
        channel: "line",
        config_section,
        outcome_classes: |harness| outcome_classes(harness).boxed(),
        forged_webhook: |_harness, base| {
            signed_webhook(
                "wrong-secret",
                base,
                r#"{"destination":"U5b1d0c2a3e4f5061728394a5b6c7d8e9","events":[{"type":"unfollow","mode":"active","timestamp":1767000000000,"source":{"type":"user","userId":"U00000000000000000000000000000001"},"webhookEventId":"01JFORGED0000000000000000","deliveryContext":{"isRedelivery":false}}]}"#,
            )
        },
        // LINE has no challenge handshake; the console's "Verify" button
        // posts a signed body with no events and expects a 200.
        handshake: Some(|harness, base| {
            (
                signed_webhook(
                    harness.simulator.line().channel_secret(),
                    base,
                    r#"{"destination":"U5b1d0c2a3e4f5061728394a5b6c7d8e9","events":[]}"#,
                ),
                "ok".to_owned(),
            )
        }),
    }
}

async fn outcome_classes(harness: &Harness) -> Vec<(&'static str, String)> {
    let adapter = harness.host.runtime.get("line").expect("line adapter");
    let line = harness.simulator.line();
    let mut seen = Vec::new();
    let send = async |message: OutboundMessage| {
        let results = adapter.send(&[message]).await.expect("adapter call");
        class_of(&results[0])
    };

    let first = text(&user_id(1), "Hi Ana");
    seen.push(("receipt", send(first.clone()).await));
    // The same idempotency key again: LINE answers 409 on the retry key.
    seen.push(("duplicate", send(first).await));
    seen.push((
        "invalid-content",
        send(text(&user_id(2), &"a".repeat(5_001))).await,
    ));
    seen.push((
        "recipient-unreachable",
        send(text("+4915112345678", "Hi")).await,
    ));

    harness
        .simulator
        .set_faults(FaultConfig {
            error_rate: 1.0,
            latency_ms: 0,
            ..FaultConfig::default()
        })
        .expect("faults");
    seen.push(("transient", send(text(&user_id(3), "Hi Chen")).await));
    harness
        .simulator
        .set_faults(FaultConfig::default())
        .expect("faults");

    line.set_push_rate(1);
    let burst: Vec<OutboundMessage> = (0..3)
        .map(|i| text(&user_id(10 + i), &format!("Hi {i}")))
        .collect();
    let results = adapter.send(&burst).await.expect("adapter call");
    let limited = results
        .iter()
        .map(class_of)
        .find(|c| c == "rate-limited")
        .unwrap_or_else(|| class_of(&results[2]));
    seen.push(("rate-limited", limited));
    line.set_push_rate(0);

    line.set_monthly_quota(0);
    seen.push(("rate-limited", send(text(&user_id(4), "Hi Dee")).await));
    line.set_monthly_quota(switchboard_simulator::line::DEFAULT_MONTHLY_QUOTA);

    // A host whose channel access token LINE rejects.
    let wrong = Harness::start_with_section(SimulatorConfig::default(), "line", |simulator| {
        section(simulator, "expired-token")
    })
    .await;
    let adapter = wrong.host.runtime.get("line").expect("line adapter");
    let results = adapter
        .send(&[text(&user_id(5), "Hi Eve")])
        .await
        .expect("adapter call");
    seen.push(("auth-failed", class_of(&results[0])));
    seen
}
