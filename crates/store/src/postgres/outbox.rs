//! The outbox on PostgreSQL: enqueue, claim, write-ahead marks and
//! settlement, each set-based (a batch is a few statements, not one per
//! row). A claim leases rows it has locked with `FOR UPDATE SKIP LOCKED`,
//! and settling only touches rows still leased to the settling owner, so
//! concurrent engines never lease or settle the same send twice.

use std::collections::{BTreeMap, HashMap, HashSet};

use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Row};
use switchboard_contract::model::{Content, DeliveryState, OutboundMessage, Purpose, WindowOpener};
use switchboard_core::campaign::next_channel_key;

use super::{Failure, Fallible};
use crate::fall_back::{Unreachable, next_in_route};
use crate::records::{
    Alternative, ClaimRequest, ClaimedSend, DecisionRecord, Enqueued, NewSend, Outcome, SendState,
    Settle, Settlement, SkipReason,
};
use crate::sqlite::ALL_PURPOSES;

/// What an uncertain send says when a lease expired after its request left.
const INTERRUPTED: &str = "a request for it was written to the network when the engine holding it stopped; the platform does not deduplicate, so it is not resent";

/// A stored integer that must fit a `u32`.
pub(super) fn to_u32(value: i64, what: &str) -> Fallible<u32> {
    u32::try_from(value).map_err(|_| Failure::Corrupt(format!("{what} {value} is out of range")))
}

/// A stored integer that must fit a `u64`.
pub(super) fn to_u64(value: i64, what: &str) -> Fallible<u64> {
    u64::try_from(value).map_err(|_| Failure::Corrupt(format!("{what} {value} is out of range")))
}

pub(super) fn parse_state(name: &str) -> Fallible<SendState> {
    SendState::from_name(name)
        .ok_or_else(|| Failure::Corrupt(format!("unknown send state `{name}`")))
}

fn parse_purpose(name: &str) -> Fallible<Purpose> {
    Purpose::from_name(name).ok_or_else(|| Failure::Corrupt(format!("unknown purpose `{name}`")))
}

// ---- enqueue -------------------------------------------------------------

const INSERT_SENDS: &str = "
    INSERT INTO sends (idempotency_key, campaign, profile_id, line, channel, address, step,
        purpose, content, content_kind, ttl_seconds, window_opener, deduplicates, state, due_ms,
        deadline_ms, fallback, error_class, error_message, created_ms, updated_ms)
    SELECT k, c, p, l, ch, a, st, pu, co, ck, t, w, d, s, due, dl, fb, ec, em, now, now
    FROM UNNEST($1::text[], $2::text[], $3::text[], $4::bigint[], $5::text[], $6::text[],
        $7::bigint[], $8::text[], $9::text[], $10::text[], $11::bigint[], $12::text[],
        $13::bool[], $14::text[], $15::bigint[], $16::bigint[], $17::text[], $18::text[],
        $19::text[], $20::bigint[])
        AS n(k, c, p, l, ch, a, st, pu, co, ck, t, w, d, s, due, dl, fb, ec, em, now)
    ON CONFLICT (idempotency_key) DO NOTHING
    RETURNING idempotency_key";

/// Put sends in the outbox, each created at its own time; a key already
/// there (or earlier in `sends`) is left alone. Returns the keys inserted.
/// Rows go in in key order, so that concurrent enqueues of overlapping
/// batches wait on each other rather than deadlock.
pub(super) async fn insert_sends(
    connection: &mut PgConnection,
    sends: &[(&NewSend, i64)],
) -> Fallible<HashSet<String>> {
    let mut unique: BTreeMap<&str, (&NewSend, i64)> = BTreeMap::new();
    for (send, now) in sends {
        unique
            .entry(send.message.idempotency_key.as_str())
            .or_insert((send, *now));
    }
    if unique.is_empty() {
        return Ok(HashSet::new());
    }
    let n = unique.len();
    let mut keys = Vec::with_capacity(n);
    let mut campaigns = Vec::with_capacity(n);
    let mut profiles = Vec::with_capacity(n);
    let mut lines: Vec<Option<i64>> = Vec::with_capacity(n);
    let mut channels = Vec::with_capacity(n);
    let mut addresses = Vec::with_capacity(n);
    let mut steps: Vec<i64> = Vec::with_capacity(n);
    let mut purposes = Vec::with_capacity(n);
    let mut contents = Vec::with_capacity(n);
    let mut kinds = Vec::with_capacity(n);
    let mut ttls: Vec<Option<i64>> = Vec::with_capacity(n);
    let mut windows: Vec<Option<&str>> = Vec::with_capacity(n);
    let mut deduplicates = Vec::with_capacity(n);
    let mut states = Vec::with_capacity(n);
    let mut dues = Vec::with_capacity(n);
    let mut deadlines = Vec::with_capacity(n);
    let mut fallbacks: Vec<Option<String>> = Vec::with_capacity(n);
    let mut classes: Vec<Option<&str>> = Vec::with_capacity(n);
    let mut messages: Vec<Option<&str>> = Vec::with_capacity(n);
    let mut nows = Vec::with_capacity(n);
    for (key, (send, now)) in unique {
        keys.push(key);
        campaigns.push(send.campaign.as_str());
        profiles.push(send.profile_id.as_str());
        lines.push(send.line.map(|l| i64::try_from(l).unwrap_or(i64::MAX)));
        channels.push(send.channel.as_str());
        addresses.push(send.message.to.as_str());
        steps.push(i64::from(send.step));
        purposes.push(send.message.purpose.as_str());
        contents.push(serde_json::to_string(&send.message.content)?);
        kinds.push(send.message.content.kind());
        ttls.push(send.message.ttl_seconds.map(i64::from));
        windows.push(send.window.map(WindowOpener::as_str));
        deduplicates.push(send.deduplicates);
        let (state, class) = match &send.deferred_reason {
            Some(reason) => (SendState::Deferred, Some(reason.as_str())),
            None => (SendState::Pending, None),
        };
        states.push(state.as_str());
        classes.push(class);
        messages.push(send.deferred_message.as_deref());
        dues.push(send.due_ms);
        deadlines.push(send.deadline_ms);
        fallbacks.push(if send.fallback.is_empty() {
            None
        } else {
            Some(serde_json::to_string(&send.fallback)?)
        });
        nows.push(now);
    }
    let inserted: Vec<String> = sqlx::query_scalar(INSERT_SENDS)
        .bind(keys)
        .bind(campaigns)
        .bind(profiles)
        .bind(lines)
        .bind(channels)
        .bind(addresses)
        .bind(steps)
        .bind(purposes)
        .bind(contents)
        .bind(kinds)
        .bind(ttls)
        .bind(windows)
        .bind(deduplicates)
        .bind(states)
        .bind(dues)
        .bind(deadlines)
        .bind(fallbacks)
        .bind(classes)
        .bind(messages)
        .bind(nows)
        .fetch_all(&mut *connection)
        .await?;
    Ok(inserted.into_iter().collect())
}

