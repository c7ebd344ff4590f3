//! The contract suite: every adapter in `switchboard_e2e::platforms::all()`
//! goes through the same checks against the simulator. A new adapter added
//! to that list gets the suite for free.
//!
//! - `describe` is sane and agrees with the manifest (the host refuses to
//!   load it otherwise; checked here field by field too);
//! - every outcome class the platform can produce is reachable;
//! - a forged webhook is rejected and records nothing;
//! - the verification handshake answers as the platform expects.

use std::collections::BTreeSet;

use switchboard_contract::model::FreeFormRule;
use switchboard_e2e::Harness;
use switchboard_e2e::platforms::{self, Platform};
use switchboard_simulator::SimulatorConfig;
use switchboard_store::SendQuery;

async fn harness() -> Harness {
    Harness::start(SimulatorConfig::default(), "").await
}

fn check_describe(harness: &Harness, platform: &Platform) {
    let adapter = harness
        .host
        .runtime
        .get(platform.channel)
        .unwrap_or_else(|| panic!("{} is loaded", platform.channel));
    let info = &adapter.info;
    let manifest = &adapter.manifest;
    assert_eq!(info.name, platform.channel);
    assert!(!info.display_name.is_empty());
    assert!(
        info.limits.max_text_length > 0,
        "{}: max text length",
        info.name
    );
    assert!(info.limits.max_batch_size >= 1, "{}: batch size", info.name);
    assert!(info.limits.messages_per_second >= 1, "{}: rate", info.name);
    assert!(
        !info.egress_hosts.is_empty(),
        "{}: declares where it connects",
        info.name
    );
    for host in &info.egress_hosts {
        assert!(
            manifest.egress.hosts.contains(host),
            "{}: {host} in manifest",
            info.name
        );
        assert!(
            !host.contains('/') && !host.contains(':'),
            "{}: bare host name {host}",
            info.name
        );
    }
    for secret in &info.secrets {
        assert!(
            manifest.config.secrets.contains(secret),
            "{}: secret {secret} in manifest",
            info.name
        );
    }
    if let FreeFormRule::WithinWindow(rules) = &info.free_form {
        assert!(!rules.is_empty(), "{}: window rules", info.name);
        for rule in rules {
            assert!(
                rule.duration_seconds > 0 && !rule.opened_by.is_empty(),
                "{}: window rule",
                info.name
            );
        }
        assert!(
            !info.template_purposes.is_empty(),
            "{}: outside the window it needs templates",
            info.name
        );
    }
    for quiet in &info.quiet_hours {
        assert!(
            quiet.start_minute < 1440 && quiet.end_minute <= 1440,
            "{}: quiet hours",
            info.name
        );
        assert!(
            jiff::tz::TimeZone::get(&quiet.time_zone).is_ok(),
            "{}: zone {}",
            info.name,
            quiet.time_zone
        );
        assert!(
            !quiet.purposes.is_empty() && !quiet.reason.is_empty(),
            "{}: quiet hours say what and why",
            info.name
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_adapter_describes_itself_sanely() {
    let harness = harness().await;
    for platform in platforms::all() {
        check_describe(&harness, &platform);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_outcome_class_is_reachable_against_the_simulator() {
    for platform in platforms::all() {
        let harness = harness().await;
        let observed = (platform.outcome_classes)(&harness).await;
        assert!(
            !observed.is_empty(),
            "{}: no outcome cases",
            platform.channel
        );
        let mut expected_classes = BTreeSet::new();
        for (expected, seen) in &observed {
            assert_eq!(
                expected, seen,
                "{}: the case for `{expected}` produced `{seen}`",
                platform.channel
            );
            expected_classes.insert(*expected);
        }
        for required in ["receipt", "transient", "auth-failed", "rate-limited"] {
            assert!(
                expected_classes.contains(required),
                "{}: no case reaches `{required}`",
                platform.channel
            );
        }
        assert!(
            expected_classes.contains("permanent") || expected_classes.contains("invalid-content"),
            "{}: no case reaches a permanent failure",
            platform.channel
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_webhooks_are_rejected_and_handshakes_answered() {
    for platform in platforms::all() {
        let harness = harness().await;
        let base = harness.serve().await;
        let before = harness
            .host
            .store
            .sends(SendQuery::default())
            .await
            .unwrap()
            .len();
        let response = (platform.forged_webhook)(&harness, &base)
            .send()
            .await
            .unwrap();
        assert!(
            response.status().is_client_error(),
            "{}: forged webhook answered {}",
            platform.channel,
            response.status()
        );
        assert_eq!(
            harness
                .host
                .store
                .sends(SendQuery::default())
                .await
                .unwrap()
                .len(),
            before
        );
        if let Some(handshake) = platform.handshake {
            let (request, expected) = handshake(&harness, &base);
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), 200, "{}: handshake", platform.channel);
            assert_eq!(
                response.text().await.unwrap(),
                expected,
                "{}: handshake body",
                platform.channel
            );
        }
    }
}
