//! Event and key storage: the ports and their SQLite and Postgres adapters.
//!
//! Layers, bottom up:
//! * [`EventLog`] — raw rows with sealed payloads: gap-safe global order, optimistic
//!   concurrency per stream, many commands per transaction. Implemented by
//!   [`sqlite::SqliteEventLog`] and [`postgres::PostgresStore`].
//! * [`KeyStore`] — wrapped keys, destroyed-key tombstones and the blind routing index, in a
//!   table (SQLite: a file) separate from the events.
//! * [`crate::ledger::EventStore`] — seals and opens payloads, batches appends through the group
//!   committer, and offers catch-up subscriptions; [`crate::repository::SealedRepository`]
//!   puts `cqrs-es` on top of it.

pub mod postgres;
pub mod sqlite;

use async_trait::async_trait;
use futures::future::BoxFuture;
use std::fmt;

/// A stream: aggregate type plus aggregate id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StreamId {
    /// Aggregate type (`message`, `subject`, …).
    pub kind: String,
    /// Aggregate id (random).
    pub id: String,
}

impl StreamId {
    /// A stream id.
    pub fn new(kind: impl Into<String>, id: impl Into<String>) -> Self {
        Self {
            kind: kind.into(),
            id: id.into(),
        }
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.kind, self.id)
    }
}

/// The plaintext header of a row: everything but the payload. None of it is personal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowHeader {
    /// The stream.
    pub stream: StreamId,
    /// Sequence within the stream, from 1.
    pub sequence: u64,
    /// Event type name.
    pub event_type: String,
    /// Event version.
    pub event_version: u32,
    /// The business (distribution key).
    pub business_id: String,
    /// Storage region code.
    pub region: String,
    /// Retention epoch, for message events.
    pub epoch: Option<i64>,
    /// When it was recorded (ms since the Unix epoch).
    pub recorded_at: i64,
}

/// A row to append: header plus sealed payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRow {
    /// Header.
    pub header: RowHeader,
    /// Ledger-key version ‖ sealed payload.
    pub payload: Vec<u8>,
}

/// A stored row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRow {
    /// Global position, from 1, gap-free, in commit order.
    pub position: u64,
    /// Header.
    pub header: RowHeader,
    /// Ledger-key version ‖ sealed payload.
    pub payload: Vec<u8>,
}

/// A sealed snapshot of one aggregate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotRow {
    /// The stream.
    pub stream: StreamId,
    /// The business.
    pub business_id: String,
    /// Region code.
    pub region: String,
    /// Sequence of the last event folded into it.
    pub current_sequence: u64,
    /// Snapshot counter (cqrs-es `current_snapshot`).
    pub snapshot_version: u64,
    /// Ledger-key version ‖ sealed aggregate JSON.
    pub payload: Vec<u8>,
}

/// One command's rows: all for one stream, contiguous sequences starting at `expected + 1`.
#[derive(Debug, Clone)]
pub struct AppendCommand {
    /// The stream.
    pub stream: StreamId,
    /// The stream's version the command was decided on (0 for a new stream).
    pub expected: u64,
    /// The rows.
    pub rows: Vec<NewRow>,
}

/// Optimistic concurrency failure: the stream moved on since the command read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("stream version conflict: expected {expected}, actual {actual}")]
pub struct Conflict {
    /// The version the command was decided on.
    pub expected: u64,
    /// The stream's version now.
    pub actual: u64,
}

/// Storage failures. `Display` never contains row contents.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The command lost a race on its stream: reload and decide again (HTTP 409 / retry).
    #[error(transparent)]
    Conflict(#[from] Conflict),
    /// The database cannot be reached right now: connection refused or closed, no pooled
    /// connection within the acquire timeout, I/O, the server shutting down or not yet
    /// accepting connections (SQLSTATE class 08, 57P01–57P03, 53300), SQLite busy or locked.
    /// Transient: retry later (HTTP 503, Cloud API code 131016). The pool reconnects by itself
    /// once the database is back.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// The database refused the statement or failed in a way a retry does not cure (a bug, a
    /// schema that does not match): HTTP 500, code 131000, alert.
    #[error("database error: {0}")]
    Database(String),
    /// Stored data could not be opened or parsed: corruption or tampering (HTTP 500, alert).
    #[error("stored data is corrupt: {0}")]
    Corrupt(&'static str),
    /// A key needed to write was destroyed: the erasure fence (HTTP 400, code 131026).
    #[error("key was destroyed")]
    KeyDestroyed,
    /// The request itself was malformed (a bug in the caller).
    #[error("invalid store request: {0}")]
    Invalid(&'static str),
}

impl StoreError {
    /// Whether the failure is transient (the database is down, unreachable or busy) rather
    /// than a bug or corruption: the caller answers 503 and retries later.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }
}

/// Postgres SQLSTATEs that mean "the server cannot serve this connection now": the whole
/// connection-exception class 08, admin / crash shutdown and cannot-connect-now (57P01–57P03),
/// too many connections (53300).
fn pg_state_unavailable(code: &str) -> bool {
    code.starts_with("08") || matches!(code, "57P01" | "57P02" | "57P03" | "53300")
}

/// The primary SQLite result code of an extended one.
fn sqlite_primary(code: &str) -> Option<i32> {
    code.parse::<i32>().ok().map(|c| c & 0xff)
}

/// SQLite result codes that mean "try again": BUSY (5) and LOCKED (6).
fn sqlite_code_unavailable(code: &str) -> bool {
    matches!(sqlite_primary(code), Some(5 | 6))
}

/// SQLite result codes that mean the file is damaged: CORRUPT (11) and NOTADB (26).
fn sqlite_code_corrupt(code: &str) -> bool {
    matches!(sqlite_primary(code), Some(11 | 26))
}

/// Whether a sqlx error is transient: the database is unreachable, gone or busy.
fn sqlx_unavailable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed => true,
        sqlx::Error::Database(db) => match db.code() {
            Some(code)
                if db
                    .try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
                    .is_some() =>
            {
                pg_state_unavailable(&code)
            }
            Some(code) if db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() => {
                sqlite_code_unavailable(&code)
            }
            _ => false,
        },
        _ => false,
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        // sqlx errors name the statement's problem or the connection's, never bound values.
        if sqlx_unavailable(&e) {
            return StoreError::Unavailable(e.to_string());
        }
        let sqlite_corrupt = e.as_database_error().is_some_and(|db| {
            db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some()
                && db.code().is_some_and(|c| sqlite_code_corrupt(&c))
        });
        if sqlite_corrupt {
            StoreError::Corrupt("the database file is damaged")
        } else {
            StoreError::Database(e.to_string())
        }
    }
}

