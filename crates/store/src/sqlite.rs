//! Durable state in SQLite (WAL): the outbox of sends keyed by idempotency
//! key, delivery events, inbound messages and conversation windows, the
//! consent ledger, and per-recipient decisions.
//!
//! The outbox is what makes delivery exactly-once from the host's side: a
//! send is claimed under its idempotency key before anything happens, marked
//! in flight before the adapter call, and settled after it. A re-run finds
//! the key and sends nothing; a crash leaves the row in flight, and
//! [`Store::claim`] reconciles it (resend only where the platform
//! deduplicates, otherwise report it as uncertain).

use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use rusqlite::{Connection, OptionalExtension, params};
use switchboard_contract::model::{DeliveryState, WindowOpener};

/// A storage failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite reported an error.
    #[error("database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The database lock was poisoned by a panic elsewhere.
    #[error("database lock poisoned")]
    Poisoned,
}

/// Shorthand for store results.
pub type StoreResult<T> = Result<T, StoreError>;

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS sends (
    idempotency_key     TEXT PRIMARY KEY,
    campaign            TEXT NOT NULL,
    profile_id          TEXT NOT NULL,
    channel             TEXT NOT NULL,
    address             TEXT NOT NULL,
    step                INTEGER NOT NULL,
    state               TEXT NOT NULL,
    attempts            INTEGER NOT NULL DEFAULT 0,
    content_kind        TEXT NOT NULL,
    platform_message_id TEXT,
    delivery_state      TEXT,
    error_class         TEXT,
    error_message       TEXT,
    not_before_ms       INTEGER,
    created_ms          INTEGER NOT NULL,
    updated_ms          INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS sends_by_platform_id ON sends(channel, platform_message_id);
CREATE INDEX IF NOT EXISTS sends_by_campaign ON sends(campaign, state);

CREATE TABLE IF NOT EXISTS delivery_events (
    event_id            TEXT NOT NULL,
    channel             TEXT NOT NULL,
    platform_message_id TEXT NOT NULL,
    state               TEXT NOT NULL,
    failure             TEXT,
    occurred_ms         INTEGER NOT NULL,
    received_ms         INTEGER NOT NULL,
    PRIMARY KEY (channel, event_id)
);
CREATE INDEX IF NOT EXISTS delivery_events_by_message ON delivery_events(channel, platform_message_id);

CREATE TABLE IF NOT EXISTS inbound_messages (
    event_id    TEXT NOT NULL,
    channel     TEXT NOT NULL,
    sender      TEXT NOT NULL,
    kind        TEXT NOT NULL,
    text        TEXT,
    occurred_ms INTEGER NOT NULL,
    PRIMARY KEY (channel, event_id)
);

CREATE TABLE IF NOT EXISTS conversation_windows (
    channel          TEXT NOT NULL,
    address          TEXT NOT NULL,
    opener           TEXT NOT NULL,
    opened_ms        INTEGER NOT NULL,
    free_form_sent   INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (channel, address, opener)
);

CREATE TABLE IF NOT EXISTS adapter_storage (
    channel     TEXT NOT NULL,
    key         TEXT NOT NULL,
    value       TEXT NOT NULL,
    expires_ms  INTEGER NOT NULL,
    PRIMARY KEY (channel, key)
);

CREATE TABLE IF NOT EXISTS consent_ledger (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id    TEXT NOT NULL,
    channel     TEXT NOT NULL,
    address     TEXT NOT NULL,
    purpose     TEXT,
    opted_in    INTEGER NOT NULL,
    occurred_ms INTEGER NOT NULL,
    source      TEXT NOT NULL,
    UNIQUE (channel, event_id)
);
CREATE INDEX IF NOT EXISTS consent_by_address ON consent_ledger(channel, address);

CREATE TABLE IF NOT EXISTS decisions (
    campaign    TEXT NOT NULL,
    profile_id  TEXT NOT NULL,
    channel     TEXT,
    outcome     TEXT NOT NULL,
    reason      TEXT,
    detail      TEXT,
    decided_ms  INTEGER NOT NULL,
    PRIMARY KEY (campaign, profile_id)
);
"#;

/// Where a send is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendState {
    /// Claimed, not yet handed to the adapter.
    Pending,
    /// Handed to the adapter; no outcome recorded yet.
    InFlight,
    /// Accepted by the platform.
    Sent,
    /// Waiting for a retry or the end of quiet hours.
    Deferred,
    /// Given up: permanent failure or retries exhausted (a dead letter).
    Failed,
    /// The platform may or may not have it; never resent automatically.
    Uncertain,
}

