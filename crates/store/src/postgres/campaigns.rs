//! Campaigns on PostgreSQL: records, counts, cancelling and retrying, and
//! the listings the admin API serves.

use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Row};

use super::Fallible;
use super::outbox::{parse_state, record_decisions, to_u32, to_u64};
use crate::records::{
    CampaignCounts, CampaignRecord, DecisionRecord, SendQuery, SendRecord, SendState,
};

pub(super) async fn put_campaign(
    connection: &mut PgConnection,
    campaign: &CampaignRecord,
) -> Fallible<()> {
    sqlx::query(
        "INSERT INTO campaigns (name, definition, audience, state, created_ms) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (name) DO UPDATE SET definition = excluded.definition, audience = excluded.audience,
           state = excluded.state",
    )
    .bind(&campaign.name)
    .bind(&campaign.definition)
    .bind(&campaign.audience)
    .bind(&campaign.state)
    .bind(campaign.created_ms)
    .execute(&mut *connection)
    .await?;
    Ok(())
}

type CampaignRow = (String, String, String, String, i64);

fn campaign_record((name, definition, audience, state, created_ms): CampaignRow) -> CampaignRecord {
    CampaignRecord {
        name,
        definition,
        audience,
        state,
        created_ms,
    }
}

pub(super) async fn campaign(
    connection: &mut PgConnection,
    name: &str,
) -> Fallible<Option<CampaignRecord>> {
    let row: Option<CampaignRow> = sqlx::query_as(
        "SELECT name, definition, audience, state, created_ms FROM campaigns WHERE name = $1",
    )
    .bind(name)
    .fetch_optional(&mut *connection)
    .await?;
    Ok(row.map(campaign_record))
}

pub(super) async fn campaigns(connection: &mut PgConnection) -> Fallible<Vec<CampaignRecord>> {
    let rows: Vec<CampaignRow> = sqlx::query_as(
        "SELECT name, definition, audience, state, created_ms FROM campaigns
         ORDER BY created_ms, name",
    )
    .fetch_all(&mut *connection)
    .await?;
    Ok(rows.into_iter().map(campaign_record).collect())
}

/// Sends of a campaign in the states a run waits on
/// ([`SendState::UNSETTLED`]), counted through the `(campaign, state)` index.
pub(super) async fn campaign_unsettled(connection: &mut PgConnection, name: &str) -> Fallible<u64> {
    let states: Vec<&str> = SendState::UNSETTLED
        .iter()
        .map(|state| state.as_str())
        .collect();
    let count: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM sends WHERE campaign = $1 AND state = ANY($2)")
            .bind(name)
            .bind(states)
            .fetch_one(&mut *connection)
            .await?;
    to_u64(count, "count")
}

/// One group of a campaign's sends: state, error class, delivery state,
/// whether they fell back, and how many.
type CountRow = (String, Option<String>, Option<String>, bool, i64);