impl From<sqlx::migrate::MigrateError> for StoreError {
    fn from(e: sqlx::migrate::MigrateError) -> Self {
        use sqlx::migrate::MigrateError;
        let transient = match &e {
            MigrateError::Execute(inner) | MigrateError::ExecuteMigration(inner, _) => {
                sqlx_unavailable(inner)
            }
            _ => false,
        };
        if transient {
            StoreError::Unavailable(e.to_string())
        } else {
            StoreError::Database(e.to_string())
        }
    }
}

/// Runs inside an append transaction after the rows are written and before commit.
/// Returning `false` rolls the transaction back. Used by tests to hold transactions open and
/// to roll some back; production appends pass no hook.
pub trait TxHook: Send + Sync {
    /// Called once per transaction.
    fn before_commit(&self) -> BoxFuture<'_, bool>;
}

/// The outcome of one append transaction: per command, its positions or its conflict;
/// `None` when the hook rolled the whole transaction back.
pub type AppendOutcome = Option<Vec<Result<Vec<u64>, Conflict>>>;

/// Raw event rows with a gap-safe global order.
#[async_trait]
pub trait EventLog: Send + Sync + fmt::Debug {
    /// Appends several commands in one durable transaction. Each command is checked against
    /// its stream's version under the sequencer lock; a conflicting command is left out and
    /// reported, the others commit.
    async fn append(
        &self,
        commands: &[AppendCommand],
        hook: Option<&dyn TxHook>,
    ) -> Result<AppendOutcome, StoreError>;

    /// Rows of one stream with sequence > `after`, in order.
    async fn read_stream(
        &self,
        stream: &StreamId,
        after: u64,
    ) -> Result<Vec<StoredRow>, StoreError>;

    /// Up to `limit` rows with position > `after`, in order. Never skips a row that commits
    /// later with a smaller position: positions are assigned in commit order.
    async fn read_all(&self, after: u64, limit: u32) -> Result<Vec<StoredRow>, StoreError>;

    /// The highest committed position (0 when empty).
    async fn head(&self) -> Result<u64, StoreError>;

    /// The current version (last sequence) of a stream, 0 if it has no events.
    async fn stream_version(&self, stream: &StreamId) -> Result<u64, StoreError>;

    /// Loads a snapshot.
    async fn load_snapshot(&self, stream: &StreamId) -> Result<Option<SnapshotRow>, StoreError>;

    /// Writes (replaces) a snapshot.
    async fn save_snapshot(&self, snapshot: &SnapshotRow) -> Result<(), StoreError>;

    /// A subscriber's durable checkpoint (0 if none).
    async fn load_checkpoint(&self, name: &str) -> Result<u64, StoreError>;

    /// Saves a subscriber's checkpoint.
    async fn save_checkpoint(&self, name: &str, position: u64) -> Result<(), StoreError>;

    /// Leaves of the tamper-evident log with position > `after`, in order, at most `limit`.
    async fn audit_leaves(&self, after: u64, limit: u32) -> Result<Vec<AuditLeaf>, StoreError>;

    /// Records leaves (idempotent: a position already recorded keeps its first hash).
    async fn audit_append_leaves(&self, leaves: &[AuditLeaf]) -> Result<(), StoreError>;

    /// Records a signed checkpoint (idempotent per size).
    async fn audit_put_checkpoint(&self, checkpoint: &CheckpointRow) -> Result<(), StoreError>;

    /// Every signed checkpoint, smallest first.
    async fn audit_checkpoints(&self) -> Result<Vec<CheckpointRow>, StoreError>;
}

/// One leaf of the tamper-evident log: the hash the sequencer computed for the row at `position`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditLeaf {
    /// The event's global position (leaf index + 1).
    pub position: u64,
    /// RFC 6962 leaf hash of the row.
    pub hash: [u8; 32],
}

/// A signed checkpoint (tree head) as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointRow {
    /// Tree size (number of leaves).
    pub size: u64,
    /// Merkle root.
    pub root: Vec<u8>,
    /// When it was signed (ms).
    pub signed_at: i64,
    /// The log's name.
    pub origin: String,
    /// Ed25519 public key that signed it.
    pub public_key: Vec<u8>,
    /// Ed25519 signature.
    pub signature: Vec<u8>,
}