pub(super) async fn enqueue(
    connection: &mut PgConnection,
    sends: &[NewSend],
    decisions: &[DecisionRecord],
    now: i64,
) -> Fallible<Vec<Enqueued>> {
    let rows: Vec<(&NewSend, i64)> = sends.iter().map(|send| (send, now)).collect();
    let inserted = insert_sends(connection, &rows).await?;
    // A key inserted now is new the first time it appears; any other
    // appearance is a send already there, as if enqueued one by one.
    let mut fresh: HashSet<&str> = HashSet::new();
    let mut again: Vec<String> = Vec::new();
    let mut results: Vec<Option<Enqueued>> = sends
        .iter()
        .map(|send| {
            let key = send.message.idempotency_key.as_str();
            if inserted.contains(key) && fresh.insert(key) {
                Some(Enqueued::Inserted)
            } else {
                again.push(key.to_owned());
                None
            }
        })
        .collect();
    if !again.is_empty() {
        let found = existing(connection, &again).await?;
        for (slot, send) in results.iter_mut().zip(sends) {
            if slot.is_none() {
                *slot = found.get(&send.message.idempotency_key).cloned();
            }
        }
    }
    let results = results
        .into_iter()
        .zip(sends)
        .map(|(result, send)| {
            result.ok_or_else(|| {
                Failure::Corrupt(format!(
                    "send {} is neither new nor in the outbox",
                    send.message.idempotency_key
                ))
            })
        })
        .collect::<Fallible<Vec<_>>>()?;
    record_decisions(
        connection,
        crate::enqueue_decisions::worth_recording(sends, &results, decisions),
    )
    .await?;
    Ok(results)
}

/// A send already in the outbox, as [`existing`] reads it.
#[derive(Clone)]
struct ExistingRow {
    key: String,
    state: SendState,
    channel: String,
    platform_message_id: Option<String>,
    class: Option<String>,
    campaign: String,
    profile: String,
    fallback: Option<String>,
    settled_ms: Option<i64>,
}

impl ExistingRow {
    /// The send that carried on when this one fell back to the next
    /// channel of its route.
    fn next_key(&self) -> Fallible<Option<String>> {
        if self.state != SendState::Failed || self.class.as_deref() != Some("unreachable") {
            return Ok(None);
        }
        let Some(fallback) = &self.fallback else {
            return Ok(None);
        };
        let rest: Vec<Alternative> = serde_json::from_str(fallback)?;
        Ok(rest.into_iter().next().map(|next| {
            next_channel_key(
                &self.campaign,
                &self.profile,
                &self.channel,
                &self.key,
                &next.channel,
            )
        }))
    }

    fn into_enqueued(self) -> Enqueued {
        Enqueued::Existing {
            state: self.state,
            channel: self.channel,
            platform_message_id: self.platform_message_id,
            settled_ms: self.settled_ms,
        }
    }
}

/// Sends already in the outbox, as a re-run should report them: when one
/// fell back to the next channel of its route, the send that carried on.
/// One query per step along the routes, for all keys at once.
async fn existing(
    connection: &mut PgConnection,
    keys: &[String],
) -> Fallible<HashMap<String, Enqueued>> {
    let mut resolved = HashMap::new();
    // Per key asked about: the send to look at now, and the one before it.
    let mut current: HashMap<String, String> =
        keys.iter().map(|key| (key.clone(), key.clone())).collect();
    let mut previous: HashMap<String, ExistingRow> = HashMap::new();
    // A route is short; the bound only guards against a corrupt loop.
    for _ in 0..16 {
        if current.is_empty() {
            return Ok(resolved);
        }
        let wanted: Vec<&str> = current
            .values()
            .map(String::as_str)
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        let rows: Vec<PgRow> = sqlx::query(
            "SELECT idempotency_key, state, channel, platform_message_id, error_class, campaign,
                    profile_id, fallback, settled_ms
             FROM sends WHERE idempotency_key = ANY($1)",
        )
        .bind(wanted)
        .fetch_all(&mut *connection)
        .await?;
        let mut found: HashMap<String, ExistingRow> = HashMap::with_capacity(rows.len());
        for row in rows {
            let key: String = row.try_get("idempotency_key")?;
            found.insert(
                key.clone(),
                ExistingRow {
                    key,
                    state: parse_state(row.try_get("state")?)?,
                    channel: row.try_get("channel")?,
                    platform_message_id: row.try_get("platform_message_id")?,
                    class: row.try_get("error_class")?,
                    campaign: row.try_get("campaign")?,
                    profile: row.try_get("profile_id")?,
                    fallback: row.try_get("fallback")?,
                    settled_ms: row.try_get("settled_ms")?,
                },
            );
        }
        let mut next_current = HashMap::new();
        for (asked, key) in current {
            let Some(row) = found.get(&key) else {
                match previous.remove(&asked) {
                    Some(before) => {
                        resolved.insert(asked, before.into_enqueued());
                        continue;
                    }
                    None => {
                        return Err(Failure::Corrupt(format!(
                            "send {key} vanished while it was enqueued"
                        )));
                    }
                }
            };
            match row.next_key()? {
                Some(next) => {
                    previous.insert(asked.clone(), row.clone());
                    next_current.insert(asked, next);
                }
                None => {
                    resolved.insert(asked, row.clone().into_enqueued());
                }
            }
        }
        current = next_current;
    }
    match current.into_keys().next() {
        None => Ok(resolved),
        Some(key) => Err(Failure::Corrupt(format!(
            "the fall-back chain from {key} does not end"
        ))),
    }
}

