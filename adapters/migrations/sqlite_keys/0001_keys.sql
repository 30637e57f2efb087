-- The key table, in its own database file so that destroying a key can be followed by a WAL
-- checkpoint that leaves no copy of the wrapped bytes in any SQLite file (secure_delete is on).
CREATE TABLE sealpost_keys (
    key_id      TEXT    PRIMARY KEY,   -- kind/region/business[/epoch|subject|vN]: random ids only
    kind        TEXT    NOT NULL,      -- ledger | epoch | subject | index
    business_id TEXT    NOT NULL,
    region      TEXT    NOT NULL,
    epoch       INTEGER,
    subject_id  TEXT,
    version     INTEGER NOT NULL,
    wrapped     BLOB    NOT NULL,      -- AES-256-GCM-SIV under the region root key
    created_at  INTEGER NOT NULL
);
CREATE INDEX sealpost_keys_epoch ON sealpost_keys (kind, epoch);

-- A destroyed key is never created again (the erasure fence for keys).
CREATE TABLE sealpost_destroyed_keys (
    key_id       TEXT    PRIMARY KEY,
    business_id  TEXT    NOT NULL,
    kind         TEXT    NOT NULL,
    destroyed_at INTEGER NOT NULL
);

-- Routing: HMAC of the normalized phone number under the business's index key → subject.
CREATE TABLE sealpost_subject_index (
    business_id TEXT NOT NULL,
    region      TEXT NOT NULL,
    blind       BLOB NOT NULL,
    subject_id  TEXT NOT NULL,
    PRIMARY KEY (business_id, region, blind)
);
CREATE INDEX sealpost_subject_index_subject ON sealpost_subject_index (subject_id);
