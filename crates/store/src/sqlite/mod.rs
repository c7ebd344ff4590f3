//! The embedded store: SQLite in WAL mode.
//!
//! Every statement runs on a database thread, never on the async workers.
//! The writer thread commits whatever work has queued up in one
//! transaction (group commit: many claims, write-ahead marks and
//! settlements per commit, statements prepared once); a reader thread with
//! its own connection serves the listings, so a large report never holds
//! up the writer. Writes take SQLite's write lock (`BEGIN IMMEDIATE`), which
//! is what makes a claim exclusive across processes sharing the file.

mod campaigns;
mod events;
mod kv;
mod outbox;
mod recipients;
mod thread;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::Connection;
use rusqlite::config::DbConfig;
use rusqlite_migration::{M, Migrations};

use crate::records::*;
use crate::{Store, StoreError, StoreResult, now_ms};
use thread::DbThread;

/// The schema, one migration per version; applied in order on open.
const MIGRATIONS: &[&str] = &[
    include_str!("../../migrations/sqlite/0001_outbox.sql"),
    include_str!("../../migrations/sqlite/0002_consent_per_purpose.sql"),
    include_str!("../../migrations/sqlite/0003_events_and_nodes.sql"),
    include_str!("../../migrations/sqlite/0004_due_index_without_in_list.sql"),
    include_str!("../../migrations/sqlite/0005_drop_unused_settled_by_campaign_index.sql"),
];

/// The ledger's `purpose` for an entry that covers every purpose.
pub(crate) const ALL_PURPOSES: &str = "*";

/// The most sends (with their recipients' decisions) one transaction of a
/// large enqueue writes. A piece holds the writer for about 3 ms, so a
/// claim or write-ahead mark waits at most that long behind an audience
/// being enqueued, not the 30 ms of a whole chunk of 1,000.
const ENQUEUE_PIECE: usize = 100;

/// How long a write waits for another process holding the database lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(15);

/// Switchboard's state in one SQLite file; see the [module docs](self).
pub struct SqliteStore {
    writer: DbThread,
    reader: Option<DbThread>,
    database: PathBuf,
}

impl SqliteStore {
    /// Open (creating and migrating if needed) the database at `path`.
    pub fn open(path: &Path) -> StoreResult<Self> {
        let database = path.to_owned();
        let mut writer = connect(path, &database)?;
        migrate(&mut writer, &database)?;
        let reader = connect(path, &database)?;
        Ok(Self {
            writer: start("sqlite-writer", writer, &database, true)?,
            reader: Some(start("sqlite-reader", reader, &database, false)?),
            database,
        })
    }

    /// A private in-memory database, for tests.
    pub fn in_memory() -> StoreResult<Self> {
        let database = PathBuf::from(":memory:");
        let mut connection =
            Connection::open_in_memory().map_err(|e| error(&database, "opening", &e))?;
        configure(&connection, &database)?;
        migrate(&mut connection, &database)?;
        Ok(Self {
            writer: start("sqlite-writer", connection, &database, true)?,
            reader: None,
            database,
        })
    }

    fn reader(&self) -> &DbThread {
        self.reader.as_ref().unwrap_or(&self.writer)
    }
}

fn error(database: &Path, what: &str, error: &rusqlite::Error) -> StoreError {
    StoreError::Database {
        database: database.to_owned(),
        message: format!("{what}: {}", thread::describe(error)),
    }
}

fn connect(path: &Path, database: &Path) -> StoreResult<Connection> {
    let connection = Connection::open(path).map_err(|e| error(database, "opening", &e))?;
    configure(&connection, database)?;
    Ok(connection)
}

