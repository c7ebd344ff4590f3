//! PostgreSQL-only tests: URLs and the errors that name them, schemas,
//! hosts migrating one new schema at once, and many engines on several
//! stores racing over one outbox. The suite both backends pass is in
//! `crate::conformance`.

use std::sync::Arc;

use super::*;
use crate::conformance::{claim, keys, send, sent, with_postgres};

/// A schema beside the one `url` names, not created yet.
fn sibling_schema(url: &str, suffix: &str) -> String {
    let mut parsed = url::Url::parse(url).unwrap();
    let pairs: Vec<(String, String)> = parsed
        .query_pairs()
        .map(|(key, value)| match &*key {
            SCHEMA_PARAMETER => (key.into_owned(), format!("{value}_{suffix}")),
            _ => (key.into_owned(), value.into_owned()),
        })
        .collect();
    set_query(&mut parsed, &pairs);
    parsed.to_string()
}

#[test]
fn passwords_are_removed_from_urls() {
    assert_eq!(
        redact("postgres://sb:s3cret@db.internal:5432/switchboard?schema=eu"),
        "postgres://sb@db.internal:5432/switchboard?schema=eu"
    );
    assert_eq!(
        redact("postgresql://sb@db/x?password=s3cret&sslmode=disable"),
        "postgresql://sb@db/x?sslmode=disable"
    );
    assert_eq!(
        redact("postgres://postgres@127.0.0.1:5432/test"),
        "postgres://postgres@127.0.0.1:5432/test"
    );
    assert_eq!(
        redact("postgres://sb:s3cret@[bad/x"),
        "postgres://sb@[bad/x"
    );
    assert!(!redact("not a url with s3cret").contains("s3cret"));
}

#[tokio::test]
async fn errors_name_the_url_without_the_password() {
    let url = "postgres://switchboard:s3cret@127.0.0.1:1/test?schema=eu";
    let error = match PostgresStore::connect(url).await {
        Err(error) => error.to_string(),
        Ok(_) => panic!("nothing listens on port 1"),
    };
    assert!(
        error.contains("postgres://switchboard@127.0.0.1:1/test?schema=eu"),
        "{error}"
    );
    assert!(error.contains("connecting"), "{error}");
    assert!(!error.contains("s3cret"), "{error}");
}

#[tokio::test]
async fn bad_parameters_are_refused_naming_them() {
    for (url, says) in [
        (
            "postgres://sb:s3cret@127.0.0.1/test?schema=Robert%27)%3BDROP",
            "schema=Robert');DROP",
        ),
        (
            "postgres://sb:s3cret@127.0.0.1/test?max_connections=0",
            "max_connections=0",
        ),
        ("mysql://sb:s3cret@127.0.0.1/test", "not a PostgreSQL URL"),
    ] {
        let error = match PostgresStore::connect(url).await {
            Err(error) => error.to_string(),
            Ok(_) => panic!("{url} connected"),
        };
        assert!(error.contains("reading the URL"), "{error}");
        assert!(error.contains(says), "{error}");
        assert!(!error.contains("s3cret"), "{error}");
    }
}

