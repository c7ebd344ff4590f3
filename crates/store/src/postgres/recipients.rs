//! Recipients on PostgreSQL: what the policy gate needs to know about them
//! (consent ledger, windows) and the webhook events that change it. A
//! batch of events is applied with a few statements per kind of effect,
//! in the order the events came.

use std::collections::{BTreeMap, HashMap, HashSet};

use sqlx::PgConnection;
use switchboard_contract::model::{DeliveryState, Purpose, WindowOpener};
use switchboard_core::consent::LedgerEntry;
use switchboard_core::events::Effect;
use switchboard_core::policy::OpenedWindow;

use super::Fallible;
use super::outbox::{ConsentRow, fall_back_from_keys, insert_consent, lock_message_refs, to_u32};
use crate::records::{ConsentRecord, EventRecord, RecipientState};
use crate::sqlite::ALL_PURPOSES;

pub(super) async fn addresses_with_state(
    connection: &mut PgConnection,
    channel: &str,
) -> Fallible<HashSet<String>> {
    let rows: Vec<String> = sqlx::query_scalar(
        "SELECT address FROM consent_ledger WHERE channel = $1
         UNION SELECT address FROM conversation_windows WHERE channel = $1",
    )
    .bind(channel)
    .fetch_all(&mut *connection)
    .await?;
    Ok(rows.into_iter().collect())
}

pub(super) async fn recipient_states(
    connection: &mut PgConnection,
    channel: &str,
    addresses: &[String],
) -> Fallible<HashMap<String, RecipientState>> {
    let mut states: HashMap<String, RecipientState> = HashMap::new();
    if addresses.is_empty() {
        return Ok(states);
    }
    let ledger: Vec<(String, bool, Option<String>, i64, String)> = sqlx::query_as(
        "SELECT address, opted_in, purpose, received_ms, source FROM consent_ledger
         WHERE channel = $1 AND address = ANY($2) ORDER BY received_ms, seq",
    )
    .bind(channel)
    .bind(addresses)
    .fetch_all(&mut *connection)
    .await?;
    for (address, opted_in, purpose, at_ms, source) in ledger {
        states.entry(address).or_default().ledger.push(LedgerEntry {
            opted_in,
            purpose: purpose.as_deref().and_then(Purpose::from_name),
            at_ms,
            source,
        });
    }
    let windows: Vec<(String, String, i64, i64)> = sqlx::query_as(
        "SELECT address, opener, opened_ms, free_form_sent FROM conversation_windows
         WHERE channel = $1 AND address = ANY($2)",
    )
    .bind(channel)
    .bind(addresses)
    .fetch_all(&mut *connection)
    .await?;
    for (address, opener, opened_ms, free_form_sent) in windows {
        if let Some(opener) = WindowOpener::from_name(&opener) {
            states
                .entry(address)
                .or_default()
                .windows
                .push(OpenedWindow {
                    opener,
                    opened_ms,
                    free_form_sent: to_u32(free_form_sent, "free_form_sent")?,
                });
        }
    }
    Ok(states)
}

/// A status effect of a new event, in the batch's order.
struct Status<'a> {
    event: &'a EventRecord,
    platform_message_id: Option<&'a str>,
    correlation_key: Option<&'a str>,
    state: DeliveryState,
    failure: Option<&'a str>,
}

