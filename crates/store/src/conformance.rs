//! The store's guarantees, tested once per backend: claims are exclusive
//! (across two stores on one database too), a sent send never changes
//! back, expired leases are taken over or made uncertain, opt-outs and
//! deadlines suppress queued sends, fall-backs follow the route, statuses
//! never go backwards, windows are per opener, consent is per purpose and
//! adapter storage keeps its quota.
//!
//! Each test is an async function taking a [`Backend`], which opens stores
//! on one fresh database; [`conformance!`] runs every one on SQLite (a
//! file in a temporary directory) and on PostgreSQL (a schema of its own,
//! dropped afterwards, on the server [`postgres::test_database_url`] names;
//! the tests fail, not skip, when it cannot be reached).

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use switchboard_contract::model::{
    Content, DeliveryState, OutboundMessage, Purpose, TemplateMessage, WindowOpener,
};
use switchboard_core::consent::LedgerChange;
use switchboard_core::events::Effect;

use crate::*;

/// Opens stores on one test's database.
pub(crate) trait Backend: Send + Sync + 'static {
    /// Another store on the database (each call opens a new one).
    fn open(&self) -> Pin<Box<dyn Future<Output = Arc<dyn Store>> + Send + '_>>;
}

/// A SQLite file in a directory removed when the test ends.
pub(crate) struct SqliteBackend {
    dir: tempfile::TempDir,
}

impl SqliteBackend {
    pub(crate) fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("a temporary directory"),
        }
    }
}

impl Backend for SqliteBackend {
    fn open(&self) -> Pin<Box<dyn Future<Output = Arc<dyn Store>> + Send + '_>> {
        Box::pin(async move {
            let store = SqliteStore::open(&self.dir.path().join("switchboard.db"))
                .expect("open the SQLite store");
            Arc::new(store) as Arc<dyn Store>
        })
    }
}

/// A PostgreSQL schema of the test's own.
pub(crate) struct PostgresBackend {
    pub(crate) url: String,
}

impl Backend for PostgresBackend {
    fn open(&self) -> Pin<Box<dyn Future<Output = Arc<dyn Store>> + Send + '_>> {
        Box::pin(async move {
            let store = PostgresStore::connect(&self.url)
                .await
                .expect("connect to the test's schema");
            Arc::new(store) as Arc<dyn Store>
        })
    }
}

/// Run `test` on a fresh PostgreSQL schema of the test server, and drop
/// the schema afterwards (whether the test passed or not). Fails, saying
/// which server is needed, when it cannot be reached.
pub(crate) async fn with_postgres<F, Fut>(test: F)
where
    F: FnOnce(PostgresBackend) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let (store, url) = PostgresStore::test_schema().await;
    drop(store);
    let outcome = tokio::spawn(test(PostgresBackend { url: url.clone() })).await;
    if let Err(error) = PostgresStore::drop_schema(&url).await {
        eprintln!("could not drop the test schema: {error}");
    }
    if let Err(error) = outcome {
        match error.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            Err(error) => panic!("the test did not finish: {error}"),
        }
    }
}

/// Generate, for each named test function, a `#[tokio::test]` per backend:
/// `conformance::sqlite::NAME` and `conformance::postgres::NAME`.
macro_rules! conformance {
    ($($test:ident),* $(,)?) => {
        /// The suite on SQLite files.
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    super::$test(&super::SqliteBackend::new()).await;
                }
            )*
        }

        /// The suite on PostgreSQL, each test in a schema of its own.
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    super::with_postgres(|backend| async move {
                        super::$test(&backend).await;
                    })
                    .await;
                }
            )*
        }
    };
}

conformance!(
    a_sent_send_is_never_claimed_or_changed_again,
    two_stores_never_claim_the_same_send,
    an_expired_lease_is_taken_over_only_if_nothing_was_written,
    deferred_and_retrying_sends_wait_for_their_time,
    a_release_does_not_count_as_an_attempt,
    an_opt_out_received_after_queueing_suppresses_the_send,
    consent_is_per_purpose_and_star_covers_every_purpose,
    a_send_past_its_deadline_is_skipped,
    unreachable_falls_back_to_the_next_channel_of_the_route,
    an_expired_message_falls_back_too,
    a_refusal_with_an_opt_out_records_it_in_the_ledger,
    statuses_find_sends_by_id_or_correlation_key_and_never_go_backwards,
    windows_open_per_opener_and_count_free_form_sends,
    a_campaign_is_counted_cancelled_and_its_dead_letters_retried,
    a_key_twice_in_one_batch_is_enqueued_and_settled_once,
    decisions_are_replaced_per_profile,
    a_rerun_keeps_what_a_settled_send_decided,
    a_large_enqueue_keeps_its_order_and_every_decision,
    listings_filter_and_order_sends,
    only_the_lease_owner_marks_written_and_next_due_sees_leases,
    recent_recipients_count_sent_templates,
    adapter_storage_keeps_the_first_value_and_a_quota,
    a_rewritten_expired_entry_still_counts_against_the_quota,
    profile_events_are_kept_once_and_read_back_by_name,
    trigger_sends_are_cancelled_per_profile_and_counted_for_caps,
    heartbeats_count_the_live_engines,
);

// ---- helpers ---------------------------------------------------------------

pub(crate) fn message(key: &str, to: &str) -> OutboundMessage {
    OutboundMessage {
        idempotency_key: key.into(),
        to: to.into(),
        purpose: Purpose::Marketing,
        content: Content::Template(TemplateMessage {
            name: "winback_offer".into(),
            language: Some("en_US".into()),
            parameters: vec![],
            link: None,
        }),
        ttl_seconds: None,
        attempt: 1,
    }
}

pub(crate) fn send(key: &str, channel: &str, deduplicates: bool) -> NewSend {
    NewSend {
        message: message(key, &format!("+49151{key}")),
        campaign: "winback".into(),
        profile_id: format!("p-{key}"),
        line: Some(2),
        channel: channel.into(),
        step: 0,
        window: None,
        deduplicates,
        due_ms: 0,
        deferred_reason: None,
        deferred_message: None,
        deadline_ms: None,
        fallback: vec![],
    }
}

pub(crate) fn claim(channel: &str, owner: &str, limit: u32, now: i64) -> ClaimRequest {
    ClaimRequest {
        channel: channel.into(),
        owner: owner.into(),
        limit,
        now_ms: now,
        lease_ms: 1_000,
        campaign: None,
    }
}

pub(crate) fn sent(key: &str) -> Settlement {
    Settlement {
        key: key.into(),
        outcome: Outcome::Sent {
            platform_message_id: Some(format!("wamid.{key}")),
            duplicate: false,
        },
        consent: None,
        rate_limited: false,
        fall_back: false,
    }
}

fn settlement(key: &str, outcome: Outcome) -> Settlement {
    Settlement {
        key: key.into(),
        outcome,
        consent: None,
        rate_limited: false,
        fall_back: false,
    }
}

fn failed(key: &str, class: &str) -> Settlement {
    settlement(
        key,
        Outcome::Failed {
            class: class.into(),
            message: format!("({class})"),
        },
    )
}

