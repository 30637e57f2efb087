-- Leases on background work that must have one owner at a time across nodes (issue 13,
-- ADR 0016): the pipeline, the housekeeping (audit sequencer and checkpoints, retention), each
-- app's webhook worker, and each live node's own presence (`node:<id>`). `epoch` is the fencing
-- token: it rises whenever the owner changes, and a guarded write checks it in its own
-- transaction. Names are roles and random ids; owners are node ids (host, process, random).
CREATE TABLE sealpost_leases (
    name        TEXT   PRIMARY KEY,
    owner       TEXT   NOT NULL,
    epoch       BIGINT NOT NULL,
    acquired_at BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL
);
