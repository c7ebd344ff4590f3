//! KakaoTalk end to end against the simulator: real HTTP, real SQLite,
//! real Wasm.

use std::collections::BTreeSet;
use std::time::Duration;

use switchboard_contract::model::SendError;
use switchboard_e2e::Harness;
use switchboard_e2e::platforms::kakaotalk::{
    alimtalk, brand_message, serve_webhooks, set_korean_time,
};
use switchboard_simulator::SimulatorConfig;
use switchboard_simulator::kakaotalk::{MessageKind, codes};
use switchboard_store::SendQuery;

const UTILITY_AUDIENCE: &str = "\
profile_id,name,order_no,country,phone,consent_kakaotalk_utility
k01,Minji,A-1001,KR,+821012340001,yes
k02,Jisoo,A-1002,KR,010-1234-0002,yes
k03,Hyun,A-1003,KR,+821012340003,no
k04,Sora,A-1004,KR,+821012340004,
k05,Tom,A-1005,DE,+4915112340005,yes
k06,Yuna,A-1006,KR,+821012340006,yes
k07,Dami,A-1007,KR,+821012340007,yes
k08,Broken
";

const ORDER_SHIPPED: &str = r#"
name = "order-shipped"
purpose = "utility"
route = ["kakaotalk"]

[templates.kakaotalk]
name = "ORDER_SHIPPED"
parameters = { name = "{{name}}", orderNo = "{{order_no}}" }
"#;