pub(crate) fn keys(claimed: &[ClaimedSend]) -> Vec<String> {
    let mut keys: Vec<String> = claimed
        .iter()
        .map(|c| c.message.idempotency_key.clone())
        .collect();
    keys.sort();
    keys
}

async fn record(store: &dyn Store, key: &str) -> SendRecord {
    store.send(key).await.unwrap().expect("send exists")
}

async fn state(store: &dyn Store, key: &str) -> String {
    record(store, key).await.state
}

fn consent_event(
    event: &str,
    address: &str,
    purpose: Option<Purpose>,
    opted_in: bool,
    at: i64,
) -> EventRecord {
    EventRecord {
        event_id: event.into(),
        occurred_ms: at,
        received_ms: at,
        effects: vec![Effect::Consent(LedgerChange {
            address: address.into(),
            purpose,
            opted_in,
            source: "webhook:whatsapp".into(),
        })],
    }
}

fn status(id: &str, event: &str, state: DeliveryState, key: Option<&str>) -> EventRecord {
    EventRecord {
        event_id: event.into(),
        occurred_ms: 1,
        received_ms: 1,
        effects: vec![Effect::Status {
            platform_message_id: (!id.is_empty()).then(|| id.to_owned()),
            correlation_key: key.map(str::to_owned),
            state,
            failure: None,
        }],
    }
}

fn rcs_alternative() -> Alternative {
    Alternative {
        channel: "rcs".into(),
        address: "+821012345678".into(),
        content: Content::Text("Your points: 120".into()),
        window: None,
        deduplicates: true,
        not_before_ms: None,
        not_before_reason: None,
    }
}

// ---- the suite -------------------------------------------------------------

async fn a_sent_send_is_never_claimed_or_changed_again(backend: &dyn Backend) {
    let store = backend.open().await;
    let inserted = store
        .enqueue(vec![send("k1", "whatsapp", false)], vec![])
        .await
        .unwrap();
    assert_eq!(inserted, [Enqueued::Inserted]);
    let claimed = store.claim(claim("whatsapp", "a", 10, 1)).await.unwrap();
    assert_eq!(keys(&claimed), ["k1"]);
    assert_eq!(claimed[0].message.attempt, 1);
    assert_eq!(claimed[0].line, Some(2));
    assert_eq!(claimed[0].message, {
        let mut expected = message("k1", "+49151k1");
        expected.attempt = 1;
        expected
    });
    assert_eq!(
        store.settle("a", vec![sent("k1")], 2).await.unwrap(),
        [Settle::Applied]
    );
    // A re-run finds it; nothing can claim it; an operator retry leaves it.
    let again = store
        .enqueue(vec![send("k1", "whatsapp", false)], vec![])
        .await
        .unwrap();
    assert!(matches!(
        &again[0],
        Enqueued::Existing { state: SendState::Sent, platform_message_id: Some(id), settled_ms: Some(2), .. } if id == "wamid.k1"
    ));
    assert!(
        store
            .claim(claim("whatsapp", "b", 10, 10_000))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store.retry_send("k1", 3).await.unwrap(),
        Some(SendState::Sent)
    );
    assert_eq!(store.retry_send("nope", 3).await.unwrap(), None);
    assert_eq!(state(&*store, "k1").await, "sent");
    let record = record(&*store, "k1").await;
    assert_eq!(record.settled_by.as_deref(), Some("a"));
    assert_eq!(record.delivery_state.as_deref(), Some("accepted"));
    assert_eq!(record.due_ms, None, "not open");
    // A late settlement by anyone changes nothing.
    let late = Settlement {
        outcome: Outcome::Failed {
            class: "transient".into(),
            message: "late".into(),
        },
        ..sent("k1")
    };
    assert_eq!(
        store.settle("a", vec![late], 4).await.unwrap(),
        [Settle::NotHeld]
    );
    assert_eq!(state(&*store, "k1").await, "sent");
}

async fn two_stores_never_claim_the_same_send(backend: &dyn Backend) {
    let first = backend.open().await;
    let second = backend.open().await;
    let sends: Vec<NewSend> = (0..400)
        .map(|i| send(&format!("k{i:03}"), "whatsapp", false))
        .collect();
    first.enqueue(sends, vec![]).await.unwrap();
    let mut tasks = Vec::new();
    for (owner, store) in [("a", &first), ("b", &second), ("c", &first), ("d", &second)] {
        let store = Arc::clone(store);
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let claimed = store.claim(claim("whatsapp", owner, 7, 1)).await.unwrap();
                if claimed.is_empty() {
                    break mine;
                }
                mine.extend(keys(&claimed));
            }
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.unwrap());
    }
    let count = all.len();
    all.sort();
    all.dedup();
    assert_eq!(count, 400, "every send claimed");
    assert_eq!(all.len(), 400, "no send claimed twice");
}

async fn an_expired_lease_is_taken_over_only_if_nothing_was_written(backend: &dyn Backend) {
    let store = backend.open().await;
    store
        .enqueue(
            vec![
                send("idle", "whatsapp", false),
                send("written", "whatsapp", false),
                send("dedup", "line", true),
            ],
            vec![],
        )
        .await
        .unwrap();
    let a = store.claim(claim("whatsapp", "a", 10, 0)).await.unwrap();
    assert_eq!(keys(&a), ["idle", "written"]);
    let lost = store
        .mark_written("a", vec!["written".into()])
        .await
        .unwrap();
    assert!(lost.is_empty());
    store.claim(claim("line", "a", 10, 0)).await.unwrap();
    store.mark_written("a", vec!["dedup".into()]).await.unwrap();
    // Engine `a` dies. Before the lease ends nothing moves.
    assert!(
        store
            .claim(claim("whatsapp", "b", 10, 999))
            .await
            .unwrap()
            .is_empty()
    );
    // After it: the idle send is taken over; the written one is uncertain.
    let b = store
        .claim(claim("whatsapp", "b", 10, 1_000))
        .await
        .unwrap();
    assert_eq!(keys(&b), ["idle"]);
    assert_eq!(b[0].message.attempt, 2);
    assert_eq!(state(&*store, "written").await, "uncertain");
    let written = record(&*store, "written").await;
    assert!(
        written
            .error_message
            .unwrap()
            .contains("does not deduplicate"),
        "says why"
    );
    assert_eq!(written.error_class.as_deref(), Some("uncertain"));
    let decision = &store.decisions_for("p-written").await.unwrap()[0];
    assert_eq!(
        (decision.outcome.as_str(), decision.reason.as_deref()),
        ("uncertain", Some("interrupted"))
    );
    // The platform deduplicates: resent under the same key.
    let line = store.claim(claim("line", "b", 10, 1_000)).await.unwrap();
    assert_eq!(keys(&line), ["dedup"]);
    assert_eq!(line[0].message.attempt, 2);
    // `a` comes back: its leases are gone, so it may not write or settle.
    assert_eq!(
        store.mark_written("a", vec!["idle".into()]).await.unwrap(),
        ["idle"]
    );
    assert_eq!(
        store.settle("a", vec![sent("idle")], 1_001).await.unwrap(),
        [Settle::NotHeld]
    );
    assert_eq!(
        store.settle("b", vec![sent("idle")], 1_001).await.unwrap(),
        [Settle::Applied]
    );
}

