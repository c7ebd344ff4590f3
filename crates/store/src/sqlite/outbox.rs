//! The outbox on SQLite: enqueue, claim, write-ahead marks and settlement.
//! Each function runs inside the writer's transaction, so every one is
//! atomic, and a claim can never lease a row another process holds.

use super::ALL_PURPOSES;
use std::collections::HashMap;
use std::rc::Rc;

use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, params};
use switchboard_contract::model::{Content, OutboundMessage, Purpose, WindowOpener};
use switchboard_core::campaign::next_channel_key;

use super::thread::{JobError, JobResult};
use crate::fall_back::{Unreachable, next_in_route};
use crate::records::{
    Alternative, ClaimRequest, ClaimedSend, DecisionRecord, Enqueued, NewSend, Outcome, SendState,
    Settle, Settlement,
};

/// What an uncertain send says when a lease expired after its request left.
const INTERRUPTED: &str = "a request for it was written to the network when the engine holding it stopped; the platform does not deduplicate, so it is not resent";

pub(crate) fn enqueue(
    connection: &Connection,
    sends: &[NewSend],
    decisions: &[DecisionRecord],
    now: i64,
) -> JobResult<Vec<Enqueued>> {
    // Each statement is taken from the cache once for the whole chunk, not
    // once per row: the cache hashes the statement's text at every take.
    let mut insert = connection.prepare_cached(INSERT_SEND)?;
    let mut results = Vec::with_capacity(sends.len());
    for send in sends {
        results.push(insert_send_with(&mut insert, connection, send, now)?);
    }
    drop(insert);
    let mut record = connection.prepare_cached(RECORD_DECISION)?;
    for decision in crate::enqueue_decisions::worth_recording(sends, &results, decisions) {
        write_decision(&mut record, decision)?;
    }
    Ok(results)
}

/// Queues one send under its idempotency key; a key already queued is
/// left as it is.
const INSERT_SEND: &str = "INSERT OR IGNORE INTO sends (idempotency_key, campaign, profile_id, line, channel, address, step,
        purpose, content, content_kind, ttl_seconds, window_opener, deduplicates, state, due_ms,
        deadline_ms, fallback, error_class, error_message, created_ms, updated_ms)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?20, ?19, ?19)";

fn insert_send(connection: &Connection, send: &NewSend, now: i64) -> JobResult<Enqueued> {
    insert_send_with(
        &mut connection.prepare_cached(INSERT_SEND)?,
        connection,
        send,
        now,
    )
}

/// [`insert_send`] with [`INSERT_SEND`] already prepared.
fn insert_send_with(
    insert: &mut rusqlite::CachedStatement<'_>,
    connection: &Connection,
    send: &NewSend,
    now: i64,
) -> JobResult<Enqueued> {
    let content = serde_json::to_string(&send.message.content)?;
    let fallback = if send.fallback.is_empty() {
        None
    } else {
        Some(serde_json::to_string(&send.fallback)?)
    };
    let (state, class) = match &send.deferred_reason {
        Some(reason) => (SendState::Deferred, Some(reason.as_str())),
        None => (SendState::Pending, None),
    };
    let message = send.deferred_message.as_deref();
    let inserted = insert.execute(params![
        send.message.idempotency_key,
        send.campaign,
        send.profile_id,
        send.line.map(|l| l as i64),
        send.channel,
        send.message.to,
        send.step,
        send.message.purpose.as_str(),
        content,
        send.message.content.kind(),
        send.message.ttl_seconds,
        send.window.map(WindowOpener::as_str),
        send.deduplicates,
        state.as_str(),
        send.due_ms,
        send.deadline_ms,
        fallback,
        class,
        now,
        message,
    ])?;
    if inserted == 1 {
        return Ok(Enqueued::Inserted);
    }
    existing(connection, &send.message.idempotency_key)
}

/// The columns [`existing`] reads.
struct ExistingRow {
    state: String,
    channel: String,
    platform_message_id: Option<String>,
    class: Option<String>,
    campaign: String,
    profile: String,
    fallback: Option<String>,
    settled_ms: Option<i64>,
}