fn configure(connection: &Connection, database: &Path) -> StoreResult<()> {
    let setup = || -> rusqlite::Result<()> {
        switch_to_wal(connection)?;
        connection.busy_timeout(BUSY_TIMEOUT)?;
        connection.pragma_update(None, "synchronous", "NORMAL")?;
        connection.pragma_update(None, "foreign_keys", "ON")?;
        // A small page cache (4 MiB per connection); pages past it are
        // read again, from the memory map or the write-ahead log. A larger cache
        // costs more than it saves: when a b-tree split renumbers sibling
        // pages, SQLite parks one under the locking page's number (page
        // 262,145), and at the next commit the page cache, seeing a page
        // past the end of the file, walks every page it holds to drop
        // it. With 64 MiB that walk was 4 % of `switchboard send`'s CPU
        // and a settlement cost about a third more in the outbox bench
        // (docs/benchmarks.md, ninth round).
        connection.pragma_update(None, "cache_size", -4 * 1024)?;
        connection.pragma_update(None, "mmap_size", 1024 * 1024 * 1024)?;
        connection.pragma_update(None, "temp_store", "MEMORY")?;
        // Checkpoint the write-ahead log every 16k pages (64 MiB) rather
        // than SQLite's 1k: an index page changed by many transactions is
        // copied into the database once per checkpoint, not once per 4 MiB.
        connection.pragma_update(None, "wal_autocheckpoint", 16 * 1024)?;
        connection.set_prepared_statement_cache_capacity(128);
        // Plans that never depend on a bound value: otherwise SQLite
        // compiles a statement again every time a parameter it planned
        // with is bound anew. `LIMIT ?5` is one (SQLite reads the limit as
        // a constant), so the claim's statement was parsed and planned
        // again on every call, a tenth of a millisecond each.
        connection.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)?;
        rusqlite::vtab::array::load_module(connection)?;
        Ok(())
    };
    setup().map_err(|e| error(database, "configuring", &e))
}

/// Put the database in WAL mode. Two processes opening a new file at once
/// can both read it as a rollback-journal database; the one that loses the
/// race then waits for an exclusive lock that the winner's open WAL
/// connection never gives up. Its view is stale, not its wish: a short wait
/// and a fresh look at the header (which by then says WAL) settle it.
fn switch_to_wal(connection: &Connection) -> rusqlite::Result<()> {
    const ATTEMPT: Duration = Duration::from_millis(500);
    let attempts = (BUSY_TIMEOUT.as_millis() / ATTEMPT.as_millis()).max(1);
    connection.busy_timeout(ATTEMPT)?;
    let mut attempt = 1;
    loop {
        match connection.pragma_update(None, "journal_mode", "WAL") {
            Err(error)
                if error.sqlite_error_code() == Some(rusqlite::ErrorCode::DatabaseBusy)
                    && attempt < attempts =>
            {
                attempt += 1;
            }
            other => return other,
        }
    }
}

/// Bring the schema up to date. Two processes opening a new database at
/// once may both start the first migration; the loser's attempt fails and
/// is retried, by which time the winner has committed.
fn migrate(connection: &mut Connection, database: &Path) -> StoreResult<()> {
    let migrations = Migrations::new(MIGRATIONS.iter().map(|sql| M::up(sql)).collect());
    let mut attempt = 0;
    loop {
        match migrations.to_latest(connection) {
            Ok(()) => return Ok(()),
            Err(_) if attempt < 5 => {
                attempt += 1;
                std::thread::sleep(Duration::from_millis(100 * attempt));
            }
            Err(e) => {
                return Err(StoreError::Database {
                    database: database.to_owned(),
                    message: format!("migrating the schema: {e}"),
                });
            }
        }
    }
}

fn start(
    name: &str,
    connection: Connection,
    database: &Path,
    transactions: bool,
) -> StoreResult<DbThread> {
    DbThread::start(name, connection, database.to_owned(), transactions).map_err(|e| {
        StoreError::Database {
            database: database.to_owned(),
            message: format!("starting the database thread: {e}"),
        }
    })
}

#[async_trait]
impl Store for SqliteStore {
    fn location(&self) -> String {
        self.database.display().to_string()
    }

    async fn enqueue(
        &self,
        sends: Vec<NewSend>,
        decisions: Vec<DecisionRecord>,
    ) -> StoreResult<Vec<Enqueued>> {
        let now = now_ms();
        if sends.len() <= ENQUEUE_PIECE && decisions.len() <= ENQUEUE_PIECE {
            return self
                .writer
                .call("enqueueing sends", move |c| {
                    outbox::enqueue(c, &sends, &decisions, now)
                })
                .await;
        }
        // A large enqueue goes in pieces, each a bulk job of its own (see
        // `thread.rs`), so that claims, marks and settlements pass between
        // them. All are queued at once, and bulk jobs run in order.
        let pieces = crate::enqueue_decisions::pieces(sends, decisions, ENQUEUE_PIECE);
        let writes = pieces.into_iter().map(|(sends, decisions)| {
            self.writer.call_bulk("enqueueing sends", move |c| {
                outbox::enqueue(c, &sends, &decisions, now)
            })
        });
        let mut results = Vec::new();
        for piece in futures::future::join_all(writes).await {
            results.extend(piece?);
        }
        Ok(results)
    }