async fn deferred_and_retrying_sends_wait_for_their_time(backend: &dyn Backend) {
    let store = backend.open().await;
    let mut quiet = send("q", "kakaotalk", true);
    quiet.due_ms = 500;
    quiet.deferred_reason = Some("quiet_hours".into());
    quiet.deferred_message = Some("quiet hours; until 500".into());
    store
        .enqueue(vec![quiet, send("r", "kakaotalk", true)], vec![])
        .await
        .unwrap();
    let q = record(&*store, "q").await;
    assert_eq!(
        (q.state.as_str(), q.due_ms, q.error_class.as_deref()),
        ("deferred", Some(500), Some("quiet_hours"))
    );
    assert_eq!(q.error_message.as_deref(), Some("quiet hours; until 500"));
    let first = store.claim(claim("kakaotalk", "a", 10, 100)).await.unwrap();
    assert_eq!(keys(&first), ["r"]);
    let retry = Settlement {
        rate_limited: true,
        ..settlement(
            "r",
            Outcome::Retrying {
                due_ms: 300,
                class: "transient".into(),
                message: "503".into(),
            },
        )
    };
    assert_eq!(
        store.settle("a", vec![retry], 100).await.unwrap(),
        [Settle::Applied]
    );
    assert_eq!(store.next_due("kakaotalk").await.unwrap(), Some(300));
    assert!(
        store
            .claim(claim("kakaotalk", "a", 10, 299))
            .await
            .unwrap()
            .is_empty()
    );
    let again = store.claim(claim("kakaotalk", "a", 10, 300)).await.unwrap();
    assert_eq!(keys(&again), ["r"]);
    assert_eq!(again[0].rate_limited, 1, "the rate-limit answer counted");
    assert_eq!(again[0].message.attempt, 2);
    assert_eq!(
        keys(&store.claim(claim("kakaotalk", "a", 10, 500)).await.unwrap()),
        ["q"]
    );
    // A deferral puts it off again, with the reason.
    let defer = settlement(
        "q",
        Outcome::Deferred {
            due_ms: 900,
            reason: "platform_deferred".into(),
            message: "not now".into(),
        },
    );
    store.settle("a", vec![defer], 500).await.unwrap();
    let q = record(&*store, "q").await;
    assert_eq!(
        (q.state.as_str(), q.due_ms, q.error_class.as_deref()),
        ("deferred", Some(900), Some("platform_deferred"))
    );
    // Next: the deferral, before `r`'s lease (taken at 300) ends at 1,300.
    assert_eq!(store.next_due("kakaotalk").await.unwrap(), Some(900));
}

async fn a_release_does_not_count_as_an_attempt(backend: &dyn Backend) {
    let store = backend.open().await;
    store
        .enqueue(vec![send("k", "whatsapp", false)], vec![])
        .await
        .unwrap();
    store.claim(claim("whatsapp", "a", 1, 0)).await.unwrap();
    let release = settlement("k", Outcome::Released { due_ms: 0 });
    store.settle("a", vec![release], 0).await.unwrap();
    let again = store.claim(claim("whatsapp", "a", 1, 0)).await.unwrap();
    assert_eq!(again[0].message.attempt, 1);
    assert!(
        store.decisions_for("p-k").await.unwrap().is_empty(),
        "a release decides nothing"
    );
}

async fn an_opt_out_received_after_queueing_suppresses_the_send(backend: &dyn Backend) {
    let store = backend.open().await;
    let mut queued = send("k", "whatsapp", false);
    queued.message.to = "+4915100000001".into();
    store
        .enqueue(vec![queued, send("other", "whatsapp", false)], vec![])
        .await
        .unwrap();
    let created = record(&*store, "k").await.updated_ms;
    let opt_out = consent_event(
        "stop-1",
        "+4915100000001",
        Some(Purpose::Marketing),
        false,
        created + 10,
    );
    assert_eq!(
        store
            .apply_events("whatsapp", vec![opt_out.clone()])
            .await
            .unwrap(),
        [true]
    );
    assert_eq!(
        store.apply_events("whatsapp", vec![opt_out]).await.unwrap(),
        [false],
        "redelivery"
    );
    let claimed = store
        .claim(claim("whatsapp", "a", 10, created + 20))
        .await
        .unwrap();
    assert_eq!(keys(&claimed), ["other"]);
    let skipped = record(&*store, "k").await;
    assert_eq!(skipped.state, "skipped");
    assert_eq!(skipped.error_class.as_deref(), Some("opted_out"));
    assert!(
        skipped
            .error_message
            .as_deref()
            .unwrap()
            .contains("webhook:whatsapp")
    );
    assert_eq!(skipped.settled_by.as_deref(), Some("a"));
    let decisions = store.decisions_for("p-k").await.unwrap();
    assert_eq!(decisions[0].outcome, "skipped");
    assert_eq!(decisions[0].reason.as_deref(), Some("opted_out"));
}

async fn consent_is_per_purpose_and_star_covers_every_purpose(backend: &dyn Backend) {
    let store = backend.open().await;
    let addressed = |key: &str, to: &str| {
        let mut queued = send(key, "whatsapp", false);
        queued.message.to = to.into();
        queued
    };
    store
        .enqueue(
            vec![
                addressed("utility-only", "+1"),
                addressed("everything", "+2"),
                addressed("back-in", "+3"),
            ],
            vec![],
        )
        .await
        .unwrap();
    let created = record(&*store, "everything").await.updated_ms;
    let events = vec![
        // Out of utility messages only: a marketing send still goes.
        consent_event("e1", "+1", Some(Purpose::Utility), false, created + 1),
        // Out of every purpose.
        consent_event("e2", "+2", None, false, created + 1),
        // Out, then back in: the newest entry decides.
        consent_event("e3", "+3", None, false, created + 1),
        consent_event("e4", "+3", Some(Purpose::Marketing), true, created + 2),
    ];
    assert_eq!(
        store.apply_events("whatsapp", events).await.unwrap(),
        [true, true, true, true]
    );
    let claimed = store
        .claim(claim("whatsapp", "a", 10, created + 5))
        .await
        .unwrap();
    assert_eq!(keys(&claimed), ["back-in", "utility-only"]);
    assert_eq!(state(&*store, "everything").await, "skipped");
    let history = store.consent_history("whatsapp", "+3").await.unwrap();
    assert_eq!(
        history
            .iter()
            .map(|c| (c.opted_in, c.purpose))
            .collect::<Vec<_>>(),
        [(false, None), (true, Some(Purpose::Marketing))]
    );
    let states = store
        .recipient_states("whatsapp", vec!["+1".into(), "+3".into(), "+9".into()])
        .await
        .unwrap();
    assert_eq!(states["+1"].ledger.len(), 1);
    assert_eq!(states["+1"].ledger[0].purpose, Some(Purpose::Utility));
    assert_eq!(states["+3"].ledger.len(), 2);
    assert_eq!(
        states["+3"].ledger[0].purpose, None,
        "'*' reads back as every purpose"
    );
    assert!(!states.contains_key("+9"));
    let known = store.addresses_with_state("whatsapp").await.unwrap();
    assert_eq!(known, ["+1", "+2", "+3"].map(String::from).into());
    assert!(store.addresses_with_state("line").await.unwrap().is_empty());
}