pub(super) async fn apply_events(
    connection: &mut PgConnection,
    channel: &str,
    events: &[EventRecord],
) -> Fallible<Vec<bool>> {
    if events.is_empty() {
        return Ok(Vec::new());
    }
    // Each event once: one already recorded (or earlier in this batch) is
    // a redelivery and changes nothing.
    let mut first: HashSet<&str> = HashSet::new();
    let candidates: Vec<&EventRecord> = events
        .iter()
        .filter(|event| first.insert(event.event_id.as_str()))
        .collect();
    let inserted: HashSet<String> = sqlx::query_scalar(
        "INSERT INTO webhook_events (channel, event_id, received_ms)
         SELECT $1, event_id, received_ms FROM UNNEST($2::text[], $3::bigint[]) AS e(event_id, received_ms)
         ON CONFLICT (channel, event_id) DO NOTHING
         RETURNING event_id",
    )
    .bind(channel)
    .bind(
        candidates
            .iter()
            .map(|e| e.event_id.as_str())
            .collect::<Vec<_>>(),
    )
    .bind(candidates.iter().map(|e| e.received_ms).collect::<Vec<_>>())
    .fetch_all(&mut *connection)
    .await?
    .into_iter()
    .collect();
    let mut applied = Vec::with_capacity(events.len());
    let mut seen: HashSet<&str> = HashSet::new();
    let mut statuses = Vec::new();
    let mut inbound = Vec::new();
    // (address, opener) → the latest opening in the batch: applied one
    // after another, only the latest can move a window (and reset its count).
    let mut windows: BTreeMap<(&str, &str), i64> = BTreeMap::new();
    let mut consent = Vec::new();
    for event in events {
        let new = inserted.contains(&event.event_id) && seen.insert(event.event_id.as_str());
        applied.push(new);
        if !new {
            continue;
        }
        for effect in &event.effects {
            match effect {
                Effect::Status {
                    platform_message_id,
                    correlation_key,
                    state,
                    failure,
                } => statuses.push(Status {
                    event,
                    platform_message_id: platform_message_id.as_deref(),
                    correlation_key: correlation_key.as_deref(),
                    state: *state,
                    failure: failure.as_deref(),
                }),
                Effect::Inbound { sender, kind, text } => {
                    inbound.push((event, sender.as_str(), kind.as_str(), text.as_deref()));
                }
                Effect::OpenWindow { address, opener } => {
                    // A window opens when the host learns of the action, at the latest.
                    let at = event.occurred_ms.min(event.received_ms);
                    let latest = windows
                        .entry((address.as_str(), opener.as_str()))
                        .or_insert(at);
                    *latest = (*latest).max(at);
                }
                Effect::Consent(change) => consent.push(ConsentRow {
                    channel,
                    event_id: event.event_id.clone(),
                    address: change.address.as_str(),
                    purpose: change.purpose.map_or(ALL_PURPOSES, Purpose::as_str),
                    opted_in: change.opted_in,
                    occurred_ms: event.occurred_ms,
                    received_ms: event.received_ms,
                    source: change.source.as_str(),
                }),
            }
        }
    }
    record_statuses(connection, channel, &statuses).await?;
    record_inbound(connection, channel, &inbound).await?;
    open_windows(connection, channel, &windows).await?;
    insert_consent(connection, &consent).await?;
    Ok(applied)
}

