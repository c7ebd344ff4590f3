//! One campaign, a route of channels: a recipient without an address or
//! consent on the first channel, or reported unreachable by its platform,
//! is tried on the next.

use switchboard_e2e::Harness;
use switchboard_simulator::SimulatorConfig;

const AUDIENCE: &str = "\
profile_id,name,order_no,phone,consent_kakaotalk_utility,consent_rcs_utility
f1,Minji,A-1,+821012345001,yes,yes
f2,Jisoo,A-2,+821012345002,yes,yes
f3,Hyun,A-3,+821012345003,no,yes
f4,Tom,A-4,+4915112345004,yes,yes
f5,Sora,A-5,+821012345005,no,no
";

const CAMPAIGN: &str = r#"
name = "order-shipped-route"
purpose = "utility"
route = ["kakaotalk", "rcs"]

[message]
text = "Hi {{name}}, order {{order_no}} has shipped."

[templates.kakaotalk]
name = "ORDER_SHIPPED"
parameters = { name = "{{name}}", orderNo = "{{order_no}}" }
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_or_unconsented_recipients_fall_through_to_the_next_channel() {
    let harness = Harness::start(SimulatorConfig::default(), "").await;
    // f2 is not a KakaoTalk user: the dealer answers 3019.
    harness
        .simulator
        .kakaotalk()
        .set_not_kakao_user("+821012345002")
        .unwrap();
    let audience = harness.write("audience.csv", AUDIENCE);
    let campaign = harness.write("campaign.toml", CAMPAIGN);

    let report = harness.send(&campaign, &audience).await.unwrap();
    let outcome = |id: &str| {
        let line = report
            .lines
            .iter()
            .find(|l| l.profile_id.as_deref() == Some(id))
            .unwrap();
        (
            line.outcome.clone(),
            line.channel.clone().unwrap_or_default(),
            line.content.clone(),
        )
    };
    assert_eq!(
        outcome("f1"),
        ("sent".into(), "kakaotalk".into(), Some("template".into())),
        "{}",
        report.summary()
    );
    assert_eq!(
        outcome("f2"),
        ("sent".into(), "rcs".into(), Some("text".into())),
        "3019 on KakaoTalk, then RCS"
    );
    assert_eq!(
        outcome("f3"),
        ("sent".into(), "rcs".into(), Some("text".into())),
        "no KakaoTalk consent, then RCS"
    );
    assert_eq!(
        outcome("f4"),
        ("sent".into(), "rcs".into(), Some("text".into())),
        "not a Korean number, then RCS"
    );
    let f5 = report
        .lines
        .iter()
        .find(|l| l.profile_id.as_deref() == Some("f5"))
        .unwrap();
    assert_eq!(
        (f5.outcome.as_str(), f5.reason.as_deref()),
        ("skipped", Some("no_consent"))
    );

    let kakao: Vec<String> = harness
        .simulator
        .kakaotalk()
        .messages()
        .into_iter()
        .map(|m| m.recipient_no)
        .collect();
    assert_eq!(kakao, ["01012345001"], "only f1 got an AlimTalk");
    let rcs = harness.simulator.rcs().messages();
    assert_eq!(rcs.len(), 3, "f2, f3 and f4 got an RCS message");

    // Re-running sends nothing new on either channel.
    let rerun = harness.send(&campaign, &audience).await.unwrap();
    assert_eq!(rerun.count("sent"), 0, "{}", rerun.summary());
    assert_eq!(harness.simulator.rcs().messages().len(), 3);
}
