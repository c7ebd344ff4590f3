-- One platform event may change consent for several purposes (a follow
-- opts into the purposes the operator chose), so the ledger is unique per
-- event and purpose. SQLite cannot alter a UNIQUE constraint: rebuild.
CREATE TABLE consent_ledger_v2 (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    channel      TEXT NOT NULL,
    event_id     TEXT NOT NULL,
    address      TEXT NOT NULL,
    purpose      TEXT NOT NULL DEFAULT '*',
    opted_in     INTEGER NOT NULL,
    occurred_ms  INTEGER NOT NULL,
    received_ms  INTEGER NOT NULL,
    source       TEXT NOT NULL,
    UNIQUE (channel, event_id, purpose)
);
INSERT INTO consent_ledger_v2 (seq, channel, event_id, address, purpose, opted_in, occurred_ms, received_ms, source)
    SELECT seq, channel, event_id, address, COALESCE(purpose, '*'), opted_in, occurred_ms, received_ms, source
    FROM consent_ledger;
DROP TABLE consent_ledger;
ALTER TABLE consent_ledger_v2 RENAME TO consent_ledger;
CREATE INDEX consent_by_address ON consent_ledger(channel, address);
