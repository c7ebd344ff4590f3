//! LINE end to end against the simulator: real HTTP, real SQLite, real Wasm.
//!
//! Personalised texts go by push, identical ones by multicast; a re-run
//! sends nothing new; a lost reply is retried under the same
//! `X-Line-Retry-Key` and delivered once; webhooks through the host's
//! server update consent.

use std::collections::BTreeSet;
use std::time::Duration;

use switchboard_e2e::Harness;
use switchboard_e2e::platforms::line::user_id;
use switchboard_simulator::SimulatorConfig;
use switchboard_simulator::line::{FailMode, LineEndpoint, LineMessage, line_signature};

/// Retry quickly so that the tests wait milliseconds, not seconds.
const FAST_RETRIES: &str = "[dispatch]\nretry_base_ms = 20\nretry_max_ms = 100\n";

fn audience() -> String {
    format!(
        "profile_id,name,line_id,consent_line_marketing\n\
         l01,Ana,{},yes\n\
         l02,Ben,{},yes\n\
         l03,Chen,{},no\n\
         l04,Dee,,yes\n\
         l05,Eve,{},\n\
         l06,Fay,{},true\n\
         l07,Gus,not-a-line-id,yes\n",
        user_id(1),
        user_id(2),
        user_id(3),
        user_id(5),
        user_id(6),
    )
}

fn campaign(name: &str, text: &str) -> String {
    format!(
        "name = \"{name}\"\npurpose = \"marketing\"\nroute = [\"line\"]\n[message]\ntext = \"{text}\"\n"
    )
}

fn recipients(messages: &[LineMessage]) -> BTreeSet<String> {
    messages.iter().map(|m| m.to.clone()).collect()
}