/// A send already in the outbox, as a re-run should report it: when it
/// fell back to the next channel of its route, the send that carried on.
fn existing(connection: &Connection, key: &str) -> JobResult<Enqueued> {
    let mut key = key.to_owned();
    // A route is short; the bound only guards against a corrupt loop.
    for _ in 0..16 {
        let row = connection
            .prepare_cached(
                "SELECT state, channel, platform_message_id, error_class, campaign, profile_id, fallback, settled_ms
                 FROM sends WHERE idempotency_key = ?1",
            )?
            .query_row([&key], |row| {
                Ok(ExistingRow {
                    state: row.get(0)?,
                    channel: row.get(1)?,
                    platform_message_id: row.get(2)?,
                    class: row.get(3)?,
                    campaign: row.get(4)?,
                    profile: row.get(5)?,
                    fallback: row.get(6)?,
                    settled_ms: row.get(7)?,
                })
            })?;
        let ExistingRow {
            state,
            channel,
            platform_message_id,
            class,
            campaign,
            profile,
            fallback,
            settled_ms,
        } = row;
        let state = parse_state(&state)?;
        let next = (state == SendState::Failed && class.as_deref() == Some("unreachable"))
            .then(|| {
                fallback
                    .as_deref()
                    .map(serde_json::from_str::<Vec<Alternative>>)
            })
            .flatten()
            .transpose()?
            .and_then(|rest| rest.into_iter().next())
            .map(|next| next_channel_key(&campaign, &profile, &channel, &key, &next.channel));
        match next {
            Some(next_key)
                if connection
                    .prepare_cached("SELECT 1 FROM sends WHERE idempotency_key = ?1")?
                    .exists([&next_key])? =>
            {
                key = next_key;
            }
            _ => {
                return Ok(Enqueued::Existing {
                    state,
                    channel,
                    platform_message_id,
                    settled_ms,
                });
            }
        }
    }
    Err(JobError::Corrupt(format!(
        "the fall-back chain from {key} does not end"
    )))
}

pub(crate) fn parse_state(name: &str) -> JobResult<SendState> {
    SendState::from_name(name)
        .ok_or_else(|| JobError::Corrupt(format!("unknown send state `{name}`")))
}

/// Records what was decided for a recipient of a campaign, replacing what
/// was recorded before.
const RECORD_DECISION: &str =
    "INSERT INTO decisions (campaign, profile_id, channel, outcome, reason, detail, decided_ms)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
     ON CONFLICT (campaign, profile_id) DO UPDATE SET channel = excluded.channel,
       outcome = excluded.outcome, reason = excluded.reason, detail = excluded.detail,
       decided_ms = excluded.decided_ms";

pub(crate) fn record_decision(connection: &Connection, decision: &DecisionRecord) -> JobResult<()> {
    write_decision(&mut connection.prepare_cached(RECORD_DECISION)?, decision)
}

/// [`record_decision`] with [`RECORD_DECISION`] already prepared.
fn write_decision(
    record: &mut rusqlite::CachedStatement<'_>,
    decision: &DecisionRecord,
) -> JobResult<()> {
    record.execute(params![
        decision.campaign,
        decision.profile_id,
        decision.channel,
        decision.outcome,
        decision.reason,
        decision.detail,
        decision.decided_ms,
    ])?;
    Ok(())
}

/// The columns a claim returns, in order.
const CLAIMED: &str = "idempotency_key, campaign, profile_id, line, channel, address, step, purpose, content, ttl_seconds, window_opener, deduplicates, attempts, rate_limited, deadline_ms, created_ms";
/// How many columns [`CLAIMED`] names.
const CLAIMED_COLUMNS: usize = 16;

/// A claimed row with its purpose and content, as read (see [`claimed_send`]).
type ClaimedColumns = (ClaimedRow, String, String);