/// One append transaction as the shared algorithm [`run_append`] sees it; each backend
/// implements the few statements it needs.
#[async_trait]
pub(crate) trait AppendTx: Send {
    /// Takes the sequencer lock and returns the highest committed position.
    async fn lock_head(&mut self) -> Result<u64, StoreError>;
    /// Current versions of these streams (absent streams are left out).
    async fn stream_versions(
        &mut self,
        streams: &[&StreamId],
    ) -> Result<std::collections::HashMap<StreamId, u64>, StoreError>;
    /// Inserts rows at the given positions.
    async fn insert(&mut self, rows: &[(u64, &NewRow)]) -> Result<(), StoreError>;
    /// Records the new head (where the backend keeps one), then commits or rolls back.
    async fn finish(self: Box<Self>, new_head: u64, commit: bool) -> Result<(), StoreError>;
}

/// The append algorithm shared by every backend: under the sequencer lock, check each
/// command's expected version (tracking versions inside the batch), give accepted rows the next
/// positions, insert them, run the hook, commit. Because the lock is held until commit,
/// positions become visible in order and a reader can never skip one.
pub(crate) async fn run_append(
    mut tx: Box<dyn AppendTx + '_>,
    commands: &[AppendCommand],
    hook: Option<&dyn TxHook>,
) -> Result<AppendOutcome, StoreError> {
    let head = tx.lock_head().await?;
    let streams: Vec<&StreamId> = commands.iter().map(|c| &c.stream).collect();
    let mut versions = tx.stream_versions(&streams).await?;
    let mut next = head;
    let mut results = Vec::with_capacity(commands.len());
    let mut accepted: Vec<(u64, &NewRow)> = Vec::new();
    for cmd in commands {
        let actual = versions.get(&cmd.stream).copied().unwrap_or(0);
        if actual != cmd.expected {
            results.push(Err(Conflict {
                expected: cmd.expected,
                actual,
            }));
            continue;
        }
        let mut positions = Vec::with_capacity(cmd.rows.len());
        for (i, row) in cmd.rows.iter().enumerate() {
            if row.header.sequence != cmd.expected + i as u64 + 1 || row.header.stream != cmd.stream
            {
                return Err(StoreError::Invalid(
                    "rows must continue their stream's sequence",
                ));
            }
            next += 1;
            positions.push(next);
            accepted.push((next, row));
        }
        versions.insert(cmd.stream.clone(), cmd.expected + cmd.rows.len() as u64);
        results.push(Ok(positions));
    }
    if !accepted.is_empty() {
        tx.insert(&accepted).await?;
    }
    let commit = match hook {
        Some(h) => h.before_commit().await,
        None => true,
    };
    tx.finish(next, commit).await?;
    Ok(commit.then_some(results))
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
        })
    }
}

/// A unique violation on (stream, sequence) is a typed conflict, never a lost write. Under the
/// sequencer lock it cannot happen; if it does (a writer bypassing the lock), the whole
/// transaction is refused as a conflict.
pub(crate) fn unique_to_conflict(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict(Conflict {
            expected: 0,
            actual: 0,
        }),
        _ => e.into(),
    }
}

/// Which key a row of the key table is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyKind {
    /// Ledger key (outer layer), versioned.
    Ledger,
    /// Retention-epoch key.
    Epoch,
    /// Subject key.
    Subject,
    /// Blind-index key.
    Index,
    /// An app's secret (signs its webhooks).
    App,
    /// A media object's own key (destroyed when the business deletes the object).
    Media,
    /// The audit log's Ed25519 signing seed.
    Audit,
}

impl KeyKind {
    /// The stored name.
    pub const fn as_str(self) -> &'static str {
        match self {
            KeyKind::Ledger => "ledger",
            KeyKind::Epoch => "epoch",
            KeyKind::Subject => "subject",
            KeyKind::Index => "index",
            KeyKind::App => "app",
            KeyKind::Media => "media",
            KeyKind::Audit => "audit",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Result<Self, StoreError> {
        match s {
            "ledger" => Ok(KeyKind::Ledger),
            "epoch" => Ok(KeyKind::Epoch),
            "subject" => Ok(KeyKind::Subject),
            "index" => Ok(KeyKind::Index),
            "app" => Ok(KeyKind::App),
            "media" => Ok(KeyKind::Media),
            "audit" => Ok(KeyKind::Audit),
            _ => Err(StoreError::Corrupt("unknown key kind")),
        }
    }
}

/// A wrapped key as stored.
#[derive(Clone, PartialEq, Eq)]
pub struct WrappedKey {
    /// `kind/region/business/...`
    pub key_id: String,
    /// Kind.
    pub kind: KeyKind,
    /// The business.
    pub business_id: String,
    /// Region code.
    pub region: String,
    /// The epoch, for epoch keys.
    pub epoch: Option<i64>,
    /// The subject, for subject keys.
    pub subject_id: Option<String>,
    /// Version (ledger keys rotate).
    pub version: u32,
    /// The key sealed under the region root key.
    pub wrapped: Vec<u8>,
    /// When it was made.
    pub created_at: i64,
}

impl fmt::Debug for WrappedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WrappedKey")
            .field("key_id", &self.key_id)
            .field("kind", &self.kind)
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

/// A stored key's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyState {
    /// It exists.
    Live(WrappedKey),
    /// It was destroyed; it will never exist again.
    Destroyed,
    /// It was never made.
    Missing,
}

