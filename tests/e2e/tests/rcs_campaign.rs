//! Google RCS Business Messaging end to end: the host, the real RBM adapter
//! (Wasm, OAuth with a signed JWT assertion) and the simulated RBM over
//! loopback HTTP, with signed webhooks coming back through the host's server.

use std::collections::BTreeSet;
use std::time::Duration;

use switchboard_contract::model::{Content, OutboundMessage, Purpose};
use switchboard_e2e::Harness;
use switchboard_simulator::{RcsConfig, SimulatorConfig};
use switchboard_store::{ClaimRequest, Enqueued, NewSend, SendQuery, SendRecord, now_ms};

const CAMPAIGN: &str = r#"
name = "rcs-winback"
purpose = "marketing"
route = ["rcs"]

[message]
text = "Hi {{name}}, we miss you: 20% off with BACK20"
"#;

/// Profiles r01–r07 exercise consent and addresses; b00–b24 make the
/// campaign big enough for several adapter batches.
fn audience() -> String {
    let mut csv = String::from(
        "\
profile_id,name,country,phone,consent_rcs_marketing
r01,Ana,DE,+4915112350001,yes
r02,Ben,DE,+4915112350002,yes
r03,Chen,DE,+4915112350003,yes
r04,Divya,DE,+4915112350004,no
r05,Elif,DE,+4915112350005,
r06,Femi,DE,+49 123,yes
r07,Gabriel,DE,01511 2350007,yes
",
    );
    for i in 0..25 {
        csv.push_str(&format!("b{i:02},Bulk,DE,+49151123510{i:02},yes\n"));
    }
    csv
}

/// A harness whose simulator posts RBM webhooks to the host's server.
async fn served(simulator: SimulatorConfig) -> (Harness, String) {
    let harness = Harness::start(simulator, "").await;
    let base = harness.serve().await;
    harness
        .simulator
        .rcs()
        .set_webhook_url(Some(&format!("{base}/webhooks/rcs")))
        .expect("webhook url");
    (harness, base)
}

async fn sends(harness: &Harness, campaign: &str) -> Vec<SendRecord> {
    harness
        .host
        .store
        .sends(SendQuery {
            campaign: Some(campaign.to_owned()),
            ..SendQuery::default()
        })
        .await
        .expect("sends")
}

