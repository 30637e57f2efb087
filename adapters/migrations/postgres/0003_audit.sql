-- The tamper-evident log (RFC 6962 Merkle tree) over the event rows, kept by the audit
-- sequencer off the write path. A leaf is the hash of a row's plaintext header and of its
-- sealed payload: never plaintext, so shredding leaves every proof valid.
CREATE TABLE sealpost_audit_leaves (
    position  BIGINT PRIMARY KEY,    -- the event's global position (leaf index + 1)
    leaf_hash BYTEA  NOT NULL
);

-- Signed checkpoints (tree heads): Ed25519 over origin, size, root and time.
CREATE TABLE sealpost_audit_checkpoints (
    size       BIGINT PRIMARY KEY,
    root       BYTEA  NOT NULL,
    signed_at  BIGINT NOT NULL,
    origin     TEXT   NOT NULL,
    public_key BYTEA  NOT NULL,
    signature  BYTEA  NOT NULL
);