fn consenting() -> BTreeSet<String> {
    [user_id(1), user_id(2), user_id(6)].into()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn personalised_texts_go_by_push_to_exactly_the_consenting_users_once() {
    let harness = Harness::start(SimulatorConfig::default(), "").await;
    let audience = harness.write("audience.csv", &audience());
    let campaign = harness.write(
        "campaign.toml",
        &campaign("line-hello", "Hi {{name}}, 20% off today"),
    );

    let report = harness.send(&campaign, &audience).await.unwrap();

    let line = harness.simulator.line();
    let messages = line.messages();
    assert_eq!(recipients(&messages), consenting(), "{}", report.summary());
    assert_eq!(messages.len(), 3, "each once");
    assert!(
        messages.iter().all(|m| m.endpoint == LineEndpoint::Push),
        "unique texts go by push: {messages:?}"
    );
    let ana = line.messages_to(&user_id(1));
    assert_eq!(ana[0].text, "Hi Ana, 20% off today");
    assert!(
        ana[0]
            .retry_key
            .as_deref()
            .is_some_and(|k| k.len() == 36 && k.chars().nth(14) == Some('4')),
        "{ana:?}"
    );
    assert_eq!(report.count("sent"), 3, "{}", report.summary());
    let counts = report.counts();
    assert_eq!(
        counts[&("skipped".into(), "no_consent".into())],
        2,
        "l03 no, l05 empty: {counts:?}"
    );
    assert_eq!(
        counts[&("skipped".into(), "no_address".into())],
        1,
        "{counts:?}"
    );
    let gus = report
        .lines
        .iter()
        .find(|l| l.profile_id.as_deref() == Some("l07"))
        .unwrap_or_else(|| panic!("no line for l07: {:#?}\n{}", report.lines, report.summary()));
    assert_eq!(
        (gus.outcome.as_str(), gus.class.as_deref()),
        ("failed", Some("unreachable")),
        "{gus:?}"
    );
    assert!(
        gus.message
            .as_deref()
            .unwrap()
            .contains("`not-a-line-id` is not a LINE user id"),
        "{gus:?}"
    );
    // A push's receipt is LINE's sentMessages id.
    let sent = report.line_of("l01");
    assert_eq!(
        sent.platform_message_id.as_deref(),
        Some(ana[0].id.as_str()),
        "{sent:?}"
    );

    let rerun = harness.send(&campaign, &audience).await.unwrap();
    assert_eq!(rerun.count("sent"), 0, "{}", rerun.summary());
    assert_eq!(rerun.count("already_sent"), 3, "{}", rerun.summary());
    assert_eq!(line.messages().len(), 3, "nothing new reached LINE");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_identical_text_goes_by_one_multicast() {
    let harness = Harness::start(SimulatorConfig::default(), "").await;
    let audience = harness.write("audience.csv", &audience());
    let campaign = harness.write(
        "campaign.toml",
        &campaign("line-flash", "Flash sale: 20% off today only"),
    );

    let report = harness.send(&campaign, &audience).await.unwrap();

    let line = harness.simulator.line();
    let multicasts: Vec<_> = line
        .requests()
        .into_iter()
        .filter(|r| r.endpoint == LineEndpoint::Multicast)
        .collect();
    assert_eq!(multicasts.len(), 1, "{multicasts:?}");
    assert_eq!(multicasts[0].status, 200);
    assert_eq!(
        multicasts[0]
            .recipients
            .iter()
            .cloned()
            .collect::<BTreeSet<_>>(),
        consenting(),
        "one request carried every consenting user (and not the malformed id)"
    );
    let messages = line.messages();
    assert_eq!(messages.len(), 3);
    assert!(
        messages
            .iter()
            .all(|m| m.endpoint == LineEndpoint::Multicast)
    );
    assert!(
        line.requests()
            .iter()
            .all(|r| r.endpoint == LineEndpoint::Multicast)
    );
    assert_eq!(report.count("sent"), 3, "{}", report.summary());
    // LINE has no per-message id for a multicast: every receipt is the request id.
    let ids: BTreeSet<_> = report
        .lines
        .iter()
        .filter(|l| l.outcome == "sent")
        .map(|l| l.platform_message_id.clone().unwrap())
        .collect();
    assert_eq!(
        ids,
        BTreeSet::from([multicasts[0].request_id.clone()]),
        "{report:?}"
    );

    let rerun = harness.send(&campaign, &audience).await.unwrap();
    assert_eq!(rerun.count("sent"), 0, "{}", rerun.summary());
    assert_eq!(line.messages().len(), 3, "nothing new reached LINE");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_push_is_retried_with_the_same_retry_key_and_delivered_once() {
    let harness = Harness::start(SimulatorConfig::default(), FAST_RETRIES).await;
    let line = harness.simulator.line();
    let audience = harness.write(
        "audience.csv",
        &format!(
            "profile_id,name,line_id,consent_line_marketing\nr1,Ana,{},yes\nr2,Ben,{},yes\n",
            user_id(1),
            user_id(2)
        ),
    );
    // The first send request fails before LINE accepts it; the next is
    // accepted but its reply is lost (a 500 after acceptance).
    let campaign = harness.write("campaign.toml", &campaign("line-retry", "Hi {{name}}"));
    line.fail_next(1, FailMode::BeforeAccept);
    line.fail_next(1, FailMode::AfterAccept);

    let report = tokio::time::timeout(Duration::from_secs(60), harness.send(&campaign, &audience))
        .await
        .expect("the campaign finishes")
        .unwrap();

    assert_eq!(line.pending_failures(), 0, "both faults were used");
    let requests = line.requests();
    for user in [user_id(1), user_id(2)] {
        assert_eq!(line.messages_to(&user).len(), 1, "{user} got it once");
        let attempts: Vec<_> = requests
            .iter()
            .filter(|r| r.recipients == vec![user.clone()])
            .collect();
        let keys: BTreeSet<_> = attempts.iter().map(|r| r.retry_key.clone()).collect();
        assert_eq!(keys.len(), 1, "every attempt reused the key: {attempts:?}");
        assert!(keys.iter().all(Option::is_some), "{attempts:?}");
    }
    // The host may send the two in one call or in two, so which request
    // meets which fault varies; what LINE saw does not.
    let mut statuses: Vec<u16> = requests.iter().map(|r| r.status).collect();
    statuses.sort_unstable();
    assert_eq!(statuses, vec![200, 409, 500, 500], "{requests:?}");
    // The request LINE never accepted is sent on the retry; the one whose
    // reply was lost is recognised (409) and settles as already sent.
    assert_eq!(
        report.count("sent") + report.count("already_sent"),
        2,
        "{}",
        report.summary()
    );
    assert_eq!(report.count("already_sent"), 1, "{}", report.summary());
    assert_eq!(line.stats().duplicates, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_multicast_whose_reply_is_lost_is_resent_whole_under_its_key() {
    let harness = Harness::start(SimulatorConfig::default(), FAST_RETRIES).await;
    let line = harness.simulator.line();
    let mut csv = String::from("profile_id,name,line_id,consent_line_marketing\n");
    for i in 1..=12 {
        csv.push_str(&format!("m{i:02},Ana,{},yes\n", user_id(100 + i)));
    }
    let audience = harness.write("audience.csv", &csv);
    let campaign = harness.write("campaign.toml", &campaign("line-lost", "Same for all"));
    line.fail_next(1, FailMode::AfterAccept);

    let report = tokio::time::timeout(Duration::from_secs(60), harness.send(&campaign, &audience))
        .await
        .expect("the campaign finishes")
        .unwrap();

    // The host retries each message on its own jittered schedule, so the
    // retries come in several calls; each resends the remembered group
    // under the same key and LINE answers 409: nobody gets it twice.
    assert_eq!(line.messages().len(), 12, "{:?}", line.requests());
    let requests = line.requests();
    let keys: BTreeSet<_> = requests.iter().map(|r| r.retry_key.clone()).collect();
    assert_eq!(keys.len(), 1, "{requests:?}");
    assert!(
        requests
            .iter()
            .all(|r| r.endpoint == LineEndpoint::Multicast)
    );
    assert_eq!(requests[0].status, 500);
    assert!(
        requests[1..].iter().all(|r| r.status == 409),
        "{requests:?}"
    );
    assert!(requests.iter().all(|r| r.recipients.len() == 12));
    assert_eq!(report.count("already_sent"), 12, "{}", report.summary());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_update_consent_and_forged_ones_are_refused() {
    let harness = Harness::start(SimulatorConfig::default(), "").await;
    let base = harness.serve().await;
    let line = harness.simulator.line();
    line.set_webhook_url(Some(&format!("{base}/webhooks/line")))
        .unwrap();
    let ben = user_id(2);

    // The console's "Verify" button: a signed empty events list.
    line.verify_webhook().await.unwrap();
    // Ben blocks the account; LINE redelivers the event; he writes in.
    let unfollow = line.unfollow(&ben).await.unwrap();
    line.redeliver(&unfollow).await.unwrap();
    line.deliver_text(&user_id(1), "Is the sale on?")
        .await
        .unwrap();

    let history = harness
        .host
        .store
        .consent_history("line", &ben)
        .await
        .unwrap();
    assert_eq!(
        history.len(),
        1,
        "the redelivery changed nothing: {history:?}"
    );
    assert!(!history[0].opted_in);
    assert_eq!(history[0].purpose, None);
    let metrics = switchboard_e2e::admin_client()
        .get(format!("{}/metrics", harness.admin_url()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("switchboard_webhook_events_total{channel=\"line\",kind=\"inbound\"} 1"),
        "{metrics}"
    );

    // A forged unfollow for Ana is refused and records nothing.
    let forged = r#"{"destination":"U5b1d0c2a3e4f5061728394a5b6c7d8e9","events":[{"type":"unfollow","mode":"active","timestamp":1767000000000,"source":{"type":"user","userId":"U00000000000000000000000000000001"},"webhookEventId":"01JFORGED0000000000000000","deliveryContext":{"isRedelivery":false}}]}"#;
    let client = reqwest::Client::new();
    for signature in [
        None,
        Some(line_signature(b"not-the-channel-secret", forged.as_bytes())),
        Some("bm90IGEgc2lnbmF0dXJl".to_owned()),
    ] {
        let mut request = client
            .post(format!("{base}/webhooks/line"))
            .header("content-type", "application/json")
            .body(forged);
        if let Some(signature) = signature {
            request = request.header("x-line-signature", signature);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 401);
    }
    assert!(
        harness
            .host
            .store
            .consent_history("line", &user_id(1))
            .await
            .unwrap()
            .is_empty()
    );

    // A new campaign skips Ben as opted out and reaches the others.
    let audience = harness.write("audience.csv", &audience());
    let campaign_path = harness.write(
        "campaign.toml",
        &campaign("line-after-unfollow", "Hi {{name}}"),
    );
    let report = harness.send(&campaign_path, &audience).await.unwrap();
    let ben_line = report.line_of("l02");
    assert_eq!(
        (ben_line.outcome.as_str(), ben_line.reason.as_deref()),
        ("skipped", Some("opted_out")),
        "{ben_line:?}"
    );
    assert_eq!(
        recipients(&line.messages()),
        BTreeSet::from([user_id(1), user_id(6)])
    );

    // He adds the account again. A follow opts in only for the purposes the
    // operator chose for LINE (`opt_in_purposes`, default utility): his
    // opt-out from marketing stands, so the marketing campaign still skips
    // him.
    line.follow(&ben).await.unwrap();
    let again = harness.write(
        "again.toml",
        &campaign("line-after-follow", "Welcome back {{name}}"),
    );
    let report = harness.send(&again, &audience).await.unwrap();
    let ben_line = report.line_of("l02");
    assert_eq!(
        (ben_line.outcome.as_str(), ben_line.reason.as_deref()),
        ("skipped", Some("opted_out")),
        "{ben_line:?}"
    );
    assert!(line.delivered_to(&ben).is_empty());
    // A utility message reaches him: the follow opted him in for that.
    let utility = harness.write(
        "utility.toml",
        &campaign("line-utility-after-follow", "Your points: {{name}}")
            .replace("purpose = \"marketing\"", "purpose = \"utility\""),
    );
    let report = harness.send(&utility, &audience).await.unwrap();
    let ben_line = report.line_of("l02");
    assert_eq!(ben_line.outcome, "sent", "{ben_line:?}");
    assert_eq!(line.delivered_to(&ben).len(), 1);
}

/// A follow event, signed with the channel secret, claiming `timestamp`.
fn signed_follow(
    harness: &Harness,
    user: &str,
    event_id: &str,
    timestamp_ms: u64,
) -> (String, String) {
    let body = format!(
        r#"{{"destination":"U5b1d0c2a3e4f5061728394a5b6c7d8e9","events":[{{"type":"follow","mode":"active","timestamp":{timestamp_ms},"source":{{"type":"user","userId":"{user}"}},"webhookEventId":"{event_id}","deliveryContext":{{"isRedelivery":false}}}}]}}"#
    );
    let signature = line_signature(
        harness.simulator.line().channel_secret().as_bytes(),
        body.as_bytes(),
    );
    (body, signature)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_future_dated_opt_in_does_not_beat_a_later_opt_out() {
    let harness = Harness::start(SimulatorConfig::default(), "").await;
    let base = harness.serve().await;
    let line = harness.simulator.line();
    line.set_webhook_url(Some(&format!("{base}/webhooks/line")))
        .unwrap();
    let fay = user_id(6);
    let now_ms = jiff::Timestamp::now().as_millisecond() as u64;
    let client = reqwest::Client::new();
    let post = |(body, signature): (String, String)| {
        client
            .post(format!("{base}/webhooks/line"))
            .header("content-type", "application/json")
            .header("x-line-signature", signature)
            .body(body)
            .send()
    };

    // A signed follow claiming to happen in thirty days is refused outright.
    let far = post(signed_follow(
        &harness,
        &fay,
        "01JFUTURE00000000000000001",
        now_ms + 30 * 86_400_000,
    ))
    .await
    .unwrap();
    assert_eq!(far.status(), 200, "the request itself was genuine");
    let history = harness
        .host
        .store
        .consent_history("line", &fay)
        .await
        .unwrap();
    assert!(
        history.is_empty(),
        "a far-future event was recorded: {history:?}"
    );

    // One within the clock-skew tolerance (four minutes ahead) is recorded,
    // and the opt-out that arrives after it still wins: the ledger orders
    // by when the host received each event, not by the platform's claim.
    post(signed_follow(
        &harness,
        &fay,
        "01JFUTURE00000000000000002",
        now_ms + 4 * 60_000,
    ))
    .await
    .unwrap();
    line.unfollow(&fay).await.unwrap();
    let history = harness
        .host
        .store
        .consent_history("line", &fay)
        .await
        .unwrap();
    assert_eq!(history.len(), 2, "{history:?}");

    let audience = harness.write("audience.csv", &audience());
    let utility = harness.write(
        "utility.toml",
        &campaign("line-after-forged-follow", "Your points: {{name}}")
            .replace("purpose = \"marketing\"", "purpose = \"utility\""),
    );
    let report = harness.send(&utility, &audience).await.unwrap();
    let fay_line = report.line_of("l06");
    assert_eq!(
        (fay_line.outcome.as_str(), fay_line.reason.as_deref()),
        ("skipped", Some("opted_out")),
        "{fay_line:?}"
    );
    assert!(line.delivered_to(&fay).is_empty());
}