/// Waits until `done` holds for the campaign's sends (or 15 s pass).
async fn wait_for_sends(
    harness: &Harness,
    campaign: &str,
    done: impl Fn(&[SendRecord]) -> bool,
) -> Vec<SendRecord> {
    for _ in 0..300 {
        let current = sends(harness, campaign).await;
        if done(&current) {
            return current;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    sends(harness, campaign).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_campaign_reaches_the_consenting_rcs_numbers_once_and_statuses_come_back() {
    let (harness, _base) = served(SimulatorConfig::default()).await;
    let rcs = harness.simulator.rcs();
    // RBM performs the setup handshake against the host's webhook.
    rcs.verify_webhook()
        .await
        .expect("handshake through the host");
    rcs.set_rcs_capable("+4915112350003", false)
        .expect("valid phone");
    // Ben unsubscribes in Google Messages before the campaign.
    rcs.post_subscription("+4915112350002", false)
        .await
        .expect("unsubscribe webhook accepted");

    let audience = harness.write("audience.csv", &audience());
    let campaign = harness.write("campaign.toml", CAMPAIGN);
    let report = harness
        .send(&campaign, &audience)
        .await
        .expect("campaign runs");

    let mut expected: BTreeSet<String> = ["+4915112350001", "+4915112350007"]
        .map(String::from)
        .into();
    expected.extend((0..25).map(|i| format!("+49151123510{i:02}")));
    let delivered: BTreeSet<String> = rcs.messages().into_iter().map(|m| m.phone).collect();
    assert_eq!(delivered, expected, "{}", report.summary());
    assert_eq!(rcs.messages().len(), 27, "each recipient once");
    assert!(
        rcs.messages()
            .iter()
            .all(|m| m.traffic_type.as_deref() == Some("PROMOTION")
                && m.text.starts_with("Hi ")
                && m.text.ends_with("20% off with BACK20")),
        "{:?}",
        rcs.messages()
    );
    assert_eq!(report.count("sent"), 27, "{}", report.summary());
    let counts = report.counts();
    assert_eq!(
        counts[&("skipped".into(), "no_consent".into())],
        2,
        "{counts:?}"
    );
    assert_eq!(
        counts[&("skipped".into(), "opted_out".into())],
        1,
        "{counts:?}"
    );
    assert_eq!(
        counts[&("skipped".into(), "invalid_address".into())],
        1,
        "{counts:?}"
    );

    // The non-RCS number is reported unreachable, with RBM's words.
    let chen = report
        .lines
        .iter()
        .find(|l| l.profile_id.as_deref() == Some("r03"))
        .expect("r03");
    assert_eq!(
        (chen.outcome.as_str(), chen.class.as_deref()),
        ("failed", Some("unreachable")),
        "{chen:?}"
    );
    assert!(
        chen.message
            .as_deref()
            .unwrap_or_default()
            .contains("NOT_FOUND"),
        "{chen:?}"
    );

    // 28 sends (27 accepted, one 404) in several batches shared one token.
    let stats = rcs.stats();
    assert_eq!(stats.token_requests, 1, "{stats:?}");
    assert_eq!(stats.tokens_issued, 1, "{stats:?}");
    assert_eq!(stats.rejected.get(&404), Some(&1), "{stats:?}");

    // DELIVERED then READ come back through the host's webhook server.
    let settled = wait_for_sends(&harness, "rcs-winback", |sends| {
        sends
            .iter()
            .filter(|s| s.state == "sent")
            .all(|s| s.delivery_state.as_deref() == Some("read"))
    })
    .await;
    let read = settled
        .iter()
        .filter(|s| s.delivery_state.as_deref() == Some("read"))
        .count();
    assert_eq!(read, 27, "{settled:?}");
    // The receipt id is RBM's messageId, a UUID derived from the key.
    let first = settled
        .iter()
        .find(|s| s.profile_id == "r01")
        .expect("r01 send");
    let message_id = first.platform_message_id.as_deref().expect("message id");
    assert_eq!(message_id.len(), 36);
    assert_eq!(
        message_id.replace('-', "")[..12],
        first.idempotency_key[..12],
        "the messageId carries the host's key"
    );

    // A re-run sends nothing new, and needs no token.
    let rerun = harness.send(&campaign, &audience).await.expect("re-run");
    assert_eq!(rerun.count("sent"), 0, "{}", rerun.summary());
    assert_eq!(rerun.count("already_sent"), 27, "{}", rerun.summary());
    assert_eq!(rcs.messages().len(), 27);
    assert_eq!(rcs.stats().token_requests, 1);
}

/// The outbox key a campaign run gives a recipient's send on a channel: the
/// stable format of `switchboard_core::campaign::idempotency_key` (the core
/// crate is not a dependency of these tests).
fn run_key(campaign: &str, profile_id: &str, channel: &str, step: u32) -> String {
    use sha2::Digest as _;
    let mut hasher = sha2::Sha256::new();
    for field in [campaign, profile_id, channel] {
        hasher.update(field.as_bytes());
        hasher.update([0x1f]);
    }
    hasher.update(step.to_string().as_bytes());
    hex::encode(hasher.finalize())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_left_in_flight_is_resent_with_the_same_message_id_and_deduplicated() {
    let (harness, _base) = served(SimulatorConfig::default()).await;
    let store = &harness.host.store;
    let rcs = harness.simulator.rcs();
    let adapter = harness.host.runtime.get("rcs").expect("rcs loaded");
    assert!(
        adapter.info.deduplicates,
        "RBM deduplicates on the messageId"
    );
    let audience = harness.write(
        "audience.csv",
        "profile_id,name,phone,consent_rcs_marketing\nd1,Ana,+4915112352001,yes\n",
    );
    let campaign = harness.write("campaign.toml", CAMPAIGN);

    // As if an earlier run had put the send in the outbox, claimed it,
    // written its request and RBM had accepted the message, and then the
    // host had stopped before recording that: the send is left leased, its
    // request written, under a lease that runs out.
    let key = run_key("rcs-winback", "d1", "rcs", 0);
    let message = OutboundMessage {
        idempotency_key: key.clone(),
        to: "+4915112352001".into(),
        purpose: Purpose::Marketing,
        content: Content::Text("Hi Ana, we miss you: 20% off with BACK20".into()),
        ttl_seconds: None,
        attempt: 1,
    };
    let enqueued = store
        .enqueue(
            vec![NewSend {
                message,
                campaign: "rcs-winback".into(),
                profile_id: "d1".into(),
                line: Some(2),
                channel: "rcs".into(),
                step: 0,
                window: None,
                deduplicates: adapter.info.deduplicates,
                due_ms: 0,
                deferred_reason: None,
                deferred_message: None,
                deadline_ms: None,
                fallback: vec![],
            }],
            vec![],
        )
        .await
        .expect("enqueue");
    assert_eq!(enqueued, [Enqueued::Inserted]);
    let claimed = store
        .claim(ClaimRequest {
            channel: "rcs".into(),
            owner: "stopped-host".into(),
            limit: 10,
            now_ms: now_ms(),
            lease_ms: 300,
            campaign: Some("rcs-winback".into()),
        })
        .await
        .expect("claim");
    assert_eq!(claimed.len(), 1);
    let lost = store
        .mark_written("stopped-host", vec![key.clone()])
        .await
        .expect("mark written");
    assert!(lost.is_empty(), "{lost:?}");
    let accepted = adapter
        .send(&[claimed[0].message.clone()])
        .await
        .expect("adapter call");
    let receipt = accepted[0].as_ref().expect("RBM accepted the message");
    assert!(!receipt.duplicate);
    assert_eq!(rcs.messages().len(), 1);
    assert_eq!(sends(&harness, "rcs-winback").await[0].state, "leased");
    tokio::time::sleep(Duration::from_millis(500)).await;

    let rerun = harness.send(&campaign, &audience).await.expect("re-run");
    // RBM is deduplicating: the retry is safe and reports the earlier send.
    assert_eq!(rerun.count("already_sent"), 1, "{}", rerun.summary());
    assert_eq!(rerun.lines.len(), 1, "{:?}", rerun.lines);
    assert_eq!(rerun.lines[0].outcome, "already_sent", "{:?}", rerun.lines);
    assert_eq!(rcs.messages().len(), 1, "nothing new was delivered");
    assert_eq!(rcs.stats().duplicates, 1);
    let sends = sends(&harness, "rcs-winback").await;
    assert_eq!(sends.len(), 1, "the re-run found the same send: {sends:?}");
    assert_eq!(sends[0].idempotency_key, key);
    assert_eq!(sends[0].state, "sent", "{sends:?}");
    assert_eq!(sends[0].attempts, 2, "{sends:?}");
    assert_eq!(
        sends[0].platform_message_id, receipt.platform_message_id,
        "the same messageId"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_not_delivered_before_its_ttl_is_revoked_and_marked_expired() {
    let (harness, _base) = served(SimulatorConfig::default()).await;
    let rcs = harness.simulator.rcs();
    rcs.set_online("+4915112353002", false).expect("phone");
    let audience = harness.write(
        "audience.csv",
        "profile_id,name,phone,consent_rcs_utility\nt1,Ana,+4915112353001,yes\nt2,Ben,+4915112353002,yes\n",
    );
    let campaign = harness.write(
        "campaign.toml",
        "name = \"rcs-otp\"\npurpose = \"utility\"\nroute = [\"rcs\"]\nttl_seconds = 60\n[message]\ntext = \"Your parcel arrives today, {{name}}\"\n",
    );
    let report = harness
        .send(&campaign, &audience)
        .await
        .expect("campaign runs");
    assert_eq!(report.count("sent"), 2, "{}", report.summary());
    let waiting = rcs.messages_to("+4915112353002");
    assert_eq!(waiting.len(), 1);
    assert_eq!(waiting[0].traffic_type.as_deref(), Some("TRANSACTION"));
    assert_eq!(
        waiting[0].expire_at_ms,
        Some(waiting[0].received_at_ms + 60_000),
        "the campaign's TTL was passed on"
    );

    // The shared clock passes the TTL: RBM revokes the message and says so.
    harness.simulator.advance_clock(61);
    let settled = wait_for_sends(&harness, "rcs-otp", |sends| {
        sends
            .iter()
            .any(|s| s.delivery_state.as_deref() == Some("expired"))
            && sends
                .iter()
                .any(|s| s.delivery_state.as_deref() == Some("read"))
    })
    .await;
    let revoked = settled
        .iter()
        .find(|s| s.profile_id == "t2")
        .expect("t2 send");
    assert_eq!(
        revoked.delivery_state.as_deref(),
        Some("expired"),
        "{settled:?}"
    );
    assert!(
        revoked
            .error_message
            .as_deref()
            .unwrap_or_default()
            .contains("TTL_EXPIRATION_REVOKED"),
        "{revoked:?}"
    );
    let online = settled
        .iter()
        .find(|s| s.profile_id == "t1")
        .expect("t1 send");
    assert_eq!(
        online.delivery_state.as_deref(),
        Some("read"),
        "{settled:?}"
    );
    // The simulator counts a webhook once it has read the host's reply,
    // which can come just after the host recorded the event.
    let counted = std::time::Instant::now();
    while rcs.stats().revocations_posted == 0 && counted.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(rcs.stats().revocations_posted, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_token_is_refreshed_once_and_the_sends_go_through() {
    let (harness, _base) = served(SimulatorConfig {
        rcs: RcsConfig {
            send_statuses: false,
            ..RcsConfig::default()
        },
        ..SimulatorConfig::default()
    })
    .await;
    let rcs = harness.simulator.rcs();
    let first = harness.write(
        "first.csv",
        "profile_id,name,phone,consent_rcs_marketing\na1,Ana,+4915112354001,yes\n",
    );
    let campaign = harness.write("campaign.toml", CAMPAIGN);
    assert_eq!(
        harness
            .send(&campaign, &first)
            .await
            .expect("runs")
            .count("sent"),
        1
    );
    assert_eq!(rcs.stats().tokens_issued, 1);

    // Google stops honouring the cached token (revoked, rotated key...).
    rcs.revoke_tokens();
    let second = harness.write(
        "second.csv",
        "profile_id,name,phone,consent_rcs_marketing\na2,Ben,+4915112354002,yes\na3,Chen,+4915112354003,yes\n",
    );
    let report = harness.send(&campaign, &second).await.expect("runs");
    assert_eq!(report.count("sent"), 2, "{}", report.summary());
    let stats = rcs.stats();
    assert_eq!(stats.tokens_issued, 2, "{stats:?}");
    assert!(stats.unauthenticated >= 1, "{stats:?}");
    assert_eq!(rcs.messages().len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_are_verified_and_read() {
    let (harness, base) = served(SimulatorConfig::default()).await;
    let client = reqwest::Client::new();
    let url = format!("{base}/webhooks/rcs");

    // The handshake answers only RBM's client token.
    let response = client
        .post(&url)
        .json(&serde_json::json!({"clientToken": "sim-rcs-client-token", "secret": "s3cr3t"}))
        .send()
        .await
        .expect("handshake");
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.expect("body"), "s3cr3t");
    let response = client
        .post(&url)
        .json(&serde_json::json!({"clientToken": "guess", "secret": "s3cr3t"}))
        .send()
        .await
        .expect("handshake");
    assert_eq!(response.status(), 403);

    // A push signed with another token is refused and changes nothing.
    let data = serde_json::json!({
        "senderPhoneNumber": "+4915112355001",
        "eventType": "UNSUBSCRIBE",
        "eventId": "forged-1",
        "agentId": "sim-agent"
    });
    let (body, signature) =
        switchboard_simulator::rcs::signed_push("not-the-client-token", "sim-agent", &data);
    let response = client
        .post(&url)
        .header("x-goog-signature", signature)
        .header("content-type", "application/json")
        .body(body.clone())
        .send()
        .await
        .expect("forged push");
    assert_eq!(response.status(), 401);
    let response = client
        .post(&url)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("unsigned push");
    assert_eq!(response.status(), 401);
    assert!(
        harness
            .host
            .store
            .consent_history("rcs", "+4915112355001")
            .await
            .expect("history")
            .is_empty()
    );

    // The same event properly signed is recorded as an opt-out.
    let (body, signature) =
        switchboard_simulator::rcs::signed_push("sim-rcs-client-token", "sim-agent", &data);
    let response = client
        .post(&url)
        .header("x-goog-signature", signature)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("signed push");
    assert_eq!(response.status(), 200);
    let history = harness
        .host
        .store
        .consent_history("rcs", "+4915112355001")
        .await
        .expect("history");
    assert_eq!(history.len(), 1, "{history:?}");
    assert!(!history[0].opted_in);
    assert_eq!(history[0].purpose, Some(Purpose::Marketing));

    // An inbound text through the simulator is accepted by the host.
    harness
        .simulator
        .rcs()
        .deliver_inbound("+4915112355002", "When does the sale end?")
        .await
        .expect("inbound accepted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_capability_checks_a_non_rcs_number_is_never_sent_to() {
    let harness = Harness::start_with_section(SimulatorConfig::default(), "rcs", |simulator| {
        switchboard_e2e::platforms::rcs::section(
            simulator,
            simulator.rcs().client_email(),
            simulator.rcs().test_only_private_key_pem(),
            ", check_capability = \"true\", ttl_seconds = \"30\"",
        )
    })
    .await;
    let rcs = harness.simulator.rcs();
    rcs.set_rcs_capable("+4915112356002", false)
        .expect("valid phone");
    let audience = harness.write(
        "audience.csv",
        "profile_id,name,phone,consent_rcs_marketing\nc1,Ana,+4915112356001,yes\nc2,Ben,+4915112356002,yes\n",
    );
    let campaign = harness.write("campaign.toml", CAMPAIGN);
    let report = harness
        .send(&campaign, &audience)
        .await
        .expect("campaign runs");
    assert_eq!(report.count("sent"), 1, "{}", report.summary());
    let ben = report
        .lines
        .iter()
        .find(|l| l.profile_id.as_deref() == Some("c2"))
        .expect("c2");
    assert_eq!(ben.class.as_deref(), Some("unreachable"), "{ben:?}");

    let stats = rcs.stats();
    // One capability check answered 200, one 404, and only one send.
    assert_eq!(stats.capability_checks, 1, "{stats:?}");
    assert_eq!(stats.rejected.get(&404), Some(&1), "{stats:?}");
    assert_eq!(stats.accepted, 1, "{stats:?}");
    // The operator's default TTL applies to messages without one.
    let sent = rcs.messages();
    assert_eq!(sent[0].expire_at_ms, Some(sent[0].received_at_ms + 30_000));
}
