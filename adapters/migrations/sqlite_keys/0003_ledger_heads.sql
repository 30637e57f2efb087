-- The newest ledger-key version of each business and region, found by index: the key
-- rotation's hourly pass lists every head, and sealing asks for one (ADR 0024).
CREATE INDEX sealpost_keys_ledger_heads ON sealpost_keys (business_id, region, version)
    WHERE kind = 'ledger';
