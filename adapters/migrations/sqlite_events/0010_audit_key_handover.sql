-- The audit signing key rotates (ADR 0026): the first checkpoint under a new key is a hand-over,
-- signed by the new key and by the key it takes over from, whose public key and signature are
-- kept here (empty on every other checkpoint).
ALTER TABLE sealpost_audit_checkpoints ADD COLUMN previous_key BLOB;
ALTER TABLE sealpost_audit_checkpoints ADD COLUMN previous_signature BLOB;
