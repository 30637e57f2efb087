//! The sealed event store: seals payloads under the ledger key (outer layer), batches appends
//! from many commands into one durable transaction (group commit), opens rows on read, and
//! offers catch-up subscriptions with durable checkpoints and a live tail.

mod bodies;
mod committer;
mod event;
mod reads;
mod sealing;
mod snapshot;
mod subscription;

pub use bodies::{Reference, BODY_STREAM_TYPE};
pub use event::{EventContext, OpenedEvent, PlainEvent};
pub use reads::traced;
pub use subscription::{Subscription, POLL_INTERVAL};

use crate::clock::Clock;
use crate::store::{AppendCommand, EventLog, RegionStores, StoreError, StreamId};
use crate::vault::{Vault, VaultError};
use committer::run_committer;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot, watch};

/// Metadata keys every event carries (inside the sealed payload).
pub mod meta {
    /// The business the event belongs to (also a plaintext column).
    pub const BUSINESS_ID: &str = "business_id";
    /// The storage region code (also a plaintext column).
    pub const REGION: &str = "region";
    /// The retention epoch index, for message events (also a plaintext column).
    pub const EPOCH: &str = "epoch";
    /// Correlation id: the request or job the event belongs to.
    pub const CORRELATION_ID: &str = "correlation_id";
    /// Causation id: the command or event that caused it.
    pub const CAUSATION_ID: &str = "causation_id";
    /// The principal that issued the command.
    pub const ACTOR: &str = "actor";
    /// W3C trace context of the span that wrote it.
    pub const TRACEPARENT: &str = "traceparent";
}

/// Commands per group-commit transaction at most.
pub const MAX_GROUP: usize = 512;

/// How many times a write that lost a race on its stream is tried again: re-decided by the
/// `Executor`, re-appended at the new end by [`EventStore::append_at_end`].
pub const MAX_ATTEMPTS: usize = 16;

/// Failures of the sealed store.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    /// See [`StoreError`].
    #[error(transparent)]
    Store(#[from] StoreError),
    /// See [`VaultError`].
    #[error(transparent)]
    Vault(#[from] VaultError),
    /// The store is shutting down: retry on another instance (HTTP 503, code 131016).
    #[error("event store is shut down")]
    ShutDown,
}

impl LedgerError {
    /// Whether this is an optimistic-concurrency conflict.
    pub fn is_conflict(&self) -> bool {
        matches!(self, LedgerError::Store(StoreError::Conflict(_)))
    }

    /// Whether the failure is transient (database down, unreachable or busy; the store
    /// shutting down): answer 503 and retry later.
    pub fn is_unavailable(&self) -> bool {
        match self {
            LedgerError::Store(e) => e.is_unavailable(),
            LedgerError::Vault(e) => e.is_unavailable(),
            LedgerError::ShutDown => true,
        }
    }
}

/// One sealed command waiting for the group committer, and where its outcome goes.
struct Job {
    command: AppendCommand,
    reply: oneshot::Sender<Result<Vec<u64>, StoreError>>,
}

/// Hands `command` to the group committer behind `jobs` and waits for its positions.
async fn submit_to(
    jobs: &mpsc::Sender<Job>,
    command: AppendCommand,
) -> Result<Vec<u64>, LedgerError> {
    let (reply, rx) = oneshot::channel();
    jobs.send(Job { command, reply })
        .await
        .map_err(|_| LedgerError::ShutDown)?;
    Ok(rx.await.map_err(|_| LedgerError::ShutDown)??)
}

/// The sealed, group-committing event store.
#[derive(Debug)]
pub struct EventStore {
    log: Arc<dyn EventLog>,
    vault: Arc<Vault>,
    clock: Arc<dyn Clock>,
    jobs: mpsc::Sender<Job>,
    head: watch::Receiver<u64>,
    /// Where the Local Storage regions' bodies go; `None`: every event whole in `log`.
    bodies: Option<bodies::RegionBodies>,
}

impl EventStore {
    /// Starts the store and its group committer (needs a tokio runtime), every event whole in
    /// `log`.
    pub async fn start(
        log: Arc<dyn EventLog>,
        vault: Arc<Vault>,
        clock: Arc<dyn Clock>,
    ) -> Result<Arc<Self>, LedgerError> {
        Self::start_with(log, None, vault, clock).await
    }

    /// Starts the store over the home `log`, each Local Storage region's event bodies in its
    /// own store from `regions` (ADR 0020).
    pub async fn start_with_regions(
        log: Arc<dyn EventLog>,
        regions: Arc<RegionStores>,
        vault: Arc<Vault>,
        clock: Arc<dyn Clock>,
    ) -> Result<Arc<Self>, LedgerError> {
        Self::start_with(log, Some(regions), vault, clock).await
    }

    async fn start_with(
        log: Arc<dyn EventLog>,
        regions: Option<Arc<RegionStores>>,
        vault: Arc<Vault>,
        clock: Arc<dyn Clock>,
    ) -> Result<Arc<Self>, LedgerError> {
        let head_now = log.head().await?;
        let (head_tx, head) = watch::channel(head_now);
        let (jobs, rx) = mpsc::channel(8 * MAX_GROUP);
        tokio::spawn(run_committer(log.clone(), rx, head_tx));
        Ok(Arc::new(Self {
            log,
            vault,
            clock,
            jobs,
            head,
            bodies: regions.map(bodies::RegionBodies::new),
        }))
    }

    /// The raw log.
    pub fn log(&self) -> &Arc<dyn EventLog> {
        &self.log
    }

    /// The stores of the Local Storage regions, when their events' bodies are kept there.
    pub fn region_stores(&self) -> Option<&Arc<RegionStores>> {
        self.bodies.as_ref().map(bodies::RegionBodies::stores)
    }

    /// The key vault.
    pub fn vault(&self) -> &Arc<Vault> {
        &self.vault
    }

    /// The clock.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// Appends events to a stream whose version is `expected`, through group commit.
    /// Returns their global positions once durable.
    pub async fn append(
        &self,
        stream: &StreamId,
        expected: u64,
        ctx: &EventContext,
        events: Vec<PlainEvent>,
    ) -> Result<Vec<u64>, LedgerError> {
        let command = self.seal(stream, expected, ctx, events).await?;
        let command = match &self.bodies {
            Some(bodies) if ctx.region.is_local_storage() => {
                bodies.place(ctx.region, command).await?
            }
            _ => command,
        };
        self.submit(command).await
    }

    /// Appends events at the end of a stream, whatever its version: for streams with one
    /// logical writer (tokens, apps, the transport's integrity stream), retrying on a conflict.
    pub async fn append_at_end(
        &self,
        stream: &StreamId,
        ctx: &EventContext,
        events: Vec<PlainEvent>,
    ) -> Result<Vec<u64>, LedgerError> {
        for _ in 0..MAX_ATTEMPTS {
            let version = self.log.stream_version(stream).await?;
            match self.append(stream, version, ctx, events.clone()).await {
                Err(e) if e.is_conflict() => continue,
                other => return other,
            }
        }
        Err(StoreError::Unavailable("stream kept conflicting".into()).into())
    }

    /// Submits an already sealed command to the group committer.
    pub async fn submit(&self, command: AppendCommand) -> Result<Vec<u64>, LedgerError> {
        submit_to(&self.jobs, command).await
    }

    /// The highest position this process has committed (cheap; others may be ahead).
    pub fn local_head(&self) -> u64 {
        *self.head.borrow()
    }
}
