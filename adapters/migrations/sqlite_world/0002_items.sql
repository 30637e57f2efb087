-- What a phone keeps one of per message (messages it showed, messages it sent, its messages the
-- business read), a row each, in the order kept: a phone's history grows on disk, not in the
-- record written at every step. Sealed like every row; the number and the message id appear
-- only as HMACs under the world's index key.
CREATE TABLE world_items (
    row    INTEGER PRIMARY KEY,
    k      BLOB NOT NULL,     -- HMAC-SHA256 of the phone number
    item   TEXT NOT NULL,     -- 'shown' | 'sent' | 'read'
    id     BLOB NOT NULL,     -- HMAC-SHA256 of the message id
    sealed BLOB NOT NULL,     -- AES-256-GCM-SIV under the world key, bound to item, k and id
    UNIQUE (k, item, id)
);