fn claimed_send(row: &rusqlite::Row<'_>) -> rusqlite::Result<ClaimedColumns> {
    Ok((
        ClaimedRow {
            key: row.get(0)?,
            campaign: row.get(1)?,
            profile_id: row.get(2)?,
            line: row.get::<_, Option<i64>>(3)?.map(|l| l as u64),
            channel: row.get(4)?,
            address: row.get(5)?,
            step: row.get(6)?,
            ttl_seconds: row.get(9)?,
            window: row.get(10)?,
            deduplicates: row.get(11)?,
            attempts: row.get(12)?,
            rate_limited: row.get(13)?,
            deadline_ms: row.get(14)?,
            created_ms: row.get(15)?,
        },
        row.get(7)?,
        row.get(8)?,
    ))
}

struct ClaimedRow {
    key: String,
    campaign: String,
    profile_id: String,
    line: Option<u64>,
    channel: String,
    address: String,
    step: u32,
    ttl_seconds: Option<u32>,
    window: Option<String>,
    deduplicates: bool,
    attempts: u32,
    rate_limited: u32,
    deadline_ms: Option<i64>,
    created_ms: i64,
}

impl ClaimedRow {
    fn into_claimed(self, purpose: &str, content: &str) -> JobResult<ClaimedSend> {
        let purpose = Purpose::from_name(purpose)
            .ok_or_else(|| JobError::Corrupt(format!("unknown purpose `{purpose}`")))?;
        let content: Content = serde_json::from_str(content)?;
        Ok(ClaimedSend {
            message: OutboundMessage {
                idempotency_key: self.key,
                to: self.address,
                purpose,
                content,
                ttl_seconds: self.ttl_seconds,
                attempt: self.attempts,
            },
            campaign: self.campaign,
            profile_id: self.profile_id,
            line: self.line,
            channel: self.channel,
            step: self.step,
            window: self.window.as_deref().and_then(WindowOpener::from_name),
            deduplicates: self.deduplicates,
            deadline_ms: self.deadline_ms,
            rate_limited: self.rate_limited,
            created_ms: self.created_ms,
        })
    }
}

pub(crate) fn claim(
    connection: &Connection,
    request: &ClaimRequest,
) -> JobResult<Vec<ClaimedSend>> {
    let now = request.now_ms;
    reconcile_interrupted(connection, &request.channel, now)?;
    // Due sends first, then sends whose lease expired before any request
    // left (safe to take over). Each is one statement that picks and
    // leases together.
    let mut rows = lease_picked(connection, LEASE_DUE, request, request.limit)?;
    if (rows.len() as u32) < request.limit {
        let rest = request.limit - rows.len() as u32;
        rows.extend(lease_picked(connection, LEASE_EXPIRED, request, rest)?);
    }
    let mut sends = Vec::with_capacity(rows.len());
    for (row, purpose, content) in rows {
        sends.push(row.into_claimed(&purpose, &content)?);
    }
    let opted_out = opted_out_since_queued(connection, &request.channel, &sends)?;
    let mut claimed = Vec::with_capacity(sends.len());
    for send in sends {
        let skip = deadline_passed(&send, now).or_else(|| {
            opted_out
                .get(send.message.idempotency_key.as_str())
                .map(|source| Outcome::Skipped {
                    reason: crate::records::SkipReason::OptedOut,
                    message: format!(
                        "the recipient opted out after the message was queued ({source})"
                    ),
                })
        });
        if let Some(skip) = skip {
            settle_one(
                connection,
                &request.owner,
                &Settlement {
                    key: send.message.idempotency_key.clone(),
                    outcome: skip,
                    consent: None,
                    rate_limited: false,
                    fall_back: false,
                },
                now,
            )?;
            continue;
        }
        claimed.push(send);
    }
    Ok(claimed)
}

/// The states of a send waiting for its due time, word for word as the
/// `sends_due` index's predicate (migration 0004): SQLite uses a partial
/// index only for a query that names its predicate, and checks comparisons
/// joined by OR without building the temporary b-tree an IN list needs.
macro_rules! waiting_states {
    () => {
        "(state = 'pending' OR state = 'deferred' OR state = 'retrying')"
    };
}

