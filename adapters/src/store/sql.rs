//! SQL shared by both backends (sqlx binds `$N` on SQLite too): the statements, and the rows
//! they return ([`DbRow`], [`DbSnapshot`], [`DbKey`]) with their conversions.

use super::{KeyKind, RowHeader, SnapshotRow, StoreError, StoredRow, StreamId, WrappedKey};

pub const READ_STREAM: &str = "SELECT position, stream_type, stream_id, sequence, event_type, event_version, business_id, region, epoch, recorded_at, payload \
     FROM sealpost_events WHERE business_id = $1 AND stream_type = $2 AND stream_id = $3 AND sequence > $4 ORDER BY sequence";
pub const READ_ALL: &str = "SELECT position, stream_type, stream_id, sequence, event_type, event_version, business_id, region, epoch, recorded_at, payload \
     FROM sealpost_events WHERE position > $1 ORDER BY position LIMIT $2";
/// Rows of one stream type after a position (the unique index on the stream type leads).
pub const READ_KIND: &str = "SELECT position, stream_type, stream_id, sequence, event_type, event_version, business_id, region, epoch, recorded_at, payload \
     FROM sealpost_events WHERE stream_type = $1 AND position > $2 ORDER BY position LIMIT $3";
pub const HEAD: &str = "SELECT COALESCE(MAX(position), 0) FROM sealpost_events";
pub const STREAM_VERSION: &str =
    "SELECT COALESCE(MAX(sequence), 0) FROM sealpost_events WHERE business_id = $1 AND stream_type = $2 AND stream_id = $3";
/// The business of a stream, for the few callers that hold an id and no business (a principal
/// that spans businesses, a node attaching its numbers at start): the one statement by stream
/// id alone (ADR 0018).
pub const STREAM_BUSINESS: &str =
    "SELECT business_id FROM sealpost_events WHERE stream_type = $1 AND stream_id = $2 LIMIT 1";
pub const LOAD_SNAPSHOT: &str = "SELECT stream_type, stream_id, business_id, region, current_sequence, snapshot_version, payload \
     FROM sealpost_snapshots WHERE business_id = $1 AND stream_type = $2 AND stream_id = $3";
pub const SAVE_SNAPSHOT: &str = "INSERT INTO sealpost_snapshots (stream_type, stream_id, business_id, region, current_sequence, snapshot_version, payload) \
     VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (stream_type, stream_id) DO UPDATE SET \
     business_id = excluded.business_id, region = excluded.region, current_sequence = excluded.current_sequence, \
     snapshot_version = excluded.snapshot_version, payload = excluded.payload";
pub const AUDIT_LEAVES: &str =
    "SELECT position, leaf_hash FROM sealpost_audit_leaves WHERE position > $1 ORDER BY position LIMIT $2";
pub const AUDIT_SIZE: &str = "SELECT COALESCE(MAX(position), 0) FROM sealpost_audit_leaves";
pub const AUDIT_NODES: &str =
    "SELECT idx, hash FROM sealpost_audit_nodes WHERE level = $1 AND idx >= $2 ORDER BY idx LIMIT $3";

/// Rows per multi-row leaf or node insert (2 parameters each).
pub const AUDIT_ROWS_PER_INSERT: usize = 500;

/// `INSERT … VALUES ($1, $2), ($3, $4), …` for `rows` leaves.
pub fn audit_put_leaves(rows: usize) -> String {
    format!(
        "INSERT INTO sealpost_audit_leaves (position, leaf_hash) VALUES {} \
         ON CONFLICT (position) DO NOTHING",
        value_pairs(rows)
    )
}