async fn a_send_past_its_deadline_is_skipped(backend: &dyn Backend) {
    let store = backend.open().await;
    let mut late = send("late", "whatsapp", false);
    late.deadline_ms = Some(1_000);
    let mut in_time = send("in-time", "whatsapp", false);
    in_time.deadline_ms = Some(1_001);
    store.enqueue(vec![late, in_time], vec![]).await.unwrap();
    let claimed = store
        .claim(claim("whatsapp", "a", 10, 1_001))
        .await
        .unwrap();
    assert_eq!(keys(&claimed), ["in-time"]);
    assert_eq!(claimed[0].deadline_ms, Some(1_001));
    let record = record(&*store, "late").await;
    assert_eq!(
        (record.state.as_str(), record.error_class.as_deref()),
        ("skipped", Some("deadline_passed"))
    );
}

async fn unreachable_falls_back_to_the_next_channel_of_the_route(backend: &dyn Backend) {
    let store = backend.open().await;
    let first_key =
        switchboard_core::campaign::idempotency_key("winback", "p-kakao", "kakaotalk", 0);
    let first = || {
        let mut first = send(&first_key, "kakaotalk", true);
        first.profile_id = "p-kakao".into();
        first.fallback = vec![rcs_alternative()];
        first
    };
    store.enqueue(vec![first()], vec![]).await.unwrap();
    store.claim(claim("kakaotalk", "a", 1, 0)).await.unwrap();
    let unreachable = Settlement {
        fall_back: true,
        ..settlement(
            &first_key,
            Outcome::Failed {
                class: "unreachable".into(),
                message: "(3019) not a KakaoTalk user".into(),
            },
        )
    };
    assert_eq!(
        store.settle("a", vec![unreachable], 5).await.unwrap(),
        [Settle::FellBack]
    );
    let before = record(&*store, &first_key).await;
    assert!(before.fell_back);
    assert_eq!(before.state, "failed");
    let counts = store.campaign_counts("winback").await.unwrap();
    assert_eq!(
        (counts.by_state.get("failed").copied(), counts.fell_back),
        (Some(1), 1),
        "{counts:?}"
    );
    // A re-run reports the send that carried on.
    let again = store.enqueue(vec![first()], vec![]).await.unwrap();
    assert!(
        matches!(&again[0], Enqueued::Existing { state: SendState::Pending, channel, .. } if channel == "rcs"),
        "{again:?}"
    );
    let next = store.claim(claim("rcs", "a", 10, 5)).await.unwrap();
    assert_eq!(next.len(), 1);
    assert_eq!(next[0].message.to, "+821012345678");
    assert_eq!(
        next[0].message.content,
        Content::Text("Your points: 120".into())
    );
    assert_eq!(next[0].step, 1);
    assert_eq!(next[0].profile_id, "p-kakao");
    assert_eq!(
        next[0].message.idempotency_key,
        switchboard_core::campaign::next_channel_key(
            "winback",
            "p-kakao",
            "kakaotalk",
            &first_key,
            "rcs"
        )
    );
    let decision = &store.decisions_for("p-kakao").await.unwrap()[0];
    assert_eq!(
        (
            decision.outcome.as_str(),
            decision.reason.as_deref(),
            decision.channel.as_deref()
        ),
        ("enqueued", Some("fall_back"), Some("rcs"))
    );
    // A route at its end: failed, not fallen back.
    assert_eq!(
        store
            .settle(
                "a",
                vec![Settlement {
                    fall_back: true,
                    ..failed(&next[0].message.idempotency_key, "unreachable")
                }],
                6
            )
            .await
            .unwrap(),
        [Settle::Applied]
    );
    let decision = &store.decisions_for("p-kakao").await.unwrap()[0];
    assert_eq!(
        (decision.outcome.as_str(), decision.reason.as_deref()),
        ("failed", Some("unreachable"))
    );
}

async fn an_expired_message_falls_back_too(backend: &dyn Backend) {
    let store = backend.open().await;
    let mut first = send("sms-ish", "kakaotalk", true);
    let mut later = rcs_alternative();
    later.not_before_ms = Some(10_000);
    later.not_before_reason = Some("advertising quiet hours".into());
    first.fallback = vec![later];
    store.enqueue(vec![first], vec![]).await.unwrap();
    store.claim(claim("kakaotalk", "a", 1, 0)).await.unwrap();
    store.settle("a", vec![sent("sms-ish")], 1).await.unwrap();
    let expired = EventRecord {
        event_id: "x1".into(),
        occurred_ms: 50,
        received_ms: 60,
        effects: vec![Effect::Status {
            platform_message_id: Some("wamid.sms-ish".into()),
            correlation_key: None,
            state: DeliveryState::Expired,
            failure: Some("ttl ran out".into()),
        }],
    };
    store
        .apply_events("kakaotalk", vec![expired])
        .await
        .unwrap();
    let before = record(&*store, "sms-ish").await;
    assert_eq!(before.delivery_state.as_deref(), Some("expired"));
    assert_eq!(before.error_message.as_deref(), Some("ttl ran out"));
    assert_eq!(before.updated_ms, 60);
    assert!(before.fell_back);
    let next_key = switchboard_core::campaign::next_channel_key(
        "winback",
        "p-sms-ish",
        "kakaotalk",
        "sms-ish",
        "rcs",
    );
    let next = record(&*store, &next_key).await;
    assert_eq!(
        (
            next.state.as_str(),
            next.due_ms,
            next.error_class.as_deref()
        ),
        ("deferred", Some(10_000), Some("quiet_hours"))
    );
    assert!(
        next.error_message
            .as_deref()
            .unwrap()
            .starts_with("advertising quiet hours; until ")
    );
    assert_eq!((next.step, next.channel.as_str()), (1, "rcs"));
}

async fn a_refusal_with_an_opt_out_records_it_in_the_ledger(backend: &dyn Backend) {
    let store = backend.open().await;
    store
        .enqueue(vec![send("k", "whatsapp", false)], vec![])
        .await
        .unwrap();
    store.claim(claim("whatsapp", "a", 1, 0)).await.unwrap();
    let refused = Settlement {
        consent: Some(LedgerChange {
            address: "+49151k".into(),
            purpose: None,
            opted_in: false,
            source: "send-error:whatsapp".into(),
        }),
        ..failed("k", "opted_out")
    };
    store.settle("a", vec![refused], 7).await.unwrap();
    let history = store.consent_history("whatsapp", "+49151k").await.unwrap();
    assert_eq!(
        history,
        [ConsentRecord {
            opted_in: false,
            purpose: None,
            occurred_ms: 7,
            received_ms: 7,
            source: "send-error:whatsapp".into(),
        }]
    );
}

