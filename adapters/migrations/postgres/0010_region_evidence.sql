-- A Local Storage region's consumers are tagged in its own store's evidence rows only (issue 14,
-- ADR 0021). Rows folded before kept those tags here: the rows are emptied, and the next fold
-- rebuilds them from the log (each store from position 0).
DELETE FROM sealpost_ev_access;
DELETE FROM sealpost_ev_messages;
DELETE FROM sealpost_ev_stats;
DELETE FROM sealpost_ev_stat_subjects;
DELETE FROM sealpost_ev_billing;
DELETE FROM sealpost_ev_days;
DELETE FROM sealpost_ev_erasures;
DELETE FROM sealpost_checkpoints WHERE name = 'evidence';