/// Record decisions, replacing a profile's earlier decision in the same
/// campaign; within `decisions` the last one for a profile wins, as when
/// written one after another. Rows go in in key order (no deadlocks
/// between concurrent writers).
pub(super) async fn record_decisions<'a>(
    connection: &mut PgConnection,
    decisions: impl IntoIterator<Item = &'a DecisionRecord>,
) -> Fallible<()> {
    let mut latest: BTreeMap<(&str, &str), &DecisionRecord> = BTreeMap::new();
    for decision in decisions {
        latest.insert(
            (decision.campaign.as_str(), decision.profile_id.as_str()),
            decision,
        );
    }
    if latest.is_empty() {
        return Ok(());
    }
    let n = latest.len();
    let mut campaigns = Vec::with_capacity(n);
    let mut profiles = Vec::with_capacity(n);
    let mut channels = Vec::with_capacity(n);
    let mut outcomes = Vec::with_capacity(n);
    let mut reasons = Vec::with_capacity(n);
    let mut details = Vec::with_capacity(n);
    let mut times = Vec::with_capacity(n);
    for decision in latest.into_values() {
        campaigns.push(decision.campaign.as_str());
        profiles.push(decision.profile_id.as_str());
        channels.push(decision.channel.as_deref());
        outcomes.push(decision.outcome.as_str());
        reasons.push(decision.reason.as_deref());
        details.push(decision.detail.as_deref());
        times.push(decision.decided_ms);
    }
    sqlx::query(
        "INSERT INTO decisions (campaign, profile_id, channel, outcome, reason, detail, decided_ms)
         SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
             $6::text[], $7::bigint[])
         ON CONFLICT (campaign, profile_id) DO UPDATE SET channel = excluded.channel,
           outcome = excluded.outcome, reason = excluded.reason, detail = excluded.detail,
           decided_ms = excluded.decided_ms",
    )
    .bind(campaigns)
    .bind(profiles)
    .bind(channels)
    .bind(outcomes)
    .bind(reasons)
    .bind(details)
    .bind(times)
    .execute(&mut *connection)
    .await?;
    Ok(())
}

// ---- claim ---------------------------------------------------------------

/// A claim statement: lease the rows that `$picked` selects (each send's
/// key and its `rank_ms`, locked with `SKIP LOCKED`) and return what
/// [`claimed_send`] reads.
macro_rules! lease_picked {
    ($picked:literal) => {
        concat!(
            "WITH picked AS (",
            $picked,
            ")
    UPDATE sends s SET state = 'leased', lease_owner = $5, lease_expires_ms = $6, written = FALSE,
        attempts = s.attempts + 1, updated_ms = $2
    FROM picked WHERE s.idempotency_key = picked.idempotency_key
    RETURNING picked.rank_ms, s.idempotency_key, s.campaign, s.profile_id, s.line, s.channel,
        s.address, s.step, s.purpose, s.content, s.ttl_seconds, s.window_opener, s.deduplicates,
        s.attempts, s.rate_limited, s.deadline_ms, s.created_ms"
        )
    };
}

/// Lease due sends: pending, or deferred or retrying with the due time reached.
const LEASE_DUE: &str = lease_picked!(
    "SELECT idempotency_key, due_ms AS rank_ms FROM sends
        WHERE channel = $1 AND state IN ('pending', 'deferred', 'retrying') AND due_ms <= $2
          AND ($4::text IS NULL OR campaign = $4)
        ORDER BY due_ms LIMIT $3
        FOR UPDATE SKIP LOCKED"
);

/// Lease sends whose lease expired before any request left (safe to take over).
const LEASE_EXPIRED: &str = lease_picked!(
    "SELECT idempotency_key, lease_expires_ms AS rank_ms FROM sends
        WHERE channel = $1 AND state = 'leased' AND lease_expires_ms <= $2 AND NOT written
          AND ($4::text IS NULL OR campaign = $4)
        ORDER BY lease_expires_ms LIMIT $3
        FOR UPDATE SKIP LOCKED"
);

