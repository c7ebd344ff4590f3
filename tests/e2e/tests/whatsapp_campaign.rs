//! End to end against the simulator: real HTTP, real SQLite, real Wasm.

use std::collections::BTreeSet;
use std::time::Duration;

use switchboard_e2e::Harness;
use switchboard_e2e::platforms::whatsapp;
use switchboard_simulator::SimulatorConfig;

const AUDIENCE: &str = "\
profile_id,name,country,phone,consent_whatsapp_marketing
p01,Ana,DE,+4915112340001,yes
p02,Ben,BR,+5511987650002,yes
p03,Chen,DE,01511 2340003,yes
p04,Divya,IN,+919876500004,no
p05,Elif,DE,+4915112340005,
p06,Femi,DE,+49 123,yes
p07,Gabriel,DE,+4915112340007,true
p08,Broken
p09,Hana,DE,+4915112340009,maybe
";

const TEMPLATE_CAMPAIGN: &str = r#"
name = "winback-test"
purpose = "marketing"
route = ["whatsapp"]

[templates.whatsapp]
name = "winback_offer"
language = "en_US"
parameters = ["{{name}}"]
"#;

fn recipients(harness: &Harness) -> BTreeSet<String> {
    harness
        .simulator
        .whatsapp()
        .messages()
        .into_iter()
        .map(|m| m.to)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_template_campaign_reaches_exactly_the_consenting_valid_recipients_once() {
    let harness = Harness::start(SimulatorConfig::default(), "").await;
    let audience = harness.write("audience.csv", AUDIENCE);
    let campaign = harness.write("campaign.toml", TEMPLATE_CAMPAIGN);

    let report = harness.send(&campaign, &audience).await.unwrap();

    let expected: BTreeSet<String> = [
        "4915112340001",
        "5511987650002",
        "4915112340003",
        "4915112340007",
    ]
    .map(String::from)
    .into();
    assert_eq!(recipients(&harness), expected, "{}", report.summary());
    assert_eq!(report.count("sent"), 4);
    let counts = report.counts();
    assert_eq!(
        counts[&("skipped".into(), "no_consent".into())],
        3,
        "p04 no, p05 empty, p09 invalid value: {counts:?}"
    );
    assert_eq!(
        counts[&("skipped".into(), "invalid_address".into())],
        1,
        "{counts:?}"
    );
    assert_eq!(report.count("rejected"), 1, "the truncated row p08");
    let rejected = report
        .lines
        .iter()
        .find(|l| l.outcome == "rejected")
        .unwrap();
    assert_eq!(rejected.line, 9);
    assert!(
        rejected
            .message
            .as_deref()
            .unwrap()
            .contains("audience.csv:9"),
        "{rejected:?}"
    );
    let invalid = report
        .lines
        .iter()
        .find(|l| l.profile_id.as_deref() == Some("p06"))
        .unwrap();
    assert!(
        invalid.message.as_deref().unwrap().contains("phone"),
        "{invalid:?}"
    );
    assert!(
        report
            .row_errors
            .iter()
            .any(|e| e.contains("consent_whatsapp_marketing")),
        "{:?}",
        report.row_errors
    );

    // Every accepted send carries the platform's id, in the results file too.
    let results = std::fs::read_to_string(harness.dir.path().join("results.jsonl")).unwrap();
    assert_eq!(results.lines().count(), 9);
    assert_eq!(
        results.matches("\"platform_message_id\":\"wamid.").count(),
        4
    );

    // A re-run sends nothing new.
    let rerun = harness.send(&campaign, &audience).await.unwrap();
    assert_eq!(rerun.count("sent"), 0, "{}", rerun.summary());
    assert_eq!(rerun.count("already_sent"), 4);
    assert_eq!(harness.simulator.whatsapp().messages().len(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn free_form_outside_the_window_is_refused_by_policy_and_if_forced_by_the_platform() {
    let harness = Harness::start(SimulatorConfig::default(), "").await;
    let audience = harness.write(
        "audience.csv",
        "profile_id,name,phone,consent_whatsapp_service\nq1,Ana,+4915112340011,yes\nq2,Ben,+4915112340012,yes\n",
    );
    let base_url = harness.serve().await;
    assert!(base_url.starts_with("http://127.0.0.1:"));
    // q2 writes in: the simulator posts a signed inbound webhook that opens the window in the host.
    harness
        .simulator
        .whatsapp()
        .deliver_inbound("4915112340012", "hello?")
        .await
        .unwrap();

    let reply = harness.write(
        "reply.toml",
        "name = \"care-reply\"\npurpose = \"service\"\nroute = [\"whatsapp\"]\n[message]\ntext = \"Hi {{name}}, your order is on its way\"\n",
    );
    let report = harness.send(&reply, &audience).await.unwrap();
    let q1 = report
        .lines
        .iter()
        .find(|l| l.profile_id.as_deref() == Some("q1"))
        .unwrap();
    assert_eq!(
        (q1.outcome.as_str(), q1.reason.as_deref()),
        ("skipped", Some("window_closed_no_template")),
        "{q1:?}"
    );
    let q2 = report
        .lines
        .iter()
        .find(|l| l.profile_id.as_deref() == Some("q2"))
        .unwrap();
    assert_eq!(
        (q2.outcome.as_str(), q2.content.as_deref()),
        ("sent", Some("text")),
        "{q2:?}"
    );
    assert_eq!(
        recipients(&harness),
        BTreeSet::from(["4915112340012".to_owned()]),
        "nothing was sent to q1"
    );

    // Forced past the policy, the platform refuses it with 131047.
    let forced = harness.write(
        "forced.toml",
        "name = \"care-forced\"\npurpose = \"service\"\nroute = [\"whatsapp\"]\nwindow = \"ignore\"\n[message]\ntext = \"Hi {{name}}\"\n",
    );
    let report = harness.send(&forced, &audience).await.unwrap();
    let q1 = report
        .lines
        .iter()
        .find(|l| l.profile_id.as_deref() == Some("q1"))
        .unwrap();
    assert_eq!(
        (q1.outcome.as_str(), q1.class.as_deref()),
        ("failed", Some("window_closed")),
        "{q1:?}"
    );
    assert!(q1.message.as_deref().unwrap().contains("131047"), "{q1:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throughput_limit_errors_are_retried_not_lost() {
    let simulator = whatsapp::at_rate(5);
    // The operator lets the host send far faster than the number allows, so
    // it meets 130429 and must back off and retry.
    let harness = Harness::start(
        simulator,
        "messages_per_second = 200\n[dispatch]\nretry_base_ms = 50\nretry_max_ms = 400\n",
    )
    .await;
    let mut csv = String::from("profile_id,name,phone,consent_whatsapp_marketing\n");
    for i in 0..30 {
        csv.push_str(&format!("r{i:02},Ana,+49151123401{i:02},yes\n"));
    }
    let audience = harness.write("audience.csv", &csv);
    let campaign = harness.write("campaign.toml", TEMPLATE_CAMPAIGN);

    let report = tokio::time::timeout(Duration::from_secs(60), harness.send(&campaign, &audience))
        .await
        .expect("the campaign finishes")
        .unwrap();

    let rate_limited = harness.simulator.whatsapp().rate_limited_count();
    assert!(
        rate_limited > 0,
        "the simulator never pushed back, so nothing was tested"
    );
    assert_eq!(report.count("sent"), 30, "{}", report.summary());
    assert_eq!(
        harness.simulator.whatsapp().messages().len(),
        30,
        "each recipient exactly once"
    );
}
