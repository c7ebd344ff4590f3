-- Events from the brand's systems (`POST /api/events`), kept once per id
-- so that a replay does nothing, and read back when a trigger fires (was
-- its cancelling event already here?).
CREATE TABLE profile_events (
    event_id     TEXT PRIMARY KEY,
    profile_id   TEXT NOT NULL,
    name         TEXT NOT NULL,
    occurred_ms  INTEGER NOT NULL,
    received_ms  INTEGER NOT NULL,
    properties   TEXT NOT NULL
);
CREATE INDEX profile_events_by_profile ON profile_events(profile_id, name, occurred_ms);

-- Frequency caps count a profile's sends on a channel across campaigns
-- and triggers; triggers cancel one profile's sends.
CREATE INDEX sends_by_profile ON sends(profile_id, channel);

-- Engines working this outbox, for sharing a channel's rate between them.
CREATE TABLE nodes (
    name     TEXT PRIMARY KEY,
    seen_ms  INTEGER NOT NULL
);