fn claimed_send(row: &PgRow) -> Fallible<(i64, ClaimedSend)> {
    let content: String = row.try_get("content")?;
    let content: Content = serde_json::from_str(&content)?;
    let window: Option<String> = row.try_get("window_opener")?;
    let ttl: Option<i64> = row.try_get("ttl_seconds")?;
    let line: Option<i64> = row.try_get("line")?;
    Ok((
        row.try_get("rank_ms")?,
        ClaimedSend {
            message: OutboundMessage {
                idempotency_key: row.try_get("idempotency_key")?,
                to: row.try_get("address")?,
                purpose: parse_purpose(row.try_get("purpose")?)?,
                content,
                ttl_seconds: ttl.map(|t| to_u32(t, "ttl_seconds")).transpose()?,
                attempt: to_u32(row.try_get("attempts")?, "attempts")?,
            },
            campaign: row.try_get("campaign")?,
            profile_id: row.try_get("profile_id")?,
            line: line.map(|l| to_u64(l, "line")).transpose()?,
            channel: row.try_get("channel")?,
            step: to_u32(row.try_get("step")?, "step")?,
            window: window.as_deref().and_then(WindowOpener::from_name),
            deduplicates: row.try_get("deduplicates")?,
            deadline_ms: row.try_get("deadline_ms")?,
            rate_limited: to_u32(row.try_get("rate_limited")?, "rate_limited")?,
            created_ms: row.try_get("created_ms")?,
        },
    ))
}

async fn lease(
    connection: &mut PgConnection,
    sql: &'static str,
    request: &ClaimRequest,
    limit: i64,
) -> Fallible<Vec<ClaimedSend>> {
    let now = request.now_ms;
    let rows = sqlx::query(sql)
        .bind(&request.channel)
        .bind(now)
        .bind(limit)
        .bind(request.campaign.as_deref())
        .bind(&request.owner)
        .bind(now.saturating_add(request.lease_ms))
        .fetch_all(&mut *connection)
        .await?;
    let mut claimed = rows
        .iter()
        .map(claimed_send)
        .collect::<Fallible<Vec<_>>>()?;
    // Oldest first, as they were picked.
    claimed.sort_by_key(|(rank, _)| *rank);
    Ok(claimed.into_iter().map(|(_, send)| send).collect())
}

pub(super) async fn claim(
    connection: &mut PgConnection,
    request: &ClaimRequest,
) -> Fallible<Vec<ClaimedSend>> {
    let now = request.now_ms;
    reconcile_interrupted(connection, &request.channel, now).await?;
    let limit = i64::from(request.limit);
    let mut claimed = lease(connection, LEASE_DUE, request, limit).await?;
    if (claimed.len() as i64) < limit {
        let more = limit - claimed.len() as i64;
        claimed.extend(lease(connection, LEASE_EXPIRED, request, more).await?);
    }
    if claimed.is_empty() {
        return Ok(claimed);
    }
    let skips = skip_reasons(connection, &claimed, now).await?;
    if skips.is_empty() {
        return Ok(claimed);
    }
    let mut settlements = Vec::with_capacity(skips.len());
    let mut kept = Vec::with_capacity(claimed.len() - skips.len());
    for send in claimed {
        match skips.get(&send.message.idempotency_key) {
            Some(skip) => settlements.push(Settlement {
                key: send.message.idempotency_key.clone(),
                outcome: skip.clone(),
                consent: None,
                rate_limited: false,
                fall_back: false,
            }),
            None => kept.push(send),
        }
    }
    settle(connection, &request.owner, &settlements, now).await?;
    Ok(kept)
}

/// Which just-claimed sends must not go out, and why: the deadline passed,
/// or the recipient opted out of the purpose after the send was enqueued
/// (the newest ledger entry for it since then is an opt-out).
async fn skip_reasons(
    connection: &mut PgConnection,
    claimed: &[ClaimedSend],
    now: i64,
) -> Fallible<HashMap<String, Outcome>> {
    let mut skips = HashMap::new();
    let mut keys = Vec::new();
    let mut channels = Vec::new();
    let mut addresses = Vec::new();
    let mut purposes = Vec::new();
    let mut created = Vec::new();
    for send in claimed {
        if let Some(deadline) = send.deadline_ms
            && now > deadline
        {
            skips.insert(
                send.message.idempotency_key.clone(),
                Outcome::Skipped {
                    reason: SkipReason::DeadlinePassed,
                    message: format!(
                        "could not go out before its deadline ({})",
                        jiff::Timestamp::from_millisecond(deadline)
                            .map_or_else(|_| format!("{deadline} ms"), |t| t.to_string())
                    ),
                },
            );
            continue;
        }
        keys.push(send.message.idempotency_key.as_str());
        channels.push(send.channel.as_str());
        addresses.push(send.message.to.as_str());
        purposes.push(send.message.purpose.as_str());
        created.push(send.created_ms);
    }
    if keys.is_empty() {
        return Ok(skips);
    }
    let opted_out: Vec<(String, String)> = sqlx::query_as(
        "SELECT c.key, l.source
         FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[])
             AS c(key, channel, address, purpose, created_ms)
         CROSS JOIN LATERAL (
             SELECT opted_in, source FROM consent_ledger
             WHERE channel = c.channel AND address = c.address
               AND (purpose = $6 OR purpose = c.purpose) AND received_ms > c.created_ms
             ORDER BY received_ms DESC, opted_in ASC, seq DESC LIMIT 1) l
         WHERE NOT l.opted_in",
    )
    .bind(keys)
    .bind(channels)
    .bind(addresses)
    .bind(purposes)
    .bind(created)
    .bind(ALL_PURPOSES)
    .fetch_all(&mut *connection)
    .await?;
    for (key, source) in opted_out {
        skips.insert(
            key,
            Outcome::Skipped {
                reason: SkipReason::OptedOut,
                message: format!("the recipient opted out after the message was queued ({source})"),
            },
        );
    }
    Ok(skips)
}

