//! Event and key storage: the ports and their SQLite and Postgres adapters.
//!
//! Layers, bottom up:
//! * [`EventLog`] — raw rows with sealed payloads: gap-safe global order, optimistic
//!   concurrency per stream, many commands per transaction. Implemented by
//!   [`sqlite::SqliteEventLog`] and [`postgres::PostgresStore`].
//! * [`Leases`] — one owner at a time for background work across nodes, with fencing.
//! * [`KeyStore`] — wrapped keys, destroyed-key tombstones and the blind routing index, in a
//!   table (SQLite: a file) separate from the events.
//! * [`crate::ledger::EventStore`] — seals and opens payloads, batches appends through the group
//!   committer, and offers catch-up subscriptions; [`crate::repository::SealedRepository`]
//!   puts `cqrs-es` on top of it.

mod append;
mod error;
mod event_log;
pub mod evidence;
mod key_store;
pub mod leaf;
mod lease;
pub mod postgres;
pub(crate) mod sql;
mod sql_event_log;
pub(crate) mod sql_evidence;
mod sql_key_store;
pub(crate) mod sql_lease;
pub mod sqlite;

pub(crate) use append::{run_append, unique_to_conflict, AppendTx};
pub use error::{Conflict, StoreError};
pub use event_log::{
    AppendCommand, AppendOutcome, AuditLeaf, AuditNode, CheckpointRow, EventLog, NewRow, RowHeader,
    SnapshotRow, StoredRow, StreamId, TxHook,
};
pub use evidence::{
    AccessEntry, AccessQuery, BillingKey, DayKeys, ErasureFact, EvidenceRows, EvidenceWrite,
    MessageFacts, MessageTotals, Shred, StatCount, StatKey, SubjectTag,
};
pub use key_store::{Destruction, KeyKind, KeyState, KeyStore, OfBusiness, SessionRow, WrappedKey};
pub use lease::{Fence, Lease, LeaseRow, Leases};
pub(crate) use sql::{DbKey, DbRow, DbSnapshot};
pub(crate) use sql_event_log::{impl_event_log, put_leaves_in_tx};
pub(crate) use sql_evidence::impl_evidence_rows;
pub(crate) use sql_key_store::{destroy_in_tx, impl_key_store, insert_key_in_tx};
pub(crate) use sql_lease::impl_leases;

/// The event log and key store of one deployment.
#[derive(Debug, Clone)]
pub struct Stores {
    /// Events.
    pub events: std::sync::Arc<dyn EventLog>,
    /// Keys.
    pub keys: std::sync::Arc<dyn KeyStore>,
    /// The evidence projections' rows (beside the events).
    pub evidence: std::sync::Arc<dyn EvidenceRows>,
    /// Leases on background work (beside the events; ADR 0016).
    pub leases: std::sync::Arc<dyn Leases>,
    /// Which backend: `sqlite` or `postgres`.
    pub backend: &'static str,
}

impl Stores {
    /// The embedded default: `events.db` and `keys.db` in `dir` (created if needed).
    pub async fn sqlite(dir: &std::path::Path) -> Result<Self, StoreError> {
        crate::files::create_private_dir_all(dir)
            .map_err(|e| StoreError::Database(format!("data directory: {}", e.kind())))?;
        let events = std::sync::Arc::new(sqlite::SqliteEventLog::open(dir).await?);
        let keys = sqlite::SqliteKeyStore::open(dir).await?;
        Ok(Self {
            evidence: events.clone(),
            leases: events.clone(),
            events,
            keys: std::sync::Arc::new(keys),
            backend: "sqlite",
        })
    }

    /// Postgres: both on one migrated pool.
    pub fn postgres(pool: sqlx::PgPool) -> Self {
        let store = std::sync::Arc::new(postgres::PostgresStore::new(pool));
        Self {
            events: store.clone(),
            evidence: store.clone(),
            leases: store.clone(),
            keys: store,
            backend: "postgres",
        }
    }
}
