//! One channel never slows another: a hostile adapter in the same
//! campaign's route as WhatsApp — answering "rate-limited, retry after
//! 600 s", burning its CPU budget, sleeping until its call times out —
//! holds only its own lane. WhatsApp's recipients all get their message and
//! the campaign finishes. (How much WhatsApp's throughput keeps is measured
//! by `cargo bench -p switchboard-e2e --bench delivery`.)

use switchboard_e2e::Harness;
use switchboard_e2e::platforms::whatsapp;
use switchboard_store::SendQuery;

const CAMPAIGN: &str = r#"
name = "isolation"
purpose = "utility"
route = ["hostile", "whatsapp"]

[message]
text = "Your order {{order}} has shipped"

[templates.whatsapp]
name = "order_update"
language = "en_US"
parameters = ["{{name}}", "{{order}}"]
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_channel_in_the_route_does_not_hold_whatsapp_back() {
    const WHATSAPP: usize = 300;
    const HOSTILE: usize = 15;
    let simulator = whatsapp::unlimited();
    let harness = Harness::start(
        simulator,
        "\n[dispatch]\nmax_attempts = 2\nretry_base_ms = 20\nretry_max_ms = 50\nmax_retry_after_ms = 1000\n\n[sandbox]\ncpu_budget_ms = 200\ncall_timeout_ms = 2000\n",
    )
    .await;
    let mut audience = String::from(
        "profile_id,name,order,phone,hostile_id,consent_whatsapp_utility,consent_hostile_utility\n",
    );
    for i in 0..HOSTILE {
        let how = ["ratelimit", "loop", "sleep"][i % 3];
        audience.push_str(&format!("h{i:03},H{i},A-{i},,{how},,yes\n"));
    }
    for i in 0..WHATSAPP {
        audience.push_str(&format!("w{i:04},W{i},B-{i},+491513{i:07},,yes,\n"));
    }
    let audience = harness.write("audience.csv", &audience);
    let campaign = harness.write("campaign.toml", CAMPAIGN);
    let report = harness.send(&campaign, &audience).await.unwrap();

    let sends = harness
        .host
        .store
        .sends(SendQuery {
            campaign: Some("isolation".into()),
            ..SendQuery::default()
        })
        .await
        .unwrap();
    let on = |channel: &str, state: &str| {
        sends
            .iter()
            .filter(|s| s.channel == channel && s.state == state)
            .count()
    };
    assert_eq!(on("whatsapp", "sent"), WHATSAPP, "{}", report.summary());
    assert_eq!(
        sends
            .iter()
            .filter(|s| s.channel == "whatsapp" && s.state != "sent")
            .count(),
        0,
        "no WhatsApp failures"
    );
    assert_eq!(
        harness.simulator.whatsapp().recipient_counts().len(),
        WHATSAPP
    );
    // The hostile lane's own outcomes: the 600 s retry-after defers (past
    // the cap), the CPU burners and sleepers fail after their attempts.
    assert_eq!(
        on("hostile", "deferred"),
        HOSTILE / 3,
        "{}",
        report.summary()
    );
    assert_eq!(
        on("hostile", "failed"),
        2 * HOSTILE / 3,
        "{}",
        report.summary()
    );
}