impl SendState {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            SendState::Pending => "pending",
            SendState::InFlight => "in_flight",
            SendState::Sent => "sent",
            SendState::Deferred => "deferred",
            SendState::Failed => "failed",
            SendState::Uncertain => "uncertain",
        }
    }

    fn parse(text: &str) -> SendState {
        match text {
            "in_flight" => SendState::InFlight,
            "sent" => SendState::Sent,
            "deferred" => SendState::Deferred,
            "failed" => SendState::Failed,
            "uncertain" => SendState::Uncertain,
            _ => SendState::Pending,
        }
    }
}

/// A new send to claim in the outbox.
#[derive(Debug, Clone)]
pub struct NewSend<'a> {
    /// The idempotency key.
    pub key: &'a str,
    /// Campaign name.
    pub campaign: &'a str,
    /// Profile id.
    pub profile_id: &'a str,
    /// Channel.
    pub channel: &'a str,
    /// Recipient address on the channel.
    pub address: &'a str,
    /// Campaign step.
    pub step: u32,
    /// `text` or `template`.
    pub content_kind: &'a str,
}

/// What [`Store::claim`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// Go ahead and send (new, pending, due deferred, or safe to resend).
    Proceed {
        /// Attempts made before this one.
        attempts: u32,
    },
    /// Already settled earlier: nothing to do.
    AlreadyDone {
        /// Its state.
        state: SendState,
        /// Platform id, if sent.
        platform_message_id: Option<String>,
    },
    /// Left in flight by a crash on a platform that does not deduplicate:
    /// marked uncertain instead of risking a duplicate.
    Uncertain,
}

/// A stored send, for reports and the admin API.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SendRecord {
    /// The idempotency key.
    pub idempotency_key: String,
    /// Campaign.
    pub campaign: String,
    /// Profile.
    pub profile_id: String,
    /// Channel.
    pub channel: String,
    /// Address.
    pub address: String,
    /// State name.
    pub state: String,
    /// Attempts made.
    pub attempts: u32,
    /// Platform message id.
    pub platform_message_id: Option<String>,
    /// Latest delivery state from webhooks.
    pub delivery_state: Option<String>,
    /// Error class of the last failure.
    pub error_class: Option<String>,
    /// Error message of the last failure.
    pub error_message: Option<String>,
}

/// A consent event from the ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentRecord {
    /// Opted in (true) or out (false).
    pub opted_in: bool,
    /// The purpose, or `None` for every purpose.
    pub purpose: Option<String>,
    /// When it happened.
    pub occurred_ms: i64,
    /// Where it came from (e.g. `webhook:whatsapp`).
    pub source: String,
}

/// An inbound message from a webhook.
#[derive(Debug, Clone, Copy)]
pub struct Inbound<'a> {
    /// The platform's event id (for deduplication).
    pub event_id: &'a str,
    /// The sender's address.
    pub sender: &'a str,
    /// The platform's message kind (`text`, `image`, …).
    pub kind: &'a str,
    /// The text, for text messages.
    pub text: Option<&'a str>,
    /// When it was sent.
    pub occurred_ms: i64,
}

/// A delivery status from a webhook.
#[derive(Debug, Clone, Copy)]
pub struct StatusRecord<'a> {
    /// The platform's event id (for deduplication).
    pub event_id: &'a str,
    /// The platform's message id, if the webhook carries one.
    pub platform_message_id: Option<&'a str>,
    /// The idempotency key the platform echoed back, if any.
    pub correlation_key: Option<&'a str>,
    /// The new state.
    pub state: DeliveryState,
    /// Why it failed.
    pub failure: Option<&'a str>,
    /// When it happened.
    pub occurred_ms: i64,
}

/// An adapter's durable value to store.
#[derive(Debug, Clone, Copy)]
pub struct KvEntry<'a> {
    /// The channel whose space it is in.
    pub channel: &'a str,
    /// The key.
    pub key: &'a str,
    /// The value.
    pub value: &'a str,
    /// When it expires, ms since the Unix epoch.
    pub expires_ms: i64,
    /// The most live entries the channel may hold.
    pub max_entries: u64,
}

/// A conversation window as stored: what opened it, when, and the
/// free-form messages sent in it since.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowRecord {
    /// What opened it.
    pub opener: WindowOpener,
    /// When it was last opened.
    pub opened_ms: i64,
    /// Free-form messages sent since.
    pub free_form_sent: u32,
}

/// A consent event for the ledger.
#[derive(Debug, Clone, Copy)]
pub struct ConsentChange<'a> {
    /// The event id (for deduplication).
    pub event_id: &'a str,
    /// The customer's address.
    pub address: &'a str,
    /// The purpose, or `None` for every purpose.
    pub purpose: Option<&'a str>,
    /// Opted in (true) or out (false).
    pub opted_in: bool,
    /// When it happened.
    pub occurred_ms: i64,
    /// Where it came from.
    pub source: &'a str,
}