/// Picks due sends (`?1` channel, `?4` now, `?5` limit, `?6` campaign).
pub(super) const LEASE_DUE: &str = concat!(
    "SELECT rowid FROM sends
    WHERE channel = ?1 AND ",
    waiting_states!(),
    " AND due_ms <= ?4
      AND (?6 IS NULL OR campaign = ?6)
    ORDER BY due_ms LIMIT ?5"
);
/// Picks sends whose lease expired before a request for them left.
pub(super) const LEASE_EXPIRED: &str = "SELECT rowid FROM sends
    WHERE channel = ?1 AND state = 'leased' AND lease_expires_ms <= ?4 AND written = 0
      AND (?6 IS NULL OR campaign = ?6)
    ORDER BY lease_expires_ms LIMIT ?5";

/// Lease the rows `pick` selects to the claim's owner, in one statement,
/// and return them in the order of their due times (ties in the order they
/// were queued), as the due-sends index lists them.
fn lease_picked(
    connection: &Connection,
    pick: &str,
    request: &ClaimRequest,
    limit: u32,
) -> JobResult<Vec<ClaimedColumns>> {
    let mut leased: Vec<((i64, i64), ClaimedColumns)> = connection
        .prepare_cached(&format!(
            "UPDATE sends SET state = 'leased', lease_owner = ?2, lease_expires_ms = ?3, written = 0,
                attempts = attempts + 1, updated_ms = ?4
             WHERE rowid IN ({pick})
             RETURNING {CLAIMED}, due_ms, rowid"
        ))?
        .query_map(
            params![
                request.channel,
                request.owner,
                request.now_ms + request.lease_ms,
                request.now_ms,
                limit,
                request.campaign
            ],
            |row| {
                let order = (row.get(CLAIMED_COLUMNS)?, row.get(CLAIMED_COLUMNS + 1)?);
                Ok((order, claimed_send(row)?))
            },
        )?
        .collect::<Result<_, _>>()?;
    leased.sort_by_key(|(order, _)| *order);
    Ok(leased.into_iter().map(|(_, row)| row).collect())
}

/// Whether a just-claimed send's deadline passed.
fn deadline_passed(send: &ClaimedSend, now: i64) -> Option<Outcome> {
    let deadline = send.deadline_ms.filter(|deadline| now > *deadline)?;
    Some(Outcome::Skipped {
        reason: crate::records::SkipReason::DeadlinePassed,
        message: format!(
            "could not go out before its deadline ({})",
            jiff::Timestamp::from_millisecond(deadline)
                .map_or_else(|_| format!("{deadline} ms"), |t| t.to_string())
        ),
    })
}

/// The claimed sends whose recipient opted out of their purpose after they
/// were queued (key → the opt-out's source), read in one query: for each,
/// the newest ledger entry for its address and purpose (or every purpose)
/// received after it was created decides, an opt-out winning a tie.
fn opted_out_since_queued(
    connection: &Connection,
    channel: &str,
    sends: &[ClaimedSend],
) -> JobResult<HashMap<String, String>> {
    let Some(oldest) = sends.iter().map(|send| send.created_ms).min() else {
        return Ok(HashMap::new());
    };
    let addresses = text_values(sends.iter().map(|send| send.message.to.as_str()));
    // Newest first, as the per-send rule orders them.
    let entries: Vec<(String, String, bool, String, i64)> = connection
        .prepare_cached(
            "SELECT address, purpose, opted_in, source, received_ms FROM consent_ledger
             WHERE channel = ?1 AND address IN rarray(?2) AND received_ms > ?3
             ORDER BY received_ms DESC, opted_in ASC, seq DESC",
        )?
        .query_map(params![channel, addresses, oldest], |row| {
            Ok((
                row.get(0)?,
                row.get(1)?,
                row.get(2)?,
                row.get(3)?,
                row.get(4)?,
            ))
        })?
        .collect::<Result<_, _>>()?;
    let mut opted_out = HashMap::new();
    if entries.is_empty() {
        return Ok(opted_out);
    }
    for send in sends {
        let purpose = send.message.purpose.as_str();
        let newest = entries
            .iter()
            .find(|(address, entry_purpose, _, _, received)| {
                *address == send.message.to
                    && (entry_purpose == ALL_PURPOSES || entry_purpose == purpose)
                    && *received > send.created_ms
            });
        if let Some((_, _, false, source, _)) = newest {
            opted_out.insert(send.message.idempotency_key.clone(), source.clone());
        }
    }
    Ok(opted_out)
}

