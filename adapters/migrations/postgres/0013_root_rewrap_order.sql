-- A rewrap reads one old root-key generation of a region in id order, after a cursor: an index
-- range per batch instead of a sort of every row left (ADR 0025).
DROP INDEX sealpost_keys_root;
DROP INDEX sealpost_signal_accounts_root;
CREATE INDEX sealpost_keys_root ON sealpost_keys (region, root_generation, key_id);
CREATE INDEX sealpost_signal_accounts_root ON sealpost_signal_accounts (region, root_generation, owner);
