//! The shared store: PostgreSQL, for several hosts working one outbox.
//!
//! Every operation is one transaction on a pooled connection (a read, or
//! a single statement, runs without one). A claim leases rows with
//! `SELECT … FOR UPDATE SKIP LOCKED` inside the claiming transaction, so
//! any number of engines on any number of hosts share one outbox without
//! ever leasing the same send twice, and without waiting on each other's
//! rows. Batches are set-based (`UNNEST` of arrays, `= ANY($1)`): enqueueing
//! a thousand sends, or claiming or settling fifty, is a handful of round
//! trips. A transaction that PostgreSQL aborts as a deadlock or a
//! serialization failure is retried.
//!
//! # URL
//!
//! `postgres://user:password@host:port/database?schema=NAME&max_connections=N`:
//! the parameters sqlx understands (`sslmode`, `application_name`,
//! `options`, ...) pass through; two more are Switchboard's own:
//!
//! - `schema=NAME` puts every table in schema `NAME` (lowercase letters,
//!   digits and `_`; created if missing) instead of `public`, so that
//!   several deployments, or tests, share one database without seeing each
//!   other's data;
//! - `max_connections=N` sizes the pool (default 10).
//!
//! The schema is migrated on connect (migrations in
//! `crates/store/migrations/postgres/`, embedded by `sqlx::migrate!`),
//! under sqlx's session advisory lock (one per database), so hosts that
//! start together against a new database, or a new schema, migrate it once
//! and the others wait. Connections are plain TCP: sqlx is built without
//! TLS, so the server must be on loopback or a trusted network
//! (`sslmode=require` is refused).

mod campaigns;
mod events;
mod kv;
mod outbox;
mod recipients;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{Connection, PgConnection};

use crate::records::*;
use crate::{Store, StoreError, StoreResult, now_ms};

/// The URL parameter that selects the schema (see the [module docs](self)).
pub const SCHEMA_PARAMETER: &str = "schema";

/// The URL parameter that sizes the connection pool.
pub const MAX_CONNECTIONS_PARAMETER: &str = "max_connections";

/// The environment variable naming the PostgreSQL server that tests use
/// (a database URL without a schema); see [`test_database_url`].
pub const TEST_DATABASE_ENV: &str = "SWITCHBOARD_TEST_POSTGRES";

/// The server tests use when [`TEST_DATABASE_ENV`] is not set.
pub const DEFAULT_TEST_DATABASE: &str = "postgres://postgres@127.0.0.1:5432/test";

/// Connections in the pool when the URL does not say.
const DEFAULT_MAX_CONNECTIONS: u32 = 10;

/// How long an operation waits for a free pooled connection.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(30);

/// How often a transaction aborted as a deadlock or serialization failure
/// is tried again.
const MAX_RETRIES: u32 = 10;

/// Switchboard's state in a PostgreSQL database (or one schema of it),
/// shared by every host connected to it; see the [module docs](self).
pub struct PostgresStore {
    pool: PgPool,
    /// The URL without its password, for messages.
    location: String,
    /// Write-ahead marks of requests leaving together, committed together.
    write_ahead: group_commit::WriteAheadGroups,
}

/// Why an operation failed, before it is named.
pub(crate) enum Failure {
    /// PostgreSQL (or the connection to it) said no.
    Sql(sqlx::Error),
    /// A stored value could not be read back.
    Corrupt(String),
}

impl From<sqlx::Error> for Failure {
    fn from(error: sqlx::Error) -> Self {
        Failure::Sql(error)
    }
}

impl From<serde_json::Error> for Failure {
    fn from(error: serde_json::Error) -> Self {
        Failure::Corrupt(error.to_string())
    }
}

impl Failure {
    /// A deadlock or serialization failure: PostgreSQL rolled the
    /// transaction back, and running it again is safe.
    fn is_transient(&self) -> bool {
        match self {
            Failure::Sql(sqlx::Error::Database(error)) => {
                matches!(error.code().as_deref(), Some("40001" | "40P01"))
            }
            _ => false,
        }
    }
}

