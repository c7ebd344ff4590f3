//! Campaigns on SQLite: records, counts, cancelling and retrying, and the
//! listings the admin API serves.

use rusqlite::{Connection, OptionalExtension, params};

use super::outbox::{parse_state, record_decision};
use super::thread::JobResult;
use crate::records::{
    CampaignCounts, CampaignRecord, DecisionRecord, SendQuery, SendRecord, SendState,
};

pub(crate) fn put_campaign(connection: &Connection, campaign: &CampaignRecord) -> JobResult<()> {
    connection
        .prepare_cached(
            "INSERT INTO campaigns (name, definition, audience, state, created_ms) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (name) DO UPDATE SET definition = excluded.definition, audience = excluded.audience,
               state = excluded.state",
        )?
        .execute(params![
            campaign.name,
            campaign.definition,
            campaign.audience,
            campaign.state,
            campaign.created_ms
        ])?;
    Ok(())
}

fn campaign_record(row: &rusqlite::Row<'_>) -> rusqlite::Result<CampaignRecord> {
    Ok(CampaignRecord {
        name: row.get(0)?,
        definition: row.get(1)?,
        audience: row.get(2)?,
        state: row.get(3)?,
        created_ms: row.get(4)?,
    })
}

pub(crate) fn campaign(connection: &Connection, name: &str) -> JobResult<Option<CampaignRecord>> {
    Ok(connection
        .prepare_cached(
            "SELECT name, definition, audience, state, created_ms FROM campaigns WHERE name = ?1",
        )?
        .query_row([name], campaign_record)
        .optional()?)
}

pub(crate) fn campaigns(connection: &Connection) -> JobResult<Vec<CampaignRecord>> {
    Ok(connection
        .prepare_cached(
            "SELECT name, definition, audience, state, created_ms FROM campaigns
             ORDER BY created_ms, name",
        )?
        .query_map([], campaign_record)?
        .collect::<Result<_, _>>()?)
}

/// Sends of a campaign in the states a run waits on
/// ([`SendState::UNSETTLED`]), counted through the `(campaign, state)`
/// index without reading the settled ones.
pub(crate) fn campaign_unsettled(connection: &Connection, name: &str) -> JobResult<u64> {
    // The states are our own constant names; a literal list keeps the plan
    // the index's equality lookups.
    let states: Vec<String> = SendState::UNSETTLED
        .iter()
        .map(|state| format!("'{}'", state.as_str()))
        .collect();
    Ok(connection
        .prepare_cached(&format!(
            "SELECT COUNT(*) FROM sends WHERE campaign = ?1 AND state IN ({})",
            states.join(", ")
        ))?
        .query_row([name], |row| row.get(0))?)
}

/// A campaign's sends counted by state, reason and delivery state
/// (`sends_by_campaign` serves it).
pub(super) const CAMPAIGN_COUNTS: &str =
    "SELECT state, error_class, delivery_state, fell_back, COUNT(*)
    FROM sends WHERE campaign = ?1
    GROUP BY state, error_class, delivery_state, fell_back";

pub(crate) fn campaign_counts(connection: &Connection, name: &str) -> JobResult<CampaignCounts> {
    let mut counts = CampaignCounts::default();
    let rows = connection
        .prepare_cached(CAMPAIGN_COUNTS)?
        .query_map([name], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, Option<String>>(1)?,
                row.get::<_, Option<String>>(2)?,
                row.get::<_, bool>(3)?,
                row.get::<_, u64>(4)?,
            ))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    for (state, class, delivery, fell_back, count) in rows {
        *counts.by_state.entry(state.clone()).or_default() += count;
        if fell_back {
            counts.fell_back += count;
        }
        if let Some(class) = class.filter(|_| state != "sent") {
            *counts
                .by_reason
                .entry(format!("{state}:{class}"))
                .or_default() += count;
        }
        if let Some(delivery) = delivery {
            *counts.by_delivery.entry(delivery).or_default() += count;
        }
    }
    let decisions = connection
        .prepare_cached(
            "SELECT outcome, reason, COUNT(*) FROM decisions WHERE campaign = ?1 GROUP BY outcome, reason",
        )?
        .query_map([name], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, Option<String>>(1)?,
                row.get::<_, u64>(2)?,
            ))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    for (outcome, reason, count) in decisions {
        let label = match reason {
            Some(reason) => format!("{outcome}:{reason}"),
            None => outcome,
        };
        *counts.decisions.entry(label).or_default() += count;
    }
    Ok(counts)
}

pub(crate) fn cancel_campaign(connection: &Connection, name: &str, now: i64) -> JobResult<u64> {
    let cancelled = connection
        .prepare_cached(
            "UPDATE sends SET state = 'cancelled', error_class = 'cancelled',
                error_message = 'the campaign was cancelled before this message went out', updated_ms = ?2
             WHERE campaign = ?1 AND state IN ('pending', 'deferred', 'retrying')",
        )?
        .execute(params![name, now])?;
    connection
        .prepare_cached(
            "UPDATE decisions SET outcome = 'cancelled', reason = 'cancelled', decided_ms = ?2
             WHERE campaign = ?1 AND (campaign, profile_id) IN
               (SELECT campaign, profile_id FROM sends WHERE campaign = ?1 AND state = 'cancelled')",
        )?
        .execute(params![name, now])?;
    connection
        .prepare_cached("UPDATE campaigns SET state = 'cancelled' WHERE name = ?1")?
        .execute([name])?;
    Ok(cancelled as u64)
}

