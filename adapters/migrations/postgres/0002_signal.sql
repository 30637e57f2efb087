-- Signal state. Accounts (identity and prekeys of a business phone number) are wrapped by the
-- region root key; sessions are sealed under the consumer's subject key and deleted with it.
CREATE TABLE sealpost_signal_accounts (
    owner       TEXT    PRIMARY KEY,   -- the phone number id (random)
    business_id TEXT    NOT NULL,
    region      TEXT    NOT NULL,
    wrapped     BYTEA   NOT NULL,
    updated_at  BIGINT  NOT NULL
);

CREATE TABLE sealpost_signal_sessions (
    business_id TEXT    NOT NULL,
    region      TEXT    NOT NULL,
    subject_id  TEXT    NOT NULL,
    device      INTEGER NOT NULL,
    sealed      BYTEA   NOT NULL,
    updated_at  BIGINT  NOT NULL,
    PRIMARY KEY (business_id, subject_id, device)
);
CREATE INDEX sealpost_signal_sessions_subject ON sealpost_signal_sessions (subject_id);