/// What the operations in this module return.
pub(crate) type Fallible<T> = Result<T, Failure>;

/// PostgreSQL's error in words an operator can act on.
fn describe(error: &sqlx::Error) -> String {
    match error {
        sqlx::Error::Io(error) => format!("cannot reach the server ({error})"),
        sqlx::Error::PoolTimedOut => format!(
            "no pooled connection became free within {}s (the server is unreachable, or every connection stayed busy)",
            ACQUIRE_TIMEOUT.as_secs()
        ),
        sqlx::Error::PoolClosed => "the store was closed".to_owned(),
        sqlx::Error::Database(error) => match error.code() {
            Some(code) => format!("{} (SQLSTATE {code})", error.message()),
            None => error.message().to_owned(),
        },
        other => other.to_string(),
    }
}

fn database_error(location: &str, what: &str, message: impl std::fmt::Display) -> StoreError {
    StoreError::Database {
        database: PathBuf::from(location),
        message: format!("{what}: {message}"),
    }
}

/// The store error for `failure` while doing `what` on the database at
/// `location`.
fn failed_at(location: &str, what: &str, failure: Failure) -> StoreError {
    match failure {
        Failure::Sql(error) => database_error(location, what, describe(&error)),
        Failure::Corrupt(message) => StoreError::Corrupt {
            database: PathBuf::from(location),
            message: format!("{what}: {message}"),
        },
    }
}

/// Wait a little before trying a transaction again, longer each time, with
/// some jitter so that the two sides of a deadlock do not meet again.
async fn backoff(attempt: u32) {
    let jitter = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::from(d.subsec_nanos() % 7));
    tokio::time::sleep(Duration::from_millis(u64::from(attempt) * 4 + jitter)).await;
}

/// Evaluate `$attempt` (an `async` block giving a [`Fallible`]) and await it,
/// again while PostgreSQL aborts it as a deadlock or serialization failure
/// (at most [`MAX_RETRIES`] times, backing off); gives its last outcome.
macro_rules! retrying {
    ($attempt:expr) => {{
        let mut attempt: u32 = 0;
        loop {
            let outcome: Fallible<_> = $attempt.await;
            match outcome {
                Err(failure) if failure.is_transient() && attempt < MAX_RETRIES => {
                    attempt += 1;
                    backoff(attempt).await;
                }
                other => break other,
            }
        }
    }};
}

/// Run `$body` (a future using `$conn: &mut PgConnection`) in a
/// transaction, again if PostgreSQL aborts it as a deadlock or
/// serialization failure; name the operation `$what` in errors.
macro_rules! transaction {
    ($store:expr, $what:expr, |$conn:ident| $body:expr) => {{
        let store: &PostgresStore = $store;
        retrying!(async {
            let mut transaction = store.pool.begin().await?;
            let value = {
                let $conn: &mut PgConnection = &mut transaction;
                $body.await?
            };
            transaction.commit().await?;
            Ok(value)
        })
        .map_err(|failure| store.failed($what, failure))
    }};
}

/// Run `$body` on a pooled connection without a transaction of its own:
/// reads, and writes that are one statement.
macro_rules! autocommit {
    ($store:expr, $what:expr, |$conn:ident| $body:expr) => {{
        let store: &PostgresStore = $store;
        retrying!(async {
            let mut connection = store.pool.acquire().await?;
            let $conn: &mut PgConnection = &mut connection;
            $body.await
        })
        .map_err(|failure| store.failed($what, failure))
    }};
}

// Declared after the macros above, which it uses.
mod group_commit;

/// A URL taken apart: what sqlx connects with, and Switchboard's own parameters.
struct Target {
    options: PgConnectOptions,
    location: String,
    schema: Option<String>,
    max_connections: u32,
}

