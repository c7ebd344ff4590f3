//! Switchboard's durable state, behind the [`Store`] trait.
//!
//! - the **outbox**: every send under its idempotency key, with the state
//!   machine in [`SendState`]. Claims are atomic and exclusive (one engine
//!   holds a send's lease at a time) and a sent row never changes back, so
//!   two engines — two `send` runs, or several `serve` nodes — can work one
//!   outbox without sending anything twice;
//! - campaigns as submitted, and per-recipient decisions;
//! - delivery events from status webhooks, matched to sends by platform id
//!   or by the correlation key the platform echoes back;
//! - inbound messages and the conversation windows they open, per opener;
//! - the append-only consent ledger;
//! - adapters' durable key-value storage (contract 1.1.0 `storage`).
//!
//! [`SqliteStore`] is the embedded default: one database thread that
//! commits many small writes in one transaction (group commit).
//! [`PostgresStore`] is the shared one: several hosts on one PostgreSQL
//! database (or schema), claiming with `FOR UPDATE SKIP LOCKED`. Both pass
//! one test suite (`conformance`), run once per backend.

mod enqueue_decisions;
mod fall_back;
pub mod postgres;
pub mod records;
pub mod sqlite;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

use async_trait::async_trait;

pub use postgres::PostgresStore;
pub use records::*;
pub use sqlite::SqliteStore;

#[cfg(test)]
mod conformance;

/// A storage failure, naming the database.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The database reported an error.
    #[error("database {}: {message}", database.display())]
    Database {
        /// The database file (or URL).
        database: PathBuf,
        /// What the database said, with what was being done.
        message: String,
    },
    /// The database thread is gone (the store was closed or panicked).
    #[error("database {}: the database thread has stopped", database.display())]
    Closed {
        /// The database file.
        database: PathBuf,
    },
    /// Stored data could not be read back (e.g. corrupt JSON).
    #[error("database {}: unreadable row: {message}", database.display())]
    Corrupt {
        /// The database file.
        database: PathBuf,
        /// What could not be read.
        message: String,
    },
}

/// Shorthand for store results.
pub type StoreResult<T> = Result<T, StoreError>;

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

