//! Adapters' durable key-value storage on PostgreSQL, with per-channel
//! usage kept beside it so that quota checks never count rows. A write
//! locks its channel's usage row first, so that hosts writing one
//! channel's storage at once take turns and never overrun its quota.

use sqlx::PgConnection;

use super::Fallible;
use crate::records::KvEntry;

pub(super) async fn get(
    connection: &mut PgConnection,
    channel: &str,
    key: &str,
    now: i64,
) -> Fallible<Option<String>> {
    Ok(sqlx::query_scalar(
        "SELECT value FROM adapter_storage WHERE channel = $1 AND key = $2 AND expires_ms > $3",
    )
    .bind(channel)
    .bind(key)
    .bind(now)
    .fetch_optional(&mut *connection)
    .await?)
}

/// Lock the channel's usage row (creating it empty) and read it:
/// `(entries, bytes)`.
async fn lock_usage(connection: &mut PgConnection, channel: &str) -> Fallible<(i64, i64)> {
    Ok(sqlx::query_as(
        "INSERT INTO adapter_storage_usage (channel, entries, bytes) VALUES ($1, 0, 0)
         ON CONFLICT (channel) DO UPDATE SET entries = adapter_storage_usage.entries
         RETURNING entries, bytes",
    )
    .bind(channel)
    .fetch_one(&mut *connection)
    .await?)
}

/// Change the channel's usage (never below zero); returns it afterwards.
async fn add_usage(
    connection: &mut PgConnection,
    channel: &str,
    entries: i64,
    bytes: i64,
) -> Fallible<(i64, i64)> {
    Ok(sqlx::query_as(
        "UPDATE adapter_storage_usage SET entries = GREATEST(entries + $2, 0),
             bytes = GREATEST(bytes + $3, 0)
         WHERE channel = $1 RETURNING entries, bytes",
    )
    .bind(channel)
    .bind(entries)
    .bind(bytes)
    .fetch_one(&mut *connection)
    .await?)
}

/// Remove the channel's expired entries; returns the usage afterwards.
async fn purge(connection: &mut PgConnection, channel: &str, now: i64) -> Fallible<(i64, i64)> {
    let freed: Vec<i64> = sqlx::query_scalar(
        "DELETE FROM adapter_storage WHERE channel = $1 AND expires_ms <= $2
         RETURNING (octet_length(key) + octet_length(value))::bigint",
    )
    .bind(channel)
    .bind(now)
    .fetch_all(&mut *connection)
    .await?;
    add_usage(
        connection,
        channel,
        -(freed.len() as i64),
        -freed.iter().sum::<i64>(),
    )
    .await
}

pub(super) async fn put(
    connection: &mut PgConnection,
    entry: &KvEntry,
    only_if_absent: bool,
    now: i64,
) -> Fallible<Option<String>> {
    let mut usage = lock_usage(connection, &entry.channel).await?;
    let mut existing: Option<(String, i64)> = sqlx::query_as(
        "SELECT value, expires_ms FROM adapter_storage WHERE channel = $1 AND key = $2",
    )
    .bind(&entry.channel)
    .bind(&entry.key)
    .fetch_optional(&mut *connection)
    .await?;
    if only_if_absent
        && let Some((value, expires)) = &existing
        && *expires > now
    {
        return Ok(Some(value.clone()));
    }
    let added = |existing: &Option<(String, i64)>| match existing {
        Some((old, _)) => (0, entry.value.len() as i64 - old.len() as i64),
        None => (1, (entry.key.len() + entry.value.len()) as i64),
    };
    let fits = |(entries, bytes): (i64, i64), (added_entries, added_bytes): (i64, i64)| {
        entries + added_entries <= i64::try_from(entry.max_entries).unwrap_or(i64::MAX)
            && bytes + added_bytes <= i64::try_from(entry.max_bytes).unwrap_or(i64::MAX)
    };
    if !fits(usage, added(&existing)) {
        usage = purge(connection, &entry.channel, now).await?;
        // The purge removed the entry being replaced if it had expired:
        // writing it again adds it anew.
        if existing
            .as_ref()
            .is_some_and(|(_, expires)| *expires <= now)
        {
            existing = None;
        }
        if !fits(usage, added(&existing)) {
            return Ok(None);
        }
    }
    sqlx::query(
        "INSERT INTO adapter_storage (channel, key, value, expires_ms) VALUES ($1, $2, $3, $4)
         ON CONFLICT (channel, key) DO UPDATE SET value = excluded.value, expires_ms = excluded.expires_ms",
    )
    .bind(&entry.channel)
    .bind(&entry.key)
    .bind(&entry.value)
    .bind(entry.expires_ms)
    .execute(&mut *connection)
    .await?;
    let (added_entries, added_bytes) = added(&existing);
    add_usage(connection, &entry.channel, added_entries, added_bytes).await?;
    Ok(Some(entry.value.clone()))
}

pub(super) async fn delete(
    connection: &mut PgConnection,
    channel: &str,
    key: &str,
) -> Fallible<()> {
    lock_usage(connection, channel).await?;
    let freed: Option<i64> = sqlx::query_scalar(
        "DELETE FROM adapter_storage WHERE channel = $1 AND key = $2
         RETURNING (octet_length(key) + octet_length(value))::bigint",
    )
    .bind(channel)
    .bind(key)
    .fetch_optional(&mut *connection)
    .await?;
    if let Some(bytes) = freed {
        add_usage(connection, channel, -1, -bytes).await?;
    }
    Ok(())
}
