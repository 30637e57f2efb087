-- Every address of a stream names its business (ADR 0018). The stream key becomes (type, id,
-- business, sequence): the version check of an append (under the sequencer's lock) and a
-- stream's version are answered from the index alone again, as they were before the business
-- joined the address (measured: the filter on a column outside the index cost every append a
-- heap read per row of its stream), and the unique key includes the distribution column, as a
-- sharded Postgres requires. A lookup by type and id alone uses its prefix.
CREATE UNIQUE INDEX sealpost_events_stream
    ON sealpost_events (stream_type, stream_id, business_id, sequence);
ALTER TABLE sealpost_events DROP CONSTRAINT sealpost_events_stream_type_stream_id_sequence_key;