/// `INSERT … VALUES ($1, $2, $3), …` for `rows` nodes of one height (`$1`).
pub fn audit_put_nodes(rows: usize) -> String {
    format!(
        "INSERT INTO sealpost_audit_nodes (level, idx, hash) VALUES {} \
         ON CONFLICT (level, idx) DO UPDATE SET hash = excluded.hash",
        (0..rows)
            .map(|i| format!("($1, ${}, ${})", 2 * i + 2, 2 * i + 3))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// `($1, $2), ($3, $4), …`: `rows` pairs of parameters.
fn value_pairs(rows: usize) -> String {
    (0..rows)
        .map(|i| format!("(${}, ${})", 2 * i + 1, 2 * i + 2))
        .collect::<Vec<_>>()
        .join(", ")
}
/// A checkpoint signed again at a size already stored (one signed before notes, ADR 0022; a
/// key hand-over, ADR 0026) replaces the stored one only if it is of the same tree and not a
/// hand-over (the only link between two keys).
pub const AUDIT_PUT_CHECKPOINT: &str = "INSERT INTO sealpost_audit_checkpoints (size, root, signed_at, origin, public_key, signature, previous_key, previous_signature) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (size) DO UPDATE SET signed_at = excluded.signed_at, \
     origin = excluded.origin, public_key = excluded.public_key, signature = excluded.signature, \
     previous_key = excluded.previous_key, previous_signature = excluded.previous_signature \
     WHERE sealpost_audit_checkpoints.root = excluded.root AND sealpost_audit_checkpoints.previous_key IS NULL";
pub const AUDIT_CHECKPOINTS: &str = "SELECT size, root, signed_at, origin, public_key, signature, previous_key, previous_signature \
     FROM sealpost_audit_checkpoints ORDER BY size";
pub const LOAD_CHECKPOINT: &str = "SELECT position FROM sealpost_checkpoints WHERE name = $1";
pub const SAVE_CHECKPOINT: &str =
    "INSERT INTO sealpost_checkpoints (name, position) VALUES ($1, $2) \
     ON CONFLICT (name) DO UPDATE SET position = excluded.position";
pub const KEY_INSERT: &str = "INSERT INTO sealpost_keys (key_id, kind, business_id, region, epoch, subject_id, version, wrapped, created_at, root_generation) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (key_id) DO NOTHING";
pub const KEY_GET: &str = "SELECT key_id, kind, business_id, region, epoch, subject_id, version, wrapped, created_at, root_generation FROM sealpost_keys WHERE business_id = $1 AND key_id = $2";
pub const KEY_TOMBSTONE: &str =
    "SELECT 1 FROM sealpost_destroyed_keys WHERE business_id = $1 AND key_id = $2";
pub const KEY_DESTROYED_AT: &str =
    "SELECT destroyed_at FROM sealpost_destroyed_keys WHERE business_id = $1 AND key_id = $2";
pub const KEY_LATEST_LEDGER: &str = "SELECT key_id, kind, business_id, region, epoch, subject_id, version, wrapped, created_at, root_generation FROM sealpost_keys \
     WHERE kind = 'ledger' AND business_id = $1 AND region = $2 ORDER BY version DESC LIMIT 1";
/// The newest ledger-key version of every business in every region (the key rotation's pass).
pub const KEY_LEDGER_HEADS: &str = "SELECT k.key_id, k.kind, k.business_id, k.region, k.epoch, k.subject_id, k.version, k.wrapped, k.created_at, k.root_generation \
     FROM sealpost_keys k JOIN (SELECT business_id AS b, region AS r, MAX(version) AS v FROM sealpost_keys \
     WHERE kind = 'ledger' GROUP BY business_id, region) h ON (k.business_id, k.region, k.version) = (h.b, h.r, h.v) \
     WHERE k.kind = 'ledger' ORDER BY k.business_id, k.region";
pub const KEY_EXPIRED_EPOCHS: &str = "SELECT key_id, kind, business_id, region, epoch, subject_id, version, wrapped, created_at, root_generation FROM sealpost_keys \
     WHERE kind = 'epoch' AND epoch <= $1 ORDER BY epoch, key_id LIMIT $2";
pub const KEY_DELETE: &str =
    "DELETE FROM sealpost_keys WHERE business_id = $1 AND key_id = $2 RETURNING kind";
pub const KEY_ADD_TOMBSTONE: &str = "INSERT INTO sealpost_destroyed_keys (key_id, business_id, kind, destroyed_at) VALUES ($1, $2, $3, $4) \
     ON CONFLICT (key_id) DO NOTHING";
pub const INDEX_DELETE_SUBJECT: &str =
    "DELETE FROM sealpost_subject_index WHERE business_id = $1 AND subject_id = $2";
pub const INDEX_PUT: &str = "INSERT INTO sealpost_subject_index (business_id, region, blind, subject_id) VALUES ($1, $2, $3, $4) \
     ON CONFLICT (business_id, region, blind) DO NOTHING";
pub const INDEX_GET: &str = "SELECT subject_id FROM sealpost_subject_index WHERE business_id = $1 AND region = $2 AND blind = $3";
pub const SESSION_DELETE_SUBJECT: &str =
    "DELETE FROM sealpost_signal_sessions WHERE business_id = $1 AND subject_id = $2";
/// An account of a region: a row of another region (wrapped by another root key) is not it.
pub const ACCOUNT_GET: &str = "SELECT root_generation, wrapped FROM sealpost_signal_accounts WHERE business_id = $1 AND owner = $2 AND region = $3";
pub const ACCOUNT_PUT: &str = "INSERT INTO sealpost_signal_accounts (owner, business_id, region, wrapped, updated_at, root_generation) VALUES ($1, $2, $3, $4, $5, $6) \
     ON CONFLICT (owner) DO UPDATE SET region = excluded.region, wrapped = excluded.wrapped, updated_at = excluded.updated_at, \
     root_generation = excluded.root_generation";
/// A region's current root-key generation and since when (ADR 0025).
pub const ROOT_GENERATION_GET: &str =
    "SELECT generation, since FROM sealpost_root_generations WHERE region = $1";
/// Records a region's root-key generation unless a later one is recorded.
pub const ROOT_GENERATION_SET: &str =
    "INSERT INTO sealpost_root_generations (region, generation, since) VALUES ($1, $2, $3) \
     ON CONFLICT (region) DO UPDATE SET generation = excluded.generation, since = excluded.since \
     WHERE sealpost_root_generations.generation < excluded.generation";
/// Wrapped keys of a region under one root-key generation after a key id, of every business
/// (the rewrap; an index range).
pub const KEYS_UNDER_ROOT: &str =
    "SELECT business_id, key_id, region, root_generation, wrapped FROM sealpost_keys \
     WHERE region = $1 AND root_generation = $2 AND key_id > $3 ORDER BY key_id LIMIT $4";
/// Signal accounts of a region under one root-key generation after an owner, of every business.
pub const ACCOUNTS_UNDER_ROOT: &str =
    "SELECT business_id, owner, region, root_generation, wrapped FROM sealpost_signal_accounts \
     WHERE region = $1 AND root_generation = $2 AND owner > $3 ORDER BY owner LIMIT $4";
/// How many keys of a region are wrapped under a root-key generation below one, of every business.
pub const KEYS_COUNT_UNDER_ROOT: &str =
    "SELECT COUNT(*) FROM sealpost_keys WHERE region = $1 AND root_generation < $2";
/// How many Signal accounts of a region are wrapped under a generation below one.
pub const ACCOUNTS_COUNT_UNDER_ROOT: &str =
    "SELECT COUNT(*) FROM sealpost_signal_accounts WHERE region = $1 AND root_generation < $2";
/// A key rewrapped, unless it changed since it was read.
pub const KEY_REWRAP: &str = "UPDATE sealpost_keys SET wrapped = $1, root_generation = $2 \
     WHERE business_id = $3 AND key_id = $4 AND region = $5 AND wrapped = $6";
/// An account rewrapped, unless it changed since it was read.
pub const ACCOUNT_REWRAP: &str =
    "UPDATE sealpost_signal_accounts SET wrapped = $1, root_generation = $2 \
     WHERE business_id = $3 AND owner = $4 AND region = $5 AND wrapped = $6";
pub const ACCOUNT_DELETE: &str =
    "DELETE FROM sealpost_signal_accounts WHERE business_id = $1 AND owner = $2 AND region = $3";
pub const SESSION_GET: &str = "SELECT sealed FROM sealpost_signal_sessions WHERE business_id = $1 AND subject_id = $2 AND device = $3";
pub const SESSION_PUT: &str = "INSERT INTO sealpost_signal_sessions (business_id, region, subject_id, device, sealed, updated_at) VALUES ($1, $2, $3, $4, $5, $6) \
     ON CONFLICT (business_id, subject_id, device) DO UPDATE SET sealed = excluded.sealed, updated_at = excluded.updated_at";

/// A stored root-key generation (ADR 0025).
pub(crate) fn generation(g: i32) -> Result<u32, StoreError> {
    u32::try_from(g).map_err(|_| StoreError::Corrupt("negative root generation"))
}

/// A stored row as both backends return it.
#[derive(sqlx::FromRow)]
pub(crate) struct DbRow {
    pub position: i64,
    pub stream_type: String,
    pub stream_id: String,
    pub sequence: i64,
    pub event_type: String,
    pub event_version: i32,
    pub business_id: String,
    pub region: String,
    pub epoch: Option<i64>,
    pub recorded_at: i64,
    pub payload: Vec<u8>,
}

impl From<DbRow> for StoredRow {
    fn from(r: DbRow) -> Self {
        StoredRow {
            position: r.position as u64,
            header: RowHeader {
                stream: StreamId {
                    business: r.business_id.clone(),
                    kind: r.stream_type,
                    id: r.stream_id,
                },
                sequence: r.sequence as u64,
                event_type: r.event_type,
                event_version: r.event_version as u32,
                business_id: r.business_id,
                region: r.region,
                epoch: r.epoch,
                recorded_at: r.recorded_at,
            },
            payload: r.payload,
        }
    }
}

/// A snapshot row as both backends return it.
#[derive(sqlx::FromRow)]
pub(crate) struct DbSnapshot {
    pub stream_type: String,
    pub stream_id: String,
    pub business_id: String,
    pub region: String,
    pub current_sequence: i64,
    pub snapshot_version: i64,
    pub payload: Vec<u8>,
}

impl From<DbSnapshot> for SnapshotRow {
    fn from(r: DbSnapshot) -> Self {
        SnapshotRow {
            stream: StreamId {
                business: r.business_id.clone(),
                kind: r.stream_type,
                id: r.stream_id,
            },
            business_id: r.business_id,
            region: r.region,
            current_sequence: r.current_sequence as u64,
            snapshot_version: r.snapshot_version as u64,
            payload: r.payload,
        }
    }
}

/// A key row as both backends return it.
#[derive(sqlx::FromRow)]
pub(crate) struct DbKey {
    pub key_id: String,
    pub kind: String,
    pub business_id: String,
    pub region: String,
    pub epoch: Option<i64>,
    pub subject_id: Option<String>,
    pub version: i32,
    pub wrapped: Vec<u8>,
    pub created_at: i64,
    pub root_generation: i32,
}

impl TryFrom<DbKey> for WrappedKey {
    type Error = StoreError;
    fn try_from(r: DbKey) -> Result<Self, StoreError> {
        Ok(WrappedKey {
            key_id: r.key_id,
            kind: KeyKind::parse(&r.kind)?,
            business_id: r.business_id,
            region: r.region,
            epoch: r.epoch,
            subject_id: r.subject_id,
            version: r.version as u32,
            wrapped: r.wrapped,
            created_at: r.created_at,
            root: generation(r.root_generation)?,
        })
    }
}