/// What to destroy in one transaction.
#[derive(Debug, Clone, Default)]
pub struct Destruction {
    /// Keys to delete (tombstoned so they are never made again).
    pub key_ids: Vec<String>,
    /// Subjects whose blind-index entries and Signal sessions go with them.
    pub index_subjects: Vec<String>,
    /// When.
    pub at: i64,
}

/// Wrapped keys, tombstones and the blind index. Separate from the events.
#[async_trait]
pub trait KeyStore: Send + Sync + fmt::Debug {
    /// Inserts a key unless one with the same id exists (then returns the existing one: the
    /// first writer wins). Fails with [`StoreError::KeyDestroyed`] if the id was destroyed.
    async fn insert_if_absent(&self, key: &WrappedKey) -> Result<WrappedKey, StoreError>;

    /// Looks a key up.
    async fn get(&self, key_id: &str) -> Result<KeyState, StoreError>;

    /// The newest version of the ledger key of a business in a region.
    async fn latest_ledger(
        &self,
        business_id: &str,
        region: &str,
    ) -> Result<Option<WrappedKey>, StoreError>;

    /// When a key was destroyed (from its tombstone), `None` if it was not.
    async fn destroyed_at(&self, key_id: &str) -> Result<Option<i64>, StoreError>;

    /// Live epoch keys with epoch <= `up_to`, oldest first, at most `limit`.
    async fn expired_epochs(&self, up_to: i64, limit: u32) -> Result<Vec<WrappedKey>, StoreError>;

    /// Destroys keys and index entries in one transaction, then scrubs the storage so the
    /// wrapped bytes are gone from the database files (SQLite: secure_delete + WAL truncate;
    /// Postgres: VACUUM of the key tables). Returns how many keys were deleted.
    async fn destroy(&self, destruction: &Destruction) -> Result<u64, StoreError>;

    /// Records `blind → subject` unless the blind value is already taken; returns the subject
    /// it maps to.
    async fn index_put(
        &self,
        business_id: &str,
        region: &str,
        blind: &[u8],
        subject_id: &str,
    ) -> Result<String, StoreError>;

    /// Looks a blind value up.
    async fn index_get(
        &self,
        business_id: &str,
        region: &str,
        blind: &[u8],
    ) -> Result<Option<String>, StoreError>;

    /// Loads a wrapped Signal account by owner (a phone number id or a device handle).
    async fn signal_account(&self, owner: &str) -> Result<Option<Vec<u8>>, StoreError>;

    /// Writes (replaces) a wrapped Signal account.
    async fn put_signal_account(
        &self,
        owner: &str,
        business_id: &str,
        region: &str,
        wrapped: &[u8],
        at: i64,
    ) -> Result<(), StoreError>;

    /// Loads a sealed Signal session with one device of a subject.
    async fn signal_session(
        &self,
        business_id: &str,
        subject_id: &str,
        device: u8,
    ) -> Result<Option<Vec<u8>>, StoreError>;

    /// Writes (replaces) a sealed Signal session. Erasure deletes it with the subject's key.
    #[allow(clippy::too_many_arguments)]
    async fn put_signal_session(
        &self,
        business_id: &str,
        region: &str,
        subject_id: &str,
        device: u8,
        sealed: &[u8],
        at: i64,
    ) -> Result<(), StoreError>;
}