/// `url` with its password (in the user info or a `password` parameter)
/// removed, for messages and [`Store::location`].
pub fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) => {
            if parsed.password().is_some() {
                // Only fails for URLs that cannot have a password at all.
                let _ = parsed.set_password(None);
            }
            if parsed.query_pairs().any(|(key, _)| key == "password") {
                let kept: Vec<(String, String)> = parsed
                    .query_pairs()
                    .filter(|(key, _)| key != "password")
                    .map(|(key, value)| (key.into_owned(), value.into_owned()))
                    .collect();
                set_query(&mut parsed, &kept);
            }
            parsed.to_string()
        }
        // Not a URL: keep the scheme and host, drop what could be a secret.
        Err(_) => match url.split_once("://") {
            Some((scheme, rest)) => match rest.rsplit_once('@') {
                Some((user_info, host)) => {
                    let user = user_info.split(':').next().unwrap_or_default();
                    format!("{scheme}://{user}@{host}")
                }
                None => url.to_owned(),
            },
            None => "(an unreadable database URL)".to_owned(),
        },
    }
}

fn set_query(url: &mut url::Url, pairs: &[(String, String)]) {
    if pairs.is_empty() {
        url.set_query(None);
    } else {
        url.query_pairs_mut().clear().extend_pairs(pairs);
    }
}

