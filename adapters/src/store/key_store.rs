//! The [`KeyStore`] port: wrapped keys, destroyed-key tombstones, the blind routing index and
//! stored Signal state, with the key types ([`KeyKind`], [`WrappedKey`], [`KeyState`]).

use super::StoreError;
use async_trait::async_trait;
use std::fmt;

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
    /// The generation of the region's root key it is wrapped under (ADR 0025).
    pub root: u32,
}

impl fmt::Debug for WrappedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WrappedKey")
            .field("key_id", &self.key_id)
            .field("kind", &self.kind)
            .field("version", &self.version)
            .field("root", &self.root)
            .finish_non_exhaustive()
    }
}

/// Which table a row wrapped under a region root key is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnderRoot {
    /// A wrapped key (`id` is its key id).
    Key,
    /// A Signal account (`id` is its owner).
    Account,
}

/// A row wrapped directly under a region's root key, as the rewrap after a root-key rotation
/// reads and rewrites it (ADR 0025).
#[derive(Clone, PartialEq, Eq)]
pub struct RootSealed {
    /// Its table.
    pub table: UnderRoot,
    /// The business.
    pub business_id: String,
    /// The key id or the account's owner.
    pub id: String,
    /// Region code.
    pub region: String,
    /// The root-key generation it is wrapped under.
    pub generation: u32,
    /// The wrapped bytes.
    pub sealed: Vec<u8>,
}

impl fmt::Debug for RootSealed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RootSealed")
            .field("table", &self.table)
            .field("region", &self.region)
            .field("generation", &self.generation)
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

/// A key or a subject as the key store addresses it: the business it belongs to (the
/// distribution key every query names, ADR 0018) and its id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OfBusiness {
    /// The business.
    pub business: String,
    /// The key's or subject's id.
    pub id: String,
}

impl OfBusiness {
    /// `id` of `business`.
    pub fn new(business: impl Into<String>, id: impl Into<String>) -> Self {
        Self {
            business: business.into(),
            id: id.into(),
        }
    }
}

/// What to destroy in one transaction (retention's may span businesses).
#[derive(Debug, Clone, Default)]
pub struct Destruction {
    /// Keys to delete (tombstoned so they are never made again).
    pub keys: Vec<OfBusiness>,
    /// Subjects whose blind-index entries and Signal sessions go with them.
    pub index_subjects: Vec<OfBusiness>,
    /// When.
    pub at: i64,
}

/// Wrapped keys, tombstones and the blind index (and media chunks, [`super::MediaChunks`]).
/// Separate from the events.
#[async_trait]
pub trait KeyStore: super::MediaChunks + Send + Sync + fmt::Debug {
    /// Inserts a key unless one with the same id exists (then returns the existing one: the
    /// first writer wins). Fails with [`StoreError::KeyDestroyed`] if the id was destroyed.
    async fn insert_if_absent(&self, key: &WrappedKey) -> Result<WrappedKey, StoreError>;

    /// Looks a key of `business` up.
    async fn get(&self, business: &str, key_id: &str) -> Result<KeyState, StoreError>;

    /// The newest version of the ledger key of a business in a region.
    async fn latest_ledger(
        &self,
        business_id: &str,
        region: &str,
    ) -> Result<Option<WrappedKey>, StoreError>;

    /// When a key of `business` was destroyed (from its tombstone), `None` if it was not.
    async fn destroyed_at(&self, business: &str, key_id: &str) -> Result<Option<i64>, StoreError>;

    /// The newest ledger-key version of every business in every region.
    async fn ledger_heads(&self) -> Result<Vec<WrappedKey>, StoreError>;

    /// Live epoch keys with epoch <= `up_to`, oldest first, at most `limit`.
    async fn expired_epochs(&self, up_to: i64, limit: u32) -> Result<Vec<WrappedKey>, StoreError>;

