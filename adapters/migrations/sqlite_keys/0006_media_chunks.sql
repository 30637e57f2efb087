-- Media objects up to the Cloud API's 100 MB are stored beside the keys in sealed chunks
-- (ADR 0030): each row one chunk, sealed under the object's data key, which is itself sealed
-- in the object's `MediaStoredInChunks` event. `expires_at` lets retention delete what no id
-- answers for any more (and what an interrupted upload left).
CREATE TABLE sealpost_media_chunks (
    business_id TEXT NOT NULL,
    media_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    region TEXT NOT NULL,
    sealed BLOB NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (business_id, media_id, seq)
);
CREATE INDEX sealpost_media_chunks_expiry ON sealpost_media_chunks (expires_at);
