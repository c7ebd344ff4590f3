//! The outbox on SQLite: enqueue, claim, write-ahead marks and settlement.
//! Each function runs inside the writer's transaction, so every one is
//! atomic, and a claim can never lease a row another process holds.

use super::ALL_PURPOSES;
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
    let mut results = Vec::with_capacity(sends.len());
    for send in sends {
        results.push(insert_send(connection, send, now)?);
    }
    for decision in decisions {
        record_decision(connection, decision)?;
    }
    Ok(results)
}

fn insert_send(connection: &Connection, send: &NewSend, now: i64) -> JobResult<Enqueued> {
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
    let inserted = connection
        .prepare_cached(
            "INSERT OR IGNORE INTO sends (idempotency_key, campaign, profile_id, line, channel, address, step,
                purpose, content, content_kind, ttl_seconds, window_opener, deduplicates, state, due_ms,
                deadline_ms, fallback, error_class, error_message, created_ms, updated_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?20, ?19, ?19)",
        )?
        .execute(params![
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

pub(crate) fn record_decision(connection: &Connection, decision: &DecisionRecord) -> JobResult<()> {
    connection
        .prepare_cached(
            "INSERT INTO decisions (campaign, profile_id, channel, outcome, reason, detail, decided_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
             ON CONFLICT (campaign, profile_id) DO UPDATE SET channel = excluded.channel,
               outcome = excluded.outcome, reason = excluded.reason, detail = excluded.detail,
               decided_ms = excluded.decided_ms",
        )?
        .execute(params![
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

fn claimed_send(row: &rusqlite::Row<'_>) -> rusqlite::Result<(ClaimedRow, String, String)> {
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
    // Candidates: due sends, then sends whose lease expired before any
    // request left (safe to take over).
    let mut keys: Vec<String> = connection
        .prepare_cached(
            "SELECT idempotency_key FROM sends
             WHERE channel = ?1 AND state IN ('pending', 'deferred', 'retrying') AND due_ms <= ?2
               AND (?4 IS NULL OR campaign = ?4)
             ORDER BY due_ms LIMIT ?3",
        )?
        .query_map(
            params![request.channel, now, request.limit, request.campaign],
            |row| row.get(0),
        )?
        .collect::<Result<_, _>>()?;
    if (keys.len() as u32) < request.limit {
        let expired: Vec<String> = connection
            .prepare_cached(
                "SELECT idempotency_key FROM sends
                 WHERE channel = ?1 AND state = 'leased' AND lease_expires_ms <= ?2 AND written = 0
                   AND (?4 IS NULL OR campaign = ?4)
                 ORDER BY lease_expires_ms LIMIT ?3",
            )?
            .query_map(
                params![
                    request.channel,
                    now,
                    request.limit - keys.len() as u32,
                    request.campaign
                ],
                |row| row.get(0),
            )?
            .collect::<Result<_, _>>()?;
        keys.extend(expired);
    }
    let mut claimed = Vec::with_capacity(keys.len());
    let mut lease = connection.prepare_cached(&format!(
        "UPDATE sends SET state = 'leased', lease_owner = ?2, lease_expires_ms = ?3, written = 0,
            attempts = attempts + 1, updated_ms = ?4
         WHERE idempotency_key = ?1 RETURNING {CLAIMED}"
    ))?;
    for key in keys {
        let Some((row, purpose, content)) = lease
            .query_row(
                params![key, request.owner, now + request.lease_ms, now],
                claimed_send,
            )
            .optional()?
        else {
            continue;
        };
        let send = row.into_claimed(&purpose, &content)?;
        if let Some(skip) = skip_reason(connection, &send, now)? {
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

/// Why a just-claimed send must not go out: its deadline passed, or the
/// recipient opted out of its purpose after it was enqueued.
fn skip_reason(
    connection: &Connection,
    send: &ClaimedSend,
    now: i64,
) -> JobResult<Option<Outcome>> {
    use crate::records::SkipReason;
    if let Some(deadline) = send.deadline_ms
        && now > deadline
    {
        return Ok(Some(Outcome::Skipped {
            reason: SkipReason::DeadlinePassed,
            message: format!(
                "could not go out before its deadline ({})",
                jiff::Timestamp::from_millisecond(deadline)
                    .map_or_else(|_| format!("{deadline} ms"), |t| t.to_string())
            ),
        }));
    }
    let newest: Option<(bool, String)> = connection
        .prepare_cached(
            "SELECT opted_in, source FROM consent_ledger
             WHERE channel = ?1 AND address = ?2 AND (purpose = '*' OR purpose = ?3) AND received_ms > ?4
             ORDER BY received_ms DESC, opted_in ASC, seq DESC LIMIT 1",
        )?
        .query_row(
            params![
                send.channel,
                send.message.to,
                send.message.purpose.as_str(),
                send.created_ms
            ],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .optional()?;
    Ok(match newest {
        Some((false, source)) => Some(Outcome::Skipped {
            reason: SkipReason::OptedOut,
            message: format!("the recipient opted out after the message was queued ({source})"),
        }),
        _ => None,
    })
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
    settlements
        .iter()
        .map(|settlement| settle_one(connection, owner, settlement, now))
        .collect()
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
}

fn settle_one(
    connection: &Connection,
    owner: &str,
    settlement: &Settlement,
    now: i64,
) -> JobResult<Settle> {
    let held: Option<Held> = connection
        .prepare_cached(
            "SELECT campaign, profile_id, line, channel, address, step, purpose, window_opener,
                    ttl_seconds, deadline_ms, fallback
             FROM sends WHERE idempotency_key = ?1 AND state = 'leased' AND lease_owner = ?2",
        )?
        .query_row(params![settlement.key, owner], |row| {
            Ok(Held {
                key: settlement.key.clone(),
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
            })
        })
        .optional()?;
    let Some(held) = held else {
        return Ok(Settle::NotHeld);
    };
    let key = settlement.key.as_str();
    let rate_limited = i64::from(settlement.rate_limited);
    // Every statement below binds `now` as its last parameter, `?N`.
    let release = |now_param: usize| {
        format!(
            "lease_owner = NULL, lease_expires_ms = NULL, written = 0, settled_by = lease_owner, settled_ms = ?{now_param}"
        )
    };
    let (outcome, reason, detail): (&str, Option<String>, Option<String>) = match &settlement
        .outcome
    {
        Outcome::Sent {
            platform_message_id,
            duplicate,
        } => {
            connection
                .prepare_cached(&format!(
                    "UPDATE sends SET state = 'sent', platform_message_id = ?2, error_class = NULL,
                        error_message = NULL, delivery_state = COALESCE(delivery_state, 'accepted'),
                        {release}, updated_ms = ?3 WHERE idempotency_key = ?1",
                    release = release(3)
                ))?
                .execute(params![key, platform_message_id, now])?;
            apply_early_statuses(
                connection,
                &held.channel,
                key,
                platform_message_id.as_deref(),
            )?;
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
            connection
                .prepare_cached(&format!(
                    "UPDATE sends SET state = 'failed', error_class = ?2, error_message = ?3,
                        rate_limited = rate_limited + ?4, {release}, updated_ms = ?5
                     WHERE idempotency_key = ?1",
                    release = release(5)
                ))?
                .execute(params![key, class, message, rate_limited, now])?;
            ("failed", Some(class.clone()), Some(message.clone()))
        }
        Outcome::Uncertain { message } => {
            connection
                .prepare_cached(&format!(
                    "UPDATE sends SET state = 'uncertain', error_class = 'uncertain', error_message = ?2,
                        {release}, updated_ms = ?3 WHERE idempotency_key = ?1",
                    release = release(3)
                ))?
                .execute(params![key, message, now])?;
            ("uncertain", None, Some(message.clone()))
        }
        Outcome::Deferred {
            due_ms,
            reason,
            message,
        } => {
            connection
                .prepare_cached(&format!(
                    "UPDATE sends SET state = 'deferred', due_ms = ?2, error_class = ?3, error_message = ?4,
                        rate_limited = rate_limited + ?5, {release}, updated_ms = ?6
                     WHERE idempotency_key = ?1",
                    release = release(6)
                ))?
                .execute(params![key, due_ms, reason, message, rate_limited, now])?;
            ("deferred", Some(reason.clone()), Some(message.clone()))
        }
        Outcome::Retrying {
            due_ms,
            class,
            message,
        } => {
            connection
                .prepare_cached(&format!(
                    "UPDATE sends SET state = 'retrying', due_ms = ?2, error_class = ?3, error_message = ?4,
                        rate_limited = rate_limited + ?5, {release}, updated_ms = ?6
                     WHERE idempotency_key = ?1",
                    release = release(6)
                ))?
                .execute(params![key, due_ms, class, message, rate_limited, now])?;
            return Ok(Settle::Applied);
        }
        Outcome::Released { due_ms } => {
            connection
                .prepare_cached(&format!(
                    "UPDATE sends SET state = 'retrying', due_ms = ?2, attempts = MAX(attempts - 1, 0),
                        {release}, updated_ms = ?3 WHERE idempotency_key = ?1",
                    release = release(3)
                ))?
                .execute(params![key, due_ms, now])?;
            return Ok(Settle::Applied);
        }
        Outcome::Skipped { reason, message } => {
            connection
                .prepare_cached(&format!(
                    "UPDATE sends SET state = 'skipped', error_class = ?2, error_message = ?3,
                        {release}, updated_ms = ?4 WHERE idempotency_key = ?1",
                    release = release(4)
                ))?
                .execute(params![key, reason.code(), message, now])?;
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

/// Statuses that arrived before the send was recorded as sent.
fn apply_early_statuses(
    connection: &Connection,
    channel: &str,
    key: &str,
    platform_message_id: Option<&str>,
) -> JobResult<()> {
    let early: Vec<String> = connection
        .prepare_cached(
            "SELECT state FROM delivery_events WHERE channel = ?1 AND message_ref IN (?2, ?3)",
        )?
        .query_map(params![channel, key, platform_message_id], |row| row.get(0))?
        .collect::<Result<_, _>>()?;
    let best = early
        .iter()
        .filter_map(|state| switchboard_contract::model::DeliveryState::from_name(state))
        .max_by_key(|state| state.rank());
    if let Some(best) = best {
        connection
            .prepare_cached("UPDATE sends SET delivery_state = ?2 WHERE idempotency_key = ?1")?
            .execute(params![key, best.as_str()])?;
    }
    Ok(())
}

/// Enqueue the next channel of the route for the send's recipient, if the
/// route has one. Returns whether it did.
pub(crate) fn fall_back_from_key(connection: &Connection, key: &str, now: i64) -> JobResult<bool> {
    let held: Option<Held> = connection
        .prepare_cached(
            "SELECT campaign, profile_id, line, channel, address, step, purpose, window_opener,
                    ttl_seconds, deadline_ms, fallback
             FROM sends WHERE idempotency_key = ?1",
        )?
        .query_row([key], |row| {
            Ok(Held {
                key: key.to_owned(),
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
            })
        })
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
        .prepare_cached("UPDATE sends SET fell_back = 1 WHERE idempotency_key = ?1")?
        .execute([&held.key])?;
    insert_send(connection, &send, now)?;
    record_decision(connection, &decision)?;
    Ok(true)
}

pub(crate) fn next_due(connection: &Connection, channel: &str) -> JobResult<Option<i64>> {
    let due: Option<i64> = connection
        .prepare_cached(
            "SELECT MIN(t) FROM (
                SELECT MIN(due_ms) AS t FROM sends WHERE channel = ?1 AND state IN ('pending', 'deferred', 'retrying')
                UNION ALL
                SELECT MIN(lease_expires_ms) AS t FROM sends WHERE channel = ?1 AND state = 'leased')",
        )?
        .query_row([channel], |row| row.get(0))?;
    Ok(due)
}

pub(crate) fn recent_recipients(
    connection: &Connection,
    channel: &str,
    since: i64,
) -> JobResult<Vec<(String, i64)>> {
    Ok(connection
        .prepare_cached(
            "SELECT address, MAX(settled_ms) FROM sends
             WHERE channel = ?1 AND state = 'sent' AND settled_ms > ?2 AND content_kind = 'template'
             GROUP BY address",
        )?
        .query_map(params![channel, since], |row| {
            Ok((row.get(0)?, row.get(1)?))
        })?
        .collect::<Result<_, _>>()?)
}
