//! The [`Leases`] port: background work that must have one owner at a time across nodes
//! (ADR 0016). A lease has a name, an owner (a node), an epoch (the fencing token) and an
//! expiry; a node renews what it holds, takes over what expired and releases what it holds when
//! it stops. Taking a lease over from another owner raises its epoch, so a write guarded by a
//! [`Fence`] of the old epoch is refused in its own transaction ([`StoreError::Fenced`]): a
//! paused or partitioned node cannot write what the new holder owns.
//!
//! Times are milliseconds of the callers' wall clocks (never a `--sim-clock`); nodes' clocks
//! are assumed to agree to well within a lease's time to live.

use super::StoreError;
use async_trait::async_trait;

/// A lease as a holder sees it after taking or renewing it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// What it guards (`pipeline`, `housekeeping`, `webhook:<app id>`, `node:<node id>`).
    pub name: String,
    /// The node holding it.
    pub owner: String,
    /// Raised on every change of owner; the fencing token.
    pub epoch: u64,
    /// Until when it is held unless renewed (ms).
    pub expires_at: i64,
}

impl Lease {
    /// The fence a write under this lease carries.
    pub fn fence(&self) -> Fence {
        Fence {
            name: self.name.clone(),
            owner: self.owner.clone(),
            epoch: self.epoch,
        }
    }
}

/// What a write guarded by a lease carries: it is refused unless the lease still has this
/// owner and epoch when the write's transaction runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fence {
    /// The lease's name.
    pub name: String,
    /// The writer's node.
    pub owner: String,
    /// The epoch the writer holds.
    pub epoch: u64,
}

/// A lease as stored, for `sealpost nodes`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseRow {
    /// What it guards.
    pub name: String,
    /// Its holder, current or last.
    pub owner: String,
    /// Its epoch.
    pub epoch: u64,
    /// When the current owner took it (ms).
    pub acquired_at: i64,
    /// Until when it is held (ms); in the past (0 after a release) when free.
    pub expires_at: i64,
}

/// Leases, kept in the event store's database.
#[async_trait]
pub trait Leases: Send + Sync + std::fmt::Debug {
    /// Takes or renews the lease `name` for `owner` until `now + ttl_ms`: granted when it is
    /// free, expired or already `owner`'s. A change of owner raises the epoch; a renewal keeps
    /// it. `None` when another owner holds it.
    async fn acquire(
        &self,
        name: &str,
        owner: &str,
        now: i64,
        ttl_ms: i64,
    ) -> Result<Option<Lease>, StoreError>;

    /// Gives a held lease up at once (its epoch stays, so the next owner's is higher). Nothing
    /// happens if it was taken over meanwhile.
    async fn release(&self, lease: &Lease) -> Result<(), StoreError>;

    /// Frees every lease at once (epochs kept, so each next owner's is higher). Only for a
    /// store that one process holds exclusively, which proves every earlier holder dead: the
    /// embedded store under its data directory's lock, after a crash.
    async fn free_all(&self) -> Result<(), StoreError>;

    /// Every lease, by name.
    async fn leases(&self) -> Result<Vec<LeaseRow>, StoreError>;

    /// Whether `fence` still holds (owner and epoch unchanged); what a fenced write checks in
    /// its own transaction, offered alone for callers whose write cannot carry it.
    async fn check(&self, fence: &Fence) -> Result<(), StoreError>;

    /// Records a lease held in another store (its owner and epoch) unless a higher epoch is
    /// recorded here already: how a Local Storage region's store learns who holds a lease, so
    /// that its fenced writes are checked in their own transaction (ADR 0019).
    async fn mirror(&self, lease: &LeaseRow) -> Result<(), StoreError>;
}
