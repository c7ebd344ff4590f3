//! Platform faults against the delivery engine, counted at the simulator:
//! a connection reset after the platform accepted, a platform slower than
//! the call's time budget, a 429 storm. Nobody gets a message twice, and a
//! message is uncertain only when its request really reached the platform.

use std::collections::BTreeMap;
use std::time::Instant;

use switchboard_e2e::Harness;
use switchboard_e2e::platforms::line::user_id;
use switchboard_e2e::platforms::whatsapp;
use switchboard_simulator::{FaultConfig, LineConfig, SimulatorConfig};
use switchboard_store::{SendQuery, SendRecord};

const CAMPAIGN: &str = r#"
name = "faults"
purpose = "marketing"
route = ["whatsapp"]
[templates.whatsapp]
name = "winback_offer"
language = "en_US"
parameters = ["{{name}}"]
"#;

const FAST_RETRIES: &str = "\n[dispatch]\nretry_base_ms = 20\nretry_max_ms = 100\n";

fn audience(count: usize) -> String {
    let mut text = String::from("profile_id,name,phone,consent_whatsapp_marketing\n");
    for i in 0..count {
        text.push_str(&format!("f{i:04},N{i},+491512{i:07},yes\n"));
    }
    text
}

async fn sends(harness: &Harness, campaign: &str) -> Vec<SendRecord> {
    harness
        .host
        .store
        .sends(SendQuery {
            campaign: Some(campaign.into()),
            ..SendQuery::default()
        })
        .await
        .unwrap()
}

fn by_state(sends: &[SendRecord]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for send in sends {
        *counts.entry(send.state.clone()).or_default() += 1;
    }
    counts
}