/// Expired leases whose request was written: resent under the same key
/// where the platform deduplicates, otherwise uncertain (with a decision
/// saying so). Rows another claimer is reconciling are skipped, not waited on.
async fn reconcile_interrupted(
    connection: &mut PgConnection,
    channel: &str,
    now: i64,
) -> Fallible<()> {
    let uncertain: Vec<(String, String)> = sqlx::query_as(
        "WITH expired AS (
             SELECT idempotency_key, deduplicates FROM sends
             WHERE channel = $1 AND state = 'leased' AND lease_expires_ms <= $2 AND written
             FOR UPDATE SKIP LOCKED),
         resent AS (
             UPDATE sends s SET state = 'retrying', due_ms = $2, lease_owner = NULL,
                 lease_expires_ms = NULL, written = FALSE, updated_ms = $2
             FROM expired e WHERE s.idempotency_key = e.idempotency_key AND e.deduplicates
             RETURNING s.idempotency_key),
         uncertain AS (
             UPDATE sends s SET state = 'uncertain', error_class = 'uncertain', error_message = $3,
                 lease_owner = NULL, lease_expires_ms = NULL, updated_ms = $2
             FROM expired e WHERE s.idempotency_key = e.idempotency_key AND NOT e.deduplicates
             RETURNING s.campaign, s.profile_id, s.idempotency_key)
         SELECT campaign, profile_id FROM uncertain ORDER BY idempotency_key",
    )
    .bind(channel)
    .bind(now)
    .bind(INTERRUPTED)
    .fetch_all(&mut *connection)
    .await?;
    let decisions: Vec<DecisionRecord> = uncertain
        .into_iter()
        .map(|(campaign, profile_id)| DecisionRecord {
            campaign,
            profile_id,
            channel: Some(channel.to_owned()),
            outcome: "uncertain".into(),
            reason: Some("interrupted".into()),
            detail: Some(INTERRUPTED.into()),
            decided_ms: now,
        })
        .collect();
    record_decisions(connection, &decisions).await
}

// ---- write-ahead marks ---------------------------------------------------

pub(super) async fn mark_written(
    connection: &mut PgConnection,
    owner: &str,
    keys: &[String],
) -> Fallible<Vec<String>> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let marked: HashSet<String> = sqlx::query_scalar(
        "UPDATE sends SET written = TRUE
         WHERE idempotency_key = ANY($1) AND state = 'leased' AND lease_owner = $2
         RETURNING idempotency_key",
    )
    .bind(keys)
    .bind(owner)
    .fetch_all(&mut *connection)
    .await?
    .into_iter()
    .collect();
    Ok(keys
        .iter()
        .filter(|key| !marked.contains(*key))
        .cloned()
        .collect())
}

// ---- settle --------------------------------------------------------------

/// What a settled (or falling-back) row was, for the decision and fall-back.
pub(super) struct Held {
    pub(super) key: String,
    pub(super) campaign: String,
    pub(super) profile_id: String,
    pub(super) line: Option<i64>,
    pub(super) channel: String,
    pub(super) address: String,
    pub(super) step: i64,
    pub(super) purpose: String,
    pub(super) window: Option<String>,
    pub(super) ttl_seconds: Option<i64>,
    pub(super) deadline_ms: Option<i64>,
    pub(super) fallback: Option<String>,
}

impl Held {
    pub(super) fn from_row(row: &PgRow) -> Fallible<Self> {
        Ok(Held {
            key: row.try_get("idempotency_key")?,
            campaign: row.try_get("campaign")?,
            profile_id: row.try_get("profile_id")?,
            line: row.try_get("line")?,
            channel: row.try_get("channel")?,
            address: row.try_get("address")?,
            step: row.try_get("step")?,
            purpose: row.try_get("purpose")?,
            window: row.try_get("window_opener")?,
            ttl_seconds: row.try_get("ttl_seconds")?,
            deadline_ms: row.try_get("deadline_ms")?,
            fallback: row.try_get("fallback")?,
        })
    }
}

/// Settle held rows: per row the new state, and which columns change.
const SETTLE: &str = "
    UPDATE sends s SET
        state = u.state,
        due_ms = COALESCE(u.due_ms, s.due_ms),
        platform_message_id = CASE WHEN u.sent THEN u.platform_message_id ELSE s.platform_message_id END,
        delivery_state = CASE WHEN u.sent THEN COALESCE(s.delivery_state, 'accepted') ELSE s.delivery_state END,
        error_class = CASE WHEN u.set_error THEN u.class ELSE s.error_class END,
        error_message = CASE WHEN u.set_error THEN u.message ELSE s.error_message END,
        rate_limited = s.rate_limited + u.rate_limited,
        attempts = CASE WHEN u.released THEN GREATEST(s.attempts - 1, 0) ELSE s.attempts END,
        lease_owner = NULL, lease_expires_ms = NULL, written = FALSE,
        settled_by = s.lease_owner, settled_ms = $1, updated_ms = $1
    FROM UNNEST($3::text[], $4::text[], $5::bigint[], $6::bool[], $7::text[], $8::bool[],
        $9::text[], $10::text[], $11::bigint[], $12::bool[])
        AS u(key, state, due_ms, sent, platform_message_id, set_error, class, message,
             rate_limited, released)
    WHERE s.idempotency_key = u.key AND s.state = 'leased' AND s.lease_owner = $2
    RETURNING s.idempotency_key, s.campaign, s.profile_id, s.line, s.channel, s.address, s.step,
        s.purpose, s.window_opener, s.ttl_seconds, s.deadline_ms, s.fallback";

/// The class of the transaction-level advisory locks on message
/// references (`pg_advisory_xact_lock(class, hashtext(reference))`): a
/// two-key lock, apart from sqlx's one-key migration lock.
const MESSAGE_LOCK_CLASS: i32 = 0x5342;

