//! Recipients on SQLite: what the policy gate needs to know about them
//! (consent ledger, windows) and the webhook events that change it.

use super::ALL_PURPOSES;
use std::collections::{HashMap, HashSet};
use std::rc::Rc;

use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, params};
use switchboard_contract::model::{DeliveryState, Purpose, WindowOpener};
use switchboard_core::consent::LedgerEntry;
use switchboard_core::events::Effect;
use switchboard_core::policy::OpenedWindow;

use super::outbox::fall_back_from_key;
use super::thread::JobResult;
use crate::records::{ConsentRecord, EventRecord, RecipientState};

pub(crate) fn addresses_with_state(
    connection: &Connection,
    channel: &str,
) -> JobResult<HashSet<String>> {
    let rows = connection
        .prepare_cached(
            "SELECT address FROM consent_ledger WHERE channel = ?1
             UNION SELECT address FROM conversation_windows WHERE channel = ?1",
        )?
        .query_map([channel], |row| row.get(0))?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

pub(crate) fn recipient_states(
    connection: &Connection,
    channel: &str,
    addresses: &[String],
) -> JobResult<HashMap<String, RecipientState>> {
    let mut states: HashMap<String, RecipientState> = HashMap::new();
    let list = Rc::new(
        addresses
            .iter()
            .map(|a| Value::from(a.clone()))
            .collect::<Vec<_>>(),
    );
    let ledger = connection
        .prepare_cached(
            "SELECT address, opted_in, purpose, received_ms, source FROM consent_ledger
             WHERE channel = ?1 AND address IN rarray(?2) ORDER BY received_ms, seq",
        )?
        .query_map(params![channel, list], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, bool>(1)?,
                row.get::<_, Option<String>>(2)?,
                row.get::<_, i64>(3)?,
                row.get::<_, String>(4)?,
            ))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    for (address, opted_in, purpose, at_ms, source) in ledger {
        states.entry(address).or_default().ledger.push(LedgerEntry {
            opted_in,
            purpose: purpose.as_deref().and_then(Purpose::from_name),
            at_ms,
            source,
        });
    }
    let windows = connection
        .prepare_cached(
            "SELECT address, opener, opened_ms, free_form_sent FROM conversation_windows
             WHERE channel = ?1 AND address IN rarray(?2)",
        )?
        .query_map(params![channel, list], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, i64>(2)?,
                row.get::<_, u32>(3)?,
            ))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    for (address, opener, opened_ms, free_form_sent) in windows {
        if let Some(opener) = WindowOpener::from_name(&opener) {
            states
                .entry(address)
                .or_default()
                .windows
                .push(OpenedWindow {
                    opener,
                    opened_ms,
                    free_form_sent,
                });
        }
    }
    Ok(states)
}

pub(crate) fn apply_events(
    connection: &Connection,
    channel: &str,
    events: &[EventRecord],
) -> JobResult<Vec<bool>> {
    let mut applied = Vec::with_capacity(events.len());
    for event in events {
        let new = connection
            .prepare_cached(
                "INSERT OR IGNORE INTO webhook_events (channel, event_id, received_ms) VALUES (?1, ?2, ?3)",
            )?
            .execute(params![channel, event.event_id, event.received_ms])?
            == 1;
        applied.push(new);
        if !new {
            continue;
        }
        for effect in &event.effects {
            apply_effect(connection, channel, event, effect)?;
        }
    }
    Ok(applied)
}