/// Record delivery statuses, and move each send they find (by platform id,
/// else by the correlation key) forward, never backwards; an expired
/// message falls back to the next channel of its route.
async fn record_statuses(
    connection: &mut PgConnection,
    channel: &str,
    statuses: &[Status<'_>],
) -> Fallible<()> {
    if statuses.is_empty() {
        return Ok(());
    }
    // Statuses about sends being settled as sent right now wait for them
    // (see `lock_message_refs`).
    let refs: Vec<&str> = statuses
        .iter()
        .flat_map(|s| [s.platform_message_id, s.correlation_key])
        .flatten()
        .collect();
    lock_message_refs(connection, &refs, true).await?;
    // One delivery event row per event id (the first status it carries).
    let mut first: HashSet<&str> = HashSet::new();
    let rows: Vec<&Status<'_>> = statuses
        .iter()
        .filter(|s| first.insert(s.event.event_id.as_str()))
        .collect();
    sqlx::query(
        "INSERT INTO delivery_events (channel, event_id, message_ref, state, failure, occurred_ms, received_ms)
         SELECT $1, event_id, message_ref, state, failure, occurred_ms, received_ms
         FROM UNNEST($2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[], $7::bigint[])
             AS d(event_id, message_ref, state, failure, occurred_ms, received_ms)
         ON CONFLICT (channel, event_id) DO NOTHING",
    )
    .bind(channel)
    .bind(
        rows.iter()
            .map(|s| s.event.event_id.as_str())
            .collect::<Vec<_>>(),
    )
    .bind(
        rows.iter()
            .map(|s| {
                s.platform_message_id
                    .or(s.correlation_key)
                    .unwrap_or_default()
            })
            .collect::<Vec<_>>(),
    )
    .bind(rows.iter().map(|s| s.state.as_str()).collect::<Vec<_>>())
    .bind(rows.iter().map(|s| s.failure).collect::<Vec<_>>())
    .bind(rows.iter().map(|s| s.event.occurred_ms).collect::<Vec<_>>())
    .bind(rows.iter().map(|s| s.event.received_ms).collect::<Vec<_>>())
    .execute(&mut *connection)
    .await?;

    // The sends they are about, locked (in key order) while they move.
    let ids: Vec<&str> = statuses
        .iter()
        .filter_map(|s| s.platform_message_id)
        .collect();
    let keys: Vec<&str> = statuses.iter().filter_map(|s| s.correlation_key).collect();
    let found: Vec<(String, Option<String>, Option<String>)> = sqlx::query_as(
        "SELECT idempotency_key, platform_message_id, delivery_state FROM sends
         WHERE idempotency_key IN (
             SELECT idempotency_key FROM sends WHERE channel = $1 AND platform_message_id = ANY($2)
             UNION
             SELECT idempotency_key FROM sends WHERE channel = $1 AND idempotency_key = ANY($3))
         ORDER BY idempotency_key
         FOR UPDATE",
    )
    .bind(channel)
    .bind(ids)
    .bind(keys)
    .fetch_all(&mut *connection)
    .await?;
    let mut by_id: HashMap<String, String> = HashMap::new();
    let mut current: HashMap<String, Option<String>> = HashMap::new();
    for (key, id, delivery) in found {
        if let Some(id) = id {
            by_id.entry(id).or_insert_with(|| key.clone());
        }
        current.insert(key, delivery);
    }

    /// Where a send ends up after the batch's statuses.
    struct Moved<'a> {
        state: DeliveryState,
        updated_ms: i64,
        failure: Option<&'a str>,
    }
    let mut moved: BTreeMap<String, Moved<'_>> = BTreeMap::new();
    let mut expired: Vec<(String, i64)> = Vec::new();
    for status in statuses {
        let key = status
            .platform_message_id
            .and_then(|id| by_id.get(id).cloned())
            .or_else(|| {
                status
                    .correlation_key
                    .filter(|key| current.contains_key(*key))
                    .map(str::to_owned)
            });
        let Some(key) = key else {
            continue;
        };
        let Some(previous) = current.get_mut(&key) else {
            continue;
        };
        let previous_rank = previous
            .as_deref()
            .and_then(DeliveryState::from_name)
            .map_or(0, DeliveryState::rank);
        if previous_rank >= status.state.rank() {
            continue;
        }
        *previous = Some(status.state.as_str().to_owned());
        let failure = status
            .failure
            .or_else(|| moved.get(&key).and_then(|m| m.failure));
        moved.insert(
            key.clone(),
            Moved {
                state: status.state,
                updated_ms: status.event.received_ms,
                failure,
            },
        );
        if status.state == DeliveryState::Expired {
            expired.push((key, status.event.received_ms));
        }
    }
    if !moved.is_empty() {
        sqlx::query(
            "UPDATE sends s SET delivery_state = u.state, updated_ms = u.updated_ms,
                 error_message = COALESCE(u.failure, s.error_message)
             FROM UNNEST($1::text[], $2::text[], $3::bigint[], $4::text[])
                 AS u(key, state, updated_ms, failure)
             WHERE s.idempotency_key = u.key",
        )
        .bind(moved.keys().map(String::as_str).collect::<Vec<_>>())
        .bind(moved.values().map(|m| m.state.as_str()).collect::<Vec<_>>())
        .bind(moved.values().map(|m| m.updated_ms).collect::<Vec<_>>())
        .bind(moved.values().map(|m| m.failure).collect::<Vec<_>>())
        .execute(&mut *connection)
        .await?;
    }
    fall_back_from_keys(connection, &expired).await
}