    async fn claim(&self, request: ClaimRequest) -> StoreResult<Vec<ClaimedSend>> {
        self.writer
            .call("claiming sends", move |c| outbox::claim(c, &request))
            .await
    }

    async fn mark_written(&self, owner: &str, keys: Vec<String>) -> StoreResult<Vec<String>> {
        let owner = owner.to_owned();
        self.writer
            .call("recording requests about to leave", move |c| {
                outbox::mark_written(c, &owner, &keys)
            })
            .await
    }

    async fn settle(
        &self,
        owner: &str,
        settlements: Vec<Settlement>,
        now_ms: i64,
    ) -> StoreResult<Vec<Settle>> {
        let owner = owner.to_owned();
        self.writer
            .call("settling sends", move |c| {
                outbox::settle(c, &owner, &settlements, now_ms)
            })
            .await
    }

    async fn next_due(&self, channel: &str) -> StoreResult<Option<i64>> {
        let channel = channel.to_owned();
        self.reader()
            .call("finding the next due send", move |c| {
                outbox::next_due(c, &channel)
            })
            .await
    }

    async fn recent_recipients(
        &self,
        channel: &str,
        since_ms: i64,
    ) -> StoreResult<Vec<(String, i64)>> {
        let channel = channel.to_owned();
        self.reader()
            .call("listing recent recipients", move |c| {
                outbox::recent_recipients(c, &channel, since_ms)
            })
            .await
    }

    async fn put_campaign(&self, campaign: CampaignRecord) -> StoreResult<()> {
        self.writer
            .call("recording a campaign", move |c| {
                campaigns::put_campaign(c, &campaign)
            })
            .await
    }

    async fn campaign(&self, name: &str) -> StoreResult<Option<CampaignRecord>> {
        let name = name.to_owned();
        self.reader()
            .call("reading a campaign", move |c| campaigns::campaign(c, &name))
            .await
    }

    async fn campaign_counts(&self, name: &str) -> StoreResult<CampaignCounts> {
        let name = name.to_owned();
        self.reader()
            .call("counting a campaign's sends", move |c| {
                campaigns::campaign_counts(c, &name)
            })
            .await
    }

    async fn campaign_unsettled(&self, name: &str) -> StoreResult<u64> {
        let name = name.to_owned();
        self.reader()
            .call("counting a campaign's unsettled sends", move |c| {
                campaigns::campaign_unsettled(c, &name)
            })
            .await
    }

    async fn cancel_campaign(&self, name: &str, now_ms: i64) -> StoreResult<u64> {
        let name = name.to_owned();
        self.writer
            .call("cancelling a campaign", move |c| {
                campaigns::cancel_campaign(c, &name, now_ms)
            })
            .await
    }

    async fn retry_send(&self, key: &str, now_ms: i64) -> StoreResult<Option<SendState>> {
        let key = key.to_owned();
        self.writer
            .call("retrying a send", move |c| {
                campaigns::retry_send(c, &key, now_ms)
            })
            .await
    }

    async fn retry_class(
        &self,
        class: &str,
        campaign: Option<&str>,
        now_ms: i64,
    ) -> StoreResult<u64> {
        let class = class.to_owned();
        let campaign = campaign.map(str::to_owned);
        self.writer
            .call("retrying failed sends", move |c| {
                campaigns::retry_class(c, &class, campaign.as_deref(), now_ms)
            })
            .await
    }

    async fn sends(&self, query: SendQuery) -> StoreResult<Vec<SendRecord>> {
        self.reader()
            .call("listing sends", move |c| campaigns::sends(c, &query))
            .await
    }

    async fn send(&self, key: &str) -> StoreResult<Option<SendRecord>> {
        let key = key.to_owned();
        self.reader()
            .call("reading a send", move |c| campaigns::send(c, &key))
            .await
    }

    async fn decisions_for(&self, profile_id: &str) -> StoreResult<Vec<DecisionRecord>> {
        let profile_id = profile_id.to_owned();
        self.reader()
            .call("reading decisions", move |c| {
                campaigns::decisions_for(c, &profile_id)
            })
            .await
    }