async fn statuses_find_sends_by_id_or_correlation_key_and_never_go_backwards(
    backend: &dyn Backend,
) {
    let store = backend.open().await;
    store
        .enqueue(
            vec![send("a", "whatsapp", false), send("b", "whatsapp", false)],
            vec![],
        )
        .await
        .unwrap();
    // A status that beats the send's own bookkeeping is applied when it settles.
    store
        .apply_events(
            "whatsapp",
            vec![status("wamid.a", "e1", DeliveryState::Delivered, None)],
        )
        .await
        .unwrap();
    store.claim(claim("whatsapp", "o", 10, 0)).await.unwrap();
    store
        .settle("o", vec![sent("a"), sent("b")], 2)
        .await
        .unwrap();
    let delivery = |key: &'static str| {
        let store = Arc::clone(&store);
        async move { record(&*store, key).await.delivery_state }
    };
    assert_eq!(delivery("a").await.as_deref(), Some("delivered"));
    assert_eq!(delivery("b").await.as_deref(), Some("accepted"));
    store
        .apply_events(
            "whatsapp",
            vec![
                status("wamid.a", "e2", DeliveryState::Read, None),
                status("wamid.a", "e3", DeliveryState::Sent, None),
                status("", "e4", DeliveryState::Read, Some("b")),
                status("wamid.unknown", "e5", DeliveryState::Read, None),
            ],
        )
        .await
        .unwrap();
    assert_eq!(delivery("a").await.as_deref(), Some("read"));
    assert_eq!(delivery("b").await.as_deref(), Some("read"));
    // Another channel's status for the same id changes nothing here.
    store
        .apply_events(
            "line",
            vec![status("wamid.a", "e6", DeliveryState::Failed, Some("a"))],
        )
        .await
        .unwrap();
    assert_eq!(delivery("a").await.as_deref(), Some("read"));
    let counts = store.campaign_counts("winback").await.unwrap();
    assert_eq!(counts.by_delivery["read"], 2);
}

async fn windows_open_per_opener_and_count_free_form_sends(backend: &dyn Backend) {
    let store = backend.open().await;
    let open = |event: &str, opener, at| EventRecord {
        event_id: event.into(),
        occurred_ms: at,
        received_ms: at,
        effects: vec![Effect::OpenWindow {
            address: "o1".into(),
            opener,
        }],
    };
    store
        .apply_events(
            "wechat",
            vec![
                open("m1", WindowOpener::InboundMessage, 1_000),
                open("f1", WindowOpener::Follow, 1_500),
            ],
        )
        .await
        .unwrap();
    let texts: Vec<NewSend> = ["t", "u"]
        .iter()
        .map(|key| {
            let mut text = send(key, "wechat", false);
            text.message.to = "o1".into();
            text.window = Some(WindowOpener::InboundMessage);
            text
        })
        .collect();
    store.enqueue(texts, vec![]).await.unwrap();
    let claimed = store.claim(claim("wechat", "o", 2, 2_000)).await.unwrap();
    assert_eq!(claimed[0].window, Some(WindowOpener::InboundMessage));
    store
        .settle("o", vec![sent("t"), sent("u")], 2_000)
        .await
        .unwrap();
    let states = store
        .recipient_states("wechat", vec!["o1".into()])
        .await
        .unwrap();
    let mut windows = states["o1"].windows.clone();
    windows.sort_by_key(|w| w.opened_ms);
    assert_eq!(
        windows
            .iter()
            .map(|w| (w.opener, w.opened_ms, w.free_form_sent))
            .collect::<Vec<_>>(),
        [
            (WindowOpener::InboundMessage, 1_000, 2),
            (WindowOpener::Follow, 1_500, 0)
        ]
    );
    // An older opening changes nothing; a later message refreshes its
    // window and resets its count.
    store
        .apply_events(
            "wechat",
            vec![open("m0", WindowOpener::InboundMessage, 500)],
        )
        .await
        .unwrap();
    let inbound = |states: &std::collections::HashMap<String, RecipientState>| {
        let window = states["o1"]
            .windows
            .iter()
            .find(|w| w.opener == WindowOpener::InboundMessage)
            .cloned()
            .unwrap();
        (window.opened_ms, window.free_form_sent)
    };
    let states = store
        .recipient_states("wechat", vec!["o1".into()])
        .await
        .unwrap();
    assert_eq!(inbound(&states), (1_000, 2));
    store
        .apply_events(
            "wechat",
            vec![
                open("m2", WindowOpener::InboundMessage, 3_000),
                open("m3", WindowOpener::InboundMessage, 2_500),
            ],
        )
        .await
        .unwrap();
    let states = store
        .recipient_states("wechat", vec!["o1".into()])
        .await
        .unwrap();
    assert_eq!(inbound(&states), (3_000, 0));
    assert_eq!(
        store.addresses_with_state("wechat").await.unwrap(),
        ["o1".to_owned()].into()
    );
}