async fn record_inbound(
    connection: &mut PgConnection,
    channel: &str,
    inbound: &[(&EventRecord, &str, &str, Option<&str>)],
) -> Fallible<()> {
    if inbound.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO inbound_messages (channel, event_id, sender, kind, text, occurred_ms)
         SELECT $1, event_id, sender, kind, text, occurred_ms
         FROM UNNEST($2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[]) WITH ORDINALITY
             AS i(event_id, sender, kind, text, occurred_ms, n)
         ORDER BY n
         ON CONFLICT (channel, event_id) DO NOTHING",
    )
    .bind(channel)
    .bind(
        inbound
            .iter()
            .map(|i| i.0.event_id.as_str())
            .collect::<Vec<_>>(),
    )
    .bind(inbound.iter().map(|i| i.1).collect::<Vec<_>>())
    .bind(inbound.iter().map(|i| i.2).collect::<Vec<_>>())
    .bind(inbound.iter().map(|i| i.3).collect::<Vec<_>>())
    .bind(inbound.iter().map(|i| i.0.occurred_ms).collect::<Vec<_>>())
    .execute(&mut *connection)
    .await?;
    Ok(())
}

/// Open or refresh windows, `(address, opener)` → when: a later opening
/// moves the window and resets its free-form count; an earlier one changes
/// nothing.
async fn open_windows(
    connection: &mut PgConnection,
    channel: &str,
    windows: &BTreeMap<(&str, &str), i64>,
) -> Fallible<()> {
    if windows.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO conversation_windows (channel, address, opener, opened_ms, free_form_sent)
         SELECT $1, address, opener, opened_ms, 0
         FROM UNNEST($2::text[], $3::text[], $4::bigint[]) AS w(address, opener, opened_ms)
         ON CONFLICT (channel, address, opener) DO UPDATE SET
           free_form_sent = CASE WHEN excluded.opened_ms > conversation_windows.opened_ms
                                 THEN 0 ELSE conversation_windows.free_form_sent END,
           opened_ms = GREATEST(conversation_windows.opened_ms, excluded.opened_ms)",
    )
    .bind(channel)
    .bind(windows.keys().map(|k| k.0).collect::<Vec<_>>())
    .bind(windows.keys().map(|k| k.1).collect::<Vec<_>>())
    .bind(windows.values().copied().collect::<Vec<_>>())
    .execute(&mut *connection)
    .await?;
    Ok(())
}

pub(super) async fn consent_history(
    connection: &mut PgConnection,
    channel: &str,
    address: &str,
) -> Fallible<Vec<ConsentRecord>> {
    let rows: Vec<(bool, Option<String>, i64, i64, String)> = sqlx::query_as(
        "SELECT opted_in, purpose, occurred_ms, received_ms, source FROM consent_ledger
         WHERE channel = $1 AND address = $2 ORDER BY received_ms, seq",
    )
    .bind(channel)
    .bind(address)
    .fetch_all(&mut *connection)
    .await?;
    Ok(rows
        .into_iter()
        .map(
            |(opted_in, purpose, occurred_ms, received_ms, source)| ConsentRecord {
                opted_in,
                purpose: purpose.as_deref().and_then(Purpose::from_name),
                occurred_ms,
                received_ms,
                source,
            },
        )
        .collect())
}
