-- The event log of the embedded store. Every personal field is inside the sealed payload;
-- the plaintext columns hold only random ids, names of types, numbers and times.
CREATE TABLE sealpost_events (
    position      INTEGER PRIMARY KEY,          -- global, gap-free, commit order
    stream_type   TEXT    NOT NULL,
    stream_id     TEXT    NOT NULL,
    sequence      INTEGER NOT NULL,
    event_type    TEXT    NOT NULL,
    event_version INTEGER NOT NULL,
    business_id   TEXT    NOT NULL,
    region        TEXT    NOT NULL,
    epoch         INTEGER,
    recorded_at   INTEGER NOT NULL,
    payload       BLOB    NOT NULL,              -- ledger-key version ‖ AES-256-GCM-SIV sealed JSON
    UNIQUE (stream_type, stream_id, sequence)
);

CREATE TABLE sealpost_snapshots (
    stream_type      TEXT    NOT NULL,
    stream_id        TEXT    NOT NULL,
    business_id      TEXT    NOT NULL,
    region           TEXT    NOT NULL,
    current_sequence INTEGER NOT NULL,
    snapshot_version INTEGER NOT NULL,
    payload          BLOB    NOT NULL,
    PRIMARY KEY (stream_type, stream_id)
);

CREATE TABLE sealpost_checkpoints (
    name     TEXT PRIMARY KEY,
    position INTEGER NOT NULL
);
