-- Signal state. Accounts (identity and prekeys of a business phone number) are wrapped by the
-- region root key; sessions are sealed under the consumer's subject key and deleted with it.
CREATE TABLE sealpost_signal_accounts (
    owner       TEXT    PRIMARY KEY,   -- the phone number id (random)
    business_id TEXT    NOT NULL,
    region      TEXT    NOT NULL,
    wrapped     BLOB    NOT NULL,
    updated_at  INTEGER NOT NULL
);

CREATE TABLE sealpost_signal_sessions (
    business_id TEXT    NOT NULL,
    region      TEXT    NOT NULL,
    subject_id  TEXT    NOT NULL,
    device      INTEGER NOT NULL,
    sealed      BLOB    NOT NULL,
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (business_id, subject_id, device)
);
CREATE INDEX sealpost_signal_sessions_subject ON sealpost_signal_sessions (subject_id);
