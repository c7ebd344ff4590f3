//! Telegram end to end against the simulator: real HTTP, real SQLite, and
//! the JavaScript adapter (`plugins/telegram`, a ComponentizeJS component)
//! in the sandbox.
//!
//! A campaign reaches exactly the consenting chats that started the bot,
//! once; a chat that blocked the bot is recorded as opted out; updates
//! through the host's server record inbound messages and blocks; forged
//! ones are refused.

use std::collections::{BTreeMap, BTreeSet};

use switchboard_e2e::Harness;
use switchboard_e2e::platforms::telegram::{blocked_update, chat_id, webhook};
use switchboard_simulator::SimulatorConfig;
use switchboard_simulator::telegram::TelegramControl;

fn audience() -> String {
    format!(
        "profile_id,name,telegram_id,consent_telegram_marketing\n\
         t01,Ana,{},yes\n\
         t02,Ben,{},yes\n\
         t03,Chen,{},no\n\
         t04,Dee,,yes\n\
         t05,Eve,{},yes\n\
         t06,Fay,{},true\n\
         t07,Gus,{},yes\n\
         t08,Hal,not-a-chat,yes\n",
        chat_id(1),
        chat_id(2),
        chat_id(3),
        chat_id(5),
        chat_id(6),
        chat_id(7),
    )
}

fn campaign(name: &str, text: &str) -> String {
    format!(
        "name = \"{name}\"\npurpose = \"marketing\"\nroute = [\"telegram\"]\n[message]\ntext = \"{text}\"\n"
    )
}

/// Ana, Ben, Chen, Eve and Fay started the bot; Eve then blocked it
/// (without a webhook); Gus never started it.
fn start_chats(telegram: &TelegramControl) {
    for (n, name) in [(1, "Ana"), (2, "Ben"), (3, "Chen"), (5, "Eve"), (6, "Fay")] {
        telegram.add_chat(chat_id(n), name);
    }
    telegram
        .set_blocked(chat_id(5), true)
        .expect("Eve started the bot");
}