/// Expired leases whose request was written: resent under the same key
/// where the platform deduplicates, otherwise uncertain.
fn reconcile_interrupted(connection: &Connection, channel: &str, now: i64) -> JobResult<()> {
    let interrupted: Vec<(String, bool, String, String)> = connection
        .prepare_cached(
            "SELECT idempotency_key, deduplicates, campaign, profile_id FROM sends
             WHERE channel = ?1 AND state = 'leased' AND lease_expires_ms <= ?2 AND written = 1",
        )?
        .query_map(params![channel, now], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
        })?
        .collect::<Result<_, _>>()?;
    for (key, deduplicates, campaign, profile_id) in interrupted {
        if deduplicates {
            connection
                .prepare_cached(
                    "UPDATE sends SET state = 'retrying', due_ms = ?2, lease_owner = NULL,
                        lease_expires_ms = NULL, written = 0, updated_ms = ?2
                     WHERE idempotency_key = ?1",
                )?
                .execute(params![key, now])?;
        } else {
            connection
                .prepare_cached(
                    "UPDATE sends SET state = 'uncertain', error_class = 'uncertain', error_message = ?2,
                        lease_owner = NULL, lease_expires_ms = NULL, updated_ms = ?3
                     WHERE idempotency_key = ?1",
                )?
                .execute(params![key, INTERRUPTED, now])?;
            record_decision(
                connection,
                &DecisionRecord {
                    campaign,
                    profile_id,
                    channel: Some(channel.to_owned()),
                    outcome: "uncertain".into(),
                    reason: Some("interrupted".into()),
                    detail: Some(INTERRUPTED.into()),
                    decided_ms: now,
                },
            )?;
        }
    }
    Ok(())
}

pub(crate) fn mark_written(
    connection: &Connection,
    owner: &str,
    keys: &[String],
) -> JobResult<Vec<String>> {
    let mut lost = Vec::new();
    let mut mark = connection.prepare_cached(
        "UPDATE sends SET written = 1 WHERE idempotency_key = ?1 AND state = 'leased' AND lease_owner = ?2",
    )?;
    for key in keys {
        if mark.execute(params![key, owner])? == 0 {
            lost.push(key.clone());
        }
    }
    Ok(lost)
}

pub(crate) fn settle(
    connection: &Connection,
    owner: &str,
    settlements: &[Settlement],
    now: i64,
) -> JobResult<Vec<Settle>> {
    // The rows still held and the statuses that arrived early: one query
    // each for the whole batch, not one per send.
    let keys = text_values(settlements.iter().map(|s| s.key.as_str()));
    let mut held: HashMap<String, Held> = connection
        .prepare_cached(&format!(
            "SELECT {HELD}, idempotency_key FROM sends
             WHERE idempotency_key IN rarray(?1) AND state = 'leased' AND lease_owner = ?2"
        ))?
        .query_map(params![keys, owner], |row| {
            let key: String = row.get(HELD_COLUMNS)?;
            Ok((key.clone(), held_row(row, key)?))
        })?
        .collect::<Result<_, _>>()?;
    let early = early_statuses(connection, settlements, &held)?;
    settlements
        .iter()
        .map(|settlement| match held.remove(&settlement.key) {
            Some(row) => settle_held(connection, row, settlement, now, &early),
            None => Ok(Settle::NotHeld),
        })
        .collect()
}

/// Texts as an `rarray` parameter.
fn text_values<'a>(texts: impl Iterator<Item = &'a str>) -> Rc<Vec<Value>> {
    Rc::new(texts.map(|text| Value::from(text.to_owned())).collect())
}

/// Delivery statuses recorded before the sends they are about were
/// settled as sent: the best per message reference, by channel.
type EarlyStatuses = HashMap<String, HashMap<String, switchboard_contract::model::DeliveryState>>;