/// Every uncertain send's recipient must be one the platform accepted.
fn uncertain_only_where_accepted(sends: &[SendRecord], accepted: &BTreeMap<String, u64>) {
    for send in sends.iter().filter(|s| s.state == "uncertain") {
        let id = send.address.trim_start_matches('+');
        assert!(
            accepted.contains_key(id),
            "{} is uncertain though its request never reached the platform: {:?}",
            send.address,
            send.error_message
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_after_the_platform_accepted_is_uncertain_not_resent() {
    const RECIPIENTS: usize = 300;
    let harness = Harness::start(whatsapp::at_rate(0), FAST_RETRIES).await;
    harness
        .simulator
        .set_faults(FaultConfig {
            reset_after_accept_rate: 0.3,
            ..FaultConfig::default()
        })
        .unwrap();
    let audience = harness.write("audience.csv", &audience(RECIPIENTS));
    let campaign = harness.write("campaign.toml", CAMPAIGN);
    let report = harness.send(&campaign, &audience).await.unwrap();

    let accepted = harness.simulator.whatsapp().recipient_counts();
    assert_eq!(
        harness.simulator.duplicates()["whatsapp"],
        0,
        "nobody twice"
    );
    assert_eq!(accepted.len(), RECIPIENTS, "everybody reached");
    let sends = sends(&harness, "faults").await;
    let states = by_state(&sends);
    let resets = harness.simulator.fault_stats().reset_after_accept as usize;
    assert!(resets > 0, "the fault fired");
    assert_eq!(
        states.get("uncertain").copied().unwrap_or(0),
        resets,
        "{states:?}"
    );
    assert_eq!(
        states.get("sent").copied().unwrap_or(0),
        RECIPIENTS - resets
    );
    uncertain_only_where_accepted(&sends, &accepted);
    eprintln!(
        "reset after accepting: {RECIPIENTS} recipients, {resets} resets, {states:?}, accepted {}, duplicates 0",
        accepted.len()
    );
    assert_eq!(
        report.count("uncertain") as usize,
        resets,
        "{}",
        report.summary()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_on_a_deduplicating_platform_is_resent_under_the_same_key() {
    const RECIPIENTS: u32 = 200;
    let config = SimulatorConfig {
        line: LineConfig {
            push_requests_per_second: 0,
            multicast_requests_per_second: 0,
            ..LineConfig::default()
        },
        ..SimulatorConfig::default()
    };
    let harness = Harness::start(config, FAST_RETRIES).await;
    harness
        .simulator
        .set_faults(FaultConfig {
            reset_after_accept_rate: 0.3,
            ..FaultConfig::default()
        })
        .unwrap();
    let mut text = String::from("profile_id,name,line_id,consent_line_marketing\n");
    for i in 0..RECIPIENTS {
        text.push_str(&format!("l{i:04},N{i},{},yes\n", user_id(i + 1)));
    }
    let audience = harness.write("audience.csv", &text);
    let campaign = harness.write(
        "campaign.toml",
        "name = \"faults-line\"\npurpose = \"marketing\"\nroute = [\"line\"]\n[message]\ntext = \"Hi {{name}}\"\n",
    );
    harness.send(&campaign, &audience).await.unwrap();
    assert!(harness.simulator.fault_stats().reset_after_accept > 0);
    assert_eq!(harness.simulator.duplicates()["line"], 0);
    assert_eq!(
        harness.simulator.line().recipient_counts().len(),
        RECIPIENTS as usize
    );
    let states = by_state(&sends(&harness, "faults-line").await);
    assert_eq!(
        states.get("sent").copied(),
        Some(RECIPIENTS as usize),
        "{states:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_platform_leaves_no_never_sent_message_uncertain() {
    const RECIPIENTS: usize = 40;
    // Each reply takes 700 ms; a call may take 4 s: a batch of 50 cannot
    // finish in one call. What the call reached is kept, the message whose
    // request was in flight is uncertain, the rest go in the next call.
    let harness = Harness::start(
        whatsapp::at_rate(0),
        &format!("{FAST_RETRIES}\n[sandbox]\ncall_timeout_ms = 4000\n"),
    )
    .await;
    harness
        .simulator
        .set_faults(FaultConfig {
            slow_response_ms: 700,
            ..FaultConfig::default()
        })
        .unwrap();
    let audience = harness.write("audience.csv", &audience(RECIPIENTS));
    let campaign = harness.write("campaign.toml", CAMPAIGN);
    harness.send(&campaign, &audience).await.unwrap();
    let accepted = harness.simulator.whatsapp().recipient_counts();
    assert_eq!(harness.simulator.duplicates()["whatsapp"], 0);
    let sends = sends(&harness, "faults").await;
    let states = by_state(&sends);
    assert_eq!(
        states.get("sent").copied().unwrap_or(0) + states.get("uncertain").copied().unwrap_or(0),
        RECIPIENTS,
        "{states:?}"
    );
    assert!(
        states.get("sent").copied().unwrap_or(0) > RECIPIENTS / 2,
        "{states:?}"
    );
    uncertain_only_where_accepted(&sends, &accepted);
    eprintln!(
        "slow platform (700 ms a reply, 4 s calls): {RECIPIENTS} recipients, {states:?}, accepted {}, duplicates 0",
        accepted.len()
    );
    // Sends that went out carry their platform ids (nothing reached was dropped).
    for send in sends.iter().filter(|s| s.state == "sent") {
        assert!(send.platform_message_id.is_some(), "{send:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_storm_slows_the_channel_down_and_delivers_everyone_once() {
    const RECIPIENTS: usize = 500;
    // The platform takes 100 a second; the host is told 1,000.
    let harness = Harness::start(
        whatsapp::at_rate(100),
        &format!("messages_per_second = 1000\n{FAST_RETRIES}"),
    )
    .await;
    let audience = harness.write("audience.csv", &audience(RECIPIENTS));
    let campaign = harness.write("campaign.toml", CAMPAIGN);
    let started = Instant::now();
    harness.send(&campaign, &audience).await.unwrap();
    let elapsed = started.elapsed();
    let stats = harness.simulator.whatsapp().stats();
    assert_eq!(harness.simulator.duplicates()["whatsapp"], 0);
    assert_eq!(
        harness.simulator.whatsapp().recipient_counts().len(),
        RECIPIENTS
    );
    eprintln!(
        "429 storm: {RECIPIENTS} messages in {:.2} s ({:.0}/s against a limit of 100/s), {} refusals",
        elapsed.as_secs_f64(),
        RECIPIENTS as f64 / elapsed.as_secs_f64(),
        stats.rate_limited
    );
    // A bucket that pauses but never slows down gets refused again and
    // again; one that adapts is refused less often than it sends.
    assert!(
        (stats.rate_limited as usize) < RECIPIENTS,
        "{} refusals for {RECIPIENTS} messages",
        stats.rate_limited
    );
}