    /// Destroys keys and index entries in one transaction: from its commit on, nothing opens
    /// them. Their bytes leave the database files at the next [`KeyStore::scrub`]. Returns how
    /// many keys were deleted.
    async fn destroy(&self, destruction: &Destruction) -> Result<u64, StoreError>;

    /// Removes the bytes of destroyed keys and index entries from the database files (SQLite:
    /// secure_delete + WAL truncate; Postgres: `VACUUM FULL` of the key and index tables).
    /// Sessions need none: they are sealed under the subject key destroyed with them.
    async fn scrub(&self) -> Result<(), StoreError>;

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

    /// Loads a wrapped Signal account of `business` in `region` by owner (a phone number id or
    /// a device handle), with the root-key generation it is wrapped under.
    async fn signal_account(
        &self,
        business: &str,
        region: &str,
        owner: &str,
    ) -> Result<Option<(u32, Vec<u8>)>, StoreError>;

    /// Writes (replaces) a Signal account wrapped under root-key generation `generation`.
    async fn put_signal_account(
        &self,
        owner: &str,
        business_id: &str,
        region: &str,
        (generation, wrapped): (u32, &[u8]),
        at: i64,
    ) -> Result<(), StoreError>;

    /// The current generation of `region`'s root key and since when it is (ms), `None` before
    /// any rotation (generation 1 then). The home store's record serves every region.
    async fn root_generation(&self, region: &str) -> Result<Option<(u32, i64)>, StoreError>;

    /// Records `generation` as `region`'s current root-key generation from `at`, unless a later
    /// one is recorded.
    async fn set_root_generation(
        &self,
        region: &str,
        generation: u32,
        at: i64,
    ) -> Result<(), StoreError>;

    /// Up to `limit` rows of `table` of `region`, of every business, wrapped under root-key
    /// generation `generation`, with ids after `after`, in id order (what a rewrap still has
    /// to do, batch by batch).
    async fn under_root(
        &self,
        region: &str,
        (generation, table): (u32, UnderRoot),
        after: &str,
        limit: u32,
    ) -> Result<Vec<RootSealed>, StoreError>;

    /// How many keys and accounts of `region` are wrapped under a root-key generation below
    /// `below`, of every business.
    async fn count_under_root(&self, region: &str, below: u32) -> Result<u64, StoreError>;

    /// Replaces `row`'s wrapped bytes with `sealed`, wrapped under `generation`, unless the row
    /// changed or went since it was read; whether it was replaced.
    async fn rewrap(
        &self,
        row: &RootSealed,
        generation: u32,
        sealed: &[u8],
    ) -> Result<bool, StoreError>;

    /// Deletes the Signal account of `owner` stored for `region` (a number that moved to another
    /// region leaves none behind); an account since stored for another region stays.
    async fn delete_signal_account(
        &self,
        business: &str,
        region: &str,
        owner: &str,
    ) -> Result<(), StoreError>;

    /// Loads a sealed Signal session with one device of a subject of `business_id` in `region`.
    async fn signal_session(
        &self,
        business_id: &str,
        region: &str,
        subject_id: &str,
        device: u8,
    ) -> Result<Option<Vec<u8>>, StoreError>;

    /// Writes (replaces) sealed Signal sessions, all in one transaction. Erasure deletes them
    /// with the subject's key. With a `fence`, nothing is written ([`StoreError::Fenced`])
    /// unless its lease is still held at its epoch, checked in the same transaction.
    async fn put_signal_sessions(
        &self,
        sessions: &[SessionRow],
        fence: Option<&super::Fence>,
    ) -> Result<(), StoreError>;
}

/// One sealed Signal session to write: a subject's session with one device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRow {
    /// The business.
    pub business_id: String,
    /// Its region code.
    pub region: String,
    /// The subject (consumer).
    pub subject_id: String,
    /// The consumer's device.
    pub device: u8,
    /// The session, sealed under the subject key.
    pub sealed: Vec<u8>,
    /// When it was written (ms).
    pub at: i64,
}
