//! The [`EventLog`] port: raw rows with sealed payloads in one gap-free global order, and the
//! types it speaks (streams, rows, append commands, snapshots, audit leaves and checkpoints).

use super::{Conflict, StoreError};
use async_trait::async_trait;
use futures::future::BoxFuture;
use std::fmt;

/// A stream: the business it belongs to, aggregate type and aggregate id. The business is part
/// of every stream's key, so every read of a stream names it (the distribution key a sharded
/// Postgres routes by, ADR 0018); the deployment's own streams belong to
/// [`DEPLOYMENT`](sealpost_domain::DEPLOYMENT).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StreamId {
    /// The business (distribution key).
    pub business: String,
    /// Aggregate type (`message`, `subject`, …).
    pub kind: String,
    /// Aggregate id (random).
    pub id: String,
}

impl StreamId {
    /// The stream `kind`/`id` of `business`.
    pub fn new(
        business: impl Into<String>,
        kind: impl Into<String>,
        id: impl Into<String>,
    ) -> Self {
        Self {
            business: business.into(),
            kind: kind.into(),
            id: id.into(),
        }
    }

    /// A stream of the deployment's own (no business's).
    pub fn deployment(kind: impl Into<String>, id: impl Into<String>) -> Self {
        Self::new(sealpost_domain::DEPLOYMENT, kind, id)
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.business, self.kind, self.id)
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
    /// The business (distribution key): the stream's.
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

    /// Every row of `business`'s streams of type `kind` named by `ids`, in one query: grouped
    /// by stream, each stream in sequence order (streams with no rows are absent).
    async fn read_streams(
        &self,
        business: &str,
        kind: &str,
        ids: &[String],
    ) -> Result<Vec<StoredRow>, StoreError>;

    /// Up to `limit` rows with position > `after`, in order. Never skips a row that commits
    /// later with a smaller position: positions are assigned in commit order.
    async fn read_all(&self, after: u64, limit: u32) -> Result<Vec<StoredRow>, StoreError>;

    /// Up to `limit` rows of streams of type `kind` with position > `after`, in order: how a
    /// node follows a rare kind (tokens) written by the others without paging the whole log.
    async fn read_kind(
        &self,
        kind: &str,
        after: u64,
        limit: u32,
    ) -> Result<Vec<StoredRow>, StoreError>;

    /// Up to `limit` rows whose event type is one of `types`, with position > `after`, in
    /// order: how a subscriber that follows a few event types reads the log without carrying
    /// every other row out of the database.
    async fn read_types(
        &self,
        after: u64,
        types: &[&str],
        limit: u32,
    ) -> Result<Vec<StoredRow>, StoreError>;

    /// The rows at `positions` (at most a few hundred), in position order; a position with no
    /// row is absent. How a Local Storage region's bodies are fetched for the home rows that
    /// reference them.
    async fn read_positions(&self, positions: &[u64]) -> Result<Vec<StoredRow>, StoreError>;

    /// The highest committed position (0 when empty).
    async fn head(&self) -> Result<u64, StoreError>;

    /// The business the stream `kind`/`id` belongs to, `None` if it has no events: a lookup
    /// across businesses, for a caller that holds an id and no business (ADR 0018).
    async fn business_of(&self, kind: &str, id: &str) -> Result<Option<String>, StoreError>;

    /// The current version (last sequence) of a stream, 0 if it has no events.
    async fn stream_version(&self, stream: &StreamId) -> Result<u64, StoreError>;

    /// Loads a snapshot.
    async fn load_snapshot(&self, stream: &StreamId) -> Result<Option<SnapshotRow>, StoreError>;

    /// Writes (replaces) a snapshot.
    async fn save_snapshot(&self, snapshot: &SnapshotRow) -> Result<(), StoreError>;

    /// A subscriber's durable checkpoint (0 if none).
    async fn load_checkpoint(&self, name: &str) -> Result<u64, StoreError>;

    /// Saves a subscriber's checkpoint. With a `fence`, nothing is written
    /// ([`StoreError::Fenced`]) unless its lease is still held at its epoch, checked in the same
    /// transaction.
    async fn save_checkpoint(
        &self,
        name: &str,
        position: u64,
        fence: Option<&super::Fence>,
    ) -> Result<(), StoreError>;

    /// Leaves of the tamper-evident log with position > `after`, in order, at most `limit`.
    async fn audit_leaves(&self, after: u64, limit: u32) -> Result<Vec<AuditLeaf>, StoreError>;

    /// How many leaves the tamper-evident log has (the highest position recorded).
    async fn audit_size(&self) -> Result<u64, StoreError>;

    /// Stored subtree roots of height `level` with index ≥ `from`, in order, at most `limit`.
    async fn audit_nodes(
        &self,
        level: u32,
        from: u64,
        limit: u32,
    ) -> Result<Vec<AuditNode>, StoreError>;

    /// Records leaves and the subtree roots they complete, in one transaction (a position
    /// already recorded keeps its first hash; a node is replaced).
    async fn audit_append_leaves(
        &self,
        leaves: &[AuditLeaf],
        nodes: &[AuditNode],
    ) -> Result<(), StoreError>;

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

/// The stored root of a perfect subtree of the tamper-evident log (heights 8, 16, …).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditNode {
    /// Height of the subtree.
    pub level: u32,
    /// Its place among the subtrees of that height, from 0.
    pub index: u64,
    /// RFC 6962 hash of the subtree.
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
    /// A key hand-over (ADR 0026): the public key handed over from and its signature over the
    /// same text; `None` on every other checkpoint.
    pub handover: Option<(Vec<u8>, Vec<u8>)>,
}