/// The SQLite store. Cheap to clone; all clones share one connection.
#[derive(Clone)]
pub struct Store {
    connection: Arc<Mutex<Connection>>,
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

/// How far along a stored delivery state is (see [`DeliveryState::rank`]).
fn delivery_rank(state: &str) -> u8 {
    DeliveryState::from_name(state).map_or(0, DeliveryState::rank)
}

impl Store {
    /// Open (creating if needed) the database at `path`.
    pub fn open(path: &Path) -> StoreResult<Self> {
        let connection = Connection::open(path)?;
        Self::init(connection)
    }

    /// A private in-memory database, for tests.
    pub fn in_memory() -> StoreResult<Self> {
        Self::init(Connection::open_in_memory()?)
    }

    fn init(connection: Connection) -> StoreResult<Self> {
        connection.pragma_update(None, "journal_mode", "WAL")?;
        connection.pragma_update(None, "synchronous", "NORMAL")?;
        connection.busy_timeout(std::time::Duration::from_secs(10))?;
        connection.execute_batch(SCHEMA)?;
        Ok(Self {
            connection: Arc::new(Mutex::new(connection)),
        })
    }

    fn lock(&self) -> StoreResult<MutexGuard<'_, Connection>> {
        self.connection.lock().map_err(|_| StoreError::Poisoned)
    }