fn apply_effect(
    connection: &Connection,
    channel: &str,
    event: &EventRecord,
    effect: &Effect,
) -> JobResult<()> {
    match effect {
        Effect::Status {
            platform_message_id,
            correlation_key,
            state,
            failure,
        } => record_status(
            connection,
            channel,
            event,
            platform_message_id.as_deref(),
            correlation_key.as_deref(),
            *state,
            failure.as_deref(),
        ),
        Effect::Inbound { sender, kind, text } => {
            connection
                .prepare_cached(
                    "INSERT OR IGNORE INTO inbound_messages (channel, event_id, sender, kind, text, occurred_ms)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )?
                .execute(params![channel, event.event_id, sender, kind, text, event.occurred_ms])?;
            Ok(())
        }
        Effect::OpenWindow { address, opener } => {
            // A window opens when the host learns of the action, at the latest.
            let at = event.occurred_ms.min(event.received_ms);
            connection
                .prepare_cached(
                    "INSERT INTO conversation_windows (channel, address, opener, opened_ms, free_form_sent)
                     VALUES (?1, ?2, ?3, ?4, 0)
                     ON CONFLICT (channel, address, opener) DO UPDATE SET
                       free_form_sent = CASE WHEN excluded.opened_ms > opened_ms THEN 0 ELSE free_form_sent END,
                       opened_ms = MAX(opened_ms, excluded.opened_ms)",
                )?
                .execute(params![channel, address, opener.as_str(), at])?;
            Ok(())
        }
        Effect::Consent(change) => {
            connection
                .prepare_cached(
                    "INSERT OR IGNORE INTO consent_ledger (channel, event_id, address, purpose, opted_in, occurred_ms, received_ms, source)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                )?
                .execute(params![
                    channel,
                    event.event_id,
                    change.address,
                    change.purpose.map_or(ALL_PURPOSES, Purpose::as_str),
                    change.opted_in,
                    event.occurred_ms,
                    event.received_ms,
                    change.source,
                ])?;
            Ok(())
        }
    }
}

/// The send a platform's message id names (`sends_by_platform_id`
/// serves it).
pub(super) const BY_PLATFORM_ID: &str = "SELECT idempotency_key, delivery_state FROM sends WHERE channel = ?1 AND platform_message_id = ?2";

fn record_status(
    connection: &Connection,
    channel: &str,
    event: &EventRecord,
    platform_message_id: Option<&str>,
    correlation_key: Option<&str>,
    state: DeliveryState,
    failure: Option<&str>,
) -> JobResult<()> {
    let message_ref = platform_message_id.or(correlation_key).unwrap_or_default();
    connection
        .prepare_cached(
            "INSERT OR IGNORE INTO delivery_events (channel, event_id, message_ref, state, failure, occurred_ms, received_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?
        .execute(params![
            channel,
            event.event_id,
            message_ref,
            state.as_str(),
            failure,
            event.occurred_ms,
            event.received_ms
        ])?;
    let mut found: Option<(String, Option<String>)> = None;
    if let Some(id) = platform_message_id {
        found = connection
            .prepare_cached(BY_PLATFORM_ID)?
            .query_row(params![channel, id], |row| Ok((row.get(0)?, row.get(1)?)))
            .optional()?;
    }
    if found.is_none()
        && let Some(key) = correlation_key
    {
        found = connection
            .prepare_cached(
                "SELECT idempotency_key, delivery_state FROM sends WHERE channel = ?1 AND idempotency_key = ?2",
            )?
            .query_row(params![channel, key], |row| Ok((row.get(0)?, row.get(1)?)))
            .optional()?;
    }
    let Some((key, previous)) = found else {
        return Ok(());
    };
    let previous_rank = previous
        .as_deref()
        .and_then(DeliveryState::from_name)
        .map_or(0, DeliveryState::rank);
    if previous_rank >= state.rank() {
        return Ok(());
    }
    connection
        .prepare_cached(
            "UPDATE sends SET delivery_state = ?2, updated_ms = ?3, error_message = COALESCE(?4, error_message)
             WHERE idempotency_key = ?1",
        )?
        .execute(params![key, state.as_str(), event.received_ms, failure])?;
    if state == DeliveryState::Expired {
        fall_back_from_key(connection, &key, event.received_ms)?;
    }
    Ok(())
}

pub(crate) fn consent_history(
    connection: &Connection,
    channel: &str,
    address: &str,
) -> JobResult<Vec<ConsentRecord>> {
    let rows = connection
        .prepare_cached(
            "SELECT opted_in, purpose, occurred_ms, received_ms, source FROM consent_ledger
             WHERE channel = ?1 AND address = ?2 ORDER BY received_ms, seq",
        )?
        .query_map(params![channel, address], |row| {
            Ok(ConsentRecord {
                opted_in: row.get(0)?,
                purpose: row
                    .get::<_, Option<String>>(1)?
                    .as_deref()
                    .and_then(Purpose::from_name),
                occurred_ms: row.get(2)?,
                received_ms: row.get(3)?,
                source: row.get(4)?,
            })
        })?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}
