//! Adapters' durable key-value storage on SQLite, with per-channel usage
//! kept beside it so that quota checks never count rows.

use rusqlite::{Connection, OptionalExtension, params};

use super::thread::JobResult;
use crate::records::KvEntry;

pub(crate) fn get(
    connection: &Connection,
    channel: &str,
    key: &str,
    now: i64,
) -> JobResult<Option<String>> {
    Ok(connection
        .prepare_cached(
            "SELECT value FROM adapter_storage WHERE channel = ?1 AND key = ?2 AND expires_ms > ?3",
        )?
        .query_row(params![channel, key, now], |row| row.get(0))
        .optional()?)
}

/// Entries and bytes the channel holds.
fn usage(connection: &Connection, channel: &str) -> JobResult<(u64, u64)> {
    Ok(connection
        .prepare_cached("SELECT entries, bytes FROM adapter_storage_usage WHERE channel = ?1")?
        .query_row([channel], |row| Ok((row.get(0)?, row.get(1)?)))
        .optional()?
        .unwrap_or((0, 0)))
}

fn add_usage(connection: &Connection, channel: &str, entries: i64, bytes: i64) -> JobResult<()> {
    connection
        .prepare_cached(
            "INSERT INTO adapter_storage_usage (channel, entries, bytes) VALUES (?1, MAX(?2, 0), MAX(?3, 0))
             ON CONFLICT (channel) DO UPDATE SET entries = MAX(entries + ?2, 0), bytes = MAX(bytes + ?3, 0)",
        )?
        .execute(params![channel, entries, bytes])?;
    Ok(())
}

/// Remove the channel's expired entries.
fn purge(connection: &Connection, channel: &str, now: i64) -> JobResult<()> {
    let freed: Vec<i64> = connection
        .prepare_cached(
            "DELETE FROM adapter_storage WHERE channel = ?1 AND expires_ms <= ?2
             RETURNING length(CAST(key AS BLOB)) + length(CAST(value AS BLOB))",
        )?
        .query_map(params![channel, now], |row| row.get(0))?
        .collect::<Result<_, _>>()?;
    if !freed.is_empty() {
        add_usage(
            connection,
            channel,
            -(freed.len() as i64),
            -freed.iter().sum::<i64>(),
        )?;
    }
    Ok(())
}

pub(crate) fn put(
    connection: &Connection,
    entry: &KvEntry,
    only_if_absent: bool,
    now: i64,
) -> JobResult<Option<String>> {
    let existing: Option<(String, i64)> = connection
        .prepare_cached(
            "SELECT value, expires_ms FROM adapter_storage WHERE channel = ?1 AND key = ?2",
        )?
        .query_row(params![entry.channel, entry.key], |row| {
            Ok((row.get(0)?, row.get(1)?))
        })
        .optional()?;
    if only_if_absent
        && let Some((value, expires)) = &existing
        && *expires > now
    {
        return Ok(Some(value.clone()));
    }
    let mut existing = existing;
    let added = |existing: &Option<(String, i64)>| match existing {
        Some((old, _)) => (0, entry.value.len() as i64 - old.len() as i64),
        None => (1, (entry.key.len() + entry.value.len()) as i64),
    };
    let fits = |(entries, bytes): (u64, u64), (added_entries, added_bytes): (i64, i64)| {
        entries as i64 + added_entries <= entry.max_entries as i64
            && bytes as i64 + added_bytes <= entry.max_bytes as i64
    };
    if !fits(usage(connection, &entry.channel)?, added(&existing)) {
        purge(connection, &entry.channel, now)?;
        // The purge removed the entry being replaced if it had expired:
        // writing it again adds it anew.
        if existing
            .as_ref()
            .is_some_and(|(_, expires)| *expires <= now)
        {
            existing = None;
        }
        if !fits(usage(connection, &entry.channel)?, added(&existing)) {
            return Ok(None);
        }
    }
    let (added_entries, added_bytes) = added(&existing);
    connection
        .prepare_cached(
            "INSERT INTO adapter_storage (channel, key, value, expires_ms) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (channel, key) DO UPDATE SET value = excluded.value, expires_ms = excluded.expires_ms",
        )?
        .execute(params![entry.channel, entry.key, entry.value, entry.expires_ms])?;
    add_usage(connection, &entry.channel, added_entries, added_bytes)?;
    Ok(Some(entry.value.clone()))
}

pub(crate) fn delete(connection: &Connection, channel: &str, key: &str) -> JobResult<()> {
    let freed: Option<i64> = connection
        .prepare_cached(
            "DELETE FROM adapter_storage WHERE channel = ?1 AND key = ?2
             RETURNING length(CAST(key AS BLOB)) + length(CAST(value AS BLOB))",
        )?
        .query_row(params![channel, key], |row| row.get(0))
        .optional()?;
    if let Some(bytes) = freed {
        add_usage(connection, channel, -1, -bytes)?;
    }
    Ok(())
}