fn recipients(telegram: &TelegramControl) -> BTreeSet<i64> {
    telegram.messages().iter().map(|m| m.chat_id).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_campaign_reaches_exactly_the_consenting_started_chats_once() {
    let harness = Harness::start(SimulatorConfig::default(), "").await;
    let telegram = harness.simulator.telegram();
    start_chats(&telegram);
    let audience = harness.write("audience.csv", &audience());
    let campaign_path = harness.write(
        "campaign.toml",
        &campaign("telegram-hello", "Hi {{name}}, 20% off today 🎉"),
    );

    let report = harness.send(&campaign_path, &audience).await.unwrap();

    assert_eq!(
        recipients(&telegram),
        BTreeSet::from([chat_id(1), chat_id(2), chat_id(6)]),
        "{}",
        report.summary()
    );
    assert_eq!(
        telegram.recipient_counts(),
        [1, 2, 6]
            .map(|n| (chat_id(n).to_string(), 1))
            .into_iter()
            .collect::<BTreeMap<_, _>>(),
        "each once"
    );
    let ana = telegram.messages_to(chat_id(1));
    assert_eq!(ana[0].text, "Hi Ana, 20% off today 🎉");
    assert!(!ana[0].disable_notification);
    // The receipt is Telegram's message id (unique within the chat).
    assert_eq!(
        report.line_of("t01").platform_message_id.as_deref(),
        Some(ana[0].message_id.to_string().as_str())
    );
    assert_eq!(report.count("sent"), 3, "{}", report.summary());
    let counts = report.counts();
    assert_eq!(
        counts[&("skipped".into(), "no_consent".into())],
        1,
        "{counts:?}"
    );
    assert_eq!(
        counts[&("skipped".into(), "no_address".into())],
        1,
        "{counts:?}"
    );

    // Eve blocked the bot: Telegram answers 403 and she is recorded as
    // opted out for the campaign's purpose.
    let eve = report.line_of("t05");
    assert_eq!(
        (eve.outcome.as_str(), eve.class.as_deref()),
        ("failed", Some("opted_out")),
        "{eve:?}"
    );
    assert!(
        eve.message
            .as_deref()
            .unwrap()
            .contains("bot was blocked by the user"),
        "{eve:?}"
    );
    let history = harness
        .host
        .store
        .consent_history("telegram", &chat_id(5).to_string())
        .await
        .unwrap();
    assert_eq!(history.len(), 1, "{history:?}");
    assert!(!history[0].opted_in);
    assert_eq!(history[0].source, "send-error:telegram");
    // Gus never started the bot (400 "chat not found"); Hal's id is not a
    // chat id (refused before any request). Both are unreachable.
    for (profile, words) in [
        ("t07", "chat not found"),
        ("t08", "`not-a-chat` is not a Telegram chat id"),
    ] {
        let unreachable = report.line_of(profile);
        assert_eq!(
            (unreachable.outcome.as_str(), unreachable.class.as_deref()),
            ("failed", Some("unreachable")),
            "{unreachable:?}"
        );
        assert!(
            unreachable.message.as_deref().unwrap().contains(words),
            "{unreachable:?}"
        );
    }
    assert_eq!(
        telegram.stats().rejected[&400],
        1,
        "only Gus reached Telegram"
    );

    // Running it again sends nothing: Telegram does not deduplicate, the
    // host does.
    let rerun = harness.send(&campaign_path, &audience).await.unwrap();
    assert_eq!(rerun.count("sent"), 0, "{}", rerun.summary());
    assert_eq!(rerun.count("already_sent"), 3, "{}", rerun.summary());
    assert_eq!(telegram.messages().len(), 3, "nothing new reached Telegram");

    // A new campaign skips Eve as opted out without asking Telegram.
    let next = harness.write(
        "next.toml",
        &campaign("telegram-next", "Hi {{name}}, new arrivals"),
    );
    let report = harness.send(&next, &audience).await.unwrap();
    let eve = report.line_of("t05");
    assert_eq!(
        (eve.outcome.as_str(), eve.reason.as_deref()),
        ("skipped", Some("opted_out")),
        "{eve:?}"
    );
    assert_eq!(telegram.stats().rejected.get(&403), Some(&1));
    assert_eq!(report.count("sent"), 3, "{}", report.summary());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn updates_through_the_host_are_recorded_and_forged_ones_refused() {
    let harness = Harness::start(SimulatorConfig::default(), "").await;
    let base = harness.serve().await;
    let telegram = harness.simulator.telegram();
    telegram
        .set_webhook_url(Some(&format!("{base}/webhooks/telegram")))
        .unwrap();
    let secret = telegram.webhook_secret().to_owned();

    // Ana starts the bot and writes in; Ben starts it and blocks it.
    telegram.start(chat_id(1), "Ana").await.unwrap();
    telegram
        .send_text(chat_id(1), "Is the sale on?")
        .await
        .unwrap();
    telegram.start(chat_id(2), "Ben").await.unwrap();
    let blocked = telegram.block(chat_id(2)).await.unwrap();
    assert_eq!(telegram.stats().webhook_failures, 0);

    let metrics = switchboard_e2e::admin_client()
        .get(format!("{}/metrics", harness.admin_url()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics
            .contains("switchboard_webhook_events_total{channel=\"telegram\",kind=\"inbound\"} 3"),
        "two /start and one text: {metrics}"
    );
    assert!(
        metrics.contains("switchboard_webhooks_total{channel=\"telegram\",result=\"200\"} 4"),
        "{metrics}"
    );
    let history = harness
        .host
        .store
        .consent_history("telegram", &chat_id(2).to_string())
        .await
        .unwrap();
    assert_eq!(history.len(), 1, "{history:?}");
    assert!(!history[0].opted_in);
    assert_eq!(history[0].purpose, None, "a block stops every purpose");
    assert_eq!(history[0].source, "webhook:telegram");

    // Telegram redelivers an update with the same update_id: nothing changes.
    let redelivered = webhook(&base, Some(&secret), &blocked_update(blocked, chat_id(2)))
        .send()
        .await
        .unwrap();
    assert_eq!(redelivered.status(), 200);
    assert_eq!(
        harness
            .host
            .store
            .consent_history("telegram", &chat_id(2).to_string())
            .await
            .unwrap()
            .len(),
        1
    );

    // A forged block of Ana: a wrong, a missing and an empty secret token.
    for forged_secret in [Some("not-the-secret-token"), None, Some("")] {
        let response = webhook(&base, forged_secret, &blocked_update(1, chat_id(1)))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401, "{forged_secret:?}");
    }
    assert!(
        harness
            .host
            .store
            .consent_history("telegram", &chat_id(1).to_string())
            .await
            .unwrap()
            .is_empty(),
        "the forged updates recorded nothing"
    );

    // A campaign skips Ben as opted out and reaches Ana.
    let audience = harness.write(
        "audience.csv",
        &format!(
            "profile_id,name,telegram_id,consent_telegram_marketing\nt01,Ana,{},yes\nt02,Ben,{},yes\n",
            chat_id(1),
            chat_id(2)
        ),
    );
    let first = harness.write(
        "first.toml",
        &campaign("telegram-after-block", "Hi {{name}}"),
    );
    let report = harness.send(&first, &audience).await.unwrap();
    let ben = report.line_of("t02");
    assert_eq!(
        (ben.outcome.as_str(), ben.reason.as_deref()),
        ("skipped", Some("opted_out")),
        "{ben:?}"
    );
    assert_eq!(recipients(&telegram), BTreeSet::from([chat_id(1)]));

    // Ben unblocks the bot. That opts him in only for the purposes the
    // operator chose for Telegram (`opt_in_purposes`, default utility):
    // a marketing campaign still skips him, a utility message reaches him.
    telegram.unblock(chat_id(2)).await.unwrap();
    let marketing = harness.write(
        "marketing.toml",
        &campaign("telegram-marketing-after-unblock", "Sale {{name}}"),
    );
    let report = harness.send(&marketing, &audience).await.unwrap();
    assert_eq!(report.line_of("t02").reason.as_deref(), Some("opted_out"));
    let again = harness.write(
        "again.toml",
        &campaign("telegram-after-unblock", "Welcome back {{name}}")
            .replace("purpose = \"marketing\"", "purpose = \"utility\""),
    );
    let report = harness.send(&again, &audience).await.unwrap();
    assert_eq!(
        report.line_of("t02").outcome,
        "sent",
        "{}",
        report.summary()
    );
    assert_eq!(telegram.messages_to(chat_id(2))[0].text, "Welcome back Ben");
}
