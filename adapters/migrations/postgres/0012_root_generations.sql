-- Region root keys have generations (ADR 0025): every wrapped key and Signal account names the
-- generation of its region's root key it is wrapped under (1 for what was wrapped before), and
-- each region's current generation, the one new keys are wrapped under, is recorded here. A
-- rotation makes the next generation, records it, rewraps every row below it, and only then
-- may the old generation be destroyed.
ALTER TABLE sealpost_keys ADD COLUMN root_generation INTEGER NOT NULL DEFAULT 1;
ALTER TABLE sealpost_signal_accounts ADD COLUMN root_generation INTEGER NOT NULL DEFAULT 1;
CREATE INDEX sealpost_keys_root ON sealpost_keys (region, root_generation);
CREATE INDEX sealpost_signal_accounts_root ON sealpost_signal_accounts (region, root_generation);

CREATE TABLE sealpost_root_generations (
    region     TEXT    PRIMARY KEY,
    generation INTEGER NOT NULL,
    since      BIGINT  NOT NULL
);