/// Lock message references (idempotency keys and platform ids) for the
/// rest of the transaction, in one order (no deadlocks between lockers).
///
/// A send being settled as sent and a status about it arriving at the same
/// moment must not miss each other: the settlement looks for statuses that
/// came early, and the status looks for the send, and under READ COMMITTED
/// neither sees the other's uncommitted row. So settling takes these locks
/// shared (settlements never wait on each other) and recording statuses
/// takes them exclusive: whichever commits second sees what the first wrote.
pub(super) async fn lock_message_refs(
    connection: &mut PgConnection,
    refs: &[&str],
    exclusive: bool,
) -> Fallible<()> {
    if refs.is_empty() {
        return Ok(());
    }
    let sql = if exclusive {
        "SELECT pg_advisory_xact_lock($1, h) FROM (
             SELECT DISTINCT hashtext(r) AS h FROM UNNEST($2::text[]) AS r ORDER BY h) refs"
    } else {
        "SELECT pg_advisory_xact_lock_shared($1, h) FROM (
             SELECT DISTINCT hashtext(r) AS h FROM UNNEST($2::text[]) AS r ORDER BY h) refs"
    };
    sqlx::query(sql)
        .bind(MESSAGE_LOCK_CLASS)
        .bind(refs)
        .execute(&mut *connection)
        .await?;
    Ok(())
}

/// How one settlement changes its row.
struct Change<'a> {
    state: SendState,
    due_ms: Option<i64>,
    sent: bool,
    platform_message_id: Option<&'a str>,
    set_error: bool,
    class: Option<&'a str>,
    message: Option<&'a str>,
    rate_limited: i64,
    released: bool,
}

fn change(settlement: &Settlement) -> Change<'_> {
    let counted = i64::from(settlement.rate_limited);
    let base = Change {
        state: SendState::Sent,
        due_ms: None,
        sent: false,
        platform_message_id: None,
        set_error: true,
        class: None,
        message: None,
        rate_limited: 0,
        released: false,
    };
    match &settlement.outcome {
        Outcome::Sent {
            platform_message_id,
            ..
        } => Change {
            sent: true,
            platform_message_id: platform_message_id.as_deref(),
            ..base
        },
        Outcome::Failed { class, message } => Change {
            state: SendState::Failed,
            class: Some(class),
            message: Some(message),
            rate_limited: counted,
            ..base
        },
        Outcome::Uncertain { message } => Change {
            state: SendState::Uncertain,
            class: Some("uncertain"),
            message: Some(message),
            ..base
        },
        Outcome::Deferred {
            due_ms,
            reason,
            message,
        } => Change {
            state: SendState::Deferred,
            due_ms: Some(*due_ms),
            class: Some(reason),
            message: Some(message),
            rate_limited: counted,
            ..base
        },
        Outcome::Retrying {
            due_ms,
            class,
            message,
        } => Change {
            state: SendState::Retrying,
            due_ms: Some(*due_ms),
            class: Some(class),
            message: Some(message),
            rate_limited: counted,
            ..base
        },
        Outcome::Released { due_ms } => Change {
            state: SendState::Retrying,
            due_ms: Some(*due_ms),
            set_error: false,
            released: true,
            ..base
        },
        Outcome::Skipped { reason, message } => Change {
            state: SendState::Skipped,
            class: Some(reason.code()),
            message: Some(message),
            ..base
        },
    }
}

/// A consent change to append to the ledger.
pub(super) struct ConsentRow<'a> {
    pub(super) channel: &'a str,
    pub(super) event_id: String,
    pub(super) address: &'a str,
    pub(super) purpose: &'a str,
    pub(super) opted_in: bool,
    pub(super) occurred_ms: i64,
    pub(super) received_ms: i64,
    pub(super) source: &'a str,
}

/// Append consent changes to the ledger, in order; an event already
/// recorded for a purpose is left alone.
pub(super) async fn insert_consent(
    connection: &mut PgConnection,
    rows: &[ConsentRow<'_>],
) -> Fallible<()> {
    if rows.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO consent_ledger (channel, event_id, address, purpose, opted_in, occurred_ms,
             received_ms, source)
         SELECT channel, event_id, address, purpose, opted_in, occurred_ms, received_ms, source
         FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::bool[],
             $6::bigint[], $7::bigint[], $8::text[]) WITH ORDINALITY
             AS c(channel, event_id, address, purpose, opted_in, occurred_ms, received_ms, source, n)
         ORDER BY n
         ON CONFLICT (channel, event_id, purpose) DO NOTHING",
    )
    .bind(rows.iter().map(|r| r.channel).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.event_id.as_str()).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.address).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.purpose).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.opted_in).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.occurred_ms).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.received_ms).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.source).collect::<Vec<_>>())
    .execute(&mut *connection)
    .await?;
    Ok(())
}