fn line<'a>(
    report: &'a switchboard_e2e::Finished,
    profile: &str,
) -> &'a switchboard_delivery::ResultLine {
    report
        .lines
        .iter()
        .find(|l| l.profile_id.as_deref() == Some(profile))
        .unwrap_or_else(|| panic!("no result line for {profile}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alimtalk_campaign_reaches_the_consenting_korean_numbers_in_one_request() {
    let harness = Harness::start(SimulatorConfig::default(), "").await;
    let base = harness.serve().await;
    serve_webhooks(&harness.simulator, &base);
    let kakao = harness.simulator.kakaotalk();
    kakao.set_not_kakao_user("+821012340006").unwrap();
    kakao
        .set_delivery_failure("+821012340007", codes::CANNOT_SEND)
        .unwrap();
    let audience = harness.write("audience.csv", UTILITY_AUDIENCE);
    let campaign = harness.write("campaign.toml", ORDER_SHIPPED);

    let report = harness.send(&campaign, &audience).await.unwrap();

    // One AlimTalk request carried every Korean number with consent.
    let requests = kakao.requests();
    assert_eq!(requests.len(), 1, "{requests:?}\n{}", report.summary());
    assert_eq!(requests[0].kind, MessageKind::AlimTalk);
    assert_eq!(requests[0].template_code.as_deref(), Some("ORDER_SHIPPED"));
    assert_eq!((requests[0].recipients, requests[0].accepted), (4, 3));
    assert!(requests[0].idempotency_key.is_some());
    let delivered: BTreeSet<String> = kakao
        .messages()
        .into_iter()
        .map(|m| m.recipient_no)
        .collect();
    assert_eq!(
        delivered,
        BTreeSet::from(["01012340001", "01012340002", "01012340007"].map(String::from))
    );
    let minji = &kakao.messages_to("+821012340001").unwrap()[0];
    assert_eq!(
        minji.content,
        "Minji님, 주문하신 상품이 발송되었습니다.\n주문번호: A-1001"
    );
    assert_eq!(minji.parameters["orderNo"], "A-1001");

    assert_eq!(report.count("sent"), 3, "{}", report.summary());
    let counts = report.counts();
    assert_eq!(
        counts[&("skipped".into(), "no_consent".into())],
        2,
        "{counts:?}"
    );
    assert_eq!(
        counts.get(&("failed".into(), "unreachable".into())),
        Some(&2),
        "k05 not Korean, k06 not a KakaoTalk user: {counts:?}\n{:#?}",
        report.lines
    );
    assert_eq!(report.count("rejected"), 1, "the truncated row k08");
    let foreign = line(&report, "k05");
    assert!(
        foreign
            .message
            .as_deref()
            .unwrap()
            .contains("is not a Korean number"),
        "{foreign:?}"
    );
    let not_kakao = line(&report, "k06");
    assert_eq!(not_kakao.class.as_deref(), Some("unreachable"));
    assert!(
        not_kakao.message.as_deref().unwrap().contains("(3019)"),
        "{not_kakao:?}"
    );
    let sent = line(&report, "k01");
    let id = sent.platform_message_id.as_deref().unwrap();
    assert_eq!(id, minji.platform_message_id());

    // The result webhooks come back through the host.
    assert!(kakao.wait_for_webhooks(Duration::from_secs(20)).await);
    assert_eq!(kakao.stats().results_posted, 3);
    let sends = harness
        .host
        .store
        .sends(SendQuery {
            campaign: Some("order-shipped".into()),
            ..SendQuery::default()
        })
        .await
        .unwrap();
    let state_of = |profile: &str| {
        sends
            .iter()
            .find(|s| s.profile_id == profile)
            .unwrap_or_else(|| panic!("no send for {profile}"))
            .clone()
    };
    assert_eq!(state_of("k01").delivery_state.as_deref(), Some("delivered"));
    assert_eq!(state_of("k02").delivery_state.as_deref(), Some("delivered"));
    let dami = state_of("k07");
    assert_eq!(dami.delivery_state.as_deref(), Some("failed"), "{dami:?}");
    assert!(
        dami.error_message
            .as_deref()
            .unwrap_or_default()
            .contains("(3018)"),
        "{dami:?}"
    );

    // A re-run sends nothing new.
    let rerun = harness.send(&campaign, &audience).await.unwrap();
    assert_eq!(rerun.count("sent"), 0, "{}", rerun.summary());
    assert_eq!(rerun.count("already_sent"), 3, "{}", rerun.summary());
    assert_eq!(kakao.requests().len(), 1);
    assert_eq!(kakao.messages().len(), 3);
}

/// Whether `at` falls in the dealer's 20:50–08:00 ban in Seoul.
fn korean_quiet_hours(at: jiff::Timestamp) -> bool {
    let seoul = jiff::tz::TimeZone::get("Asia/Seoul").expect("Asia/Seoul");
    let local = at.to_zoned(seoul);
    let minute = i32::from(local.hour()) * 60 + i32::from(local.minute());
    !(8 * 60..20 * 60 + 50).contains(&minute)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_marketing_campaign_follows_the_korean_night_ban() {
    let harness = Harness::start(SimulatorConfig::default(), "").await;
    let audience = harness.write(
        "audience.csv",
        "profile_id,name,phone,consent_kakaotalk_marketing\nm1,Minji,+821012340101,yes\nm2,Jisoo,+821012340102,yes\nm3,Hyun,+821012340103,no\n",
    );
    let campaign = harness.write(
        "campaign.toml",
        "name = \"weekend-sale\"\npurpose = \"marketing\"\nroute = [\"kakaotalk\"]\n[message]\ntext = \"{{name}}님, 이번 주말 20% 할인\"\n",
    );

    // The host's policy reads the real clock, so the expected outcome
    // depends on the time in Seoul when the test runs.
    let quiet_before = korean_quiet_hours(jiff::Timestamp::now());
    let report = harness.send(&campaign, &audience).await.unwrap();
    let quiet_after = korean_quiet_hours(jiff::Timestamp::now());
    let brand: Vec<_> = harness
        .simulator
        .kakaotalk()
        .messages()
        .into_iter()
        .filter(|m| m.kind == MessageKind::BrandMessage)
        .collect();
    assert_eq!(line(&report, "m3").reason.as_deref(), Some("no_consent"));
    match (quiet_before, quiet_after) {
        (true, true) => {
            assert_eq!(report.count("deferred"), 2, "{}", report.summary());
            for profile in ["m1", "m2"] {
                let deferred = line(&report, profile);
                assert_eq!(deferred.reason.as_deref(), Some("quiet_hours"));
                let message = deferred.message.as_deref().unwrap();
                assert!(message.contains("정보통신망법 §50(3)"), "{message}");
                assert!(message.contains("until"), "{message}");
            }
            assert!(brand.is_empty(), "nothing is sent at night: {brand:?}");
        }
        (false, false) => {
            assert_eq!(report.count("sent"), 2, "{}", report.summary());
            assert_eq!(brand.len(), 2);
            let contents: BTreeSet<&str> = brand.iter().map(|m| m.content.as_str()).collect();
            assert_eq!(
                contents,
                BTreeSet::from([
                    "(광고) Minji님, 이번 주말 20% 할인",
                    "(광고) Jisoo님, 이번 주말 20% 할인"
                ])
            );
            assert!(brand.iter().all(|m| m.targeting.as_deref() == Some("I")));
        }
        // The run straddled 20:50 or 08:00 in Seoul.
        _ => assert_eq!(
            report.count("sent") + report.count("deferred"),
            2,
            "{}",
            report.summary()
        ),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_platforms_night_ban_defers_brand_messages_until_morning_and_alimtalk_goes_on() {
    let harness = Harness::start(SimulatorConfig::default(), "").await;
    let adapter = harness.host.runtime.get("kakaotalk").unwrap();
    let kakao = harness.simulator.kakaotalk();

    set_korean_time(&harness.simulator, 23, 30);
    let results = adapter
        .send(&[
            brand_message("+821012340201", "오늘 밤만 특가"),
            alimtalk("+821012340202", "ORDER_SHIPPED"),
        ])
        .await
        .unwrap();
    match &results[0] {
        Err(SendError::Deferred(deferral)) => {
            assert_eq!(deferral.failure.code, "3022");
            // Until 08:00 in Seoul by the adapter's (real) clock.
            let wait = deferral
                .until_ms
                .saturating_sub(jiff::Timestamp::now().as_millisecond() as u64);
            let seoul = jiff::tz::TimeZone::get("Asia/Seoul").unwrap();
            let now = jiff::Timestamp::now().to_zoned(seoul);
            let eight = now
                .date()
                .at(8, 0, 0, 0)
                .to_zoned(now.time_zone().clone())
                .unwrap();
            let eight = if eight.timestamp() > now.timestamp() {
                eight
            } else {
                eight.tomorrow().unwrap()
            };
            let expected =
                (eight.timestamp().as_millisecond() - now.timestamp().as_millisecond()) as u64;
            assert!(wait.abs_diff(expected) < 10_000, "{wait} vs {expected}");
        }
        other => panic!("expected a deferral, got {other:?}"),
    }
    assert!(
        results[1].is_ok(),
        "AlimTalk is not restricted: {:?}",
        results[1]
    );
    assert_eq!(kakao.rejected_count(codes::NIGHT_BAN), 1);

    // In the daytime the same message goes out, labelled as an ad, once.
    set_korean_time(&harness.simulator, 14, 0);
    let message = brand_message("+821012340201", "오늘 밤만 특가");
    let first = adapter.send(std::slice::from_ref(&message)).await.unwrap();
    let receipt = first[0].as_ref().expect("accepted in the daytime");
    assert!(!receipt.duplicate);
    let sent = kakao.messages_to("+821012340201").unwrap();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].content, "(광고) 오늘 밤만 특가");
    assert_eq!(
        receipt.platform_message_id,
        Some(sent[0].platform_message_id())
    );
    // A retry of the same request within 10 minutes is recognised.
    let again = adapter.send(&[message]).await.unwrap();
    assert!(again[0].as_ref().is_ok_and(|r| r.duplicate), "{again:?}");
    assert_eq!(kakao.messages_to("+821012340201").unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn platform_failures_are_retried_and_each_recipient_gets_one_message() {
    let harness = Harness::start(
        SimulatorConfig::default(),
        "\n[dispatch]\nretry_base_ms = 20\nretry_max_ms = 100\n",
    )
    .await;
    let kakao = harness.simulator.kakaotalk();
    kakao.fail_next_requests(2);
    let mut csv = String::from("profile_id,name,order_no,phone,consent_kakaotalk_utility\n");
    for i in 0..5 {
        csv.push_str(&format!("r{i},Minji,A-{i},+8210123403{i:02},yes\n"));
    }
    let audience = harness.write("audience.csv", &csv);
    let campaign = harness.write("campaign.toml", ORDER_SHIPPED);

    let report = tokio::time::timeout(Duration::from_secs(60), harness.send(&campaign, &audience))
        .await
        .expect("the campaign finishes")
        .unwrap();

    assert_eq!(report.count("sent"), 5, "{}", report.summary());
    assert_eq!(
        kakao.rejected_count(codes::SYSTEM_ERROR),
        2,
        "both faults were met"
    );
    let recipients: Vec<String> = kakao
        .messages()
        .into_iter()
        .map(|m| m.recipient_no)
        .collect();
    let distinct: BTreeSet<&String> = recipients.iter().collect();
    assert_eq!(
        recipients.len(),
        5,
        "each recipient exactly once: {recipients:?}"
    );
    assert_eq!(distinct.len(), 5);
}
