-- The simulated outside world (the transport and the consumers' phones), kept across restarts
-- of `sealpost serve`. Every value is sealed under the world's own key; a phone number appears
-- only as an HMAC under that key, never in clear.

-- Long-lived state by kind: 'directory' (a party's published prekeys), 'integrity' (the
-- transport's signals about a business number), 'device' (a consumer phone).
CREATE TABLE world_records (
    kind   TEXT NOT NULL,
    k      BLOB NOT NULL,     -- HMAC-SHA256 of the phone number under the world's index key
    sealed BLOB NOT NULL,     -- AES-256-GCM-SIV under the world key, bound to kind and k
    PRIMARY KEY (kind, k)
);

-- Envelopes the transport accepted and nobody has acknowledged yet, in routing order.
CREATE TABLE world_inbox (
    row    INTEGER PRIMARY KEY,
    sealed BLOB NOT NULL
);