#[tokio::test]
async fn the_location_names_the_schema_without_a_password() {
    with_postgres(|backend| async move {
        let store = PostgresStore::connect(&backend.url).await.unwrap();
        assert_eq!(store.location(), redact(&backend.url));
        assert!(store.location().contains("schema=sb_test_"));
        // The tables are in the schema, not in `public`.
        let schema: String =
            sqlx::query_scalar("SELECT table_schema::text FROM information_schema.tables WHERE table_name = 'sends' AND table_schema = current_schema()")
                .fetch_one(&store.pool)
                .await
                .unwrap();
        assert!(schema.starts_with("sb_test_"), "{schema}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hosts_starting_together_migrate_a_new_schema_once() {
    with_postgres(|backend| async move {
        let url = sibling_schema(&backend.url, "race");
        let connects: Vec<_> = (0..8)
            .map(|_| {
                let url = url.clone();
                tokio::spawn(async move { PostgresStore::connect(&url).await })
            })
            .collect();
        let mut stores = Vec::new();
        for connect in connects {
            stores.push(connect.await.unwrap().expect("every host gets in"));
        }
        let applied: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations")
            .fetch_one(&stores[0].pool)
            .await
            .unwrap();
        let files = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/postgres"))
            .unwrap()
            .count();
        assert_eq!(applied as usize, files, "each migration applied once");
        stores[3]
            .enqueue(vec![send("k", "whatsapp", false)], vec![])
            .await
            .unwrap();
        assert_eq!(
            stores[5].send("k").await.unwrap().unwrap().state,
            "pending",
            "one schema"
        );
        for store in &stores {
            store.close().await;
        }
        PostgresStore::drop_schema(&url).await.unwrap();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_engines_on_two_stores_claim_each_send_exactly_once() {
    with_postgres(|backend| async move {
        let first = Arc::new(PostgresStore::connect(&backend.url).await.unwrap());
        let second = Arc::new(PostgresStore::connect(&backend.url).await.unwrap());
        for batch in 0..2 {
            let sends: Vec<NewSend> = (0..1_000)
                .map(|i| send(&format!("k{batch}-{i:04}"), "whatsapp", false))
                .collect();
            let enqueued = first.enqueue(sends, vec![]).await.unwrap();
            assert!(enqueued.iter().all(|e| *e == Enqueued::Inserted));
        }
        let mut engines = Vec::new();
        for engine in 0..16 {
            let store = Arc::clone(if engine % 2 == 0 { &first } else { &second });
            engines.push(tokio::spawn(async move {
                let owner = format!("engine-{engine}");
                let mut mine = Vec::new();
                loop {
                    let claimed = store.claim(claim("whatsapp", &owner, 50, 1)).await.unwrap();
                    if claimed.is_empty() {
                        break mine;
                    }
                    let claimed = keys(&claimed);
                    let settled = store
                        .settle(&owner, claimed.iter().map(|k| sent(k)).collect(), 2)
                        .await
                        .unwrap();
                    assert!(settled.iter().all(|s| *s == Settle::Applied), "{settled:?}");
                    mine.extend(claimed);
                }
            }));
        }
        let mut all = Vec::new();
        let mut busy = 0;
        for engine in engines {
            let mine = engine.await.unwrap();
            busy += usize::from(!mine.is_empty());
            all.extend(mine);
        }
        let count = all.len();
        all.sort();
        all.dedup();
        assert_eq!(count, 2_000, "every send claimed once");
        assert_eq!(all.len(), 2_000, "no send claimed twice");
        assert!(busy > 1, "the engines shared the work");
        let counts = second.campaign_counts("winback").await.unwrap();
        assert_eq!(counts.by_state["sent"], 2_000);
        assert_eq!(counts.decisions["sent"], 2_000);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_expired_lease_is_taken_over_by_exactly_one_engine() {
    with_postgres(|backend| async move {
        let stores = [
            Arc::new(PostgresStore::connect(&backend.url).await.unwrap()),
            Arc::new(PostgresStore::connect(&backend.url).await.unwrap()),
        ];
        let sends: Vec<NewSend> = (0..300)
            .map(|i| send(&format!("k{i:03}"), "whatsapp", false))
            .collect();
        stores[0].enqueue(sends, vec![]).await.unwrap();
        // An engine leases everything and dies (its leases end at 1,000).
        assert_eq!(
            stores[0]
                .claim(claim("whatsapp", "dead", 1_000, 0))
                .await
                .unwrap()
                .len(),
            300
        );
        let mut engines = Vec::new();
        for engine in 0..8 {
            let store = Arc::clone(&stores[engine % 2]);
            engines.push(tokio::spawn(async move {
                let owner = format!("engine-{engine}");
                let mut mine = Vec::new();
                loop {
                    let claimed = store
                        .claim(claim("whatsapp", &owner, 13, 1_000))
                        .await
                        .unwrap();
                    if claimed.is_empty() {
                        break mine;
                    }
                    assert!(claimed.iter().all(|c| c.message.attempt == 2));
                    mine.extend(keys(&claimed));
                }
            }));
        }
        let mut all = Vec::new();
        for engine in engines {
            all.extend(engine.await.unwrap());
        }
        let count = all.len();
        all.sort();
        all.dedup();
        assert_eq!((count, all.len()), (300, 300));
        // The dead engine's late settlements change nothing.
        let late = stores[1]
            .settle("dead", vec![sent("k000"), sent("k299")], 1_001)
            .await
            .unwrap();
        assert_eq!(late, [Settle::NotHeld, Settle::NotHeld]);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_storage_writes_keep_the_quota() {
    with_postgres(|backend| async move {
        let stores = [
            Arc::new(PostgresStore::connect(&backend.url).await.unwrap()),
            Arc::new(PostgresStore::connect(&backend.url).await.unwrap()),
        ];
        let writers: Vec<_> = (0..24)
            .map(|i| {
                let store = Arc::clone(&stores[i % 2]);
                tokio::spawn(async move {
                    let entry = KvEntry {
                        channel: "line".into(),
                        key: format!("key-{i}"),
                        value: "v".into(),
                        expires_ms: 10_000,
                        max_entries: 5,
                        max_bytes: 1 << 20,
                    };
                    store.kv_put(entry, false, 1).await.unwrap().is_some()
                })
            })
            .collect();
        let mut stored = 0;
        for writer in writers {
            stored += usize::from(writer.await.unwrap());
        }
        assert_eq!(stored, 5);
    })
    .await;
}

/// Statuses arriving while engines settle the same sends (some before
/// their send is recorded, in the opposite order): every send ends up
/// with its status, and no operation fails on a deadlock.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn statuses_racing_settlements_all_land() {
    use switchboard_contract::model::DeliveryState;
    use switchboard_core::events::Effect;
    with_postgres(|backend| async move {
        let stores = [
            Arc::new(PostgresStore::connect(&backend.url).await.unwrap()),
            Arc::new(PostgresStore::connect(&backend.url).await.unwrap()),
        ];
        let all: Vec<String> = (0..500).map(|i| format!("k{i:03}")).collect();
        let sends: Vec<NewSend> = all.iter().map(|k| send(k, "whatsapp", false)).collect();
        stores[0].enqueue(sends, vec![]).await.unwrap();
        let mut tasks = Vec::new();
        for engine in 0..4 {
            let store = Arc::clone(&stores[engine % 2]);
            tasks.push(tokio::spawn(async move {
                let owner = format!("engine-{engine}");
                loop {
                    let claimed = store.claim(claim("whatsapp", &owner, 25, 1)).await.unwrap();
                    if claimed.is_empty() {
                        break;
                    }
                    let settlements = keys(&claimed).iter().map(|k| sent(k)).collect();
                    store.settle(&owner, settlements, 2).await.unwrap();
                }
            }));
        }
        for (webhook, chunk) in all.rchunks(25).enumerate() {
            let store = Arc::clone(&stores[webhook % 2]);
            let events: Vec<EventRecord> = chunk
                .iter()
                .rev()
                .map(|key| EventRecord {
                    event_id: format!("delivered-{key}"),
                    occurred_ms: 3,
                    received_ms: 3,
                    effects: vec![Effect::Status {
                        platform_message_id: Some(format!("wamid.{key}")),
                        correlation_key: None,
                        state: DeliveryState::Delivered,
                        failure: None,
                    }],
                })
                .collect();
            tasks.push(tokio::spawn(async move {
                let applied = store.apply_events("whatsapp", events).await.unwrap();
                assert!(applied.iter().all(|new| *new));
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        let counts = stores[1].campaign_counts("winback").await.unwrap();
        assert_eq!(counts.by_state["sent"], 500);
        assert_eq!(counts.by_delivery["delivered"], 500);
    })
    .await;
}

/// Marks from many requests at once, of two lease owners, are committed in
/// groups; each request still learns exactly which of its own keys it no
/// longer holds, and every held key is marked (a lease taken over after
/// the engine died would make each one uncertain).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn write_ahead_marks_committed_together_answer_each_request() {
    with_postgres(|backend| async move {
        let store = Arc::new(PostgresStore::connect(&backend.url).await.unwrap());
        let sends: Vec<NewSend> = (0..400)
            .map(|i| send(&format!("m{i:04}"), "whatsapp", false))
            .collect();
        store.enqueue(sends, vec![]).await.unwrap();
        let a = keys(&store.claim(claim("whatsapp", "a", 200, 1)).await.unwrap());
        let b = keys(&store.claim(claim("whatsapp", "b", 200, 1)).await.unwrap());
        assert_eq!((a.len(), b.len()), (200, 200));
        let mut requests = Vec::new();
        for (index, key) in a.iter().chain(&b).enumerate() {
            let store = Arc::clone(&store);
            // Each request names its own key, and every fourth one also a
            // key of the other owner, which it does not hold.
            let owner = if index < 200 { "a" } else { "b" };
            let other = if index < 200 {
                &b[index]
            } else {
                &a[index - 200]
            };
            let mut asked = vec![key.clone()];
            if index % 4 == 0 {
                asked.push(other.clone());
            }
            let expected_lost: Vec<String> = asked[1..].to_vec();
            requests.push(tokio::spawn(async move {
                let lost = store.mark_written(owner, asked).await.unwrap();
                assert_eq!(lost, expected_lost, "request {index} of owner {owner}");
            }));
        }
        for request in requests {
            request.await.unwrap();
        }
        // Both engines die: every key was marked, so each becomes uncertain.
        let taken = store
            .claim(ClaimRequest {
                lease_ms: 1_000,
                ..claim("whatsapp", "c", 1_000, 10_000)
            })
            .await
            .unwrap();
        assert!(taken.is_empty(), "nothing written is handed out again");
        let counts = store.campaign_counts("winback").await.unwrap();
        assert_eq!(counts.by_state["uncertain"], 400, "{:?}", counts.by_state);
    })
    .await;
}