/// SQL shared by both backends (sqlx binds `$N` on SQLite too).
pub(crate) mod sql {
    pub const READ_STREAM: &str = "SELECT position, stream_type, stream_id, sequence, event_type, event_version, business_id, region, epoch, recorded_at, payload \
         FROM sealpost_events WHERE stream_type = $1 AND stream_id = $2 AND sequence > $3 ORDER BY sequence";
    pub const READ_ALL: &str = "SELECT position, stream_type, stream_id, sequence, event_type, event_version, business_id, region, epoch, recorded_at, payload \
         FROM sealpost_events WHERE position > $1 ORDER BY position LIMIT $2";
    pub const HEAD: &str = "SELECT COALESCE(MAX(position), 0) FROM sealpost_events";
    pub const STREAM_VERSION: &str =
        "SELECT COALESCE(MAX(sequence), 0) FROM sealpost_events WHERE stream_type = $1 AND stream_id = $2";
    pub const LOAD_SNAPSHOT: &str = "SELECT stream_type, stream_id, business_id, region, current_sequence, snapshot_version, payload \
         FROM sealpost_snapshots WHERE stream_type = $1 AND stream_id = $2";
    pub const SAVE_SNAPSHOT: &str = "INSERT INTO sealpost_snapshots (stream_type, stream_id, business_id, region, current_sequence, snapshot_version, payload) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (stream_type, stream_id) DO UPDATE SET \
         business_id = excluded.business_id, region = excluded.region, current_sequence = excluded.current_sequence, \
         snapshot_version = excluded.snapshot_version, payload = excluded.payload";
    pub const AUDIT_LEAVES: &str =
        "SELECT position, leaf_hash FROM sealpost_audit_leaves WHERE position > $1 ORDER BY position LIMIT $2";
    pub const AUDIT_PUT_LEAF: &str =
        "INSERT INTO sealpost_audit_leaves (position, leaf_hash) VALUES ($1, $2) \
         ON CONFLICT (position) DO NOTHING";
    pub const AUDIT_PUT_CHECKPOINT: &str = "INSERT INTO sealpost_audit_checkpoints (size, root, signed_at, origin, public_key, signature) \
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (size) DO NOTHING";
    pub const AUDIT_CHECKPOINTS: &str =
        "SELECT size, root, signed_at, origin, public_key, signature FROM sealpost_audit_checkpoints ORDER BY size";
    pub const LOAD_CHECKPOINT: &str = "SELECT position FROM sealpost_checkpoints WHERE name = $1";
    pub const SAVE_CHECKPOINT: &str =
        "INSERT INTO sealpost_checkpoints (name, position) VALUES ($1, $2) \
         ON CONFLICT (name) DO UPDATE SET position = excluded.position";
    pub const KEY_INSERT: &str = "INSERT INTO sealpost_keys (key_id, kind, business_id, region, epoch, subject_id, version, wrapped, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (key_id) DO NOTHING";
    pub const KEY_GET: &str = "SELECT key_id, kind, business_id, region, epoch, subject_id, version, wrapped, created_at FROM sealpost_keys WHERE key_id = $1";
    pub const KEY_TOMBSTONE: &str = "SELECT 1 FROM sealpost_destroyed_keys WHERE key_id = $1";
    pub const KEY_DESTROYED_AT: &str =
        "SELECT destroyed_at FROM sealpost_destroyed_keys WHERE key_id = $1";
    pub const KEY_LATEST_LEDGER: &str = "SELECT key_id, kind, business_id, region, epoch, subject_id, version, wrapped, created_at FROM sealpost_keys \
         WHERE kind = 'ledger' AND business_id = $1 AND region = $2 ORDER BY version DESC LIMIT 1";
    pub const KEY_EXPIRED_EPOCHS: &str = "SELECT key_id, kind, business_id, region, epoch, subject_id, version, wrapped, created_at FROM sealpost_keys \
         WHERE kind = 'epoch' AND epoch <= $1 ORDER BY epoch, key_id LIMIT $2";
    pub const KEY_DELETE: &str =
        "DELETE FROM sealpost_keys WHERE key_id = $1 RETURNING business_id, kind";
    pub const KEY_ADD_TOMBSTONE: &str = "INSERT INTO sealpost_destroyed_keys (key_id, business_id, kind, destroyed_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (key_id) DO NOTHING";
    pub const INDEX_DELETE_SUBJECT: &str =
        "DELETE FROM sealpost_subject_index WHERE subject_id = $1";
    pub const INDEX_PUT: &str = "INSERT INTO sealpost_subject_index (business_id, region, blind, subject_id) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (business_id, region, blind) DO NOTHING";
    pub const INDEX_GET: &str = "SELECT subject_id FROM sealpost_subject_index WHERE business_id = $1 AND region = $2 AND blind = $3";
    pub const SESSION_DELETE_SUBJECT: &str =
        "DELETE FROM sealpost_signal_sessions WHERE subject_id = $1";
    pub const ACCOUNT_GET: &str = "SELECT wrapped FROM sealpost_signal_accounts WHERE owner = $1";
    pub const ACCOUNT_PUT: &str = "INSERT INTO sealpost_signal_accounts (owner, business_id, region, wrapped, updated_at) VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (owner) DO UPDATE SET wrapped = excluded.wrapped, updated_at = excluded.updated_at";
    pub const SESSION_GET: &str = "SELECT sealed FROM sealpost_signal_sessions WHERE business_id = $1 AND subject_id = $2 AND device = $3";
    pub const SESSION_PUT: &str = "INSERT INTO sealpost_signal_sessions (business_id, region, subject_id, device, sealed, updated_at) VALUES ($1, $2, $3, $4, $5, $6) \
         ON CONFLICT (business_id, subject_id, device) DO UPDATE SET sealed = excluded.sealed, updated_at = excluded.updated_at";
}

