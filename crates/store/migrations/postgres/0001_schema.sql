-- Switchboard's PostgreSQL schema, version 1: the same tables as SQLite's
-- migrations 0001-0003 (see ../sqlite/), in PostgreSQL's types. Times are
-- BIGINT milliseconds since the Unix epoch. Keys and names that are sorted
-- on use the "C" collation, so that listings order as they do on SQLite
-- (byte order) whatever the database's locale.

CREATE TABLE campaigns (
    name        TEXT COLLATE "C" PRIMARY KEY,
    definition  TEXT NOT NULL,
    audience    TEXT NOT NULL,
    state       TEXT NOT NULL,
    created_ms  BIGINT NOT NULL
);

-- The outbox: one row per message under its idempotency key. `written` is
-- set, before a request leaves, while the row is leased: a lease that
-- expires with it set was interrupted after the platform may have acted.
CREATE TABLE sends (
    idempotency_key     TEXT COLLATE "C" PRIMARY KEY,
    campaign            TEXT COLLATE "C" NOT NULL,
    profile_id          TEXT COLLATE "C" NOT NULL,
    line                BIGINT,
    channel             TEXT NOT NULL,
    address             TEXT NOT NULL,
    step                BIGINT NOT NULL,
    purpose             TEXT NOT NULL,
    content             TEXT NOT NULL,
    content_kind        TEXT NOT NULL,
    ttl_seconds         BIGINT,
    window_opener       TEXT,
    deduplicates        BOOLEAN NOT NULL,
    state               TEXT NOT NULL CHECK (state IN ('pending', 'leased', 'sent', 'failed',
                            'uncertain', 'deferred', 'retrying', 'skipped', 'cancelled')),
    due_ms              BIGINT NOT NULL,
    lease_owner         TEXT,
    lease_expires_ms    BIGINT,
    written             BOOLEAN NOT NULL DEFAULT FALSE,
    attempts            BIGINT NOT NULL DEFAULT 0,
    rate_limited        BIGINT NOT NULL DEFAULT 0,
    deadline_ms         BIGINT,
    fallback            TEXT,
    platform_message_id TEXT,
    delivery_state      TEXT,
    error_class         TEXT,
    error_message       TEXT,
    fell_back           BOOLEAN NOT NULL DEFAULT FALSE,
    settled_by          TEXT,
    settled_ms          BIGINT,
    created_ms          BIGINT NOT NULL,
    updated_ms          BIGINT NOT NULL
);
CREATE INDEX sends_due ON sends (channel, due_ms) WHERE state IN ('pending', 'deferred', 'retrying');
CREATE INDEX sends_leased ON sends (channel, lease_expires_ms) WHERE state = 'leased';
CREATE INDEX sends_by_campaign ON sends (campaign, state);
CREATE INDEX sends_settled ON sends (channel, settled_ms) WHERE state = 'sent';
CREATE INDEX sends_settled_by_campaign ON sends (campaign, settled_ms);
CREATE INDEX sends_by_platform_id ON sends (channel, platform_message_id) WHERE platform_message_id IS NOT NULL;
-- Frequency caps count a profile's sends on a channel across campaigns
-- and triggers; triggers cancel one profile's sends.
CREATE INDEX sends_by_profile ON sends (profile_id, channel);

-- Webhook events already applied, so a redelivery changes nothing.
CREATE TABLE webhook_events (
    channel      TEXT NOT NULL,
    event_id     TEXT NOT NULL,
    received_ms  BIGINT NOT NULL,
    PRIMARY KEY (channel, event_id)
);

CREATE TABLE delivery_events (
    channel       TEXT NOT NULL,
    event_id      TEXT NOT NULL,
    message_ref   TEXT NOT NULL,
    state         TEXT NOT NULL,
    failure       TEXT,
    occurred_ms   BIGINT NOT NULL,
    received_ms   BIGINT NOT NULL,
    PRIMARY KEY (channel, event_id)
);
CREATE INDEX delivery_events_by_message ON delivery_events (channel, message_ref);

CREATE TABLE inbound_messages (
    channel      TEXT NOT NULL,
    event_id     TEXT NOT NULL,
    sender       TEXT NOT NULL,
    kind         TEXT NOT NULL,
    text         TEXT,
    occurred_ms  BIGINT NOT NULL,
    PRIMARY KEY (channel, event_id)
);

CREATE TABLE conversation_windows (
    channel         TEXT NOT NULL,
    address         TEXT NOT NULL,
    opener          TEXT NOT NULL,
    opened_ms       BIGINT NOT NULL,
    free_form_sent  BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (channel, address, opener)
);

-- Append-only, unique per event and purpose ('*' for every purpose).
-- Ordered by when the host received an event, not by the time a platform
-- claims.
CREATE TABLE consent_ledger (
    seq          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    channel      TEXT NOT NULL,
    event_id     TEXT NOT NULL,
    address      TEXT NOT NULL,
    purpose      TEXT NOT NULL DEFAULT '*',
    opted_in     BOOLEAN NOT NULL,
    occurred_ms  BIGINT NOT NULL,
    received_ms  BIGINT NOT NULL,
    source       TEXT NOT NULL,
    UNIQUE (channel, event_id, purpose)
);
CREATE INDEX consent_by_address ON consent_ledger (channel, address);

CREATE TABLE decisions (
    campaign    TEXT COLLATE "C" NOT NULL,
    profile_id  TEXT COLLATE "C" NOT NULL,
    channel     TEXT,
    outcome     TEXT NOT NULL,
    reason      TEXT,
    detail      TEXT,
    decided_ms  BIGINT NOT NULL,
    PRIMARY KEY (campaign, profile_id)
);
CREATE INDEX decisions_by_profile ON decisions (profile_id);

CREATE TABLE adapter_storage (
    channel     TEXT NOT NULL,
    key         TEXT NOT NULL,
    value       TEXT NOT NULL,
    expires_ms  BIGINT NOT NULL,
    PRIMARY KEY (channel, key)
);

-- What each channel's storage holds, kept with every write so that a
-- quota check never counts rows. Its row is also the lock that orders a
-- channel's storage writes across hosts.
CREATE TABLE adapter_storage_usage (
    channel  TEXT PRIMARY KEY,
    entries  BIGINT NOT NULL,
    bytes    BIGINT NOT NULL
);

-- Events from the brand's systems (`POST /api/events`), kept once per id
-- so that a replay does nothing, and read back when a trigger fires.
CREATE TABLE profile_events (
    event_id     TEXT COLLATE "C" PRIMARY KEY,
    profile_id   TEXT NOT NULL,
    name         TEXT NOT NULL,
    occurred_ms  BIGINT NOT NULL,
    received_ms  BIGINT NOT NULL,
    properties   TEXT NOT NULL
);
CREATE INDEX profile_events_by_profile ON profile_events (profile_id, name, occurred_ms);

-- Engines working this outbox, for sharing a channel's rate between them.
CREATE TABLE nodes (
    name     TEXT PRIMARY KEY,
    seen_ms  BIGINT NOT NULL
);
