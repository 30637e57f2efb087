-- The evidence projections as rows (issue 12: the in-memory fold grew with every message in
-- retention). Folded from the log's outer layer up to a signed checkpoint; the position
-- reached is the `evidence` row of sealpost_checkpoints, written in the same transaction.
-- No personal field: ids are random, a consumer appears only as a keyed tag (HMAC under the
-- business's index key) that is cleared when its messages are shredded.
CREATE TABLE sealpost_ev_access (
    position       BIGINT  NOT NULL,
    seq            INTEGER NOT NULL,        -- the allowed and denied lines of one pipeline count
    at             BIGINT  NOT NULL,
    principal_kind TEXT    NOT NULL,
    principal      TEXT    NOT NULL,
    business_id    TEXT,
    category       TEXT    NOT NULL,
    purpose        TEXT    NOT NULL,
    decision       TEXT    NOT NULL,
    reason         TEXT,
    object         TEXT,
    count          BIGINT  NOT NULL,
    PRIMARY KEY (position, seq)
);

CREATE TABLE sealpost_ev_messages (
    message_id      TEXT   PRIMARY KEY,
    business_id     TEXT   NOT NULL,
    region          TEXT   NOT NULL,
    epoch           BIGINT NOT NULL,
    subject_tag     BYTEA,                   -- NULL once shredded
    phone_number_id TEXT   NOT NULL,
    kind            TEXT   NOT NULL,
    category        TEXT,
    created_at      BIGINT NOT NULL,
    shredded_at     BIGINT
);
CREATE INDEX sealpost_ev_messages_live_epoch ON sealpost_ev_messages (business_id, region, epoch)
    WHERE shredded_at IS NULL;
CREATE INDEX sealpost_ev_messages_subject ON sealpost_ev_messages (subject_tag)
    WHERE subject_tag IS NOT NULL;

CREATE TABLE sealpost_ev_stats (
    business_id     TEXT   NOT NULL,
    phone_number_id TEXT   NOT NULL,
    day             TEXT   NOT NULL,
    kind            TEXT   NOT NULL,
    metric          TEXT   NOT NULL,
    count           BIGINT NOT NULL,
    subjects        BIGINT NOT NULL,         -- distinct consumers counted in the group
    PRIMARY KEY (business_id, phone_number_id, day, kind, metric)
);

-- Which consumers a group has counted, until their messages are shredded.
CREATE TABLE sealpost_ev_stat_subjects (
    business_id     TEXT  NOT NULL,
    phone_number_id TEXT  NOT NULL,
    day             TEXT  NOT NULL,
    kind            TEXT  NOT NULL,
    metric          TEXT  NOT NULL,
    subject_tag     BYTEA NOT NULL,
    PRIMARY KEY (business_id, phone_number_id, day, kind, metric, subject_tag)
);
CREATE INDEX sealpost_ev_stat_subjects_tag ON sealpost_ev_stat_subjects (subject_tag);

CREATE TABLE sealpost_ev_billing (
    business_id TEXT   NOT NULL,
    month       TEXT   NOT NULL,
    category    TEXT   NOT NULL,
    billable    BIGINT NOT NULL,
    free        BIGINT NOT NULL,
    PRIMARY KEY (business_id, month, category)
);

CREATE TABLE sealpost_ev_days (
    day          TEXT   PRIMARY KEY,
    epoch_keys   BIGINT NOT NULL,
    subject_keys BIGINT NOT NULL,
    erasures     BIGINT NOT NULL
);

CREATE TABLE sealpost_ev_erasures (
    position     BIGINT PRIMARY KEY,
    business_id  TEXT   NOT NULL,
    region       TEXT   NOT NULL,
    subject_id   TEXT   NOT NULL,            -- the random id the erasure is about
    requested_at BIGINT NOT NULL
);

-- The sealed in-memory fold these rows replace is not read any more.
DELETE FROM sealpost_snapshots WHERE stream_type = 'projection' AND stream_id = 'evidence';
