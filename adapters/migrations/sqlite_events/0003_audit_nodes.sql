-- The tree's stored interior (ADR 0013): the root of every complete perfect subtree of height
-- 8, 16, 24, …, written with the leaves under it, so proofs and a restarted sequencer read
-- a few tiles of 256 hashes instead of every leaf. Derived from the leaves: `audit verify`
-- never trusts it, a wrong node only makes a proof that fails to verify.
CREATE TABLE sealpost_audit_nodes (
    level INTEGER NOT NULL,      -- height of the subtree (a multiple of 8)
    idx   INTEGER  NOT NULL,     -- its place among the subtrees of that height, from 0
    hash  BLOB     NOT NULL,
    PRIMARY KEY (level, idx)
);