/// Whether `name` may name a schema: it goes into `search_path` and DDL
/// unquoted-safe, so lowercase ASCII letters, digits and `_`, not starting
/// with a digit, at most 63 bytes.
fn valid_schema(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

impl Target {
    fn parse(url: &str) -> StoreResult<Self> {
        let location = redact(url);
        let invalid = |message: String| database_error(&location, "reading the URL", message);
        let mut parsed = url::Url::parse(url).map_err(|e| invalid(e.to_string()))?;
        if !matches!(parsed.scheme(), "postgres" | "postgresql") {
            return Err(invalid(format!(
                "`{}` is not a PostgreSQL URL (postgres://user@host:port/database)",
                parsed.scheme()
            )));
        }
        let mut schema = None;
        let mut max_connections = DEFAULT_MAX_CONNECTIONS;
        let mut kept = Vec::new();
        for (key, value) in parsed.query_pairs() {
            match &*key {
                SCHEMA_PARAMETER => {
                    if !valid_schema(&value) {
                        return Err(invalid(format!(
                            "`{SCHEMA_PARAMETER}={value}` is not a schema name Switchboard uses (lowercase letters, digits and `_`, not starting with a digit, at most 63)"
                        )));
                    }
                    schema = Some(value.into_owned());
                }
                MAX_CONNECTIONS_PARAMETER => {
                    max_connections = value.parse().ok().filter(|n| *n > 0).ok_or_else(|| {
                        invalid(format!(
                            "`{MAX_CONNECTIONS_PARAMETER}={value}` is not a number of connections (1 or more)"
                        ))
                    })?;
                }
                _ => kept.push((key.into_owned(), value.into_owned())),
            }
        }
        set_query(&mut parsed, &kept);
        let mut options =
            PgConnectOptions::from_str(parsed.as_str()).map_err(|e| invalid(format!("{e}")))?;
        if let Some(schema) = &schema {
            options = options.options([("search_path", schema.as_str())]);
        }
        if options.get_application_name().is_none() {
            options = options.application_name("switchboard");
        }
        Ok(Self {
            options,
            location,
            schema,
            max_connections,
        })
    }

    fn error(&self, what: &str, error: &sqlx::Error) -> StoreError {
        database_error(&self.location, what, describe(error))
    }
}

/// The server tests use: [`TEST_DATABASE_ENV`], or [`DEFAULT_TEST_DATABASE`].
pub fn test_database_url() -> String {
    std::env::var(TEST_DATABASE_ENV)
        .ok()
        .filter(|url| !url.is_empty())
        .unwrap_or_else(|| DEFAULT_TEST_DATABASE.to_owned())
}

impl PostgresStore {
    /// Connect to the database at `url` (see the [module docs](self) for
    /// the parameters), creating the schema and migrating it if needed.
    /// Errors name the URL without its password and what failed
    /// (`connecting`, `migrating the schema`, ...).
    pub async fn connect(url: &str) -> StoreResult<Self> {
        let target = Target::parse(url)?;
        // One plain connection first: an unreachable server is reported at
        // once, with its reason (the pool would retry a refused connection
        // until its acquire timeout, then only say that it timed out).
        let probe = PgConnection::connect_with(&target.options)
            .await
            .map_err(|e| target.error("connecting", &e))?;
        let _ = probe.close().await;
        let pool = PgPoolOptions::new()
            .max_connections(target.max_connections)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(target.options.clone())
            .await
            .map_err(|e| target.error("connecting", &e))?;
        // sqlx's migrator holds PostgreSQL's advisory lock for the database
        // while it creates the schema and applies migrations, so hosts
        // starting together migrate once. Should a migration fail half-way,
        // closing the pool ends the session that holds the lock.
        let mut migrator = sqlx::migrate!("migrations/postgres");
        if let Some(schema) = &target.schema {
            migrator.create_schema(format!("\"{schema}\""));
        }
        if let Err(error) = migrator.run(&pool).await {
            pool.close().await;
            return Err(database_error(
                &target.location,
                "migrating the schema",
                error,
            ));
        }
        Ok(Self {
            write_ahead: group_commit::WriteAheadGroups::new(pool.clone(), target.location.clone()),
            pool,
            location: target.location,
        })
    }

    /// For tests (this crate's and other crates'): a store on a new schema
    /// of the database at `base_url`, with the URL that reaches that
    /// schema (`base_url` plus `schema=…`, password kept) for other stores
    /// and `switchboard serve` processes. Schemas are named
    /// `sb_test_<pid>_<time>_<n>`; drop one with [`PostgresStore::drop_schema`].
    pub async fn connect_fresh_schema(base_url: &str) -> StoreResult<(Self, String)> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() % 1_000_000_000_000);
        let schema = format!(
            "sb_test_{}_{nanos}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let mut url = url::Url::parse(base_url)
            .map_err(|e| database_error(&redact(base_url), "reading the URL", e))?;
        let kept: Vec<(String, String)> = url
            .query_pairs()
            .filter(|(key, _)| key != SCHEMA_PARAMETER)
            .map(|(key, value)| (key.into_owned(), value.into_owned()))
            .chain([(SCHEMA_PARAMETER.to_owned(), schema)])
            .collect();
        set_query(&mut url, &kept);
        let url = url.to_string();
        let store = Self::connect(&url).await?;
        Ok((store, url))
    }

    /// For tests: [`PostgresStore::connect_fresh_schema`] on the server
    /// [`test_database_url`] names. Tests that need PostgreSQL fail rather
    /// than skip when it is missing, so this panics, saying which server is
    /// needed and how to name another, when the server cannot be reached.
    pub async fn test_schema() -> (Self, String) {
        let base = test_database_url();
        match Self::connect_fresh_schema(&base).await {
            Ok(pair) => pair,
            Err(error) => panic!(
                "PostgreSQL at {} is needed for this test (set {TEST_DATABASE_ENV} to use another server): {error}",
                redact(&base)
            ),
        }
    }

    /// For tests: drop the schema that `url` names (its `schema=`
    /// parameter) with everything in it. Stores on it must not be used
    /// afterwards.
    pub async fn drop_schema(url: &str) -> StoreResult<()> {
        let target = Target::parse(url)?;
        let Some(schema) = &target.schema else {
            return Err(database_error(
                &target.location,
                "dropping the schema",
                format!("the URL names no schema (`{SCHEMA_PARAMETER}=`)"),
            ));
        };
        let mut connection = PgConnection::connect_with(&target.options)
            .await
            .map_err(|e| target.error("connecting", &e))?;
        let dropped = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"
        )))
        .execute(&mut connection)
        .await;
        let _ = connection.close().await;
        dropped
            .map(drop)
            .map_err(|e| target.error("dropping the schema", &e))
    }

    /// Close the pool's connections, waiting for operations under way.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    fn failed(&self, what: &str, failure: Failure) -> StoreError {
        failed_at(&self.location, what, failure)
    }
}