pub(super) async fn campaign_counts(
    connection: &mut PgConnection,
    name: &str,
) -> Fallible<CampaignCounts> {
    let mut counts = CampaignCounts::default();
    let rows: Vec<CountRow> = sqlx::query_as(
        "SELECT state, error_class, delivery_state, fell_back, COUNT(*) FROM sends WHERE campaign = $1
         GROUP BY state, error_class, delivery_state, fell_back",
    )
    .bind(name)
    .fetch_all(&mut *connection)
    .await?;
    for (state, class, delivery, fell_back, count) in rows {
        let count = to_u64(count, "count")?;
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
    let decisions: Vec<(String, Option<String>, i64)> = sqlx::query_as(
        "SELECT outcome, reason, COUNT(*) FROM decisions WHERE campaign = $1 GROUP BY outcome, reason",
    )
    .bind(name)
    .fetch_all(&mut *connection)
    .await?;
    for (outcome, reason, count) in decisions {
        let label = match reason {
            Some(reason) => format!("{outcome}:{reason}"),
            None => outcome,
        };
        *counts.decisions.entry(label).or_default() += to_u64(count, "count")?;
    }
    Ok(counts)
}

pub(super) async fn cancel_campaign(
    connection: &mut PgConnection,
    name: &str,
    now: i64,
) -> Fallible<u64> {
    let cancelled = sqlx::query(
        "UPDATE sends SET state = 'cancelled', error_class = 'cancelled',
            error_message = 'the campaign was cancelled before this message went out', updated_ms = $2
         WHERE campaign = $1 AND state IN ('pending', 'deferred', 'retrying')",
    )
    .bind(name)
    .bind(now)
    .execute(&mut *connection)
    .await?
    .rows_affected();
    sqlx::query(
        "UPDATE decisions SET outcome = 'cancelled', reason = 'cancelled', decided_ms = $2
         WHERE campaign = $1 AND profile_id IN
           (SELECT profile_id FROM sends WHERE campaign = $1 AND state = 'cancelled')",
    )
    .bind(name)
    .bind(now)
    .execute(&mut *connection)
    .await?;
    sqlx::query("UPDATE campaigns SET state = 'cancelled' WHERE name = $1")
        .bind(name)
        .execute(&mut *connection)
        .await?;
    Ok(cancelled)
}

/// The states an operator may put back in the outbox.
const RETRYABLE: [SendState; 4] = [
    SendState::Failed,
    SendState::Uncertain,
    SendState::Skipped,
    SendState::Cancelled,
];

fn operator_retry(
    campaign: String,
    profile_id: String,
    channel: String,
    before: SendState,
    now: i64,
) -> DecisionRecord {
    DecisionRecord {
        campaign,
        profile_id,
        channel: Some(channel),
        outcome: "enqueued".into(),
        reason: Some("operator_retry".into()),
        detail: Some(format!(
            "retried by an operator after it was {}",
            before.as_str()
        )),
        decided_ms: now,
    }
}

pub(super) async fn retry_send(
    connection: &mut PgConnection,
    key: &str,
    now: i64,
) -> Fallible<Option<SendState>> {
    let row: Option<(String, String, String, String)> = sqlx::query_as(
        "SELECT state, campaign, profile_id, channel FROM sends WHERE idempotency_key = $1 FOR UPDATE",
    )
    .bind(key)
    .fetch_optional(&mut *connection)
    .await?;
    let Some((state, campaign, profile_id, channel)) = row else {
        return Ok(None);
    };
    let state = parse_state(&state)?;
    if RETRYABLE.contains(&state) {
        sqlx::query(
            "UPDATE sends SET state = 'pending', due_ms = $2, error_class = NULL, error_message = NULL,
                rate_limited = 0, updated_ms = $2 WHERE idempotency_key = $1",
        )
        .bind(key)
        .bind(now)
        .execute(&mut *connection)
        .await?;
        record_decisions(
            connection,
            &[operator_retry(campaign, profile_id, channel, state, now)],
        )
        .await?;
    }
    Ok(Some(state))
}

pub(super) async fn retry_class(
    connection: &mut PgConnection,
    class: &str,
    campaign: Option<&str>,
    now: i64,
) -> Fallible<u64> {
    let rows: Vec<(String, String, String, String, i64, String)> = sqlx::query_as(
        "WITH picked AS (
             SELECT idempotency_key, state FROM sends
             WHERE state IN ('failed', 'uncertain') AND error_class = $1
               AND ($2::text IS NULL OR campaign = $2)
             ORDER BY idempotency_key
             FOR UPDATE)
         UPDATE sends s SET state = 'pending', due_ms = $3, error_class = NULL, error_message = NULL,
             rate_limited = 0, updated_ms = $3
         FROM picked WHERE s.idempotency_key = picked.idempotency_key
         RETURNING picked.state, s.campaign, s.profile_id, s.channel, s.created_ms, s.idempotency_key",
    )
    .bind(class)
    .bind(campaign)
    .bind(now)
    .fetch_all(&mut *connection)
    .await?;
    let count = rows.len() as u64;
    let mut rows = rows;
    // Decisions in the order the sends were enqueued: a profile's latest wins.
    rows.sort_by(|a, b| (a.4, &a.5).cmp(&(b.4, &b.5)));
    let decisions = rows
        .into_iter()
        .map(|(state, campaign, profile_id, channel, _, _)| {
            Ok(operator_retry(
                campaign,
                profile_id,
                channel,
                parse_state(&state)?,
                now,
            ))
        })
        .collect::<Fallible<Vec<_>>>()?;
    record_decisions(connection, &decisions).await?;
    Ok(count)
}