/// The statuses that arrived for the batch's sent messages (under their
/// key or their platform id) before they were settled.
fn early_statuses(
    connection: &Connection,
    settlements: &[Settlement],
    held: &HashMap<String, Held>,
) -> JobResult<EarlyStatuses> {
    let mut refs: HashMap<&str, Vec<&str>> = HashMap::new();
    for settlement in settlements {
        if let (
            Outcome::Sent {
                platform_message_id,
                ..
            },
            Some(row),
        ) = (&settlement.outcome, held.get(&settlement.key))
        {
            let channel = refs.entry(row.channel.as_str()).or_default();
            channel.push(&settlement.key);
            channel.extend(platform_message_id.as_deref());
        }
    }
    let mut best = EarlyStatuses::new();
    for (channel, refs) in refs {
        let mut statement = connection.prepare_cached(
            "SELECT message_ref, state FROM delivery_events WHERE channel = ?1 AND message_ref IN rarray(?2)",
        )?;
        let rows = statement.query_map(params![channel, text_values(refs.into_iter())], |row| {
            Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
        })?;
        for row in rows {
            let (message_ref, state) = row?;
            let Some(state) = switchboard_contract::model::DeliveryState::from_name(&state) else {
                continue;
            };
            best.entry(channel.to_owned())
                .or_default()
                .entry(message_ref)
                .and_modify(|known| {
                    if state.rank() > known.rank() {
                        *known = state;
                    }
                })
                .or_insert(state);
        }
    }
    Ok(best)
}

/// What the settled row was, for the decision and fall-back.
struct Held {
    key: String,
    campaign: String,
    profile_id: String,
    line: Option<i64>,
    channel: String,
    address: String,
    step: u32,
    purpose: String,
    window: Option<String>,
    ttl_seconds: Option<u32>,
    deadline_ms: Option<i64>,
    fallback: Option<String>,
    /// Where the row is: its statements find it by this, not the key.
    rowid: i64,
}

/// The columns [`held_row`] reads, in order.
const HELD: &str = "campaign, profile_id, line, channel, address, step, purpose, window_opener, ttl_seconds, deadline_ms, fallback, rowid";
/// How many columns [`HELD`] names.
const HELD_COLUMNS: usize = 12;

fn held_row(row: &rusqlite::Row<'_>, key: String) -> rusqlite::Result<Held> {
    Ok(Held {
        key,
        campaign: row.get(0)?,
        profile_id: row.get(1)?,
        line: row.get(2)?,
        channel: row.get(3)?,
        address: row.get(4)?,
        step: row.get(5)?,
        purpose: row.get(6)?,
        window: row.get(7)?,
        ttl_seconds: row.get(8)?,
        deadline_ms: row.get(9)?,
        fallback: row.get(10)?,
        rowid: row.get(11)?,
    })
}

/// Settle one send, if `owner` still holds it.
fn settle_one(
    connection: &Connection,
    owner: &str,
    settlement: &Settlement,
    now: i64,
) -> JobResult<Settle> {
    let held: Option<Held> = connection
        .prepare_cached(&format!(
            "SELECT {HELD} FROM sends WHERE idempotency_key = ?1 AND state = 'leased' AND lease_owner = ?2"
        ))?
        .query_row(params![settlement.key, owner], |row| {
            held_row(row, settlement.key.clone())
        })
        .optional()?;
    match held {
        Some(held) => settle_held(connection, held, settlement, now, &EarlyStatuses::new()),
        None => Ok(Settle::NotHeld),
    }
}

/// A settlement's statement: `$sets` for its outcome (its own parameters
/// from `?3`), then the lease's release; `?1` is the row and `?2` the time.
macro_rules! settlement {
    ($sets:literal) => {
        concat!(
            "UPDATE sends SET ",
            $sets,
            ", lease_owner = NULL, lease_expires_ms = NULL, written = 0, settled_by = lease_owner, settled_ms = ?2, updated_ms = ?2 WHERE rowid = ?1"
        )
    };
}

const SETTLE_SENT: &str = settlement!(
    "state = 'sent', platform_message_id = ?3, error_class = NULL, error_message = NULL, delivery_state = COALESCE(delivery_state, 'accepted')"
);
const SETTLE_FAILED: &str = settlement!(
    "state = 'failed', error_class = ?3, error_message = ?4, rate_limited = rate_limited + ?5"
);
const SETTLE_UNCERTAIN: &str =
    settlement!("state = 'uncertain', error_class = 'uncertain', error_message = ?3");
