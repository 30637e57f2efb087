-- Event log, keys and routing index on Postgres. Every table carries business_id so that a
-- distributed Postgres can shard by tenant.
CREATE TABLE sealpost_events (
    position      BIGINT  PRIMARY KEY,          -- assigned under the sequencer row lock: gap-free, commit order
    stream_type   TEXT    NOT NULL,
    stream_id     TEXT    NOT NULL,
    sequence      BIGINT  NOT NULL,
    event_type    TEXT    NOT NULL,
    event_version INTEGER NOT NULL,
    business_id   TEXT    NOT NULL,
    region        TEXT    NOT NULL,
    epoch         BIGINT,
    recorded_at   BIGINT  NOT NULL,
    payload       BYTEA   NOT NULL,
    UNIQUE (stream_type, stream_id, sequence)
);

-- The single sequencer: appenders lock this row, so positions are handed out and become
-- visible strictly in commit order and no reader can skip a late commit.
CREATE TABLE sealpost_sequencer (
    id            INTEGER PRIMARY KEY CHECK (id = 1),
    last_position BIGINT  NOT NULL
);
INSERT INTO sealpost_sequencer (id, last_position) VALUES (1, 0);

CREATE TABLE sealpost_snapshots (
    stream_type      TEXT    NOT NULL,
    stream_id        TEXT    NOT NULL,
    business_id      TEXT    NOT NULL,
    region           TEXT    NOT NULL,
    current_sequence BIGINT  NOT NULL,
    snapshot_version BIGINT  NOT NULL,
    payload          BYTEA   NOT NULL,
    PRIMARY KEY (stream_type, stream_id)
);

CREATE TABLE sealpost_checkpoints (
    name     TEXT   PRIMARY KEY,
    position BIGINT NOT NULL
);

CREATE TABLE sealpost_keys (
    key_id      TEXT    PRIMARY KEY,
    kind        TEXT    NOT NULL,
    business_id TEXT    NOT NULL,
    region      TEXT    NOT NULL,
    epoch       BIGINT,
    subject_id  TEXT,
    version     INTEGER NOT NULL,
    wrapped     BYTEA   NOT NULL,
    created_at  BIGINT  NOT NULL
);
CREATE INDEX sealpost_keys_epoch ON sealpost_keys (kind, epoch);

CREATE TABLE sealpost_destroyed_keys (
    key_id       TEXT   PRIMARY KEY,
    business_id  TEXT   NOT NULL,
    kind         TEXT   NOT NULL,
    destroyed_at BIGINT NOT NULL
);

CREATE TABLE sealpost_subject_index (
    business_id TEXT  NOT NULL,
    region      TEXT  NOT NULL,
    blind       BYTEA NOT NULL,
    subject_id  TEXT  NOT NULL,
    PRIMARY KEY (business_id, region, blind)
);
CREATE INDEX sealpost_subject_index_subject ON sealpost_subject_index (subject_id);
