//! Event and key storage: the ports and their SQLite and Postgres adapters.
//!
//! Layers, bottom up:
//! * [`EventLog`] — raw rows with sealed payloads: gap-safe global order, optimistic
//!   concurrency per stream, many commands per transaction. Implemented by
//!   [`sqlite::SqliteEventLog`] and [`postgres::PostgresStore`].
//! * [`Leases`] — one owner at a time for background work across nodes, with fencing.
//! * [`KeyStore`] — wrapped keys, destroyed-key tombstones and the blind routing index, in a
//!   table (SQLite: a file) separate from the events; [`RegionalKeys`] keeps each Local Storage
//!   region's in that region's own store ([`region`], ADR 0019).
//! * [`MediaChunks`] — media objects' sealed chunks, beside the keys (routed the same way).
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
pub(crate) mod media_chunks;
pub mod postgres;
pub mod region;
mod regional_keys;
mod regional_leases;
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
pub use key_store::{
    Destruction, KeyKind, KeyState, KeyStore, OfBusiness, RootSealed, SessionRow, UnderRoot,
    WrappedKey,
};
pub use lease::{Fence, Lease, LeaseRow, Leases};
pub(crate) use media_chunks::impl_media_chunks;
pub use media_chunks::{ChunkRow, MediaChunks};
pub use region::{RegionLayout, RegionRegistry, RegionStores};
pub use regional_keys::RegionalKeys;
pub use regional_leases::RegionalLeases;
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
    /// Keys: the home store's, and each Local Storage region's in its own store.
    pub keys: std::sync::Arc<dyn KeyStore>,
    /// The evidence projections' rows (beside the events).
    pub evidence: std::sync::Arc<dyn EvidenceRows>,
    /// Leases on background work (beside the events; ADR 0016).
    pub leases: std::sync::Arc<dyn Leases>,
    /// The stores of the Local Storage regions.
    pub regions: std::sync::Arc<RegionStores>,
    /// Where the home store is (a directory, or a Postgres database and host).
    pub home: String,
    /// Which backend: `sqlite` or `postgres`.
    pub backend: &'static str,
}

impl Stores {
    /// The embedded default: `events.db` and `keys.db` in `dir` (created if needed), and each
    /// Local Storage region's `keys.db` under `dir/regions/<CODE>/`.
    pub async fn sqlite(dir: &std::path::Path) -> Result<Self, StoreError> {
        crate::files::create_private_dir_all(dir)
            .map_err(|e| StoreError::Database(format!("data directory: {}", e.kind())))?;
        let events = std::sync::Arc::new(sqlite::SqliteEventLog::open(dir).await?);
        let keys = std::sync::Arc::new(sqlite::SqliteKeyStore::open(dir).await?);
        let layout = RegionLayout::Sqlite {
            data_dir: dir.to_owned(),
        };
        Ok(Self::assemble(
            events.clone(),
            keys,
            events.clone(),
            events.clone(),
            events,
            (layout, dir.display().to_string()),
            "sqlite",
        ))
    }

    /// Postgres: both on one migrated pool; each Local Storage region's keys in the database
    /// (or schema) `regions` names.
    pub fn postgres(pool: sqlx::PgPool, regions: RegionLayout) -> Self {
        let options = pool.connect_options();
        let home = format!(
            "Postgres database {} on {}",
            options.get_database().unwrap_or("postgres"),
            options.get_host()
        );
        let store = std::sync::Arc::new(postgres::PostgresStore::new(pool));
        Self::assemble(
            store.clone(),
            store.clone(),
            store.clone(),
            store.clone(),
            store,
            (regions, home),
            "postgres",
        )
    }

    fn assemble(
        events: std::sync::Arc<dyn EventLog>,
        keys: std::sync::Arc<dyn KeyStore>,
        evidence: std::sync::Arc<dyn EvidenceRows>,
        leases: std::sync::Arc<dyn Leases>,
        registry: std::sync::Arc<dyn RegionRegistry>,
        (layout, home): (RegionLayout, String),
        backend: &'static str,
    ) -> Self {
        let regions = std::sync::Arc::new(RegionStores::new(layout, registry, leases.clone()));
        Self {
            home,
            keys: std::sync::Arc::new(RegionalKeys::new(keys, regions.clone())),
            events,
            evidence,
            leases: std::sync::Arc::new(RegionalLeases::new(leases, regions.clone())),
            regions,
            backend,
        }
    }
}

/// One physical store of a deployment, as the reports and `audit verify` name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhysicalStore {
    /// The Local Storage region whose own store it is; `None` for the home store.
    pub region: Option<sealpost_domain::Region>,
    /// Where it is (a directory, or a Postgres database or schema and host; no credentials).
    pub location: String,
    /// What it holds.
    pub holds: &'static str,
}

impl Stores {
    /// The physical stores as they are now: the home store, then each Local Storage region's
    /// that exists, with where it was created.
    pub async fn layout(&self) -> Result<Vec<PhysicalStore>, StoreError> {
        let mut all = vec![PhysicalStore {
            region: None,
            location: self.home.clone(),
            holds: region::HELD_AT_HOME,
        }];
        for (region, location) in self.regions.recorded().await? {
            all.push(PhysicalStore {
                region: Some(region),
                location,
                holds: region::HELD_IN_REGION,
            });
        }
        Ok(all)
    }
}
