//! Profile events, trigger cancellations, frequency-cap counts and the
//! engines' heartbeats, on PostgreSQL.

use std::collections::{BTreeMap, HashMap, HashSet};

use sqlx::PgConnection;

use super::Fallible;
use super::outbox::to_u32;
use crate::records::ProfileEvent;

pub(super) async fn record_profile_events(
    connection: &mut PgConnection,
    events: &[ProfileEvent],
) -> Fallible<Vec<bool>> {
    if events.is_empty() {
        return Ok(Vec::new());
    }
    // The first of several events with one id is the one kept.
    let mut first: HashSet<&str> = HashSet::new();
    let mut rows: Vec<&ProfileEvent> = Vec::with_capacity(events.len());
    let mut properties = Vec::with_capacity(events.len());
    for event in events {
        if first.insert(event.event_id.as_str()) {
            rows.push(event);
            properties.push(serde_json::to_string(&event.properties)?);
        }
    }
    let inserted: HashSet<String> = sqlx::query_scalar(
        "INSERT INTO profile_events (event_id, profile_id, name, occurred_ms, received_ms, properties)
         SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::bigint[], $5::bigint[], $6::text[])
         ON CONFLICT (event_id) DO NOTHING
         RETURNING event_id",
    )
    .bind(rows.iter().map(|e| e.event_id.as_str()).collect::<Vec<_>>())
    .bind(rows.iter().map(|e| e.profile_id.as_str()).collect::<Vec<_>>())
    .bind(rows.iter().map(|e| e.name.as_str()).collect::<Vec<_>>())
    .bind(rows.iter().map(|e| e.occurred_ms).collect::<Vec<_>>())
    .bind(rows.iter().map(|e| e.received_ms).collect::<Vec<_>>())
    .bind(properties)
    .fetch_all(&mut *connection)
    .await?
    .into_iter()
    .collect();
    let mut seen: HashSet<&str> = HashSet::new();
    Ok(events
        .iter()
        .map(|event| inserted.contains(&event.event_id) && seen.insert(event.event_id.as_str()))
        .collect())
}

pub(super) async fn profile_events(
    connection: &mut PgConnection,
    profile_id: &str,
    names: &[String],
    from_ms: i64,
    to_ms: i64,
) -> Fallible<Vec<ProfileEvent>> {
    let rows: Vec<(String, String, String, i64, i64, String)> = sqlx::query_as(
        "SELECT event_id, profile_id, name, occurred_ms, received_ms, properties FROM profile_events
         WHERE profile_id = $1 AND name = ANY($2) AND occurred_ms BETWEEN $3 AND $4
         ORDER BY occurred_ms, event_id",
    )
    .bind(profile_id)
    .bind(names)
    .bind(from_ms)
    .bind(to_ms)
    .fetch_all(&mut *connection)
    .await?;
    rows.into_iter()
        .map(
            |(event_id, profile_id, name, occurred_ms, received_ms, properties)| {
                let properties: BTreeMap<String, String> = serde_json::from_str(&properties)?;
                Ok(ProfileEvent {
                    event_id,
                    profile_id,
                    name,
                    occurred_ms,
                    received_ms,
                    properties,
                })
            },
        )
        .collect()
}

pub(super) async fn cancel_profile_sends(
    connection: &mut PgConnection,
    campaign: &str,
    profile_id: &str,
    deadline_at_most_ms: i64,
    reason: &str,
    now: i64,
) -> Fallible<Vec<String>> {
    let keys: Vec<String> = sqlx::query_scalar(
        "UPDATE sends SET state = 'cancelled', error_class = 'cancelled', error_message = $4,
            updated_ms = $5
         WHERE profile_id = $2 AND campaign = $1 AND state IN ('pending', 'deferred', 'retrying')
           AND COALESCE(deadline_ms, 0) <= $3
         RETURNING idempotency_key",
    )
    .bind(campaign)
    .bind(profile_id)
    .bind(deadline_at_most_ms)
    .bind(reason)
    .bind(now)
    .fetch_all(&mut *connection)
    .await?;
    if !keys.is_empty() {
        sqlx::query(
            "UPDATE decisions SET outcome = 'cancelled', reason = 'cancelled', detail = $3,
               decided_ms = $4
             WHERE campaign = $1 AND profile_id = $2",
        )
        .bind(campaign)
        .bind(profile_id)
        .bind(reason)
        .bind(now)
        .execute(&mut *connection)
        .await?;
    }
    Ok(keys)
}

pub(super) async fn recent_sends_to(
    connection: &mut PgConnection,
    channel: &str,
    profile_ids: &[String],
    since_ms: i64,
) -> Fallible<HashMap<String, Vec<i64>>> {
    let mut recent: HashMap<String, Vec<i64>> = HashMap::new();
    if profile_ids.is_empty() {
        return Ok(recent);
    }
    let rows: Vec<(String, Option<i64>)> = sqlx::query_as(
        "SELECT profile_id, CASE WHEN state = 'sent' THEN settled_ms ELSE due_ms END FROM sends
         WHERE profile_id = ANY($2) AND channel = $1
           AND ((state = 'sent' AND settled_ms >= $3)
                OR state IN ('pending', 'leased', 'deferred', 'retrying'))",
    )
    .bind(channel)
    .bind(profile_ids)
    .bind(since_ms)
    .fetch_all(&mut *connection)
    .await?;
    for (profile, at) in rows {
        if let Some(at) = at {
            recent.entry(profile).or_default().push(at);
        }
    }
    Ok(recent)
}

pub(super) async fn heartbeat(
    connection: &mut PgConnection,
    node: &str,
    now: i64,
    ttl: i64,
) -> Fallible<u32> {
    sqlx::query(
        "INSERT INTO nodes (name, seen_ms) VALUES ($1, $2)
         ON CONFLICT (name) DO UPDATE SET seen_ms = excluded.seen_ms",
    )
    .bind(node)
    .bind(now)
    .execute(&mut *connection)
    .await?;
    sqlx::query("DELETE FROM nodes WHERE seen_ms < $1")
        .bind(now.saturating_sub(ttl))
        .execute(&mut *connection)
        .await?;
    let alive: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM nodes")
        .fetch_one(&mut *connection)
        .await?;
    Ok(to_u32(alive, "nodes")?.max(1))
}