#[async_trait]
impl Store for PostgresStore {
    fn location(&self) -> String {
        self.location.clone()
    }

    async fn enqueue(
        &self,
        sends: Vec<NewSend>,
        decisions: Vec<DecisionRecord>,
    ) -> StoreResult<Vec<Enqueued>> {
        let now = now_ms();
        transaction!(self, "enqueueing sends", |c| outbox::enqueue(
            c, &sends, &decisions, now
        ))
    }

    async fn claim(&self, request: ClaimRequest) -> StoreResult<Vec<ClaimedSend>> {
        transaction!(self, "claiming sends", |c| outbox::claim(c, &request))
    }

    async fn mark_written(&self, owner: &str, keys: Vec<String>) -> StoreResult<Vec<String>> {
        self.write_ahead.mark(owner, keys).await
    }

    async fn settle(
        &self,
        owner: &str,
        settlements: Vec<Settlement>,
        now_ms: i64,
    ) -> StoreResult<Vec<Settle>> {
        transaction!(self, "settling sends", |c| outbox::settle(
            c,
            owner,
            &settlements,
            now_ms
        ))
    }

    async fn next_due(&self, channel: &str) -> StoreResult<Option<i64>> {
        autocommit!(self, "finding the next due send", |c| outbox::next_due(
            c, channel
        ))
    }

    async fn recent_recipients(
        &self,
        channel: &str,
        since_ms: i64,
    ) -> StoreResult<Vec<(String, i64)>> {
        autocommit!(self, "listing recent recipients", |c| {
            outbox::recent_recipients(c, channel, since_ms)
        })
    }

    async fn put_campaign(&self, campaign: CampaignRecord) -> StoreResult<()> {
        autocommit!(self, "recording a campaign", |c| campaigns::put_campaign(
            c, &campaign
        ))
    }

    async fn campaign(&self, name: &str) -> StoreResult<Option<CampaignRecord>> {
        autocommit!(self, "reading a campaign", |c| campaigns::campaign(c, name))
    }

    async fn campaign_counts(&self, name: &str) -> StoreResult<CampaignCounts> {
        autocommit!(self, "counting a campaign's sends", |c| {
            campaigns::campaign_counts(c, name)
        })
    }

    async fn campaign_unsettled(&self, name: &str) -> StoreResult<u64> {
        autocommit!(self, "counting a campaign's unsettled sends", |c| {
            campaigns::campaign_unsettled(c, name)
        })
    }

    async fn cancel_campaign(&self, name: &str, now_ms: i64) -> StoreResult<u64> {
        transaction!(self, "cancelling a campaign", |c| {
            campaigns::cancel_campaign(c, name, now_ms)
        })
    }

    async fn retry_send(&self, key: &str, now_ms: i64) -> StoreResult<Option<SendState>> {
        transaction!(self, "retrying a send", |c| campaigns::retry_send(
            c, key, now_ms
        ))
    }

    async fn retry_class(
        &self,
        class: &str,
        campaign: Option<&str>,
        now_ms: i64,
    ) -> StoreResult<u64> {
        transaction!(self, "retrying failed sends", |c| {
            campaigns::retry_class(c, class, campaign, now_ms)
        })
    }

    async fn sends(&self, query: SendQuery) -> StoreResult<Vec<SendRecord>> {
        autocommit!(self, "listing sends", |c| campaigns::sends(c, &query))
    }

    async fn send(&self, key: &str) -> StoreResult<Option<SendRecord>> {
        autocommit!(self, "reading a send", |c| campaigns::send(c, key))
    }

