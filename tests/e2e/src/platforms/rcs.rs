//! Google RCS Business Messaging in the cross-crate tests.

use futures::FutureExt as _;
use switchboard_contract::model::{Content, OutboundMessage, Purpose};
use switchboard_simulator::{FaultConfig, SimulatorHandle};

use super::{Platform, class_of};
use crate::Harness;

/// The `[channels.rcs]` table pointing the adapter at the simulator: its
/// base URL for the RBM API and its `/token` for OAuth, the simulator's
/// agent and service account, the TEST-ONLY private key and the webhook
/// client token.
pub fn config_section(simulator: &SimulatorHandle) -> String {
    let rcs = simulator.rcs();
    section(
        simulator,
        rcs.client_email(),
        rcs.test_only_private_key_pem(),
        "",
    )
}

/// A `[channels.rcs]` table with another service account or key, and
/// `extra_settings` (e.g. `, check_capability = "true"`) appended to the
/// settings table.
pub fn section(
    simulator: &SimulatorHandle,
    client_email: &str,
    private_key_pem: &str,
    extra_settings: &str,
) -> String {
    switchboard_simulator::host_config::rcs_section(
        simulator,
        client_email,
        private_key_pem,
        extra_settings,
    )
}

/// A text message to `to`, keyed by `key`.
pub fn text(to: &str, key: &str) -> OutboundMessage {
    OutboundMessage {
        idempotency_key: format!("contract-rcs-{key}"),
        to: to.to_owned(),
        purpose: Purpose::Marketing,
        content: Content::Text("Hi Ana, 20% off this week".into()),
        ttl_seconds: None,
        attempt: 1,
    }
}

/// The contract suite's view of RBM.
pub fn platform() -> Platform {
    Platform {
        channel: "rcs",
        config_section,
        outcome_classes: |harness| outcome_classes(harness).boxed(),
        forged_webhook: |_harness, base| {
            let data = serde_json::json!({
                "senderPhoneNumber": "+4915112349001",
                "eventType": "READ",
                "eventId": "forged",
                "messageId": "3f1c5a0e-9b7d-4c2a-8e6f-0b1d3c5a7e9f",
                "agentId": "sim-agent"
            });
            let (body, signature) =
                switchboard_simulator::rcs::signed_push("wrong-client-token", "sim-agent", &data);
            reqwest::Client::new()
                .post(format!("{base}/webhooks/rcs"))
                .header("x-goog-signature", signature)
                .header("content-type", "application/json")
                .body(body)
        },
        handshake: Some(|harness, base| {
            (
                reqwest::Client::new()
                    .post(format!("{base}/webhooks/rcs"))
                    .json(&serde_json::json!({
                        "clientToken": harness.simulator.rcs().client_token(),
                        "secret": "7c2f1a",
                    })),
                "7c2f1a".to_owned(),
            )
        }),
    }
}

async fn outcome_classes(harness: &Harness) -> Vec<(&'static str, String)> {
    let adapter = harness.host.runtime.get("rcs").expect("rcs adapter");
    let rcs = harness.simulator.rcs();
    let mut seen = Vec::new();
    let send = async |message: OutboundMessage| {
        let results = adapter.send(&[message]).await.expect("adapter call");
        class_of(&results[0])
    };

    let first = text("+4915112349001", "receipt");
    seen.push(("receipt", send(first.clone()).await));
    // The same idempotency key again: RBM already has that messageId.
    seen.push(("duplicate", send(first).await));

    rcs.set_rcs_capable("+4915112349002", false)
        .expect("valid phone");
    seen.push((
        "recipient-unreachable",
        send(text("+4915112349002", "unreachable")).await,
    ));

    let mut long = text("+4915112349003", "too-long");
    long.content = Content::Text("x".repeat(3_073));
    seen.push(("invalid-content", send(long).await));

    harness
        .simulator
        .set_faults(FaultConfig {
            error_rate: 1.0,
            latency_ms: 0,
            ..FaultConfig::default()
        })
        .expect("faults");
    seen.push(("transient", send(text("+4915112349004", "transient")).await));
    harness
        .simulator
        .set_faults(FaultConfig {
            error_rate: 0.0,
            latency_ms: 0,
            ..FaultConfig::default()
        })
        .expect("faults");

    rcs.set_messages_per_second(1);
    let burst: Vec<OutboundMessage> = (0..4)
        .map(|i| text(&format!("+49151123491{i:02}"), &format!("burst-{i}")))
        .collect();
    let results = adapter.send(&burst).await.expect("adapter call");
    let limited = results
        .iter()
        .map(class_of)
        .find(|c| c == "rate-limited")
        .unwrap_or_else(|| class_of(&results[3]));
    seen.push(("rate-limited", limited));
    rcs.set_messages_per_second(0);

    // A host whose service-account key is not the one Google knows: the
    // token endpoint refuses the assertion.
    let wrong = Harness::start_with_section(
        switchboard_simulator::SimulatorConfig::default(),
        "rcs",
        |simulator| {
            section(
                simulator,
                simulator.rcs().client_email(),
                switchboard_simulator::rcs::TEST_ONLY_OTHER_PRIVATE_KEY_PEM,
                "",
            )
        },
    )
    .await;
    let adapter = wrong.host.runtime.get("rcs").expect("rcs adapter");
    let results = adapter
        .send(&[text("+4915112349005", "auth")])
        .await
        .expect("adapter call");
    seen.push(("auth-failed", class_of(&results[0])));
    seen
}
