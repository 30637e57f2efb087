-- Where each Local Storage region's store is (a directory, or a Postgres database or schema and
-- its host; never credentials), so that a node configured to look elsewhere refuses to open it
-- instead of writing the region's keys to a second place, and the reports name the place the
-- store was created in (issue 14, ADR 0019).
ALTER TABLE sealpost_region_stores ADD COLUMN location TEXT NOT NULL DEFAULT '';
