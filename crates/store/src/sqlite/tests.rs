//! The outbox's guarantees on SQLite, tested against real files: claims
//! are exclusive (across two stores on one file too), a sent send never
//! changes back, expired leases are taken over or made uncertain, opt-outs
//! and deadlines suppress queued sends, and fall-backs follow the route.

use std::sync::Arc;

use switchboard_contract::model::{
    Content, DeliveryState, OutboundMessage, Purpose, TemplateMessage, WindowOpener,
};
use switchboard_core::consent::LedgerChange;
use switchboard_core::events::Effect;

use super::SqliteStore;
use crate::*;

fn message(key: &str, to: &str) -> OutboundMessage {
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

fn send(key: &str, channel: &str, deduplicates: bool) -> NewSend {
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

fn claim(channel: &str, owner: &str, limit: u32, now: i64) -> ClaimRequest {
    ClaimRequest {
        channel: channel.into(),
        owner: owner.into(),
        limit,
        now_ms: now,
        lease_ms: 1_000,
        campaign: None,
    }
}

fn sent(key: &str) -> Settlement {
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

fn keys(claimed: &[ClaimedSend]) -> Vec<String> {
    let mut keys: Vec<String> = claimed
        .iter()
        .map(|c| c.message.idempotency_key.clone())
        .collect();
    keys.sort();
    keys
}

async fn state(store: &SqliteStore, key: &str) -> String {
    store.send(key).await.unwrap().expect("send exists").state
}

fn file_store() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("switchboard.db")).unwrap();
    (dir, store)
}

/// Processes started together (two `switchboard send` of one campaign)
/// open one new file at once; every one of them must get in.
#[test]
fn many_openers_of_one_new_file_all_succeed() {
    for round in 0..5 {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("switchboard.db");
        let barrier = Arc::new(std::sync::Barrier::new(6));
        let openers: Vec<_> = (0..6)
            .map(|_| {
                let path = path.clone();
                let barrier = Arc::clone(&barrier);
                std::thread::spawn(move || {
                    barrier.wait();
                    SqliteStore::open(&path).map(drop)
                })
            })
            .collect();
        for opener in openers {
            let opened = opener.join().expect("opener thread");
            assert!(opened.is_ok(), "round {round}: {opened:?}");
        }
    }
}

#[tokio::test]
async fn a_sent_send_is_never_claimed_or_changed_again() {
    let (_dir, store) = file_store();
    let inserted = store
        .enqueue(vec![send("k1", "whatsapp", false)], vec![])
        .await
        .unwrap();
    assert_eq!(inserted, [Enqueued::Inserted]);
    let claimed = store.claim(claim("whatsapp", "a", 10, 1)).await.unwrap();
    assert_eq!(keys(&claimed), ["k1"]);
    assert_eq!(claimed[0].message.attempt, 1);
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
        Enqueued::Existing { state: SendState::Sent, platform_message_id: Some(id), .. } if id == "wamid.k1"
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
    assert_eq!(state(&store, "k1").await, "sent");
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
    assert_eq!(state(&store, "k1").await, "sent");
}

#[tokio::test]
async fn two_stores_on_one_file_never_claim_the_same_send() {
    let (dir, first) = file_store();
    let second = SqliteStore::open(&dir.path().join("switchboard.db")).unwrap();
    let sends: Vec<NewSend> = (0..400)
        .map(|i| send(&format!("k{i:03}"), "whatsapp", false))
        .collect();
    first.enqueue(sends, vec![]).await.unwrap();
    let (first, second) = (Arc::new(first), Arc::new(second));
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

#[tokio::test]
async fn an_expired_lease_is_taken_over_only_if_nothing_was_written() {
    let store = SqliteStore::in_memory().unwrap();
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
    assert_eq!(state(&store, "written").await, "uncertain");
    let record = store.send("written").await.unwrap().unwrap();
    assert!(
        record
            .error_message
            .unwrap()
            .contains("does not deduplicate"),
        "says why"
    );
    // The platform deduplicates: resent under the same key.
    let line = store.claim(claim("line", "b", 10, 1_000)).await.unwrap();
    assert_eq!(keys(&line), ["dedup"]);
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

#[tokio::test]
async fn deferred_and_retrying_sends_wait_for_their_time() {
    let store = SqliteStore::in_memory().unwrap();
    let mut quiet = send("q", "kakaotalk", true);
    quiet.due_ms = 500;
    quiet.deferred_reason = Some("quiet_hours".into());
    store
        .enqueue(vec![quiet, send("r", "kakaotalk", true)], vec![])
        .await
        .unwrap();
    assert_eq!(state(&store, "q").await, "deferred");
    let first = store.claim(claim("kakaotalk", "a", 10, 100)).await.unwrap();
    assert_eq!(keys(&first), ["r"]);
    let retry = Settlement {
        key: "r".into(),
        outcome: Outcome::Retrying {
            due_ms: 300,
            class: "transient".into(),
            message: "503".into(),
        },
        consent: None,
        rate_limited: false,
        fall_back: false,
    };
    store.settle("a", vec![retry], 100).await.unwrap();
    assert_eq!(store.next_due("kakaotalk").await.unwrap(), Some(300));
    assert!(
        store
            .claim(claim("kakaotalk", "a", 10, 299))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        keys(&store.claim(claim("kakaotalk", "a", 10, 300)).await.unwrap()),
        ["r"]
    );
    assert_eq!(
        keys(&store.claim(claim("kakaotalk", "a", 10, 500)).await.unwrap()),
        ["q"]
    );
}

#[tokio::test]
async fn a_release_does_not_count_as_an_attempt() {
    let store = SqliteStore::in_memory().unwrap();
    store
        .enqueue(vec![send("k", "whatsapp", false)], vec![])
        .await
        .unwrap();
    store.claim(claim("whatsapp", "a", 1, 0)).await.unwrap();
    let release = Settlement {
        key: "k".into(),
        outcome: Outcome::Released { due_ms: 0 },
        consent: None,
        rate_limited: false,
        fall_back: false,
    };
    store.settle("a", vec![release], 0).await.unwrap();
    let again = store.claim(claim("whatsapp", "a", 1, 0)).await.unwrap();
    assert_eq!(again[0].message.attempt, 1);
}

#[tokio::test]
async fn an_opt_out_received_after_queueing_suppresses_the_send() {
    let store = SqliteStore::in_memory().unwrap();
    let mut queued = send("k", "whatsapp", false);
    queued.message.to = "+4915100000001".into();
    store
        .enqueue(vec![queued, send("other", "whatsapp", false)], vec![])
        .await
        .unwrap();
    let created = store.send("k").await.unwrap().unwrap().updated_ms;
    let opt_out = EventRecord {
        event_id: "stop-1".into(),
        occurred_ms: created + 10,
        received_ms: created + 10,
        effects: vec![Effect::Consent(LedgerChange {
            address: "+4915100000001".into(),
            purpose: Some(Purpose::Marketing),
            opted_in: false,
            source: "webhook:whatsapp".into(),
        })],
    };
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
    let record = store.send("k").await.unwrap().unwrap();
    assert_eq!(record.state, "skipped");
    assert_eq!(record.error_class.as_deref(), Some("opted_out"));
    let decisions = store.decisions_for("p-k").await.unwrap();
    assert_eq!(decisions[0].outcome, "skipped");
    assert_eq!(decisions[0].reason.as_deref(), Some("opted_out"));
}

#[tokio::test]
async fn a_send_past_its_deadline_is_skipped() {
    let store = SqliteStore::in_memory().unwrap();
    let mut late = send("late", "whatsapp", false);
    late.deadline_ms = Some(1_000);
    store.enqueue(vec![late], vec![]).await.unwrap();
    assert!(
        store
            .claim(claim("whatsapp", "a", 10, 1_001))
            .await
            .unwrap()
            .is_empty()
    );
    let record = store.send("late").await.unwrap().unwrap();
    assert_eq!(
        (record.state.as_str(), record.error_class.as_deref()),
        ("skipped", Some("deadline_passed"))
    );
}

fn first_again() -> NewSend {
    send("kakao", "kakaotalk", true)
}

#[tokio::test]
async fn unreachable_falls_back_to_the_next_channel_of_the_route() {
    let store = SqliteStore::in_memory().unwrap();
    let mut first = send("kakao", "kakaotalk", true);
    first.fallback = vec![Alternative {
        channel: "rcs".into(),
        address: "+821012345678".into(),
        content: Content::Text("Your points: 120".into()),
        window: None,
        deduplicates: true,
        not_before_ms: None,
        not_before_reason: None,
    }];
    store.enqueue(vec![first], vec![]).await.unwrap();
    store.claim(claim("kakaotalk", "a", 1, 0)).await.unwrap();
    let unreachable = Settlement {
        key: "kakao".into(),
        outcome: Outcome::Failed {
            class: "unreachable".into(),
            message: "(3019) not a KakaoTalk user".into(),
        },
        consent: None,
        rate_limited: false,
        fall_back: true,
    };
    assert_eq!(
        store.settle("a", vec![unreachable], 5).await.unwrap(),
        [Settle::FellBack]
    );
    // A re-run reports the send that carried on.
    let again = store.enqueue(vec![first_again()], vec![]).await.unwrap();
    assert!(
        matches!(&again[0], Enqueued::Existing { state: SendState::Pending, channel, .. } if channel == "rcs")
    );
    let next = store.claim(claim("rcs", "a", 10, 5)).await.unwrap();
    assert_eq!(next.len(), 1);
    assert_eq!(next[0].message.to, "+821012345678");
    assert_eq!(next[0].step, 1);
    assert_eq!(next[0].profile_id, "p-kakao");
    assert_eq!(
        next[0].message.idempotency_key,
        switchboard_core::campaign::idempotency_key("winback", "p-kakao", "rcs", 0)
    );
    let decision = &store.decisions_for("p-kakao").await.unwrap()[0];
    assert_eq!(
        (decision.outcome.as_str(), decision.channel.as_deref()),
        ("enqueued", Some("rcs"))
    );
}

#[tokio::test]
async fn statuses_find_sends_by_id_or_correlation_key_and_never_go_backwards() {
    let store = SqliteStore::in_memory().unwrap();
    store
        .enqueue(
            vec![send("a", "whatsapp", false), send("b", "whatsapp", false)],
            vec![],
        )
        .await
        .unwrap();
    let status = |id: &str, event: &str, state, key: Option<&str>| EventRecord {
        event_id: event.into(),
        occurred_ms: 1,
        received_ms: 1,
        effects: vec![Effect::Status {
            platform_message_id: (!id.is_empty()).then(|| id.to_owned()),
            correlation_key: key.map(str::to_owned),
            state,
            failure: None,
        }],
    };
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
    assert_eq!(
        store
            .send("a")
            .await
            .unwrap()
            .unwrap()
            .delivery_state
            .as_deref(),
        Some("delivered")
    );
    store
        .apply_events(
            "whatsapp",
            vec![
                status("wamid.a", "e2", DeliveryState::Read, None),
                status("wamid.a", "e3", DeliveryState::Sent, None),
                status("", "e4", DeliveryState::Read, Some("b")),
            ],
        )
        .await
        .unwrap();
    assert_eq!(
        store
            .send("a")
            .await
            .unwrap()
            .unwrap()
            .delivery_state
            .as_deref(),
        Some("read")
    );
    assert_eq!(
        store
            .send("b")
            .await
            .unwrap()
            .unwrap()
            .delivery_state
            .as_deref(),
        Some("read")
    );
}

#[tokio::test]
async fn windows_open_per_opener_and_count_free_form_sends() {
    let store = SqliteStore::in_memory().unwrap();
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
    let mut text = send("t", "wechat", false);
    text.message.to = "o1".into();
    text.window = Some(WindowOpener::InboundMessage);
    store.enqueue(vec![text], vec![]).await.unwrap();
    store.claim(claim("wechat", "o", 1, 2_000)).await.unwrap();
    store.settle("o", vec![sent("t")], 2_000).await.unwrap();
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
            (WindowOpener::InboundMessage, 1_000, 1),
            (WindowOpener::Follow, 1_500, 0)
        ]
    );
    // A later message refreshes its window and resets its count.
    store
        .apply_events(
            "wechat",
            vec![open("m2", WindowOpener::InboundMessage, 3_000)],
        )
        .await
        .unwrap();
    let states = store
        .recipient_states("wechat", vec!["o1".into()])
        .await
        .unwrap();
    let inbound = states["o1"]
        .windows
        .iter()
        .find(|w| w.opener == WindowOpener::InboundMessage)
        .unwrap();
    assert_eq!((inbound.opened_ms, inbound.free_form_sent), (3_000, 0));
    assert_eq!(
        store.addresses_with_state("wechat").await.unwrap(),
        ["o1".to_owned()].into()
    );
}

#[tokio::test]
async fn a_campaign_is_counted_cancelled_and_its_dead_letters_retried() {
    let store = SqliteStore::in_memory().unwrap();
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
    let failed = |key: &str| Settlement {
        key: key.into(),
        outcome: Outcome::Failed {
            class: "auth_failed".into(),
            message: "(190) token expired".into(),
        },
        consent: None,
        rate_limited: false,
        fall_back: false,
    };
    store
        .settle("o", vec![failed("k0"), sent("k1")], 1)
        .await
        .unwrap();
    let counts = store.campaign_counts("winback").await.unwrap();
    assert_eq!(counts.by_state["pending"], 2);
    assert_eq!(store.campaign_unsettled("winback").await.unwrap(), 2);
    assert_eq!(counts.unsettled(), 2);
    assert_eq!(store.campaign_unsettled("another").await.unwrap(), 0);
    assert_eq!(counts.by_reason["failed:auth_failed"], 1);
    assert_eq!(counts.open(), 2);
    assert_eq!(store.cancel_campaign("winback", 2).await.unwrap(), 2);
    let counts = store.campaign_counts("winback").await.unwrap();
    assert_eq!(counts.by_state["cancelled"], 2);
    assert_eq!(counts.open(), 0);
    assert_eq!(
        store
            .retry_class("auth_failed", Some("winback"), 3)
            .await
            .unwrap(),
        1
    );
    assert_eq!(state(&store, "k0").await, "pending");
    assert_eq!(store.campaign_unsettled("winback").await.unwrap(), 1);
    assert_eq!(
        keys(&store.claim(claim("whatsapp", "o", 10, 3)).await.unwrap()),
        ["k0"]
    );
}

#[tokio::test]
async fn adapter_storage_keeps_the_first_value_and_a_quota() {
    let store = SqliteStore::in_memory().unwrap();
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
    assert_eq!(store.kv_get("line", "a", 10).await.unwrap(), None);
}

#[tokio::test]
async fn errors_name_the_database_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("missing-dir").join("switchboard.db");
    let error = match SqliteStore::open(&path) {
        Err(error) => error.to_string(),
        Ok(_) => panic!("a database in a missing directory cannot open"),
    };
    assert!(error.contains(&path.display().to_string()), "{error}");
    assert!(error.contains("cannot open"), "{error}");
}
