//! SQLite-only tests: opening files (many processes at once, errors that
//! name the file) and the in-memory store. The outbox's guarantees are in
//! the suite both backends pass, `crate::conformance`.

use std::sync::Arc;

use super::SqliteStore;
use crate::conformance::{claim, keys, send, sent};
use crate::*;

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
async fn an_in_memory_store_works_like_a_file() {
    let store = SqliteStore::in_memory().unwrap();
    assert_eq!(store.location(), ":memory:");
    store
        .enqueue(vec![send("k", "whatsapp", false)], vec![])
        .await
        .unwrap();
    let claimed = store.claim(claim("whatsapp", "a", 10, 0)).await.unwrap();
    assert_eq!(keys(&claimed), ["k"]);
    assert_eq!(
        store.settle("a", vec![sent("k")], 1).await.unwrap(),
        [Settle::Applied]
    );
    assert_eq!(store.send("k").await.unwrap().unwrap().state, "sent");
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

/// A connection to a migrated outbox in `dir`, configured as the store
/// configures its own, for looking at how SQLite runs the store's SQL.
fn configured_connection(dir: &tempfile::TempDir) -> rusqlite::Connection {
    let path = dir.path().join("switchboard.db");
    drop(SqliteStore::open(&path).unwrap());
    let connection = rusqlite::Connection::open(&path).unwrap();
    super::configure(&connection, &path).unwrap();
    connection
}

/// One column of what `sql` (an `EXPLAIN` or `EXPLAIN QUERY PLAN`) says,
/// its parameters bound to NULL.
fn explain(connection: &rusqlite::Connection, sql: &str, column: usize) -> Vec<String> {
    let mut statement = connection.prepare(sql).unwrap();
    let unbound = vec![rusqlite::types::Value::Null; statement.parameter_count()];
    statement
        .query_map(rusqlite::params_from_iter(unbound), |row| {
            row.get::<_, String>(column)
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// Every index on `sends` is written for every send, most of them more
/// than once in its life; each must serve one of the store's queries.
/// (Migration 0005 dropped one that served none and cost each send three
/// writes.)
#[test]
fn every_index_on_sends_serves_a_query_of_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let connection = configured_connection(&dir);
    let plans: Vec<String> = [
        super::outbox::LEASE_DUE,
        super::outbox::LEASE_EXPIRED,
        super::outbox::NEXT_DUE,
        super::outbox::RECENT_RECIPIENTS,
        super::campaigns::CAMPAIGN_COUNTS,
        super::recipients::BY_PLATFORM_ID,
        super::events::RECENT_FOR_PROFILES,
    ]
    .iter()
    .map(|sql| explain(&connection, &format!("EXPLAIN QUERY PLAN {sql}"), 3).join("\n"))
    .collect();
    let mut statement = connection
        .prepare("SELECT name FROM sqlite_schema WHERE type = 'index' AND tbl_name = 'sends' AND sql IS NOT NULL ORDER BY name")
        .unwrap();
    let indexes: Vec<String> = statement
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert!(indexes.contains(&"sends_due".to_owned()), "{indexes:?}");
    for index in &indexes {
        assert!(
            plans
                .iter()
                .any(|plan| plan.contains(&format!("INDEX {index} ("))),
            "the index {index} serves none of the store's queries: {plans:#?}"
        );
    }
}

/// Every write that moves a send between states checks the due index's
/// predicate. It must take plain comparisons, not a temporary b-tree built
/// per statement (migration 0004), and the claim and `next_due` must still
/// find due sends through that index.
#[test]
fn the_due_index_builds_no_temporary_tree_and_serves_the_claim() {
    let dir = tempfile::tempdir().unwrap();
    let connection = configured_connection(&dir);
    let explain = |sql: &str, column: usize| explain(&connection, sql, column);
    for write in [
        "UPDATE sends SET state = 'sent', settled_ms = 1 WHERE rowid = 1",
        "UPDATE sends SET state = 'retrying', due_ms = 5 WHERE rowid = 1",
        "UPDATE sends SET state = 'leased', lease_owner = 'a' WHERE rowid = 1",
        "DELETE FROM sends WHERE rowid = 1",
    ] {
        let opcodes = explain(&format!("EXPLAIN {write}"), 1);
        assert!(
            !opcodes.iter().any(|op| op == "OpenEphemeral"),
            "{write} builds a temporary b-tree: {opcodes:?}"
        );
    }
    for reader in [super::outbox::LEASE_DUE, super::outbox::NEXT_DUE] {
        let plan = explain(&format!("EXPLAIN QUERY PLAN {reader}"), 3);
        assert!(
            plan.iter()
                .any(|step| step.contains("USING INDEX sends_due")),
            "{reader}: {plan:?}"
        );
    }
}

/// A host upgraded over an outbox with sends in it: migration 0004
/// recreates the due index under them, and they are still claimed.
#[tokio::test]
async fn an_outbox_from_before_migration_0004_upgrades_with_its_sends() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("switchboard.db");
    let store = SqliteStore::open(&path).unwrap();
    store
        .enqueue(vec![send("k", "whatsapp", false)], vec![])
        .await
        .unwrap();
    drop(store);
    // The schema as migration 0003 left it.
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch(
            "DROP INDEX sends_due;
             CREATE INDEX sends_due ON sends(channel, due_ms) WHERE state IN ('pending', 'deferred', 'retrying');
             PRAGMA user_version = 3;",
        )
        .unwrap();

    let store = SqliteStore::open(&path).unwrap();
    let claimed = store.claim(claim("whatsapp", "a", 10, 0)).await.unwrap();
    assert_eq!(keys(&claimed), ["k"]);
    let connection = rusqlite::Connection::open(&path).unwrap();
    let index: String = connection
        .query_row(
            "SELECT sql FROM sqlite_schema WHERE name = 'sends_due'",
            [],
            |row| row.get(0),
        )
        .unwrap();
    assert!(index.contains("state = 'pending' OR"), "{index}");
    let version: i64 = connection
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .unwrap();
    assert_eq!(version as usize, super::MIGRATIONS.len());
}

/// The claim's statement runs once per batch with a new time and limit:
/// the store's connections must not compile it again each time (SQLite
/// does when a plan depends on a bound value, as `LIMIT ?` does unless
/// the query planner stability guarantee is on).
#[test]
fn a_claim_is_not_compiled_again_at_every_call() {
    let dir = tempfile::tempdir().unwrap();
    let connection = configured_connection(&dir);
    let mut statement = connection
        .prepare(&format!(
            "SELECT COUNT(*) FROM ({})",
            super::outbox::LEASE_DUE
        ))
        .unwrap();
    for call in 0..3_i64 {
        let due: i64 = statement
            .query_row(
                rusqlite::params!["whatsapp", "owner", 0, 1_000 + call, 50 + call, "winback"],
                |row| row.get(0),
            )
            .unwrap();
        assert_eq!(due, 0);
    }
    assert_eq!(
        statement.get_status(rusqlite::StatementStatus::RePrepare),
        0,
        "the claim's statement was compiled again"
    );
}