/// The host's durable state; see the [crate docs](crate).
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Where the data lives, for messages.
    fn location(&self) -> String;

    // ---- outbox --------------------------------------------------------

    /// Put sends in the outbox (a key already there is left alone and
    /// reported) and record the decisions. A recipient's sends and
    /// decisions are committed together; a large enqueue may be committed
    /// in several transactions, in order (the SQLite store writes pieces of
    /// 100 sends, so that deliveries pass between them). Enqueueing is
    /// idempotent: after a failure part way, the same call again completes
    /// it.
    async fn enqueue(
        &self,
        sends: Vec<NewSend>,
        decisions: Vec<DecisionRecord>,
    ) -> StoreResult<Vec<Enqueued>>;

    /// Lease up to `limit` due sends of a channel to `owner`, atomically:
    /// no two owners ever hold the same send. Due means pending, or
    /// deferred or retrying with a due time reached, or leased under an
    /// expired lease. An expired lease whose request was written to the
    /// network becomes uncertain instead (or is resent under the same key
    /// where the platform deduplicates). Sends whose recipient opted out
    /// after they were enqueued, or whose deadline passed, are settled as
    /// skipped here and not returned.
    async fn claim(&self, request: ClaimRequest) -> StoreResult<Vec<ClaimedSend>>;

    /// Record, before a request leaves, that it is being written for these
    /// sends. Returns the keys `owner` no longer holds (its lease expired
    /// and another engine took them): their request must not leave.
    async fn mark_written(&self, owner: &str, keys: Vec<String>) -> StoreResult<Vec<String>>;

    /// Settle claimed sends, with the consent, window and fall-back changes
    /// they bring, in one transaction. A send `owner` no longer holds is
    /// left alone; the result says, per settlement, what happened.
    async fn settle(
        &self,
        owner: &str,
        settlements: Vec<Settlement>,
        now_ms: i64,
    ) -> StoreResult<Vec<Settle>>;

    /// When the channel next has a send to claim: the earliest due time or
    /// lease expiry, if any.
    async fn next_due(&self, channel: &str) -> StoreResult<Option<i64>>;

    /// Recipients sent a template on `channel` since `since_ms`, with the
    /// latest time, for daily unique-recipient limits.
    async fn recent_recipients(
        &self,
        channel: &str,
        since_ms: i64,
    ) -> StoreResult<Vec<(String, i64)>>;

    // ---- campaigns -----------------------------------------------------

    /// Record a submitted campaign (replacing an earlier record of the same name).
    async fn put_campaign(&self, campaign: CampaignRecord) -> StoreResult<()>;

    /// A campaign as submitted.
    async fn campaign(&self, name: &str) -> StoreResult<Option<CampaignRecord>>;

    /// A campaign's sends and decisions, counted.
    async fn campaign_counts(&self, name: &str) -> StoreResult<CampaignCounts>;

    /// How many of a campaign's sends are not settled yet (pending, leased
    /// or retrying): what a one-shot run waits on, read without counting
    /// the settled ones.
    async fn campaign_unsettled(&self, name: &str) -> StoreResult<u64>;

    /// Cancel a campaign's sends that have not gone out. Returns how many.
    async fn cancel_campaign(&self, name: &str, now_ms: i64) -> StoreResult<u64>;

    /// Put a failed, uncertain or skipped send back in the outbox. Returns
    /// its state before, or `None` if there is no such send. A send that is
    /// sent, or still open, is left alone.
    async fn retry_send(&self, key: &str, now_ms: i64) -> StoreResult<Option<SendState>>;

    /// Put every failed send of a class (optionally of one campaign) back in
    /// the outbox. Returns how many.
    async fn retry_class(
        &self,
        class: &str,
        campaign: Option<&str>,
        now_ms: i64,
    ) -> StoreResult<u64>;

    /// Stored sends.
    async fn sends(&self, query: SendQuery) -> StoreResult<Vec<SendRecord>>;

    /// One send by key.
    async fn send(&self, key: &str) -> StoreResult<Option<SendRecord>>;

    /// Every decision recorded for a profile.
    async fn decisions_for(&self, profile_id: &str) -> StoreResult<Vec<DecisionRecord>>;

    // ---- recipients and webhooks ---------------------------------------

    /// Addresses on `channel` the store knows anything about (consent
    /// events or windows), so that the policy gate looks up only those.
    async fn addresses_with_state(&self, channel: &str) -> StoreResult<HashSet<String>>;

    /// The ledger entries and windows of `addresses` on `channel`.
    async fn recipient_states(
        &self,
        channel: &str,
        addresses: Vec<String>,
    ) -> StoreResult<HashMap<String, RecipientState>>;

    /// Apply webhook events (each once: a redelivered event id changes
    /// nothing) in one transaction. Returns, per event, whether it was new.
    async fn apply_events(&self, channel: &str, events: Vec<EventRecord>)
    -> StoreResult<Vec<bool>>;

    /// Every ledger event for an address on a channel, in receipt order.
    async fn consent_history(
        &self,
        channel: &str,
        address: &str,
    ) -> StoreResult<Vec<ConsentRecord>>;

    /// Every campaign and trigger recorded, oldest first.
    async fn campaigns(&self) -> StoreResult<Vec<CampaignRecord>>;

    /// When sends on `channel` to each of `profile_ids` went out since
    /// `since_ms`, or are due if still queued (any campaign or trigger),
    /// for frequency caps. Profiles with none are absent.
    async fn recent_sends_to(
        &self,
        channel: &str,
        profile_ids: Vec<String>,
        since_ms: i64,
    ) -> StoreResult<HashMap<String, Vec<i64>>>;

    // ---- profile events and triggers -----------------------------------

    /// Record events from the brand's systems, each once: an event id seen
    /// before is a replay and is dropped. Returns, per event, whether it
    /// was new.
    async fn record_profile_events(&self, events: Vec<ProfileEvent>) -> StoreResult<Vec<bool>>;

    /// A profile's recorded events named one of `names` that happened in
    /// `from_ms..=to_ms`, oldest first.
    async fn profile_events(
        &self,
        profile_id: &str,
        names: Vec<String>,
        from_ms: i64,
        to_ms: i64,
    ) -> StoreResult<Vec<ProfileEvent>>;

    /// Cancel a trigger's sends to one profile that have not gone out and
    /// whose deadline is at most `deadline_at_most_ms` (they came from
    /// events no later than the cancelling one), recording `reason` in
    /// their decisions. Returns the keys cancelled.
    async fn cancel_profile_sends(
        &self,
        campaign: &str,
        profile_id: &str,
        deadline_at_most_ms: i64,
        reason: &str,
        now_ms: i64,
    ) -> StoreResult<Vec<String>>;

    // ---- nodes ---------------------------------------------------------

    /// Say that engine `node` is alive now, forget nodes not heard from in
    /// `ttl_ms`, and return how many are alive (this one included): each
    /// node takes that share of a channel's rate.
    async fn heartbeat(&self, node: &str, now_ms: i64, ttl_ms: i64) -> StoreResult<u32>;

    // ---- adapter storage -----------------------------------------------

    /// An adapter's live durable value.
    async fn kv_get(&self, channel: &str, key: &str, now_ms: i64) -> StoreResult<Option<String>>;

    /// Store an adapter's durable value; with `only_if_absent`, a live value
    /// already there is kept. Returns the value stored afterwards, or `None`
    /// when the channel holds `max_entries` live entries and this would add one.
    async fn kv_put(
        &self,
        entry: KvEntry,
        only_if_absent: bool,
        now_ms: i64,
    ) -> StoreResult<Option<String>>;

    /// Remove an adapter's durable value.
    async fn kv_delete(&self, channel: &str, key: &str) -> StoreResult<()>;
}