    /// Claim a send under its idempotency key. `deduplicates` says whether
    /// the channel's platform deduplicates on the key, which decides what
    /// happens to a send a crash left in flight.
    pub fn claim(&self, send: &NewSend<'_>, deduplicates: bool, now: i64) -> StoreResult<Claim> {
        let connection = self.lock()?;
        let inserted = connection.execute(
            "INSERT OR IGNORE INTO sends (idempotency_key, campaign, profile_id, channel, address, step, state, content_kind, created_ms, updated_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'pending', ?7, ?8, ?8)",
            params![send.key, send.campaign, send.profile_id, send.channel, send.address, send.step, send.content_kind, now],
        )?;
        if inserted == 1 {
            return Ok(Claim::Proceed { attempts: 0 });
        }
        let (state, attempts, platform_message_id, not_before): (String, u32, Option<String>, Option<i64>) =
            connection.query_row(
                "SELECT state, attempts, platform_message_id, not_before_ms FROM sends WHERE idempotency_key = ?1",
                [send.key],
                |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?)),
            )?;
        let state = SendState::parse(&state);
        Ok(match state {
            SendState::Pending => Claim::Proceed { attempts },
            SendState::Deferred if not_before.is_none_or(|t| t <= now) => {
                Claim::Proceed { attempts }
            }
            SendState::InFlight if deduplicates => Claim::Proceed { attempts },
            SendState::InFlight => {
                connection.execute(
                    "UPDATE sends SET state = 'uncertain', error_class = 'uncertain',
                     error_message = 'in flight when the host stopped; the platform does not deduplicate, so it is not resent',
                     updated_ms = ?2 WHERE idempotency_key = ?1",
                    params![send.key, now],
                )?;
                Claim::Uncertain
            }
            other => Claim::AlreadyDone {
                state: other,
                platform_message_id,
            },
        })
    }

    /// Mark sends in flight just before the adapter call.
    pub fn mark_in_flight(&self, keys: &[&str], now: i64) -> StoreResult<()> {
        let mut connection = self.lock()?;
        let tx = connection.transaction()?;
        {
            let mut statement = tx.prepare_cached(
                "UPDATE sends SET state = 'in_flight', attempts = attempts + 1, updated_ms = ?2 WHERE idempotency_key = ?1",
            )?;
            for key in keys {
                statement.execute(params![key, now])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Record that the platform accepted a send, and apply any status
    /// webhooks that arrived before this was recorded.
    pub fn mark_sent(
        &self,
        key: &str,
        channel: &str,
        platform_message_id: Option<&str>,
        now: i64,
    ) -> StoreResult<()> {
        let connection = self.lock()?;
        connection.execute(
            "UPDATE sends SET state = 'sent', platform_message_id = ?2, error_class = NULL, error_message = NULL,
             delivery_state = COALESCE(delivery_state, 'accepted'), updated_ms = ?3 WHERE idempotency_key = ?1",
            params![key, platform_message_id, now],
        )?;
        let early: Vec<String> = connection
            .prepare_cached(
                "SELECT state FROM delivery_events WHERE channel = ?1 AND platform_message_id IN (?2, ?3)",
            )?
            .query_map(params![channel, platform_message_id, key], |row| row.get(0))?
            .collect::<Result<_, _>>()?;
        if let Some(best) = early.iter().max_by_key(|s| delivery_rank(s)) {
            connection.execute(
                "UPDATE sends SET delivery_state = ?2 WHERE idempotency_key = ?1",
                params![key, best],
            )?;
        }
        Ok(())
    }

    /// Record a failure: `state` is Failed (dead letter), Deferred (retry at
    /// `not_before_ms`) or Uncertain.
    pub fn mark_failed(
        &self,
        key: &str,
        state: SendState,
        class: &str,
        message: &str,
        not_before_ms: Option<i64>,
        now: i64,
    ) -> StoreResult<()> {
        self.lock()?.execute(
            "UPDATE sends SET state = ?2, error_class = ?3, error_message = ?4, not_before_ms = ?5, updated_ms = ?6
             WHERE idempotency_key = ?1",
            params![key, state.as_str(), class, message, not_before_ms, now],
        )?;
        Ok(())
    }

    /// One send by key.
    pub fn send(&self, key: &str) -> StoreResult<Option<SendRecord>> {
        let connection = self.lock()?;
        connection
            .query_row(
                &format!("{SEND_COLUMNS} WHERE idempotency_key = ?1"),
                [key],
                send_record,
            )
            .optional()
            .map_err(Into::into)
    }

    /// All sends of a campaign (or every campaign), oldest first.
    pub fn sends(&self, campaign: Option<&str>) -> StoreResult<Vec<SendRecord>> {
        let connection = self.lock()?;
        let mut statement = connection.prepare(&format!(
            "{SEND_COLUMNS} WHERE (?1 IS NULL OR campaign = ?1) ORDER BY created_ms, idempotency_key"
        ))?;
        let rows = statement.query_map([campaign], send_record)?;
        rows.collect::<Result<_, _>>().map_err(Into::into)
    }

    /// Record a delivery status webhook (deduplicated by event id) and move
    /// the send forward. The send is found by the platform's id or, when the
    /// webhook carries none, by the idempotency key the platform echoed back.
    /// Returns false for a redelivered event.
    pub fn record_status(&self, channel: &str, status: &StatusRecord<'_>) -> StoreResult<bool> {
        let connection = self.lock()?;
        let message_ref = status
            .platform_message_id
            .or(status.correlation_key)
            .unwrap_or_default();
        let inserted = connection.execute(
            "INSERT OR IGNORE INTO delivery_events (event_id, channel, platform_message_id, state, failure, occurred_ms, received_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![status.event_id, channel, message_ref, status.state.as_str(), status.failure, status.occurred_ms, now_ms()],
        )?;
        if inserted == 0 {
            return Ok(false);
        }
        let by_id: Option<(String, Option<String>)> = match status.platform_message_id {
            Some(id) => connection
                .query_row(
                    "SELECT idempotency_key, delivery_state FROM sends WHERE channel = ?1 AND platform_message_id = ?2",
                    params![channel, id],
                    |row| Ok((row.get(0)?, row.get(1)?)),
                )
                .optional()?,
            None => None,
        };
        let current = match (by_id, status.correlation_key) {
            (Some(found), _) => Some(found),
            (None, Some(key)) => connection
                .query_row(
                    "SELECT idempotency_key, delivery_state FROM sends WHERE channel = ?1 AND idempotency_key = ?2",
                    params![channel, key],
                    |row| Ok((row.get(0)?, row.get(1)?)),
                )
                .optional()?,
            (None, None) => None,
        };
        if let Some((key, previous)) = current
            && previous.as_deref().map_or(0, delivery_rank) < status.state.rank()
        {
            connection.execute(
                "UPDATE sends SET delivery_state = ?2, updated_ms = ?3,
                 error_message = COALESCE(?4, error_message) WHERE idempotency_key = ?1",
                params![key, status.state.as_str(), now_ms(), status.failure],
            )?;
        }
        Ok(true)
    }

    /// Record an inbound message (deduplicated). Returns false for a
    /// redelivered event.
    pub fn record_inbound(&self, channel: &str, inbound: &Inbound<'_>) -> StoreResult<bool> {
        let Inbound {
            event_id,
            sender,
            kind,
            text,
            occurred_ms,
        } = *inbound;
        let connection = self.lock()?;
        let inserted = connection.execute(
            "INSERT OR IGNORE INTO inbound_messages (event_id, channel, sender, kind, text, occurred_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![event_id, channel, sender, kind, text, occurred_ms],
        )?;
        Ok(inserted == 1)
    }

    /// Open or refresh the window `opener` opens for `address`: a later
    /// opening resets the count of free-form messages sent in it.
    pub fn open_window(
        &self,
        channel: &str,
        address: &str,
        opener: WindowOpener,
        at_ms: i64,
    ) -> StoreResult<()> {
        self.lock()?.execute(
            "INSERT INTO conversation_windows (channel, address, opener, opened_ms, free_form_sent) VALUES (?1, ?2, ?3, ?4, 0)
             ON CONFLICT (channel, address, opener) DO UPDATE SET
               free_form_sent = CASE WHEN excluded.opened_ms > opened_ms THEN 0 ELSE free_form_sent END,
               opened_ms = MAX(opened_ms, excluded.opened_ms)",
            params![channel, address, opener.as_str(), at_ms],
        )?;
        Ok(())
    }

    /// The windows `address` opened on `channel`, one per opener.
    pub fn windows(&self, channel: &str, address: &str) -> StoreResult<Vec<WindowRecord>> {
        let connection = self.lock()?;
        let mut statement = connection.prepare_cached(
            "SELECT opener, opened_ms, free_form_sent FROM conversation_windows WHERE channel = ?1 AND address = ?2",
        )?;
        let rows = statement.query_map(params![channel, address], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, i64>(1)?,
                row.get::<_, u32>(2)?,
            ))
        })?;
        let mut windows = Vec::new();
        for row in rows {
            let (opener, opened_ms, free_form_sent) = row?;
            if let Some(opener) = WindowOpener::from_name(&opener) {
                windows.push(WindowRecord {
                    opener,
                    opened_ms,
                    free_form_sent,
                });
            }
        }
        Ok(windows)
    }

    /// Count a free-form message sent inside the window `opener` opened.
    pub fn count_free_form(
        &self,
        channel: &str,
        address: &str,
        opener: WindowOpener,
    ) -> StoreResult<()> {
        self.lock()?.execute(
            "UPDATE conversation_windows SET free_form_sent = free_form_sent + 1 WHERE channel = ?1 AND address = ?2 AND opener = ?3",
            params![channel, address, opener.as_str()],
        )?;
        Ok(())
    }

    /// Append a consent event to the ledger (deduplicated by event id).
    pub fn record_consent(&self, channel: &str, change: &ConsentChange<'_>) -> StoreResult<bool> {
        let ConsentChange {
            event_id,
            address,
            purpose,
            opted_in,
            occurred_ms,
            source,
        } = *change;
        let inserted = self.lock()?.execute(
            "INSERT OR IGNORE INTO consent_ledger (event_id, channel, address, purpose, opted_in, occurred_ms, source)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![event_id, channel, address, purpose, opted_in, occurred_ms, source],
        )?;
        Ok(inserted == 1)
    }

    /// Every ledger event for an address on a channel.
    pub fn consent_history(&self, channel: &str, address: &str) -> StoreResult<Vec<ConsentRecord>> {
        let connection = self.lock()?;
        let mut statement = connection.prepare_cached(
            "SELECT opted_in, purpose, occurred_ms, source FROM consent_ledger WHERE channel = ?1 AND address = ?2 ORDER BY occurred_ms, seq",
        )?;
        let rows = statement.query_map(params![channel, address], |row| {
            Ok(ConsentRecord {
                opted_in: row.get(0)?,
                purpose: row.get(1)?,
                occurred_ms: row.get(2)?,
                source: row.get(3)?,
            })
        })?;
        rows.collect::<Result<_, _>>().map_err(Into::into)
    }

    /// Record the latest decision for a recipient of a campaign.
    pub fn record_decision(
        &self,
        campaign: &str,
        profile_id: &str,
        channel: Option<&str>,
        outcome: &str,
        reason: Option<&str>,
        detail: Option<&str>,
    ) -> StoreResult<()> {
        self.lock()?.execute(
            "INSERT INTO decisions (campaign, profile_id, channel, outcome, reason, detail, decided_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
             ON CONFLICT (campaign, profile_id) DO UPDATE SET channel = excluded.channel, outcome = excluded.outcome,
               reason = excluded.reason, detail = excluded.detail, decided_ms = excluded.decided_ms",
            params![campaign, profile_id, channel, outcome, reason, detail, now_ms()],
        )?;
        Ok(())
    }

    /// Why a recipient got what they got: the decision per campaign.
    pub fn decisions_for(&self, profile_id: &str) -> StoreResult<Vec<serde_json::Value>> {
        let connection = self.lock()?;
        let mut statement = connection.prepare(
            "SELECT campaign, channel, outcome, reason, detail, decided_ms FROM decisions WHERE profile_id = ?1 ORDER BY decided_ms",
        )?;
        let rows = statement.query_map([profile_id], |row| {
            Ok(serde_json::json!({
                "campaign": row.get::<_, String>(0)?,
                "channel": row.get::<_, Option<String>>(1)?,
                "outcome": row.get::<_, String>(2)?,
                "reason": row.get::<_, Option<String>>(3)?,
                "detail": row.get::<_, Option<String>>(4)?,
                "decided_ms": row.get::<_, i64>(5)?,
            }))
        })?;
        rows.collect::<Result<_, _>>().map_err(Into::into)
    }

    /// An adapter's live durable value (see the contract's `storage`).
    pub fn kv_get(&self, channel: &str, key: &str, now: i64) -> StoreResult<Option<String>> {
        self.lock()?
            .prepare_cached(
                "SELECT value FROM adapter_storage WHERE channel = ?1 AND key = ?2 AND expires_ms > ?3",
            )?
            .query_row(params![channel, key, now], |row| row.get(0))
            .optional()
            .map_err(Into::into)
    }

    /// Store an adapter's durable value. With `only_if_absent`, a live
    /// value already there is kept. Returns the value stored afterwards, or
    /// `None` when the channel already holds `max_entries` live entries and
    /// this would add one.
    pub fn kv_put(
        &self,
        entry: &KvEntry<'_>,
        only_if_absent: bool,
        now: i64,
    ) -> StoreResult<Option<String>> {
        let mut connection = self.lock()?;
        let tx = connection.transaction()?;
        let existing: Option<(String, i64)> = tx
            .prepare_cached(
                "SELECT value, expires_ms FROM adapter_storage WHERE channel = ?1 AND key = ?2",
            )?
            .query_row(params![entry.channel, entry.key], |row| {
                Ok((row.get(0)?, row.get(1)?))
            })
            .optional()?;
        let live = existing.as_ref().is_some_and(|(_, expires)| *expires > now);
        if only_if_absent && live {
            return Ok(existing.map(|(value, _)| value));
        }
        if !live {
            let count: u64 = tx
                .prepare_cached(
                    "SELECT COUNT(*) FROM adapter_storage WHERE channel = ?1 AND expires_ms > ?2",
                )?
                .query_row(params![entry.channel, now], |row| row.get(0))?;
            if count >= entry.max_entries {
                return Ok(None);
            }
        }
        tx.execute(
            "INSERT INTO adapter_storage (channel, key, value, expires_ms) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (channel, key) DO UPDATE SET value = excluded.value, expires_ms = excluded.expires_ms",
            params![entry.channel, entry.key, entry.value, entry.expires_ms],
        )?;
        tx.execute(
            "DELETE FROM adapter_storage WHERE channel = ?1 AND expires_ms <= ?2",
            params![entry.channel, now],
        )?;
        tx.commit()?;
        Ok(Some(entry.value.to_owned()))
    }

    /// Remove an adapter's durable value.
    pub fn kv_delete(&self, channel: &str, key: &str) -> StoreResult<()> {
        self.lock()?.execute(
            "DELETE FROM adapter_storage WHERE channel = ?1 AND key = ?2",
            params![channel, key],
        )?;
        Ok(())
    }

    /// Count sends by delivery state for a campaign, e.g. for the demo.
    pub fn delivery_counts(&self, campaign: &str) -> StoreResult<Vec<(String, u64)>> {
        let connection = self.lock()?;
        let mut statement = connection.prepare(
            "SELECT COALESCE(delivery_state, state), COUNT(*) FROM sends WHERE campaign = ?1 GROUP BY 1 ORDER BY 1",
        )?;
        let rows = statement.query_map([campaign], |row| Ok((row.get(0)?, row.get(1)?)))?;
        rows.collect::<Result<_, _>>().map_err(Into::into)
    }
}