pub(crate) fn retry_send(
    connection: &Connection,
    key: &str,
    now: i64,
) -> JobResult<Option<SendState>> {
    let row: Option<(String, String, String, String)> = connection
        .prepare_cached(
            "SELECT state, campaign, profile_id, channel FROM sends WHERE idempotency_key = ?1",
        )?
        .query_row([key], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
        })
        .optional()?;
    let Some((state, campaign, profile_id, channel)) = row else {
        return Ok(None);
    };
    let state = parse_state(&state)?;
    if matches!(
        state,
        SendState::Failed | SendState::Uncertain | SendState::Skipped | SendState::Cancelled
    ) {
        requeue(connection, key, now)?;
        record_decision(
            connection,
            &DecisionRecord {
                campaign,
                profile_id,
                channel: Some(channel),
                outcome: "enqueued".into(),
                reason: Some("operator_retry".into()),
                detail: Some(format!(
                    "retried by an operator after it was {}",
                    state.as_str()
                )),
                decided_ms: now,
            },
        )?;
    }
    Ok(Some(state))
}

fn requeue(connection: &Connection, key: &str, now: i64) -> JobResult<()> {
    connection
        .prepare_cached(
            "UPDATE sends SET state = 'pending', due_ms = ?2, error_class = NULL, error_message = NULL,
                rate_limited = 0, updated_ms = ?2 WHERE idempotency_key = ?1",
        )?
        .execute(params![key, now])?;
    Ok(())
}

pub(crate) fn retry_class(
    connection: &Connection,
    class: &str,
    campaign: Option<&str>,
    now: i64,
) -> JobResult<u64> {
    let keys: Vec<String> = connection
        .prepare_cached(
            "SELECT idempotency_key FROM sends
             WHERE state IN ('failed', 'uncertain') AND error_class = ?1 AND (?2 IS NULL OR campaign = ?2)",
        )?
        .query_map(params![class, campaign], |row| row.get(0))?
        .collect::<Result<_, _>>()?;
    for key in &keys {
        retry_send(connection, key, now)?;
    }
    Ok(keys.len() as u64)
}

const SEND_COLUMNS: &str = "SELECT idempotency_key, campaign, profile_id, line, channel, address, step, state, attempts, content_kind, due_ms, platform_message_id, delivery_state, error_class, error_message, updated_ms, settled_by, settled_ms, fell_back FROM sends";

fn send_record(row: &rusqlite::Row<'_>) -> rusqlite::Result<SendRecord> {
    let state: String = row.get(7)?;
    let due: i64 = row.get(10)?;
    let open = matches!(state.as_str(), "pending" | "deferred" | "retrying");
    Ok(SendRecord {
        idempotency_key: row.get(0)?,
        campaign: row.get(1)?,
        profile_id: row.get(2)?,
        line: row.get::<_, Option<i64>>(3)?.map(|l| l as u64),
        channel: row.get(4)?,
        address: row.get(5)?,
        step: row.get(6)?,
        state,
        attempts: row.get(8)?,
        content_kind: row.get(9)?,
        due_ms: open.then_some(due),
        platform_message_id: row.get(11)?,
        delivery_state: row.get(12)?,
        error_class: row.get(13)?,
        error_message: row.get(14)?,
        updated_ms: row.get(15)?,
        settled_by: row.get(16)?,
        settled_ms: row.get(17)?,
        fell_back: row.get(18)?,
    })
}

pub(crate) fn sends(connection: &Connection, query: &SendQuery) -> JobResult<Vec<SendRecord>> {
    let order = if query.limit.is_some() {
        "ORDER BY updated_ms DESC, idempotency_key"
    } else {
        "ORDER BY created_ms, idempotency_key"
    };
    let sql = format!(
        "{SEND_COLUMNS} WHERE (?1 IS NULL OR campaign = ?1) AND (?2 IS NULL OR state = ?2)
           AND (?3 IS NULL OR error_class = ?3)
           AND (?5 IS NULL OR (settled_ms >= ?6 AND settled_by IS NOT ?5)) {order} LIMIT ?4"
    );
    let (others, since) = query
        .settled_by_others_since
        .clone()
        .map_or((None, 0), |(owner, since)| (Some(owner), since));
    let rows = connection
        .prepare_cached(&sql)?
        .query_map(
            params![
                query.campaign,
                query.state.map(SendState::as_str),
                query.class,
                query.limit.map_or(-1, i64::from),
                others,
                since
            ],
            send_record,
        )?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

pub(crate) fn send(connection: &Connection, key: &str) -> JobResult<Option<SendRecord>> {
    Ok(connection
        .prepare_cached(&format!("{SEND_COLUMNS} WHERE idempotency_key = ?1"))?
        .query_row([key], send_record)
        .optional()?)
}

pub(crate) fn decisions_for(
    connection: &Connection,
    profile_id: &str,
) -> JobResult<Vec<DecisionRecord>> {
    let rows = connection
        .prepare_cached(
            "SELECT campaign, profile_id, channel, outcome, reason, detail, decided_ms FROM decisions
             WHERE profile_id = ?1 ORDER BY decided_ms",
        )?
        .query_map([profile_id], |row| {
            Ok(DecisionRecord {
                campaign: row.get(0)?,
                profile_id: row.get(1)?,
                channel: row.get(2)?,
                outcome: row.get(3)?,
                reason: row.get(4)?,
                detail: row.get(5)?,
                decided_ms: row.get(6)?,
            })
        })?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}