pub(super) async fn settle(
    connection: &mut PgConnection,
    owner: &str,
    settlements: &[Settlement],
    now: i64,
) -> Fallible<Vec<Settle>> {
    // A key settled twice in one batch: the second finds it no longer held.
    let mut first: HashSet<&str> = HashSet::new();
    let mut applied: Vec<&Settlement> = settlements
        .iter()
        .filter(|s| first.insert(s.key.as_str()))
        .collect();
    // Rows are locked in key order, as status updates lock them: two
    // transactions touching the same sends wait for each other rather
    // than deadlock.
    applied.sort_by_key(|s| s.key.as_str());
    if applied.is_empty() {
        return Ok(vec![Settle::NotHeld; settlements.len()]);
    }
    let mut sent_refs: Vec<&str> = Vec::new();
    for settlement in &applied {
        if let Outcome::Sent {
            platform_message_id,
            ..
        } = &settlement.outcome
        {
            sent_refs.push(&settlement.key);
            sent_refs.extend(platform_message_id.as_deref());
        }
    }
    lock_message_refs(connection, &sent_refs, false).await?;
    let changes: Vec<Change<'_>> = applied.iter().map(|s| change(s)).collect();
    let rows = sqlx::query(SETTLE)
        .bind(now)
        .bind(owner)
        .bind(applied.iter().map(|s| s.key.as_str()).collect::<Vec<_>>())
        .bind(changes.iter().map(|c| c.state.as_str()).collect::<Vec<_>>())
        .bind(changes.iter().map(|c| c.due_ms).collect::<Vec<_>>())
        .bind(changes.iter().map(|c| c.sent).collect::<Vec<_>>())
        .bind(
            changes
                .iter()
                .map(|c| c.platform_message_id)
                .collect::<Vec<_>>(),
        )
        .bind(changes.iter().map(|c| c.set_error).collect::<Vec<_>>())
        .bind(changes.iter().map(|c| c.class).collect::<Vec<_>>())
        .bind(changes.iter().map(|c| c.message).collect::<Vec<_>>())
        .bind(changes.iter().map(|c| c.rate_limited).collect::<Vec<_>>())
        .bind(changes.iter().map(|c| c.released).collect::<Vec<_>>())
        .fetch_all(&mut *connection)
        .await?;
    let mut held: HashMap<String, Held> = HashMap::with_capacity(rows.len());
    for row in &rows {
        let row = Held::from_row(row)?;
        held.insert(row.key.clone(), row);
    }

    let mut results = Vec::with_capacity(settlements.len());
    let mut early: Vec<(&str, &str, Option<&str>)> = Vec::new();
    let mut windows: BTreeMap<(&str, &str, &str), i64> = BTreeMap::new();
    let mut consent: Vec<ConsentRow<'_>> = Vec::new();
    let mut fell_back: Vec<&str> = Vec::new();
    let mut new_sends: Vec<NewSend> = Vec::new();
    let mut decisions: Vec<DecisionRecord> = Vec::new();
    let mut done: HashSet<&str> = HashSet::new();
    for settlement in settlements {
        let key = settlement.key.as_str();
        let Some(row) = held.get(key).filter(|_| done.insert(key)) else {
            results.push(Settle::NotHeld);
            continue;
        };
        let (outcome, reason, detail): (&str, Option<String>, Option<String>) =
            match &settlement.outcome {
                Outcome::Sent {
                    platform_message_id,
                    duplicate,
                } => {
                    early.push((key, row.channel.as_str(), platform_message_id.as_deref()));
                    if let Some(opener) = &row.window {
                        *windows
                            .entry((row.channel.as_str(), row.address.as_str(), opener.as_str()))
                            .or_default() += 1;
                    }
                    let outcome = if *duplicate { "already_sent" } else { "sent" };
                    (outcome, None, platform_message_id.clone())
                }
                Outcome::Failed { class, message } => {
                    ("failed", Some(class.clone()), Some(message.clone()))
                }
                Outcome::Uncertain { message } => ("uncertain", None, Some(message.clone())),
                Outcome::Deferred {
                    reason, message, ..
                } => ("deferred", Some(reason.clone()), Some(message.clone())),
                Outcome::Retrying { .. } | Outcome::Released { .. } => {
                    results.push(Settle::Applied);
                    continue;
                }
                Outcome::Skipped { reason, message } => (
                    "skipped",
                    Some(reason.code().to_owned()),
                    Some(message.clone()),
                ),
            };
        if let Some(change) = &settlement.consent {
            consent.push(ConsentRow {
                channel: row.channel.as_str(),
                event_id: format!("send:{key}"),
                address: change.address.as_str(),
                purpose: change.purpose.map_or(ALL_PURPOSES, Purpose::as_str),
                opted_in: change.opted_in,
                occurred_ms: now,
                received_ms: now,
                source: change.source.as_str(),
            });
        }
        if settlement.fall_back
            && let Some((send, decision)) = fall_back_plan(row, now)?
        {
            fell_back.push(key);
            new_sends.push(send);
            decisions.push(decision);
            results.push(Settle::FellBack);
            continue;
        }
        decisions.push(DecisionRecord {
            campaign: row.campaign.clone(),
            profile_id: row.profile_id.clone(),
            channel: Some(row.channel.clone()),
            outcome: outcome.to_owned(),
            reason,
            detail,
            decided_ms: now,
        });
        results.push(Settle::Applied);
    }
    apply_early_statuses(connection, &early).await?;
    count_free_form(connection, &windows).await?;
    insert_consent(connection, &consent).await?;
    apply_fall_backs(connection, &fell_back, &new_sends, now).await?;
    record_decisions(connection, &decisions).await?;
    Ok(results)
}

/// Count sends against the windows they used: `(channel, address, opener)` → how many.
async fn count_free_form(
    connection: &mut PgConnection,
    windows: &BTreeMap<(&str, &str, &str), i64>,
) -> Fallible<()> {
    if windows.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "UPDATE conversation_windows w SET free_form_sent = w.free_form_sent + u.n
         FROM UNNEST($1::text[], $2::text[], $3::text[], $4::bigint[]) AS u(channel, address, opener, n)
         WHERE w.channel = u.channel AND w.address = u.address AND w.opener = u.opener",
    )
    .bind(windows.keys().map(|k| k.0).collect::<Vec<_>>())
    .bind(windows.keys().map(|k| k.1).collect::<Vec<_>>())
    .bind(windows.keys().map(|k| k.2).collect::<Vec<_>>())
    .bind(windows.values().copied().collect::<Vec<_>>())
    .execute(&mut *connection)
    .await?;
    Ok(())
}