const SEND_COLUMNS: &str = "SELECT idempotency_key, campaign, profile_id, channel, address, state, attempts, platform_message_id, delivery_state, error_class, error_message FROM sends";

fn send_record(row: &rusqlite::Row<'_>) -> rusqlite::Result<SendRecord> {
    Ok(SendRecord {
        idempotency_key: row.get(0)?,
        campaign: row.get(1)?,
        profile_id: row.get(2)?,
        channel: row.get(3)?,
        address: row.get(4)?,
        state: row.get(5)?,
        attempts: row.get(6)?,
        platform_message_id: row.get(7)?,
        delivery_state: row.get(8)?,
        error_class: row.get(9)?,
        error_message: row.get(10)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new_send(key: &str) -> NewSend<'_> {
        NewSend {
            key,
            campaign: "winback",
            profile_id: "p1",
            channel: "whatsapp",
            address: "+4915112345678",
            step: 0,
            content_kind: "template",
        }
    }

    #[test]
    fn a_settled_send_is_never_claimed_again() {
        let store = Store::in_memory().unwrap();
        assert_eq!(
            store.claim(&new_send("k1"), false, 1).unwrap(),
            Claim::Proceed { attempts: 0 }
        );
        store.mark_in_flight(&["k1"], 2).unwrap();
        store
            .mark_sent("k1", "whatsapp", Some("wamid.1"), 3)
            .unwrap();
        assert_eq!(
            store.claim(&new_send("k1"), false, 4).unwrap(),
            Claim::AlreadyDone {
                state: SendState::Sent,
                platform_message_id: Some("wamid.1".into())
            }
        );
    }

    #[test]
    fn a_crash_in_flight_is_uncertain_unless_the_platform_deduplicates() {
        let store = Store::in_memory().unwrap();
        store.claim(&new_send("k1"), false, 1).unwrap();
        store.mark_in_flight(&["k1"], 2).unwrap();
        // The host died here. A new run finds the row in flight.
        assert_eq!(
            store.claim(&new_send("k1"), false, 3).unwrap(),
            Claim::Uncertain
        );
        assert_eq!(store.send("k1").unwrap().unwrap().state, "uncertain");
        assert!(matches!(
            store.claim(&new_send("k1"), false, 4).unwrap(),
            Claim::AlreadyDone { .. }
        ));

        store.claim(&new_send("k2"), true, 1).unwrap();
        store.mark_in_flight(&["k2"], 2).unwrap();
        assert_eq!(
            store.claim(&new_send("k2"), true, 3).unwrap(),
            Claim::Proceed { attempts: 1 }
        );
    }

    #[test]
    fn deferred_sends_wait_for_their_time() {
        let store = Store::in_memory().unwrap();
        store.claim(&new_send("k1"), false, 1).unwrap();
        store
            .mark_failed(
                "k1",
                SendState::Deferred,
                "quiet_hours",
                "KST night",
                Some(100),
                2,
            )
            .unwrap();
        assert!(matches!(
            store.claim(&new_send("k1"), false, 50).unwrap(),
            Claim::AlreadyDone {
                state: SendState::Deferred,
                ..
            }
        ));
        assert_eq!(
            store.claim(&new_send("k1"), false, 100).unwrap(),
            Claim::Proceed { attempts: 0 }
        );
    }

    #[test]
    fn statuses_never_move_backwards_and_early_ones_apply() {
        let store = Store::in_memory().unwrap();
        store.claim(&new_send("k1"), false, 1).unwrap();
        // The status webhook beats the send's own bookkeeping.
        assert!(
            store
                .record_status(
                    "whatsapp",
                    &StatusRecord {
                        event_id: "e1",
                        platform_message_id: Some("wamid.1"),
                        correlation_key: None,
                        state: DeliveryState::Delivered,
                        failure: None,
                        occurred_ms: 5,
                    }
                )
                .unwrap()
        );
        store
            .mark_sent("k1", "whatsapp", Some("wamid.1"), 6)
            .unwrap();
        assert_eq!(
            store.send("k1").unwrap().unwrap().delivery_state.as_deref(),
            Some("delivered")
        );
        assert!(
            store
                .record_status(
                    "whatsapp",
                    &StatusRecord {
                        event_id: "e2",
                        platform_message_id: Some("wamid.1"),
                        correlation_key: None,
                        state: DeliveryState::Read,
                        failure: None,
                        occurred_ms: 7,
                    }
                )
                .unwrap()
        );
        assert!(
            store
                .record_status(
                    "whatsapp",
                    &StatusRecord {
                        event_id: "e3",
                        platform_message_id: Some("wamid.1"),
                        correlation_key: None,
                        state: DeliveryState::Sent,
                        failure: None,
                        occurred_ms: 8,
                    }
                )
                .unwrap()
        );
        assert_eq!(
            store.send("k1").unwrap().unwrap().delivery_state.as_deref(),
            Some("read")
        );
        assert!(
            !store
                .record_status(
                    "whatsapp",
                    &StatusRecord {
                        event_id: "e2",
                        platform_message_id: Some("wamid.1"),
                        correlation_key: None,
                        state: DeliveryState::Read,
                        failure: None,
                        occurred_ms: 7,
                    }
                )
                .unwrap(),
            "redelivery"
        );
    }

    #[test]
    fn windows_open_per_opener_and_refresh() {
        let store = Store::in_memory().unwrap();
        assert!(store.windows("wechat", "o1").unwrap().is_empty());
        store
            .open_window("wechat", "o1", WindowOpener::InboundMessage, 1_000)
            .unwrap();
        store
            .count_free_form("wechat", "o1", WindowOpener::InboundMessage)
            .unwrap();
        store
            .open_window("wechat", "o1", WindowOpener::Follow, 1_500)
            .unwrap();
        let mut windows = store.windows("wechat", "o1").unwrap();
        windows.sort_by_key(|w| w.opened_ms);
        assert_eq!(
            windows,
            [
                WindowRecord {
                    opener: WindowOpener::InboundMessage,
                    opened_ms: 1_000,
                    free_form_sent: 1
                },
                WindowRecord {
                    opener: WindowOpener::Follow,
                    opened_ms: 1_500,
                    free_form_sent: 0
                }
            ]
        );
        // A later message refreshes its window and resets its count; an
        // older, late-arriving one changes nothing.
        store
            .open_window("wechat", "o1", WindowOpener::InboundMessage, 2_000)
            .unwrap();
        store
            .open_window("wechat", "o1", WindowOpener::InboundMessage, 500)
            .unwrap();
        let inbound = store
            .windows("wechat", "o1")
            .unwrap()
            .into_iter()
            .find(|w| w.opener == WindowOpener::InboundMessage)
            .unwrap();
        assert_eq!((inbound.opened_ms, inbound.free_form_sent), (2_000, 0));
    }

    #[test]
    fn inbound_messages_are_deduplicated() {
        let store = Store::in_memory().unwrap();
        let message = Inbound {
            event_id: "m1",
            sender: "+491",
            kind: "text",
            text: Some("hi"),
            occurred_ms: 1_000,
        };
        assert!(store.record_inbound("whatsapp", &message).unwrap());
        assert!(!store.record_inbound("whatsapp", &message).unwrap());
    }

    #[test]
    fn statuses_find_their_send_by_correlation_key() {
        let store = Store::in_memory().unwrap();
        store.claim(&new_send("k1"), false, 1).unwrap();
        store.mark_sent("k1", "whatsapp", None, 2).unwrap();
        store
            .record_status(
                "whatsapp",
                &StatusRecord {
                    event_id: "e1",
                    platform_message_id: None,
                    correlation_key: Some("k1"),
                    state: DeliveryState::Expired,
                    failure: Some("ttl"),
                    occurred_ms: 3,
                },
            )
            .unwrap();
        assert_eq!(
            store.send("k1").unwrap().unwrap().delivery_state.as_deref(),
            Some("expired")
        );
    }

    #[test]
    fn adapter_storage_keeps_the_first_value_and_a_quota() {
        let store = Store::in_memory().unwrap();
        let entry = |key, value| KvEntry {
            channel: "line",
            key,
            value,
            expires_ms: 100,
            max_entries: 2,
        };
        assert_eq!(
            store.kv_put(&entry("a", "1"), true, 10).unwrap().as_deref(),
            Some("1")
        );
        assert_eq!(
            store.kv_put(&entry("a", "2"), true, 10).unwrap().as_deref(),
            Some("1")
        );
        store.kv_put(&entry("b", "1"), false, 10).unwrap();
        assert_eq!(store.kv_put(&entry("c", "1"), false, 10).unwrap(), None);
        assert_eq!(store.kv_get("line", "a", 10).unwrap().as_deref(), Some("1"));
        assert_eq!(store.kv_get("line", "a", 100).unwrap(), None, "expired");
        assert_eq!(store.kv_get("other", "a", 10).unwrap(), None);
        store.kv_delete("line", "a").unwrap();
        assert_eq!(store.kv_get("line", "a", 10).unwrap(), None);
    }

    #[test]
    fn consent_ledger_is_append_only_and_deduplicated() {
        let store = Store::in_memory().unwrap();
        let stop = ConsentChange {
            event_id: "e1",
            address: "+491",
            purpose: Some("marketing"),
            opted_in: false,
            occurred_ms: 10,
            source: "webhook:whatsapp",
        };
        assert!(store.record_consent("whatsapp", &stop).unwrap());
        assert!(
            !store.record_consent("whatsapp", &stop).unwrap(),
            "redelivery"
        );
        let resume = ConsentChange {
            event_id: "e2",
            opted_in: true,
            occurred_ms: 20,
            ..stop
        };
        store.record_consent("whatsapp", &resume).unwrap();
        let history = store.consent_history("whatsapp", "+491").unwrap();
        assert_eq!(history.len(), 2);
        assert!(!history[0].opted_in && history[1].opted_in);
    }
}