const SETTLE_DEFERRED: &str = settlement!(
    "state = 'deferred', due_ms = ?3, error_class = ?4, error_message = ?5, rate_limited = rate_limited + ?6"
);
const SETTLE_RETRYING: &str = settlement!(
    "state = 'retrying', due_ms = ?3, error_class = ?4, error_message = ?5, rate_limited = rate_limited + ?6"
);
const SETTLE_RELEASED: &str =
    settlement!("state = 'retrying', due_ms = ?3, attempts = MAX(attempts - 1, 0)");
const SETTLE_SKIPPED: &str = settlement!("state = 'skipped', error_class = ?3, error_message = ?4");

/// Settle a send its owner holds (`held`). `early` holds the statuses that
/// arrived before it was settled (see [`early_statuses`]).
fn settle_held(
    connection: &Connection,
    held: Held,
    settlement: &Settlement,
    now: i64,
    early: &EarlyStatuses,
) -> JobResult<Settle> {
    let key = settlement.key.as_str();
    let row = held.rowid;
    let rate_limited = i64::from(settlement.rate_limited);
    let (outcome, reason, detail): (&str, Option<String>, Option<String>) =
        match &settlement.outcome {
            Outcome::Sent {
                platform_message_id,
                duplicate,
            } => {
                connection.prepare_cached(SETTLE_SENT)?.execute(params![
                    row,
                    now,
                    platform_message_id
                ])?;
                let best = early.get(held.channel.as_str()).and_then(|by_ref| {
                    [Some(key), platform_message_id.as_deref()]
                        .into_iter()
                        .flatten()
                        .filter_map(|r| by_ref.get(r))
                        .max_by_key(|state| state.rank())
                });
                if let Some(best) = best {
                    connection
                        .prepare_cached("UPDATE sends SET delivery_state = ?2 WHERE rowid = ?1")?
                        .execute(params![row, best.as_str()])?;
                }
                if let Some(opener) = &held.window {
                    connection
                        .prepare_cached(
                            "UPDATE conversation_windows SET free_form_sent = free_form_sent + 1
                         WHERE channel = ?1 AND address = ?2 AND opener = ?3",
                        )?
                        .execute(params![held.channel, held.address, opener])?;
                }
                let outcome = if *duplicate { "already_sent" } else { "sent" };
                (outcome, None, platform_message_id.clone())
            }
            Outcome::Failed { class, message } => {
                connection.prepare_cached(SETTLE_FAILED)?.execute(params![
                    row,
                    now,
                    class,
                    message,
                    rate_limited
                ])?;
                ("failed", Some(class.clone()), Some(message.clone()))
            }
            Outcome::Uncertain { message } => {
                connection
                    .prepare_cached(SETTLE_UNCERTAIN)?
                    .execute(params![row, now, message])?;
                ("uncertain", None, Some(message.clone()))
            }
            Outcome::Deferred {
                due_ms,
                reason,
                message,
            } => {
                connection
                    .prepare_cached(SETTLE_DEFERRED)?
                    .execute(params![row, now, due_ms, reason, message, rate_limited])?;
                ("deferred", Some(reason.clone()), Some(message.clone()))
            }
            Outcome::Retrying {
                due_ms,
                class,
                message,
            } => {
                connection
                    .prepare_cached(SETTLE_RETRYING)?
                    .execute(params![row, now, due_ms, class, message, rate_limited])?;
                return Ok(Settle::Applied);
            }
            Outcome::Released { due_ms } => {
                connection
                    .prepare_cached(SETTLE_RELEASED)?
                    .execute(params![row, now, due_ms])?;
                return Ok(Settle::Applied);
            }
            Outcome::Skipped { reason, message } => {
                connection.prepare_cached(SETTLE_SKIPPED)?.execute(params![
                    row,
                    now,
                    reason.code(),
                    message
                ])?;
                (
                    "skipped",
                    Some(reason.code().to_owned()),
                    Some(message.clone()),
                )
            }
        };
    if let Some(change) = &settlement.consent {
        connection
            .prepare_cached(
                "INSERT OR IGNORE INTO consent_ledger (channel, event_id, address, purpose, opted_in, occurred_ms, received_ms, source)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6, ?7)",
            )?
            .execute(params![
                held.channel,
                format!("send:{key}"),
                change.address,
                change.purpose.map_or(ALL_PURPOSES, Purpose::as_str),
                change.opted_in,
                now,
                change.source,
            ])?;
    }
    if settlement.fall_back && fall_back(connection, &held, now)? {
        return Ok(Settle::FellBack);
    }
    record_decision(
        connection,
        &DecisionRecord {
            campaign: held.campaign,
            profile_id: held.profile_id,
            channel: Some(held.channel),
            outcome: outcome.to_owned(),
            reason,
            detail,
            decided_ms: now,
        },
    )?;
    Ok(Settle::Applied)
}