/// Statuses that arrived before the sends were recorded as sent: each
/// send `(key, channel, platform id)` takes the furthest one.
async fn apply_early_statuses(
    connection: &mut PgConnection,
    sent: &[(&str, &str, Option<&str>)],
) -> Fallible<()> {
    if sent.is_empty() {
        return Ok(());
    }
    let early: Vec<(String, String)> = sqlx::query_as(
        "SELECT r.key, d.state
         FROM UNNEST($1::text[], $2::text[], $3::text[]) AS r(key, channel, platform_message_id)
         JOIN delivery_events d ON d.channel = r.channel
           AND d.message_ref IN (r.key, r.platform_message_id)",
    )
    .bind(sent.iter().map(|s| s.0).collect::<Vec<_>>())
    .bind(sent.iter().map(|s| s.1).collect::<Vec<_>>())
    .bind(sent.iter().map(|s| s.2).collect::<Vec<_>>())
    .fetch_all(&mut *connection)
    .await?;
    let mut best: BTreeMap<String, DeliveryState> = BTreeMap::new();
    for (key, state) in early {
        let Some(state) = DeliveryState::from_name(&state) else {
            continue;
        };
        let entry = best.entry(key).or_insert(state);
        if state.rank() > entry.rank() {
            *entry = state;
        }
    }
    if best.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "UPDATE sends s SET delivery_state = u.state
         FROM UNNEST($1::text[], $2::text[]) AS u(key, state) WHERE s.idempotency_key = u.key",
    )
    .bind(best.keys().map(String::as_str).collect::<Vec<_>>())
    .bind(best.values().map(|s| s.as_str()).collect::<Vec<_>>())
    .execute(&mut *connection)
    .await?;
    Ok(())
}

/// The next channel of the route for a send's recipient, if the route
/// has one: the send to enqueue there, and the decision that says so.
pub(super) fn fall_back_plan(held: &Held, now: i64) -> Fallible<Option<(NewSend, DecisionRecord)>> {
    let Some(fallback) = &held.fallback else {
        return Ok(None);
    };
    let rest: Vec<Alternative> = serde_json::from_str(fallback)?;
    let from = Unreachable {
        key: &held.key,
        campaign: &held.campaign,
        profile_id: &held.profile_id,
        channel: &held.channel,
        purpose: parse_purpose(&held.purpose)?,
        ttl_seconds: held
            .ttl_seconds
            .map(|t| to_u32(t, "ttl_seconds"))
            .transpose()?,
        line: held.line.map(|l| to_u64(l, "line")).transpose()?,
        step: to_u32(held.step, "step")?,
        deadline_ms: held.deadline_ms,
    };
    Ok(next_in_route(&from, rest, now))
}

/// Mark sends as fallen back and enqueue what carries on for them.
async fn apply_fall_backs(
    connection: &mut PgConnection,
    keys: &[&str],
    sends: &[NewSend],
    now: i64,
) -> Fallible<()> {
    if keys.is_empty() {
        return Ok(());
    }
    sqlx::query("UPDATE sends SET fell_back = TRUE WHERE idempotency_key = ANY($1)")
        .bind(keys)
        .execute(&mut *connection)
        .await?;
    let rows: Vec<(&NewSend, i64)> = sends.iter().map(|send| (send, now)).collect();
    insert_sends(connection, &rows).await?;
    Ok(())
}

/// Enqueue the next channel of the route for each send `(key, now)` whose
/// recipient the platform could not reach in time (an expired message),
/// where the route has one.
pub(super) async fn fall_back_from_keys(
    connection: &mut PgConnection,
    keys: &[(String, i64)],
) -> Fallible<()> {
    if keys.is_empty() {
        return Ok(());
    }
    let rows = sqlx::query(
        "SELECT idempotency_key, campaign, profile_id, line, channel, address, step, purpose,
                window_opener, ttl_seconds, deadline_ms, fallback
         FROM sends WHERE idempotency_key = ANY($1)",
    )
    .bind(keys.iter().map(|(key, _)| key.as_str()).collect::<Vec<_>>())
    .fetch_all(&mut *connection)
    .await?;
    let mut held: HashMap<String, Held> = HashMap::with_capacity(rows.len());
    for row in &rows {
        let row = Held::from_row(row)?;
        held.insert(row.key.clone(), row);
    }
    let mut marked = Vec::new();
    let mut sends = Vec::new();
    let mut decisions = Vec::new();
    for (key, now) in keys {
        let Some(row) = held.get(key) else {
            continue;
        };
        if let Some((send, decision)) = fall_back_plan(row, *now)? {
            marked.push(key.as_str());
            sends.push((send, *now));
            decisions.push(decision);
        }
    }
    if marked.is_empty() {
        return Ok(());
    }
    sqlx::query("UPDATE sends SET fell_back = TRUE WHERE idempotency_key = ANY($1)")
        .bind(marked)
        .execute(&mut *connection)
        .await?;
    let rows: Vec<(&NewSend, i64)> = sends.iter().map(|(send, now)| (send, *now)).collect();
    insert_sends(connection, &rows).await?;
    record_decisions(connection, &decisions).await
}

// ---- scheduling ----------------------------------------------------------

pub(super) async fn next_due(
    connection: &mut PgConnection,
    channel: &str,
) -> Fallible<Option<i64>> {
    Ok(sqlx::query_scalar(
        "SELECT MIN(t) FROM (
            SELECT MIN(due_ms) AS t FROM sends
            WHERE channel = $1 AND state IN ('pending', 'deferred', 'retrying')
            UNION ALL
            SELECT MIN(lease_expires_ms) AS t FROM sends WHERE channel = $1 AND state = 'leased') due",
    )
    .bind(channel)
    .fetch_one(&mut *connection)
    .await?)
}

pub(super) async fn recent_recipients(
    connection: &mut PgConnection,
    channel: &str,
    since: i64,
) -> Fallible<Vec<(String, i64)>> {
    Ok(sqlx::query_as(
        "SELECT address, MAX(settled_ms) FROM sends
         WHERE channel = $1 AND state = 'sent' AND settled_ms > $2 AND content_kind = 'template'
         GROUP BY address",
    )
    .bind(channel)
    .bind(since)
    .fetch_all(&mut *connection)
    .await?)
}