fn send_record(row: &PgRow) -> Fallible<SendRecord> {
    let state: String = row.try_get("state")?;
    let due: i64 = row.try_get("due_ms")?;
    let open = matches!(state.as_str(), "pending" | "deferred" | "retrying");
    let line: Option<i64> = row.try_get("line")?;
    Ok(SendRecord {
        idempotency_key: row.try_get("idempotency_key")?,
        campaign: row.try_get("campaign")?,
        profile_id: row.try_get("profile_id")?,
        line: line.map(|l| to_u64(l, "line")).transpose()?,
        channel: row.try_get("channel")?,
        address: row.try_get("address")?,
        step: to_u32(row.try_get("step")?, "step")?,
        state,
        attempts: to_u32(row.try_get("attempts")?, "attempts")?,
        content_kind: row.try_get("content_kind")?,
        due_ms: open.then_some(due),
        platform_message_id: row.try_get("platform_message_id")?,
        delivery_state: row.try_get("delivery_state")?,
        error_class: row.try_get("error_class")?,
        error_message: row.try_get("error_message")?,
        updated_ms: row.try_get("updated_ms")?,
        settled_by: row.try_get("settled_by")?,
        settled_ms: row.try_get("settled_ms")?,
        fell_back: row.try_get("fell_back")?,
    })
}

/// The listing's filters; `$4` is the limit (NULL: none).
macro_rules! send_listing {
    ($order:literal) => {
        concat!(
            "SELECT idempotency_key, campaign, profile_id, line, channel, address, step, state, attempts,
                content_kind, due_ms, platform_message_id, delivery_state, error_class, error_message,
                updated_ms, settled_by, settled_ms, fell_back
             FROM sends WHERE ($1::text IS NULL OR campaign = $1) AND ($2::text IS NULL OR state = $2)
               AND ($3::text IS NULL OR error_class = $3)
               AND ($5::text IS NULL OR (settled_ms >= $6 AND settled_by IS DISTINCT FROM $5))
             ORDER BY ",
            $order,
            " LIMIT $4"
        )
    };
}

pub(super) async fn sends(
    connection: &mut PgConnection,
    query: &SendQuery,
) -> Fallible<Vec<SendRecord>> {
    let sql = if query.limit.is_some() {
        send_listing!("updated_ms DESC, idempotency_key")
    } else {
        send_listing!("created_ms, idempotency_key")
    };
    let (others, since) = query
        .settled_by_others_since
        .clone()
        .map_or((None, 0), |(owner, since)| (Some(owner), since));
    let rows = sqlx::query(sql)
        .bind(query.campaign.as_deref())
        .bind(query.state.map(SendState::as_str))
        .bind(query.class.as_deref())
        .bind(query.limit.map(i64::from))
        .bind(others)
        .bind(since)
        .fetch_all(&mut *connection)
        .await?;
    rows.iter().map(send_record).collect()
}

pub(super) async fn send(connection: &mut PgConnection, key: &str) -> Fallible<Option<SendRecord>> {
    let row = sqlx::query(concat!(
        "SELECT idempotency_key, campaign, profile_id, line, channel, address, step, state, attempts,
            content_kind, due_ms, platform_message_id, delivery_state, error_class, error_message,
            updated_ms, settled_by, settled_ms, fell_back",
        " FROM sends WHERE idempotency_key = $1"
    ))
    .bind(key)
    .fetch_optional(&mut *connection)
    .await?;
    row.as_ref().map(send_record).transpose()
}

pub(super) async fn decisions_for(
    connection: &mut PgConnection,
    profile_id: &str,
) -> Fallible<Vec<DecisionRecord>> {
    type Row = (
        String,
        String,
        Option<String>,
        String,
        Option<String>,
        Option<String>,
        i64,
    );
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT campaign, profile_id, channel, outcome, reason, detail, decided_ms FROM decisions
         WHERE profile_id = $1 ORDER BY decided_ms",
    )
    .bind(profile_id)
    .fetch_all(&mut *connection)
    .await?;
    Ok(rows
        .into_iter()
        .map(
            |(campaign, profile_id, channel, outcome, reason, detail, decided_ms)| DecisionRecord {
                campaign,
                profile_id,
                channel,
                outcome,
                reason,
                detail,
                decided_ms,
            },
        )
        .collect())
}