async fn a_campaign_is_counted_cancelled_and_its_dead_letters_retried(backend: &dyn Backend) {
    let store = backend.open().await;
    store
        .put_campaign(CampaignRecord {
            name: "winback".into(),
            definition: "name = \"winback\"".into(),
            audience: "audience.csv".into(),
            state: "running".into(),
            created_ms: 1,
        })
        .await
        .unwrap();
    store
        .enqueue(
            (0..4)
                .map(|i| send(&format!("k{i}"), "whatsapp", false))
                .collect(),
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(store.campaign_unsettled("winback").await.unwrap(), 4);
    store.claim(claim("whatsapp", "o", 2, 0)).await.unwrap();
    // Leased sends are still unsettled.
    assert_eq!(store.campaign_unsettled("winback").await.unwrap(), 4);
    store
        .settle("o", vec![failed("k0", "auth_failed"), sent("k1")], 1)
        .await
        .unwrap();
    let counts = store.campaign_counts("winback").await.unwrap();
    assert_eq!(counts.by_state["pending"], 2);
    assert_eq!(store.campaign_unsettled("winback").await.unwrap(), 2);
    assert_eq!(counts.unsettled(), 2);
    assert_eq!(store.campaign_unsettled("another").await.unwrap(), 0);
    assert_eq!(counts.by_reason["failed:auth_failed"], 1);
    assert_eq!(counts.decisions["failed:auth_failed"], 1);
    assert_eq!(counts.decisions["sent"], 1);
    assert_eq!(counts.open(), 2);
    assert_eq!(store.cancel_campaign("winback", 2).await.unwrap(), 2);
    let counts = store.campaign_counts("winback").await.unwrap();
    assert_eq!(counts.by_state["cancelled"], 2);
    assert_eq!(counts.by_reason["cancelled:cancelled"], 2);
    assert_eq!(counts.open(), 0);
    assert_eq!(
        store.campaign("winback").await.unwrap().unwrap().state,
        "cancelled"
    );
    assert_eq!(store.campaign("nope").await.unwrap(), None);
    assert_eq!(
        store
            .retry_class("auth_failed", Some("another"), 3)
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        store
            .retry_class("auth_failed", Some("winback"), 3)
            .await
            .unwrap(),
        1
    );
    assert_eq!(state(&*store, "k0").await, "pending");
    let decision = &store.decisions_for("p-k0").await.unwrap()[0];
    assert_eq!(
        (decision.outcome.as_str(), decision.reason.as_deref()),
        ("enqueued", Some("operator_retry"))
    );
    assert_eq!(
        decision.detail.as_deref(),
        Some("retried by an operator after it was failed")
    );
    assert_eq!(store.campaign_unsettled("winback").await.unwrap(), 1);
    assert_eq!(
        keys(&store.claim(claim("whatsapp", "o", 10, 3)).await.unwrap()),
        ["k0"]
    );
    // A cancelled send may be put back by hand.
    assert_eq!(
        store.retry_send("k2", 4).await.unwrap(),
        Some(SendState::Cancelled)
    );
    assert_eq!(state(&*store, "k2").await, "pending");
}

async fn a_key_twice_in_one_batch_is_enqueued_and_settled_once(backend: &dyn Backend) {
    let store = backend.open().await;
    let enqueued = store
        .enqueue(
            vec![send("k", "whatsapp", false), send("k", "whatsapp", false)],
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(enqueued[0], Enqueued::Inserted);
    assert!(matches!(
        &enqueued[1],
        Enqueued::Existing {
            state: SendState::Pending,
            platform_message_id: None,
            settled_ms: None,
            ..
        }
    ));
    store.claim(claim("whatsapp", "a", 5, 0)).await.unwrap();
    assert_eq!(
        store
            .settle("a", vec![sent("k"), failed("k", "transient")], 1)
            .await
            .unwrap(),
        [Settle::Applied, Settle::NotHeld]
    );
    assert_eq!(state(&*store, "k").await, "sent");
    assert!(store.settle("a", vec![], 1).await.unwrap().is_empty());
    assert!(store.enqueue(vec![], vec![]).await.unwrap().is_empty());
    assert!(store.mark_written("a", vec![]).await.unwrap().is_empty());
}

async fn decisions_are_replaced_per_profile(backend: &dyn Backend) {
    let store = backend.open().await;
    let decision = |campaign: &str, outcome: &str, at| DecisionRecord {
        campaign: campaign.into(),
        profile_id: "p1".into(),
        channel: None,
        outcome: outcome.into(),
        reason: Some("no_consent".into()),
        detail: None,
        decided_ms: at,
    };
    store
        .enqueue(
            vec![],
            vec![
                decision("winback", "skipped", 1),
                decision("winback", "deferred", 2),
                decision("loyalty", "skipped", 3),
            ],
        )
        .await
        .unwrap();
    store
        .enqueue(vec![], vec![decision("loyalty", "failed", 4)])
        .await
        .unwrap();
    let decisions = store.decisions_for("p1").await.unwrap();
    assert_eq!(
        decisions
            .iter()
            .map(|d| (d.campaign.as_str(), d.outcome.as_str(), d.decided_ms))
            .collect::<Vec<_>>(),
        [("winback", "deferred", 2), ("loyalty", "failed", 4)]
    );
}

async fn a_rerun_keeps_what_a_settled_send_decided(backend: &dyn Backend) {
    let store = backend.open().await;
    let enqueued = |key: &str, at| DecisionRecord {
        campaign: "winback".into(),
        profile_id: format!("p-{key}"),
        channel: Some("whatsapp".into()),
        outcome: "enqueued".into(),
        reason: None,
        detail: None,
        decided_ms: at,
    };
    store
        .enqueue(
            vec![send("k1", "whatsapp", false), send("k2", "whatsapp", false)],
            vec![enqueued("k1", 1), enqueued("k2", 1)],
        )
        .await
        .unwrap();
    store.claim(claim("whatsapp", "a", 1, 2)).await.unwrap();
    store.settle("a", vec![sent("k1")], 3).await.unwrap();
    // The re-run plans both again, and one recipient more.
    let again = store
        .enqueue(
            vec![
                send("k1", "whatsapp", false),
                send("k2", "whatsapp", false),
                send("k3", "whatsapp", false),
            ],
            vec![enqueued("k1", 4), enqueued("k2", 4), enqueued("k3", 4)],
        )
        .await
        .unwrap();
    assert!(matches!(
        again[..],
        [
            Enqueued::Existing {
                state: SendState::Sent,
                ..
            },
            Enqueued::Existing {
                state: SendState::Pending,
                ..
            },
            Enqueued::Inserted
        ]
    ));
    let outcome = |profile: &'static str| {
        let store = &store;
        async move {
            let decisions = store.decisions_for(profile).await.unwrap();
            assert_eq!(decisions.len(), 1, "{decisions:?}");
            (decisions[0].outcome.clone(), decisions[0].decided_ms)
        }
    };
    assert_eq!(outcome("p-k1").await, ("sent".to_owned(), 3));
    assert_eq!(outcome("p-k2").await, ("enqueued".to_owned(), 1));
    assert_eq!(outcome("p-k3").await, ("enqueued".to_owned(), 4));
}

/// An audience chunk larger than one write (the SQLite store writes 100
/// sends per transaction): the results come back in the order of the
/// sends, every recipient's decision is recorded, skipped ones included,
/// and a re-run still keeps what a settled send decided.
async fn a_large_enqueue_keeps_its_order_and_every_decision(backend: &dyn Backend) {
    let store = backend.open().await;
    let decided = |profile: String, outcome: &str, at| DecisionRecord {
        campaign: "winback".into(),
        profile_id: profile,
        channel: Some("whatsapp".into()),
        outcome: outcome.into(),
        reason: (outcome == "skipped").then(|| "no_consent".to_owned()),
        detail: None,
        decided_ms: at,
    };
    let key = |i: usize| format!("k{i:03}");
    // Sends and decisions interleaved as an audience gives them: every
    // tenth recipient is skipped and has a decision but no send.
    let plan = |count: usize, at: i64| {
        let mut sends = Vec::new();
        let mut decisions = Vec::new();
        for i in 0..count {
            if i % 10 == 9 {
                decisions.push(decided(format!("skipped-{i}"), "skipped", at));
            } else {
                sends.push(send(&key(i), "whatsapp", false));
                decisions.push(decided(format!("p-{}", key(i)), "enqueued", at));
            }
        }
        (sends, decisions)
    };
    let (sends, decisions) = plan(150, 1);
    let first = store.enqueue(sends, decisions).await.unwrap();
    assert_eq!(first.len(), 135);
    assert!(first.iter().all(|r| matches!(r, Enqueued::Inserted)));
    let claimed = store.claim(claim("whatsapp", "a", 1, 2)).await.unwrap();
    let settled_key = claimed[0].message.idempotency_key.clone();
    let settled_number: usize = settled_key[1..].parse().unwrap();
    store
        .settle("a", vec![sent(&settled_key)], 3)
        .await
        .unwrap();

    // The re-run covers the first 150 again and 250 more.
    let (sends, decisions) = plan(400, 4);
    let planned: Vec<String> = sends
        .iter()
        .map(|s| s.message.idempotency_key.clone())
        .collect();
    let again = store.enqueue(sends, decisions).await.unwrap();
    assert_eq!(again.len(), planned.len());
    for (position, (key, result)) in planned.iter().zip(&again).enumerate() {
        let number: usize = key[1..].parse().unwrap();
        match result {
            Enqueued::Existing { state, .. } => {
                assert!(number < 150, "{key} at {position} was not queued before");
                let expected = if number == settled_number {
                    SendState::Sent
                } else {
                    SendState::Pending
                };
                assert_eq!(*state, expected, "{key}");
            }
            Enqueued::Inserted => assert!(number >= 150, "{key} at {position} was queued"),
        }
    }
    let outcome = |profile: String| {
        let store = &store;
        async move {
            let decisions = store.decisions_for(&profile).await.unwrap();
            assert_eq!(decisions.len(), 1, "{profile}: {decisions:?}");
            (decisions[0].outcome.clone(), decisions[0].decided_ms)
        }
    };
    assert_eq!(
        outcome(format!("p-{settled_key}")).await,
        ("sent".into(), 3)
    );
    let waiting = if settled_number == 1 { 2 } else { 1 };
    assert_eq!(
        outcome(format!("p-{}", key(waiting))).await,
        ("enqueued".into(), 1)
    );
    assert_eq!(
        outcome(format!("p-{}", key(398))).await,
        ("enqueued".into(), 4)
    );
    assert_eq!(outcome("skipped-389".into()).await, ("skipped".into(), 4));
    assert_eq!(outcome("skipped-9".into()).await, ("skipped".into(), 4));
    let counts = store.campaign_counts("winback").await.unwrap();
    assert_eq!(counts.decisions.values().sum::<u64>(), 400, "{counts:?}");
}

async fn listings_filter_and_order_sends(backend: &dyn Backend) {
    let store = backend.open().await;
    let mut sends: Vec<NewSend> = (0..5)
        .map(|i| send(&format!("k{i}"), "whatsapp", false))
        .collect();
    sends[4].campaign = "loyalty".into();
    store.enqueue(sends, vec![]).await.unwrap();
    store.claim(claim("whatsapp", "me", 2, 0)).await.unwrap();
    store.claim(claim("whatsapp", "other", 2, 0)).await.unwrap();
    store
        .settle("me", vec![sent("k0"), failed("k1", "transient")], 10)
        .await
        .unwrap();
    store
        .settle("other", vec![sent("k2"), failed("k3", "auth_failed")], 20)
        .await
        .unwrap();
    let listed = |query: SendQuery| {
        let store = Arc::clone(&store);
        async move {
            store
                .sends(query)
                .await
                .unwrap()
                .into_iter()
                .map(|r| r.idempotency_key)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        listed(SendQuery::default()).await,
        ["k0", "k1", "k2", "k3", "k4"]
    );
    assert_eq!(
        listed(SendQuery {
            campaign: Some("winback".into()),
            state: Some(SendState::Failed),
            ..SendQuery::default()
        })
        .await,
        ["k1", "k3"]
    );
    assert_eq!(
        listed(SendQuery {
            class: Some("auth_failed".into()),
            ..SendQuery::default()
        })
        .await,
        ["k3"]
    );
    assert_eq!(
        listed(SendQuery {
            settled_by_others_since: Some(("me".into(), 5)),
            ..SendQuery::default()
        })
        .await,
        ["k2", "k3"]
    );
    assert_eq!(
        listed(SendQuery {
            settled_by_others_since: Some(("me".into(), 21)),
            ..SendQuery::default()
        })
        .await,
        Vec::<String>::new()
    );
    // With a limit: the latest changes first (`k4` was enqueued just now).
    assert_eq!(
        listed(SendQuery {
            limit: Some(3),
            ..SendQuery::default()
        })
        .await,
        ["k4", "k2", "k3"]
    );
    let k4 = record(&*store, "k4").await;
    assert_eq!(
        (
            k4.campaign.as_str(),
            k4.due_ms,
            k4.attempts,
            k4.content_kind.as_str()
        ),
        ("loyalty", Some(0), 0, "template")
    );
    assert_eq!(store.send("nope").await.unwrap(), None);
}

async fn only_the_lease_owner_marks_written_and_next_due_sees_leases(backend: &dyn Backend) {
    let store = backend.open().await;
    assert_eq!(store.next_due("whatsapp").await.unwrap(), None);
    let mut later = send("later", "whatsapp", false);
    later.due_ms = 5_000;
    store
        .enqueue(vec![send("k", "whatsapp", false), later], vec![])
        .await
        .unwrap();
    assert_eq!(store.next_due("whatsapp").await.unwrap(), Some(0));
    store.claim(claim("whatsapp", "a", 10, 100)).await.unwrap();
    // Leased until 1,100; the other is due at 5,000.
    assert_eq!(store.next_due("whatsapp").await.unwrap(), Some(1_100));
    assert_eq!(
        store
            .mark_written("b", vec!["k".into(), "later".into(), "nope".into()])
            .await
            .unwrap(),
        ["k", "later", "nope"]
    );
    assert!(
        store
            .mark_written("a", vec!["k".into()])
            .await
            .unwrap()
            .is_empty()
    );
}

async fn recent_recipients_count_sent_templates(backend: &dyn Backend) {
    let store = backend.open().await;
    let mut text = send("text", "whatsapp", false);
    text.message.content = Content::Text("hi".into());
    text.message.to = "+1".into();
    let mut template = send("template", "whatsapp", false);
    template.message.to = "+1".into();
    let mut old = send("old", "whatsapp", false);
    old.message.to = "+2".into();
    store
        .enqueue(vec![text, template, old], vec![])
        .await
        .unwrap();
    store.claim(claim("whatsapp", "a", 10, 0)).await.unwrap();
    store.settle("a", vec![sent("old")], 50).await.unwrap();
    store
        .settle("a", vec![sent("text"), sent("template")], 200)
        .await
        .unwrap();
    assert_eq!(
        store.recent_recipients("whatsapp", 100).await.unwrap(),
        [("+1".to_owned(), 200)]
    );
    assert!(store.recent_recipients("line", 0).await.unwrap().is_empty());
}

async fn adapter_storage_keeps_the_first_value_and_a_quota(backend: &dyn Backend) {
    let store = backend.open().await;
    let entry = |key: &str, value: &str| KvEntry {
        channel: "line".into(),
        key: key.into(),
        value: value.into(),
        expires_ms: 100,
        max_entries: 2,
        max_bytes: 1 << 20,
    };
    assert_eq!(
        store
            .kv_put(entry("a", "1"), true, 10)
            .await
            .unwrap()
            .as_deref(),
        Some("1")
    );
    assert_eq!(
        store
            .kv_put(entry("a", "2"), true, 10)
            .await
            .unwrap()
            .as_deref(),
        Some("1")
    );
    store.kv_put(entry("b", "1"), false, 10).await.unwrap();
    assert_eq!(
        store.kv_put(entry("c", "1"), false, 10).await.unwrap(),
        None
    );
    // Replacing a value adds no entry.
    assert_eq!(
        store
            .kv_put(entry("b", "22"), false, 10)
            .await
            .unwrap()
            .as_deref(),
        Some("22")
    );
    assert_eq!(
        store.kv_get("line", "a", 10).await.unwrap().as_deref(),
        Some("1")
    );
    assert_eq!(
        store.kv_get("line", "a", 100).await.unwrap(),
        None,
        "expired"
    );
    // Expired entries make room again.
    assert_eq!(
        store
            .kv_put(entry("c", "1"), false, 100)
            .await
            .unwrap()
            .as_deref(),
        Some("1")
    );
    assert_eq!(store.kv_get("other", "a", 10).await.unwrap(), None);
    store.kv_delete("line", "a").await.unwrap();
    store.kv_delete("line", "never-there").await.unwrap();
    assert_eq!(store.kv_get("line", "a", 10).await.unwrap(), None);
    // Bytes count too.
    let big = KvEntry {
        max_entries: 100,
        max_bytes: 8,
        expires_ms: 1_000,
        ..entry("d", "1234567890")
    };
    assert_eq!(store.kv_put(big, false, 100).await.unwrap(), None);
}

/// An entry written again after it expired is purged to make room and
/// then written anew: it counts as a new entry, so the quota still holds.
async fn a_rewritten_expired_entry_still_counts_against_the_quota(backend: &dyn Backend) {
    let store = backend.open().await;
    let entry = |key: &str, value: &str, expires_ms, max_entries, max_bytes| KvEntry {
        channel: "line".into(),
        key: key.into(),
        value: value.into(),
        expires_ms,
        max_entries,
        max_bytes,
    };
    store
        .kv_put(entry("a", "1", 100, 2, 100), false, 10)
        .await
        .unwrap();
    store
        .kv_put(entry("b", "1", 100, 2, 100), false, 10)
        .await
        .unwrap();
    // Both expired; rewriting `a` larger needs the purge.
    assert_eq!(
        store
            .kv_put(entry("a", "12345", 1_000, 2, 7), false, 200)
            .await
            .unwrap()
            .as_deref(),
        Some("12345")
    );
    // `a` is live: a channel allowed one entry has no room for `c`.
    assert_eq!(
        store
            .kv_put(entry("c", "1", 1_000, 1, 100), false, 200)
            .await
            .unwrap(),
        None
    );
}

async fn profile_events_are_kept_once_and_read_back_by_name(backend: &dyn Backend) {
    let store = backend.open().await;
    let event = |id: &str, name: &str, at: i64| ProfileEvent {
        event_id: id.into(),
        profile_id: "p1".into(),
        name: name.into(),
        occurred_ms: at,
        received_ms: at + 1,
        properties: BTreeMap::from([("cart_url".to_owned(), format!("https://x/{id}"))]),
    };
    assert_eq!(
        store
            .record_profile_events(vec![
                event("e1", "cart_abandoned", 100),
                event("e2", "order_placed", 200),
                event("e1", "cart_abandoned", 100),
            ])
            .await
            .unwrap(),
        [true, true, false]
    );
    assert_eq!(
        store
            .record_profile_events(vec![
                event("e2", "order_placed", 200),
                event("e3", "order_placed", 50)
            ])
            .await
            .unwrap(),
        [false, true]
    );
    let found = store
        .profile_events("p1", vec!["order_placed".into()], 0, 200)
        .await
        .unwrap();
    assert_eq!(
        found,
        [
            event("e3", "order_placed", 50),
            event("e2", "order_placed", 200)
        ]
    );
    assert!(
        store
            .profile_events("p1", vec!["order_placed".into()], 201, 300)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .profile_events("p2", vec!["cart_abandoned".into()], 0, 300)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn trigger_sends_are_cancelled_per_profile_and_counted_for_caps(backend: &dyn Backend) {
    let store = backend.open().await;
    let triggered = |key: &str, profile: &str, deadline: i64, due: i64| {
        let mut queued = send(key, "whatsapp", false);
        queued.campaign = "cart".into();
        queued.profile_id = profile.into();
        queued.deadline_ms = Some(deadline);
        queued.due_ms = due;
        queued
    };
    store
        .enqueue(
            vec![
                triggered("early", "p1", 1_000, 500),
                triggered("late", "p1", 5_000, 600),
                triggered("theirs", "p2", 1_000, 700),
            ],
            vec![DecisionRecord {
                campaign: "cart".into(),
                profile_id: "p1".into(),
                channel: Some("whatsapp".into()),
                outcome: "enqueued".into(),
                reason: None,
                detail: None,
                decided_ms: 1,
            }],
        )
        .await
        .unwrap();
    let caps = store
        .recent_sends_to("whatsapp", vec!["p1".into(), "p2".into(), "p3".into()], 0)
        .await
        .unwrap();
    let mut p1 = caps["p1"].clone();
    p1.sort();
    assert_eq!(p1, [500, 600], "queued sends count at their due time");
    assert_eq!(caps["p2"], [700]);
    assert!(!caps.contains_key("p3"));
    let cancelled = store
        .cancel_profile_sends("cart", "p1", 1_000, "order_placed arrived first", 900)
        .await
        .unwrap();
    assert_eq!(cancelled, ["early"]);
    let early = record(&*store, "early").await;
    assert_eq!(
        (early.state.as_str(), early.error_message.as_deref()),
        ("cancelled", Some("order_placed arrived first"))
    );
    let decision = &store.decisions_for("p1").await.unwrap()[0];
    assert_eq!(
        (decision.outcome.as_str(), decision.detail.as_deref()),
        ("cancelled", Some("order_placed arrived first"))
    );
    assert!(
        store
            .cancel_profile_sends("cart", "p9", 1_000, "x", 900)
            .await
            .unwrap()
            .is_empty()
    );
    // Sent ones count from when they went out, if recent enough.
    store
        .claim(claim("whatsapp", "a", 10, 1_000))
        .await
        .unwrap();
    store
        .settle("a", vec![sent("late"), sent("theirs")], 1_200)
        .await
        .unwrap();
    let caps = store
        .recent_sends_to("whatsapp", vec!["p1".into(), "p2".into()], 1_100)
        .await
        .unwrap();
    assert_eq!(caps["p1"], [1_200]);
    assert!(
        store
            .recent_sends_to("whatsapp", vec!["p1".into()], 1_201)
            .await
            .unwrap()
            .is_empty()
    );
    let campaigns = store.campaigns().await.unwrap();
    assert!(campaigns.is_empty());
    for (name, at) in [("b", 2), ("a", 2), ("c", 1)] {
        store
            .put_campaign(CampaignRecord {
                name: name.into(),
                definition: String::new(),
                audience: String::new(),
                state: "running".into(),
                created_ms: at,
            })
            .await
            .unwrap();
    }
    let names: Vec<String> = store
        .campaigns()
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.name)
        .collect();
    assert_eq!(names, ["c", "a", "b"]);
}

async fn heartbeats_count_the_live_engines(backend: &dyn Backend) {
    let first = backend.open().await;
    let second = backend.open().await;
    assert_eq!(first.heartbeat("a", 1_000, 500).await.unwrap(), 1);
    assert_eq!(second.heartbeat("b", 1_100, 500).await.unwrap(), 2);
    assert_eq!(first.heartbeat("a", 1_200, 500).await.unwrap(), 2);
    // `b` falls silent.
    assert_eq!(first.heartbeat("a", 1_700, 500).await.unwrap(), 1);
}