    async fn addresses_with_state(&self, channel: &str) -> StoreResult<HashSet<String>> {
        let channel = channel.to_owned();
        self.reader()
            .call("listing known recipients", move |c| {
                recipients::addresses_with_state(c, &channel)
            })
            .await
    }

    async fn recipient_states(
        &self,
        channel: &str,
        addresses: Vec<String>,
    ) -> StoreResult<HashMap<String, RecipientState>> {
        let channel = channel.to_owned();
        self.reader()
            .call("reading consent and windows", move |c| {
                recipients::recipient_states(c, &channel, &addresses)
            })
            .await
    }

    async fn apply_events(
        &self,
        channel: &str,
        events: Vec<EventRecord>,
    ) -> StoreResult<Vec<bool>> {
        let channel = channel.to_owned();
        self.writer
            .call("recording webhook events", move |c| {
                recipients::apply_events(c, &channel, &events)
            })
            .await
    }

    async fn consent_history(
        &self,
        channel: &str,
        address: &str,
    ) -> StoreResult<Vec<ConsentRecord>> {
        let channel = channel.to_owned();
        let address = address.to_owned();
        self.reader()
            .call("reading the consent ledger", move |c| {
                recipients::consent_history(c, &channel, &address)
            })
            .await
    }

    async fn campaigns(&self) -> StoreResult<Vec<CampaignRecord>> {
        self.reader()
            .call("listing campaigns", campaigns::campaigns)
            .await
    }

    async fn recent_sends_to(
        &self,
        channel: &str,
        profile_ids: Vec<String>,
        since_ms: i64,
    ) -> StoreResult<HashMap<String, Vec<i64>>> {
        let channel = channel.to_owned();
        self.reader()
            .call("counting recent sends for frequency caps", move |c| {
                events::recent_sends_to(c, &channel, &profile_ids, since_ms)
            })
            .await
    }

    async fn record_profile_events(&self, events: Vec<ProfileEvent>) -> StoreResult<Vec<bool>> {
        self.writer
            .call("recording profile events", move |c| {
                events::record_profile_events(c, &events)
            })
            .await
    }

    async fn profile_events(
        &self,
        profile_id: &str,
        names: Vec<String>,
        from_ms: i64,
        to_ms: i64,
    ) -> StoreResult<Vec<ProfileEvent>> {
        let profile_id = profile_id.to_owned();
        self.writer
            .call("reading profile events", move |c| {
                events::profile_events(c, &profile_id, &names, from_ms, to_ms)
            })
            .await
    }

    async fn cancel_profile_sends(
        &self,
        campaign: &str,
        profile_id: &str,
        deadline_at_most_ms: i64,
        reason: &str,
        now_ms: i64,
    ) -> StoreResult<Vec<String>> {
        let campaign = campaign.to_owned();
        let profile_id = profile_id.to_owned();
        let reason = reason.to_owned();
        self.writer
            .call("cancelling a profile's trigger sends", move |c| {
                events::cancel_profile_sends(
                    c,
                    &campaign,
                    &profile_id,
                    deadline_at_most_ms,
                    &reason,
                    now_ms,
                )
            })
            .await
    }

    async fn heartbeat(&self, node: &str, now_ms: i64, ttl_ms: i64) -> StoreResult<u32> {
        let node = node.to_owned();
        self.writer
            .call("recording the engine's heartbeat", move |c| {
                events::heartbeat(c, &node, now_ms, ttl_ms)
            })
            .await
    }

    async fn kv_get(&self, channel: &str, key: &str, now_ms: i64) -> StoreResult<Option<String>> {
        let channel = channel.to_owned();
        let key = key.to_owned();
        self.writer
            .call("reading adapter storage", move |c| {
                kv::get(c, &channel, &key, now_ms)
            })
            .await
    }

    async fn kv_put(
        &self,
        entry: KvEntry,
        only_if_absent: bool,
        now_ms: i64,
    ) -> StoreResult<Option<String>> {
        self.writer
            .call("writing adapter storage", move |c| {
                kv::put(c, &entry, only_if_absent, now_ms)
            })
            .await
    }

    async fn kv_delete(&self, channel: &str, key: &str) -> StoreResult<()> {
        let channel = channel.to_owned();
        let key = key.to_owned();
        self.writer
            .call("deleting adapter storage", move |c| {
                kv::delete(c, &channel, &key)
            })
            .await
    }
}

#[cfg(test)]
mod tests;
