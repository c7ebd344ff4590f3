//! Profile events, trigger cancellations, frequency-cap counts and the
//! engines' heartbeats, on SQLite.

use std::collections::HashMap;

use rusqlite::{Connection, params};

use super::thread::JobResult;
use crate::records::ProfileEvent;

pub(crate) fn record_profile_events(
    connection: &Connection,
    events: &[ProfileEvent],
) -> JobResult<Vec<bool>> {
    let mut insert = connection.prepare_cached(
        "INSERT INTO profile_events (event_id, profile_id, name, occurred_ms, received_ms, properties)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (event_id) DO NOTHING",
    )?;
    let mut new = Vec::with_capacity(events.len());
    for event in events {
        let properties = serde_json::to_string(&event.properties)?;
        let inserted = insert.execute(params![
            event.event_id,
            event.profile_id,
            event.name,
            event.occurred_ms,
            event.received_ms,
            properties
        ])?;
        new.push(inserted == 1);
    }
    Ok(new)
}

pub(crate) fn profile_events(
    connection: &Connection,
    profile_id: &str,
    names: &[String],
    from_ms: i64,
    to_ms: i64,
) -> JobResult<Vec<ProfileEvent>> {
    let names: std::rc::Rc<Vec<rusqlite::types::Value>> = std::rc::Rc::new(
        names
            .iter()
            .map(|name| rusqlite::types::Value::from(name.clone()))
            .collect(),
    );
    let rows = connection
        .prepare_cached(
            "SELECT event_id, profile_id, name, occurred_ms, received_ms, properties FROM profile_events
             WHERE profile_id = ?1 AND name IN rarray(?2) AND occurred_ms BETWEEN ?3 AND ?4
             ORDER BY occurred_ms, event_id",
        )?
        .query_map(params![profile_id, names, from_ms, to_ms], |row| {
            Ok((
                ProfileEvent {
                    event_id: row.get(0)?,
                    profile_id: row.get(1)?,
                    name: row.get(2)?,
                    occurred_ms: row.get(3)?,
                    received_ms: row.get(4)?,
                    properties: Default::default(),
                },
                row.get::<_, String>(5)?,
            ))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    rows.into_iter()
        .map(|(mut event, properties)| {
            event.properties = serde_json::from_str(&properties)?;
            Ok(event)
        })
        .collect()
}

pub(crate) fn cancel_profile_sends(
    connection: &Connection,
    campaign: &str,
    profile_id: &str,
    deadline_at_most_ms: i64,
    reason: &str,
    now: i64,
) -> JobResult<Vec<String>> {
    let keys: Vec<String> = connection
        .prepare_cached(
            "UPDATE sends SET state = 'cancelled', error_class = 'cancelled', error_message = ?4,
                updated_ms = ?5
             WHERE profile_id = ?2 AND campaign = ?1 AND state IN ('pending', 'deferred', 'retrying')
               AND COALESCE(deadline_ms, 0) <= ?3
             RETURNING idempotency_key",
        )?
        .query_map(
            params![campaign, profile_id, deadline_at_most_ms, reason, now],
            |row| row.get(0),
        )?
        .collect::<Result<_, _>>()?;
    if !keys.is_empty() {
        connection
            .prepare_cached(
                "UPDATE decisions SET outcome = 'cancelled', reason = 'cancelled', detail = ?3,
                   decided_ms = ?4
                 WHERE campaign = ?1 AND profile_id = ?2",
            )?
            .execute(params![campaign, profile_id, reason, now])?;
    }
    Ok(keys)
}

/// When each of some profiles was last sent to on a channel, or is due to
/// be (`sends_by_profile` serves it).
pub(super) const RECENT_FOR_PROFILES: &str = "SELECT profile_id,
        CASE WHEN state = 'sent' THEN settled_ms ELSE due_ms END FROM sends
    WHERE profile_id IN rarray(?2) AND channel = ?1
      AND ((state = 'sent' AND settled_ms >= ?3)
           OR state IN ('pending', 'leased', 'deferred', 'retrying'))";

pub(crate) fn recent_sends_to(
    connection: &Connection,
    channel: &str,
    profile_ids: &[String],
    since_ms: i64,
) -> JobResult<HashMap<String, Vec<i64>>> {
    let ids: std::rc::Rc<Vec<rusqlite::types::Value>> = std::rc::Rc::new(
        profile_ids
            .iter()
            .map(|id| rusqlite::types::Value::from(id.clone()))
            .collect(),
    );
    let mut recent: HashMap<String, Vec<i64>> = HashMap::new();
    let rows = connection
        .prepare_cached(RECENT_FOR_PROFILES)?
        .query_map(params![channel, ids, since_ms], |row| {
            Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    for (profile, at) in rows {
        recent.entry(profile).or_default().push(at);
    }
    Ok(recent)
}

pub(crate) fn heartbeat(connection: &Connection, node: &str, now: i64, ttl: i64) -> JobResult<u32> {
    connection
        .prepare_cached(
            "INSERT INTO nodes (name, seen_ms) VALUES (?1, ?2)
             ON CONFLICT (name) DO UPDATE SET seen_ms = excluded.seen_ms",
        )?
        .execute(params![node, now])?;
    connection
        .prepare_cached("DELETE FROM nodes WHERE seen_ms < ?1")?
        .execute([now - ttl])?;
    let alive: u32 = connection
        .prepare_cached("SELECT COUNT(*) FROM nodes")?
        .query_row([], |row| row.get(0))?;
    Ok(alive.max(1))
}
