-- Switchboard's SQLite schema, version 1.

CREATE TABLE campaigns (
    name        TEXT PRIMARY KEY,
    definition  TEXT NOT NULL,
    audience    TEXT NOT NULL,
    state       TEXT NOT NULL,
    created_ms  INTEGER NOT NULL
);

-- The outbox: one row per message under its idempotency key. `state` is
-- pending | leased | sent | failed | uncertain | deferred | retrying |
-- skipped | cancelled. `written` is set, before a request leaves, while the
-- row is leased: a lease that expires with it set was interrupted after the
-- platform may have acted.
CREATE TABLE sends (
    idempotency_key     TEXT PRIMARY KEY,
    campaign            TEXT NOT NULL,
    profile_id          TEXT NOT NULL,
    line                INTEGER,
    channel             TEXT NOT NULL,
    address             TEXT NOT NULL,
    step                INTEGER NOT NULL,
    purpose             TEXT NOT NULL,
    content             TEXT NOT NULL,
    content_kind        TEXT NOT NULL,
    ttl_seconds         INTEGER,
    window_opener       TEXT,
    deduplicates        INTEGER NOT NULL,
    state               TEXT NOT NULL,
    due_ms              INTEGER NOT NULL,
    lease_owner         TEXT,
    lease_expires_ms    INTEGER,
    written             INTEGER NOT NULL DEFAULT 0,
    attempts            INTEGER NOT NULL DEFAULT 0,
    rate_limited        INTEGER NOT NULL DEFAULT 0,
    deadline_ms         INTEGER,
    fallback            TEXT,
    platform_message_id TEXT,
    delivery_state      TEXT,
    error_class         TEXT,
    error_message       TEXT,
    fell_back           INTEGER NOT NULL DEFAULT 0,
    settled_by          TEXT,
    settled_ms          INTEGER,
    created_ms          INTEGER NOT NULL,
    updated_ms          INTEGER NOT NULL
);
CREATE INDEX sends_due ON sends(channel, due_ms) WHERE state IN ('pending', 'deferred', 'retrying');
CREATE INDEX sends_leased ON sends(channel, lease_expires_ms) WHERE state = 'leased';
CREATE INDEX sends_by_campaign ON sends(campaign, state);
CREATE INDEX sends_settled ON sends(channel, settled_ms) WHERE state = 'sent';
CREATE INDEX sends_settled_by_campaign ON sends(campaign, settled_ms);
CREATE INDEX sends_by_platform_id ON sends(channel, platform_message_id) WHERE platform_message_id IS NOT NULL;

-- Webhook events already applied, so a redelivery changes nothing.
CREATE TABLE webhook_events (
    channel      TEXT NOT NULL,
    event_id     TEXT NOT NULL,
    received_ms  INTEGER NOT NULL,
    PRIMARY KEY (channel, event_id)
);

CREATE TABLE delivery_events (
    channel       TEXT NOT NULL,
    event_id      TEXT NOT NULL,
    message_ref   TEXT NOT NULL,
    state         TEXT NOT NULL,
    failure       TEXT,
    occurred_ms   INTEGER NOT NULL,
    received_ms   INTEGER NOT NULL,
    PRIMARY KEY (channel, event_id)
);
CREATE INDEX delivery_events_by_message ON delivery_events(channel, message_ref);

CREATE TABLE inbound_messages (
    channel      TEXT NOT NULL,
    event_id     TEXT NOT NULL,
    sender       TEXT NOT NULL,
    kind         TEXT NOT NULL,
    text         TEXT,
    occurred_ms  INTEGER NOT NULL,
    PRIMARY KEY (channel, event_id)
);

CREATE TABLE conversation_windows (
    channel         TEXT NOT NULL,
    address         TEXT NOT NULL,
    opener          TEXT NOT NULL,
    opened_ms       INTEGER NOT NULL,
    free_form_sent  INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (channel, address, opener)
);

-- Append-only. Ordered by when the host received an event, not by the
-- time a platform claims.
CREATE TABLE consent_ledger (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    channel      TEXT NOT NULL,
    event_id     TEXT NOT NULL,
    address      TEXT NOT NULL,
    purpose      TEXT,
    opted_in     INTEGER NOT NULL,
    occurred_ms  INTEGER NOT NULL,
    received_ms  INTEGER NOT NULL,
    source       TEXT NOT NULL,
    UNIQUE (channel, event_id)
);
CREATE INDEX consent_by_address ON consent_ledger(channel, address);

CREATE TABLE decisions (
    campaign    TEXT NOT NULL,
    profile_id  TEXT NOT NULL,
    channel     TEXT,
    outcome     TEXT NOT NULL,
    reason      TEXT,
    detail      TEXT,
    decided_ms  INTEGER NOT NULL,
    PRIMARY KEY (campaign, profile_id)
);
CREATE INDEX decisions_by_profile ON decisions(profile_id);

CREATE TABLE adapter_storage (
    channel     TEXT NOT NULL,
    key         TEXT NOT NULL,
    value       TEXT NOT NULL,
    expires_ms  INTEGER NOT NULL,
    PRIMARY KEY (channel, key)
);

-- What each channel's storage holds, kept with every write so that a
-- quota check never counts rows.
CREATE TABLE adapter_storage_usage (
    channel  TEXT PRIMARY KEY,
    entries  INTEGER NOT NULL,
    bytes    INTEGER NOT NULL
);
