-- Every address of a stream names its business (ADR 0018): an index on (type, id, business,
-- sequence) answers a stream's version and an append's version check from the index alone.
-- (SQLite cannot drop the table's original unique constraint without rebuilding the table; it
-- stays, and still holds: stream ids are random.)
CREATE UNIQUE INDEX sealpost_events_stream
    ON sealpost_events (stream_type, stream_id, business_id, sequence);