/// Implements [`EventLog`] for a backend type with `reader` and `writer` pools, a
/// `BEGIN_WRITE` statement and an inherent `append_tx(tx)` that wraps its transaction in an
/// [`AppendTx`]. All SQL but the append statements is identical on both backends.
macro_rules! impl_event_log {
    ($ty:ty) => {
        #[async_trait::async_trait]
        impl $crate::store::EventLog for $ty {
            async fn append(
                &self,
                commands: &[$crate::store::AppendCommand],
                hook: Option<&dyn $crate::store::TxHook>,
            ) -> Result<$crate::store::AppendOutcome, $crate::store::StoreError> {
                let tx = self.writer.begin_with(Self::BEGIN_WRITE).await?;
                $crate::store::run_append(Self::append_tx(tx), commands, hook).await
            }

            async fn read_stream(
                &self,
                stream: &$crate::store::StreamId,
                after: u64,
            ) -> Result<Vec<$crate::store::StoredRow>, $crate::store::StoreError> {
                let rows: Vec<$crate::store::DbRow> =
                    sqlx::query_as($crate::store::sql::READ_STREAM)
                        .bind(&stream.kind)
                        .bind(&stream.id)
                        .bind(after as i64)
                        .fetch_all(&self.reader)
                        .await?;
                Ok(rows.into_iter().map(Into::into).collect())
            }

            async fn read_all(
                &self,
                after: u64,
                limit: u32,
            ) -> Result<Vec<$crate::store::StoredRow>, $crate::store::StoreError> {
                let rows: Vec<$crate::store::DbRow> = sqlx::query_as($crate::store::sql::READ_ALL)
                    .bind(after as i64)
                    .bind(i64::from(limit))
                    .fetch_all(&self.reader)
                    .await?;
                Ok(rows.into_iter().map(Into::into).collect())
            }

            async fn head(&self) -> Result<u64, $crate::store::StoreError> {
                let (h,): (i64,) = sqlx::query_as($crate::store::sql::HEAD)
                    .fetch_one(&self.reader)
                    .await?;
                Ok(h as u64)
            }

            async fn stream_version(
                &self,
                stream: &$crate::store::StreamId,
            ) -> Result<u64, $crate::store::StoreError> {
                let (v,): (i64,) = sqlx::query_as($crate::store::sql::STREAM_VERSION)
                    .bind(&stream.kind)
                    .bind(&stream.id)
                    .fetch_one(&self.reader)
                    .await?;
                Ok(v as u64)
            }

            async fn load_snapshot(
                &self,
                stream: &$crate::store::StreamId,
            ) -> Result<Option<$crate::store::SnapshotRow>, $crate::store::StoreError> {
                let row: Option<$crate::store::DbSnapshot> =
                    sqlx::query_as($crate::store::sql::LOAD_SNAPSHOT)
                        .bind(&stream.kind)
                        .bind(&stream.id)
                        .fetch_optional(&self.reader)
                        .await?;
                Ok(row.map(Into::into))
            }

            async fn save_snapshot(
                &self,
                s: &$crate::store::SnapshotRow,
            ) -> Result<(), $crate::store::StoreError> {
                sqlx::query($crate::store::sql::SAVE_SNAPSHOT)
                    .bind(&s.stream.kind)
                    .bind(&s.stream.id)
                    .bind(&s.business_id)
                    .bind(&s.region)
                    .bind(s.current_sequence as i64)
                    .bind(s.snapshot_version as i64)
                    .bind(&s.payload)
                    .execute(&self.writer)
                    .await?;
                Ok(())
            }

            async fn load_checkpoint(&self, name: &str) -> Result<u64, $crate::store::StoreError> {
                let row: Option<(i64,)> = sqlx::query_as($crate::store::sql::LOAD_CHECKPOINT)
                    .bind(name)
                    .fetch_optional(&self.reader)
                    .await?;
                Ok(row.map_or(0, |(p,)| p as u64))
            }

            async fn save_checkpoint(
                &self,
                name: &str,
                position: u64,
            ) -> Result<(), $crate::store::StoreError> {
                sqlx::query($crate::store::sql::SAVE_CHECKPOINT)
                    .bind(name)
                    .bind(position as i64)
                    .execute(&self.writer)
                    .await?;
                Ok(())
            }

            async fn audit_leaves(
                &self,
                after: u64,
                limit: u32,
            ) -> Result<Vec<$crate::store::AuditLeaf>, $crate::store::StoreError> {
                let rows: Vec<(i64, Vec<u8>)> = sqlx::query_as($crate::store::sql::AUDIT_LEAVES)
                    .bind(after as i64)
                    .bind(i64::from(limit))
                    .fetch_all(&self.reader)
                    .await?;
                rows.into_iter()
                    .map(|(position, hash)| {
                        Ok($crate::store::AuditLeaf {
                            position: position as u64,
                            hash: hash.try_into().map_err(|_| {
                                $crate::store::StoreError::Corrupt("leaf hash length")
                            })?,
                        })
                    })
                    .collect()
            }

            async fn audit_append_leaves(
                &self,
                leaves: &[$crate::store::AuditLeaf],
            ) -> Result<(), $crate::store::StoreError> {
                let mut tx = self.writer.begin_with(Self::BEGIN_WRITE).await?;
                for leaf in leaves {
                    sqlx::query($crate::store::sql::AUDIT_PUT_LEAF)
                        .bind(leaf.position as i64)
                        .bind(&leaf.hash[..])
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                Ok(())
            }

            async fn audit_put_checkpoint(
                &self,
                c: &$crate::store::CheckpointRow,
            ) -> Result<(), $crate::store::StoreError> {
                sqlx::query($crate::store::sql::AUDIT_PUT_CHECKPOINT)
                    .bind(c.size as i64)
                    .bind(&c.root)
                    .bind(c.signed_at)
                    .bind(&c.origin)
                    .bind(&c.public_key)
                    .bind(&c.signature)
                    .execute(&self.writer)
                    .await?;
                Ok(())
            }

            async fn audit_checkpoints(
                &self,
            ) -> Result<Vec<$crate::store::CheckpointRow>, $crate::store::StoreError> {
                let rows: Vec<(i64, Vec<u8>, i64, String, Vec<u8>, Vec<u8>)> =
                    sqlx::query_as($crate::store::sql::AUDIT_CHECKPOINTS)
                        .fetch_all(&self.reader)
                        .await?;
                Ok(rows
                    .into_iter()
                    .map(|(size, root, signed_at, origin, public_key, signature)| {
                        $crate::store::CheckpointRow {
                            size: size as u64,
                            root,
                            signed_at,
                            origin,
                            public_key,
                            signature,
                        }
                    })
                    .collect())
            }
        }
    };
}
pub(crate) use impl_event_log;

/// Implements [`KeyStore`] for a backend type with `reader` and `writer` pools, a
/// `BEGIN_WRITE` statement and an inherent `scrub()` that removes deleted bytes from storage.
macro_rules! impl_key_store {
    ($ty:ty) => {
        #[async_trait::async_trait]
        impl $crate::store::KeyStore for $ty {
            async fn insert_if_absent(
                &self,
                key: &$crate::store::WrappedKey,
            ) -> Result<$crate::store::WrappedKey, $crate::store::StoreError> {
                let mut tx = self.writer.begin_with(Self::BEGIN_WRITE).await?;
                let row = $crate::store::insert_key_in_tx!(tx, key);
                tx.commit().await?;
                row.try_into()
            }

            async fn destroyed_at(
                &self,
                key_id: &str,
            ) -> Result<Option<i64>, $crate::store::StoreError> {
                let row: Option<(i64,)> = sqlx::query_as($crate::store::sql::KEY_DESTROYED_AT)
                    .bind(key_id)
                    .fetch_optional(&self.reader)
                    .await?;
                Ok(row.map(|(at,)| at))
            }

            async fn destroy(
                &self,
                d: &$crate::store::Destruction,
            ) -> Result<u64, $crate::store::StoreError> {
                let mut tx = self.writer.begin_with(Self::BEGIN_WRITE).await?;
                let deleted = $crate::store::destroy_in_tx!(tx, d);
                tx.commit().await?;
                self.scrub().await?;
                Ok(deleted)
            }

            async fn get(
                &self,
                key_id: &str,
            ) -> Result<$crate::store::KeyState, $crate::store::StoreError> {
                let row: Option<$crate::store::DbKey> = sqlx::query_as($crate::store::sql::KEY_GET)
                    .bind(key_id)
                    .fetch_optional(&self.reader)
                    .await?;
                if let Some(row) = row {
                    return Ok($crate::store::KeyState::Live(row.try_into()?));
                }
                let tomb: Option<(i32,)> = sqlx::query_as($crate::store::sql::KEY_TOMBSTONE)
                    .bind(key_id)
                    .fetch_optional(&self.reader)
                    .await?;
                Ok(if tomb.is_some() {
                    $crate::store::KeyState::Destroyed
                } else {
                    $crate::store::KeyState::Missing
                })
            }

            async fn latest_ledger(
                &self,
                business_id: &str,
                region: &str,
            ) -> Result<Option<$crate::store::WrappedKey>, $crate::store::StoreError> {
                let row: Option<$crate::store::DbKey> =
                    sqlx::query_as($crate::store::sql::KEY_LATEST_LEDGER)
                        .bind(business_id)
                        .bind(region)
                        .fetch_optional(&self.reader)
                        .await?;
                row.map(TryInto::try_into).transpose()
            }

            async fn expired_epochs(
                &self,
                up_to: i64,
                limit: u32,
            ) -> Result<Vec<$crate::store::WrappedKey>, $crate::store::StoreError> {
                let rows: Vec<$crate::store::DbKey> =
                    sqlx::query_as($crate::store::sql::KEY_EXPIRED_EPOCHS)
                        .bind(up_to)
                        .bind(i64::from(limit))
                        .fetch_all(&self.reader)
                        .await?;
                rows.into_iter().map(TryInto::try_into).collect()
            }

            async fn index_put(
                &self,
                business_id: &str,
                region: &str,
                blind: &[u8],
                subject_id: &str,
            ) -> Result<String, $crate::store::StoreError> {
                sqlx::query($crate::store::sql::INDEX_PUT)
                    .bind(business_id)
                    .bind(region)
                    .bind(blind)
                    .bind(subject_id)
                    .execute(&self.writer)
                    .await?;
                let (s,): (String,) = sqlx::query_as($crate::store::sql::INDEX_GET)
                    .bind(business_id)
                    .bind(region)
                    .bind(blind)
                    .fetch_one(&self.writer)
                    .await?;
                Ok(s)
            }

            async fn index_get(
                &self,
                business_id: &str,
                region: &str,
                blind: &[u8],
            ) -> Result<Option<String>, $crate::store::StoreError> {
                let row: Option<(String,)> = sqlx::query_as($crate::store::sql::INDEX_GET)
                    .bind(business_id)
                    .bind(region)
                    .bind(blind)
                    .fetch_optional(&self.reader)
                    .await?;
                Ok(row.map(|(s,)| s))
            }

            async fn signal_account(
                &self,
                owner: &str,
            ) -> Result<Option<Vec<u8>>, $crate::store::StoreError> {
                let row: Option<(Vec<u8>,)> = sqlx::query_as($crate::store::sql::ACCOUNT_GET)
                    .bind(owner)
                    .fetch_optional(&self.reader)
                    .await?;
                Ok(row.map(|(w,)| w))
            }

            async fn put_signal_account(
                &self,
                owner: &str,
                business_id: &str,
                region: &str,
                wrapped: &[u8],
                at: i64,
            ) -> Result<(), $crate::store::StoreError> {
                sqlx::query($crate::store::sql::ACCOUNT_PUT)
                    .bind(owner)
                    .bind(business_id)
                    .bind(region)
                    .bind(wrapped)
                    .bind(at)
                    .execute(&self.writer)
                    .await?;
                Ok(())
            }

            async fn signal_session(
                &self,
                business_id: &str,
                subject_id: &str,
                device: u8,
            ) -> Result<Option<Vec<u8>>, $crate::store::StoreError> {
                let row: Option<(Vec<u8>,)> = sqlx::query_as($crate::store::sql::SESSION_GET)
                    .bind(business_id)
                    .bind(subject_id)
                    .bind(i32::from(device))
                    .fetch_optional(&self.reader)
                    .await?;
                Ok(row.map(|(s,)| s))
            }

            async fn put_signal_session(
                &self,
                business_id: &str,
                region: &str,
                subject_id: &str,
                device: u8,
                sealed: &[u8],
                at: i64,
            ) -> Result<(), $crate::store::StoreError> {
                sqlx::query($crate::store::sql::SESSION_PUT)
                    .bind(business_id)
                    .bind(region)
                    .bind(subject_id)
                    .bind(i32::from(device))
                    .bind(sealed)
                    .bind(at)
                    .execute(&self.writer)
                    .await?;
                Ok(())
            }
        }
    };
}
pub(crate) use impl_key_store;

/// Inserts a key unless present, inside a transaction that first checks the tombstones.
macro_rules! insert_key_in_tx {
    ($tx:expr, $key:expr) => {{
        let tomb: Option<(i32,)> = sqlx::query_as($crate::store::sql::KEY_TOMBSTONE)
            .bind(&$key.key_id)
            .fetch_optional(&mut *$tx)
            .await?;
        if tomb.is_some() {
            return Err($crate::store::StoreError::KeyDestroyed);
        }
        sqlx::query($crate::store::sql::KEY_INSERT)
            .bind(&$key.key_id)
            .bind($key.kind.as_str())
            .bind(&$key.business_id)
            .bind(&$key.region)
            .bind($key.epoch)
            .bind(&$key.subject_id)
            .bind($key.version as i32)
            .bind(&$key.wrapped)
            .bind($key.created_at)
            .execute(&mut *$tx)
            .await?;
        let row: $crate::store::DbKey = sqlx::query_as($crate::store::sql::KEY_GET)
            .bind(&$key.key_id)
            .fetch_one(&mut *$tx)
            .await?;
        row
    }};
}
pub(crate) use insert_key_in_tx;

/// Deletes keys, writes their tombstones and drops index entries inside a transaction;
/// evaluates to the number of keys deleted.
macro_rules! destroy_in_tx {
    ($tx:expr, $d:expr) => {{
        let mut deleted = 0u64;
        for key_id in &$d.key_ids {
            let row: Option<(String, String)> = sqlx::query_as($crate::store::sql::KEY_DELETE)
                .bind(key_id)
                .fetch_optional(&mut *$tx)
                .await?;
            if let Some((business_id, kind)) = row {
                deleted += 1;
                sqlx::query($crate::store::sql::KEY_ADD_TOMBSTONE)
                    .bind(key_id)
                    .bind(business_id)
                    .bind(kind)
                    .bind($d.at)
                    .execute(&mut *$tx)
                    .await?;
            }
        }
        for subject in &$d.index_subjects {
            sqlx::query($crate::store::sql::INDEX_DELETE_SUBJECT)
                .bind(subject)
                .execute(&mut *$tx)
                .await?;
            sqlx::query($crate::store::sql::SESSION_DELETE_SUBJECT)
                .bind(subject)
                .execute(&mut *$tx)
                .await?;
        }
        deleted
    }};
}
pub(crate) use destroy_in_tx;

/// The event log and key store of one deployment.
#[derive(Debug, Clone)]
pub struct Stores {
    /// Events.
    pub events: std::sync::Arc<dyn EventLog>,
    /// Keys.
    pub keys: std::sync::Arc<dyn KeyStore>,
    /// Which backend: `sqlite` or `postgres`.
    pub backend: &'static str,
}

impl Stores {
    /// The embedded default: `events.db` and `keys.db` in `dir` (created if needed).
    pub async fn sqlite(dir: &std::path::Path) -> Result<Self, StoreError> {
        crate::files::create_private_dir_all(dir)
            .map_err(|e| StoreError::Database(format!("data directory: {}", e.kind())))?;
        let events = sqlite::SqliteEventLog::open(dir).await?;
        let keys = sqlite::SqliteKeyStore::open(dir).await?;
        Ok(Self {
            events: std::sync::Arc::new(events),
            keys: std::sync::Arc::new(keys),
            backend: "sqlite",
        })
    }

    /// Postgres: both on one migrated pool.
    pub fn postgres(pool: sqlx::PgPool) -> Self {
        let store = std::sync::Arc::new(postgres::PostgresStore::new(pool));
        Self {
            events: store.clone(),
            keys: store,
            backend: "postgres",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlstates_and_result_codes_are_classified() {
        for code in [
            "08000", "08001", "08003", "08006", "57P01", "57P02", "57P03", "53300",
        ] {
            assert!(pg_state_unavailable(code), "{code}");
        }
        for code in ["42601", "23505", "40001", "XX000", "57014"] {
            assert!(!pg_state_unavailable(code), "{code}");
        }
        // BUSY, BUSY_RECOVERY, BUSY_SNAPSHOT, LOCKED, LOCKED_SHAREDCACHE.
        for code in ["5", "261", "517", "6", "262"] {
            assert!(sqlite_code_unavailable(code), "{code}");
        }
        for code in ["1", "19", "2067", "11", "26", "x"] {
            assert!(!sqlite_code_unavailable(code), "{code}");
        }
        assert!(sqlite_code_corrupt("11") && sqlite_code_corrupt("26"));
        assert!(!sqlite_code_corrupt("5"));
    }

    #[test]
    fn connection_failures_are_unavailable_and_the_rest_is_not() {
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        for e in [
            sqlx::Error::Io(refused),
            sqlx::Error::PoolTimedOut,
            sqlx::Error::PoolClosed,
        ] {
            assert!(StoreError::from(e).is_unavailable());
        }
        for e in [
            sqlx::Error::RowNotFound,
            sqlx::Error::ColumnNotFound("c".into()),
            sqlx::Error::Protocol("bad".into()),
        ] {
            assert!(matches!(StoreError::from(e), StoreError::Database(_)));
        }
        assert!(!StoreError::Corrupt("x").is_unavailable());
        assert!(!StoreError::KeyDestroyed.is_unavailable());
    }
}
