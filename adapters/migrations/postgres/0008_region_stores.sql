-- The Local Storage regions whose stores exist (issue 14, ADR 0019): a region's store is created
-- on its first write and recorded here, in the home store, so that every node finds every
-- region's store for work that spans them (retention, scrubbing, the record of processing).
-- Only region codes: nothing of any business or person.
CREATE TABLE sealpost_region_stores (
    region     TEXT   PRIMARY KEY,
    created_at BIGINT NOT NULL
);
