-- The tamper-evident log (RFC 6962 Merkle tree) over the event rows, kept by the audit
-- sequencer off the write path. A leaf is the hash of a row's plaintext header and of its
-- sealed payload: never plaintext, so shredding leaves every proof valid.
CREATE TABLE sealpost_audit_leaves (
    position  INTEGER PRIMARY KEY,   -- the event's global position (leaf index + 1)
    leaf_hash BLOB    NOT NULL
);

-- Signed checkpoints (tree heads): Ed25519 over origin, size, root and time.
CREATE TABLE sealpost_audit_checkpoints (
    size       INTEGER PRIMARY KEY,
    root       BLOB    NOT NULL,
    signed_at  INTEGER NOT NULL,
    origin     TEXT    NOT NULL,
    public_key BLOB    NOT NULL,
    signature  BLOB    NOT NULL
);