/// Enqueue the next channel of the route for the send's recipient, if the
/// route has one. Returns whether it did.
pub(crate) fn fall_back_from_key(connection: &Connection, key: &str, now: i64) -> JobResult<bool> {
    let held: Option<Held> = connection
        .prepare_cached(&format!(
            "SELECT {HELD} FROM sends WHERE idempotency_key = ?1"
        ))?
        .query_row([key], |row| held_row(row, key.to_owned()))
        .optional()?;
    match held {
        Some(held) => fall_back(connection, &held, now),
        None => Ok(false),
    }
}

fn fall_back(connection: &Connection, held: &Held, now: i64) -> JobResult<bool> {
    let Some(fallback) = &held.fallback else {
        return Ok(false);
    };
    let rest: Vec<Alternative> = serde_json::from_str(fallback)?;
    let from = Unreachable {
        key: &held.key,
        campaign: &held.campaign,
        profile_id: &held.profile_id,
        channel: &held.channel,
        purpose: Purpose::from_name(&held.purpose)
            .ok_or_else(|| JobError::Corrupt(format!("unknown purpose `{}`", held.purpose)))?,
        ttl_seconds: held.ttl_seconds,
        line: held.line.map(|l| l as u64),
        step: held.step,
        deadline_ms: held.deadline_ms,
    };
    let Some((send, decision)) = next_in_route(&from, rest, now) else {
        return Ok(false);
    };
    connection
        .prepare_cached("UPDATE sends SET fell_back = 1 WHERE rowid = ?1")?
        .execute([held.rowid])?;
    insert_send(connection, &send, now)?;
    record_decision(connection, &decision)?;
    Ok(true)
}

/// The earliest due time or lease expiry of a channel's sends (`?1`).
pub(super) const NEXT_DUE: &str = concat!(
    "SELECT MIN(t) FROM (
        SELECT MIN(due_ms) AS t FROM sends WHERE channel = ?1 AND ",
    waiting_states!(),
    "
        UNION ALL
        SELECT MIN(lease_expires_ms) AS t FROM sends WHERE channel = ?1 AND state = 'leased')"
);

pub(crate) fn next_due(connection: &Connection, channel: &str) -> JobResult<Option<i64>> {
    let due: Option<i64> = connection
        .prepare_cached(NEXT_DUE)?
        .query_row([channel], |row| row.get(0))?;
    Ok(due)
}

/// The addresses a channel sent a template to since `?2`, with the last
/// time (`sends_settled` serves it).
pub(super) const RECENT_RECIPIENTS: &str = "SELECT address, MAX(settled_ms) FROM sends
    WHERE channel = ?1 AND state = 'sent' AND settled_ms > ?2 AND content_kind = 'template'
    GROUP BY address";

pub(crate) fn recent_recipients(
    connection: &Connection,
    channel: &str,
    since: i64,
) -> JobResult<Vec<(String, i64)>> {
    Ok(connection
        .prepare_cached(RECENT_RECIPIENTS)?
        .query_map(params![channel, since], |row| {
            Ok((row.get(0)?, row.get(1)?))
        })?
        .collect::<Result<_, _>>()?)
}