    async fn decisions_for(&self, profile_id: &str) -> StoreResult<Vec<DecisionRecord>> {
        autocommit!(self, "reading decisions", |c| campaigns::decisions_for(
            c, profile_id
        ))
    }

    async fn addresses_with_state(&self, channel: &str) -> StoreResult<HashSet<String>> {
        autocommit!(self, "listing known recipients", |c| {
            recipients::addresses_with_state(c, channel)
        })
    }

    async fn recipient_states(
        &self,
        channel: &str,
        addresses: Vec<String>,
    ) -> StoreResult<HashMap<String, RecipientState>> {
        autocommit!(self, "reading consent and windows", |c| {
            recipients::recipient_states(c, channel, &addresses)
        })
    }

    async fn apply_events(
        &self,
        channel: &str,
        events: Vec<EventRecord>,
    ) -> StoreResult<Vec<bool>> {
        transaction!(self, "recording webhook events", |c| {
            recipients::apply_events(c, channel, &events)
        })
    }

    async fn consent_history(
        &self,
        channel: &str,
        address: &str,
    ) -> StoreResult<Vec<ConsentRecord>> {
        autocommit!(self, "reading the consent ledger", |c| {
            recipients::consent_history(c, channel, address)
        })
    }

    async fn campaigns(&self) -> StoreResult<Vec<CampaignRecord>> {
        autocommit!(self, "listing campaigns", |c| campaigns::campaigns(c))
    }

    async fn recent_sends_to(
        &self,
        channel: &str,
        profile_ids: Vec<String>,
        since_ms: i64,
    ) -> StoreResult<HashMap<String, Vec<i64>>> {
        autocommit!(self, "counting recent sends for frequency caps", |c| {
            events::recent_sends_to(c, channel, &profile_ids, since_ms)
        })
    }

    async fn record_profile_events(&self, events: Vec<ProfileEvent>) -> StoreResult<Vec<bool>> {
        autocommit!(self, "recording profile events", |c| {
            events::record_profile_events(c, &events)
        })
    }

    async fn profile_events(
        &self,
        profile_id: &str,
        names: Vec<String>,
        from_ms: i64,
        to_ms: i64,
    ) -> StoreResult<Vec<ProfileEvent>> {
        autocommit!(self, "reading profile events", |c| {
            events::profile_events(c, profile_id, &names, from_ms, to_ms)
        })
    }

    async fn cancel_profile_sends(
        &self,
        campaign: &str,
        profile_id: &str,
        deadline_at_most_ms: i64,
        reason: &str,
        now_ms: i64,
    ) -> StoreResult<Vec<String>> {
        transaction!(self, "cancelling a profile's trigger sends", |c| {
            events::cancel_profile_sends(
                c,
                campaign,
                profile_id,
                deadline_at_most_ms,
                reason,
                now_ms,
            )
        })
    }

    async fn heartbeat(&self, node: &str, now_ms: i64, ttl_ms: i64) -> StoreResult<u32> {
        transaction!(self, "recording the engine's heartbeat", |c| {
            events::heartbeat(c, node, now_ms, ttl_ms)
        })
    }

    async fn kv_get(&self, channel: &str, key: &str, now_ms: i64) -> StoreResult<Option<String>> {
        autocommit!(self, "reading adapter storage", |c| kv::get(
            c, channel, key, now_ms
        ))
    }

    async fn kv_put(
        &self,
        entry: KvEntry,
        only_if_absent: bool,
        now_ms: i64,
    ) -> StoreResult<Option<String>> {
        transaction!(self, "writing adapter storage", |c| kv::put(
            c,
            &entry,
            only_if_absent,
            now_ms
        ))
    }

    async fn kv_delete(&self, channel: &str, key: &str) -> StoreResult<()> {
        transaction!(self, "deleting adapter storage", |c| kv::delete(
            c, channel, key
        ))
    }
}

#[cfg(test)]
mod tests;
