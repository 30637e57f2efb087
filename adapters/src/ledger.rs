//! The sealed event store: seals payloads under the ledger key (outer layer), batches appends
//! from many commands into one durable transaction (group commit), opens rows on read, and
//! offers catch-up subscriptions with durable checkpoints and a live tail.

use crate::clock::Clock;
use crate::crypto;
use crate::store::{
    AppendCommand, EventLog, NewRow, RowHeader, SnapshotRow, StoreError, StoredRow, StreamId,
};
use crate::vault::{Vault, VaultError};
use sealpost_domain::{EpochId, Region};
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
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

/// Where an event belongs: its plaintext columns besides stream and type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventContext {
    /// The business.
    pub business_id: String,
    /// The storage region.
    pub region: Region,
    /// The retention epoch, for message events.
    pub epoch: Option<EpochId>,
}

/// An event to append, before sealing.
#[derive(Debug, Clone, PartialEq)]
pub struct PlainEvent {
    /// Type name.
    pub event_type: String,
    /// Version.
    pub event_version: u32,
    /// The event as JSON (personal fields already sealed inside it).
    pub payload: Value,
    /// Metadata (correlation, causation, actor, trace context, …).
    pub metadata: BTreeMap<String, String>,
}

/// A stored event with its outer layer opened.
#[derive(Debug, Clone, PartialEq)]
pub struct OpenedEvent {
    /// Global position.
    pub position: u64,
    /// Plaintext header.
    pub header: RowHeader,
    /// The event JSON (inner personal fields still sealed).
    pub payload: Value,
    /// Metadata.
    pub metadata: BTreeMap<String, String>,
}

impl OpenedEvent {
    /// Parses the payload as an event of `E`, upcasting old versions first.
    pub fn decode<E: sealpost_domain::VersionedEvent>(&self) -> Result<E, StoreError> {
        E::decode(
            &self.header.event_type,
            self.header.event_version,
            self.payload.clone(),
        )
        .map_err(|_| StoreError::Corrupt("event does not decode as its type and version"))
    }
}

impl PlainEvent {
    /// A domain event with its metadata.
    pub fn of<E: cqrs_es::DomainEvent>(
        event: &E,
        metadata: BTreeMap<String, String>,
    ) -> Result<Self, StoreError> {
        Ok(Self {
            event_type: event.event_type(),
            event_version: event
                .event_version()
                .parse()
                .map_err(|_| StoreError::Invalid("event version must be a number"))?,
            payload: serde_json::to_value(event)
                .map_err(|_| StoreError::Invalid("event does not serialize"))?,
            metadata,
        })
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Envelope {
    payload: Value,
    metadata: BTreeMap<String, String>,
}

fn event_aad(h: &RowHeader) -> Vec<u8> {
    crypto::aad(&[
        b"sealpost/event/v1",
        h.stream.kind.as_bytes(),
        h.stream.id.as_bytes(),
        &h.sequence.to_be_bytes(),
        h.event_type.as_bytes(),
        &h.event_version.to_be_bytes(),
        h.business_id.as_bytes(),
        h.region.as_bytes(),
    ])
}

fn snapshot_aad(stream: &StreamId, business: &str, region: &str, sequence: u64) -> Vec<u8> {
    crypto::aad(&[
        b"sealpost/snapshot/v1",
        stream.kind.as_bytes(),
        stream.id.as_bytes(),
        business.as_bytes(),
        region.as_bytes(),
        &sequence.to_be_bytes(),
    ])
}

struct Job {
    command: AppendCommand,
    reply: oneshot::Sender<Result<Vec<u64>, StoreError>>,
}

/// The sealed, group-committing event store.
#[derive(Debug)]
pub struct EventStore {
    log: Arc<dyn EventLog>,
    vault: Arc<Vault>,
    clock: Arc<dyn Clock>,
    jobs: mpsc::Sender<Job>,
    head: watch::Receiver<u64>,
}

impl EventStore {
    /// Starts the store and its group committer (needs a tokio runtime).
    pub async fn start(
        log: Arc<dyn EventLog>,
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
        }))
    }

    /// The raw log.
    pub fn log(&self) -> &Arc<dyn EventLog> {
        &self.log
    }

    /// The key vault.
    pub fn vault(&self) -> &Arc<Vault> {
        &self.vault
    }

    /// The clock.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// Seals events into rows for `stream` after version `expected`.
    pub async fn seal(
        &self,
        stream: &StreamId,
        expected: u64,
        ctx: &EventContext,
        events: Vec<PlainEvent>,
    ) -> Result<AppendCommand, LedgerError> {
        let now = self.clock.now();
        let (version, key) = self
            .vault
            .ledger_key(&ctx.business_id, ctx.region, now)
            .await?;
        let mut rows = Vec::with_capacity(events.len());
        for (i, e) in events.into_iter().enumerate() {
            let header = RowHeader {
                stream: stream.clone(),
                sequence: expected + i as u64 + 1,
                event_type: e.event_type,
                event_version: e.event_version,
                business_id: ctx.business_id.clone(),
                region: ctx.region.code().to_owned(),
                epoch: ctx.epoch.map(EpochId::index),
                recorded_at: now.millis(),
            };
            let plain = serde_json::to_vec(&Envelope {
                payload: e.payload,
                metadata: e.metadata,
            })
            .map_err(|_| StoreError::Invalid("event does not serialize"))?;
            let mut payload = version.to_be_bytes().to_vec();
            payload.extend_from_slice(&crypto::seal(&key, &plain, &event_aad(&header)));
            rows.push(NewRow { header, payload });
        }
        Ok(AppendCommand {
            stream: stream.clone(),
            expected,
            rows,
        })
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
        for _ in 0..crate::exec::MAX_ATTEMPTS {
            let version = self.log.stream_version(stream).await?;
            match self.append(stream, version, ctx, events.clone()).await {
                Err(e) if e.is_conflict() => continue,
                other => return other,
            }
        }
        Err(StoreError::Unavailable("stream kept conflicting".into()).into())
    }

    /// Every event whose row header passes `keep`, from the start of the log, in order.
    pub async fn scan(
        &self,
        keep: impl Fn(&RowHeader) -> bool,
    ) -> Result<Vec<OpenedEvent>, LedgerError> {
        let mut out = Vec::new();
        let mut after = 0;
        loop {
            let rows = self.log.read_all(after, 1_000).await?;
            let Some(last) = rows.last() else {
                return Ok(out);
            };
            after = last.position;
            for row in rows {
                if keep(&row.header) {
                    out.push(self.open_row(row).await?);
                }
            }
        }
    }

    /// Submits an already sealed command to the group committer.
    pub async fn submit(&self, command: AppendCommand) -> Result<Vec<u64>, LedgerError> {
        let (reply, rx) = oneshot::channel();
        self.jobs
            .send(Job { command, reply })
            .await
            .map_err(|_| LedgerError::ShutDown)?;
        Ok(rx.await.map_err(|_| LedgerError::ShutDown)??)
    }

    async fn ledger_key_for(
        &self,
        business: &str,
        region: &str,
        payload: &[u8],
    ) -> Result<(Arc<crypto::SecretKey>, usize), LedgerError> {
        let region: Region = region
            .parse()
            .map_err(|_| StoreError::Corrupt("unknown region"))?;
        let version_bytes: [u8; 4] = payload
            .get(..4)
            .and_then(|b| b.try_into().ok())
            .ok_or(StoreError::Corrupt("payload too short"))?;
        let key = self
            .vault
            .ledger_key_version(business, region, u32::from_be_bytes(version_bytes), None)
            .await?;
        Ok((key, 4))
    }

    /// Opens one stored row's outer layer.
    pub async fn open_row(&self, row: StoredRow) -> Result<OpenedEvent, LedgerError> {
        let (key, skip) = self
            .ledger_key_for(&row.header.business_id, &row.header.region, &row.payload)
            .await?;
        let plain = crypto::open(&key, &row.payload[skip..], &event_aad(&row.header))
            .map_err(|_| StoreError::Corrupt("event payload does not open"))?;
        let env: Envelope = serde_json::from_slice(&plain)
            .map_err(|_| StoreError::Corrupt("event payload is not JSON"))?;
        Ok(OpenedEvent {
            position: row.position,
            header: row.header,
            payload: env.payload,
            metadata: env.metadata,
        })
    }

    async fn open_rows(&self, rows: Vec<StoredRow>) -> Result<Vec<OpenedEvent>, LedgerError> {
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            out.push(self.open_row(r).await?);
        }
        Ok(out)
    }

    /// Events of one stream after sequence `after`.
    pub async fn read_stream(
        &self,
        stream: &StreamId,
        after: u64,
    ) -> Result<Vec<OpenedEvent>, LedgerError> {
        let rows = self.log.read_stream(stream, after).await?;
        self.open_rows(rows).await
    }

    /// Up to `limit` events after global position `after`.
    pub async fn read_all(&self, after: u64, limit: u32) -> Result<Vec<OpenedEvent>, LedgerError> {
        let rows = self.log.read_all(after, limit).await?;
        self.open_rows(rows).await
    }

    /// Seals and saves a snapshot of an aggregate.
    pub async fn save_snapshot(
        &self,
        stream: &StreamId,
        ctx: &EventContext,
        aggregate: &Value,
        current_sequence: u64,
        snapshot_version: u64,
    ) -> Result<(), LedgerError> {
        let plain = serde_json::to_vec(aggregate)
            .map_err(|_| StoreError::Invalid("snapshot does not serialize"))?;
        self.save_snapshot_bytes(stream, ctx, &plain, current_sequence, snapshot_version)
            .await
    }

    /// Seals and saves a snapshot given as bytes (a persisted projection's own encoding).
    pub async fn save_snapshot_bytes(
        &self,
        stream: &StreamId,
        ctx: &EventContext,
        plain: &[u8],
        current_sequence: u64,
        snapshot_version: u64,
    ) -> Result<(), LedgerError> {
        let now = self.clock.now();
        let (version, key) = self
            .vault
            .ledger_key(&ctx.business_id, ctx.region, now)
            .await?;
        let region = ctx.region.code();
        let mut payload = version.to_be_bytes().to_vec();
        payload.extend_from_slice(&crypto::seal(
            &key,
            plain,
            &snapshot_aad(stream, &ctx.business_id, region, current_sequence),
        ));
        self.log
            .save_snapshot(&SnapshotRow {
                stream: stream.clone(),
                business_id: ctx.business_id.clone(),
                region: region.to_owned(),
                current_sequence,
                snapshot_version,
                payload,
            })
            .await?;
        Ok(())
    }

    /// Loads and opens a snapshot: (aggregate JSON, current sequence, snapshot version).
    pub async fn load_snapshot(
        &self,
        stream: &StreamId,
    ) -> Result<Option<(Value, u64, u64)>, LedgerError> {
        let Some((plain, sequence, version)) = self.load_snapshot_bytes(stream).await? else {
            return Ok(None);
        };
        let value = serde_json::from_slice(&plain)
            .map_err(|_| StoreError::Corrupt("snapshot is not JSON"))?;
        Ok(Some((value, sequence, version)))
    }

    /// Loads and opens a snapshot: (its bytes, current sequence, snapshot version).
    pub async fn load_snapshot_bytes(
        &self,
        stream: &StreamId,
    ) -> Result<Option<(Vec<u8>, u64, u64)>, LedgerError> {
        let Some(s) = self.log.load_snapshot(stream).await? else {
            return Ok(None);
        };
        let (key, skip) = self
            .ledger_key_for(&s.business_id, &s.region, &s.payload)
            .await?;
        let plain = crypto::open(
            &key,
            &s.payload[skip..],
            &snapshot_aad(stream, &s.business_id, &s.region, s.current_sequence),
        )
        .map_err(|_| StoreError::Corrupt("snapshot does not open"))?;
        Ok(Some((plain, s.current_sequence, s.snapshot_version)))
    }

    /// A subscription from position `after`, with a live tail.
    pub fn subscribe(self: &Arc<Self>, after: u64) -> Subscription {
        Subscription {
            store: self.clone(),
            position: after,
            head: self.head.clone(),
            page: 256,
        }
    }

    /// A subscription resuming from the durable checkpoint `name`.
    pub async fn subscribe_durable(
        self: &Arc<Self>,
        name: &str,
    ) -> Result<Subscription, LedgerError> {
        let after = self.log.load_checkpoint(name).await?;
        Ok(self.subscribe(after))
    }

    /// The highest position this process has committed (cheap; others may be ahead).
    pub fn local_head(&self) -> u64 {
        *self.head.borrow()
    }
}

/// A catch-up subscription: pages through history, then tails new commits (woken by local
/// commits, and polling for other processes' commits).
#[derive(Debug)]
pub struct Subscription {
    store: Arc<EventStore>,
    position: u64,
    head: watch::Receiver<u64>,
    page: u32,
}

/// How often a tailing subscription looks for commits made by other processes.
pub const POLL_INTERVAL: Duration = Duration::from_millis(50);

impl Subscription {
    /// The position of the last event handed out.
    pub fn position(&self) -> u64 {
        self.position
    }

    /// The next events, waiting until there is at least one.
    pub async fn next_batch(&mut self) -> Result<Vec<OpenedEvent>, LedgerError> {
        loop {
            let batch = self.try_next_batch().await?;
            if !batch.is_empty() {
                return Ok(batch);
            }
            tokio::select! {
                _ = self.head.changed() => {}
                _ = tokio::time::sleep(POLL_INTERVAL) => {}
            }
        }
    }

    /// The next events, or none if caught up.
    pub async fn try_next_batch(&mut self) -> Result<Vec<OpenedEvent>, LedgerError> {
        let batch = self.store.read_all(self.position, self.page).await?;
        if let Some(last) = batch.last() {
            self.position = last.position;
        }
        Ok(batch)
    }

    /// Moves back (or forward) to just after `position`: a consumer that could not finish an
    /// event it was handed resumes there instead of skipping the rest of its batch.
    pub fn seek(&mut self, position: u64) {
        self.position = position;
    }

    /// Saves the current position as the durable checkpoint `name`.
    pub async fn commit(&self, name: &str) -> Result<(), LedgerError> {
        self.store.log.save_checkpoint(name, self.position).await?;
        Ok(())
    }
}

async fn run_committer(
    log: Arc<dyn EventLog>,
    mut rx: mpsc::Receiver<Job>,
    head: watch::Sender<u64>,
) {
    while let Some(first) = rx.recv().await {
        let mut jobs = vec![first];
        while jobs.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(j) => jobs.push(j),
                Err(_) => break,
            }
        }
        commit_group(log.as_ref(), jobs, &head).await;
    }
}

fn advance_head(head: &watch::Sender<u64>, positions: &[u64]) {
    if let Some(top) = positions.last().copied() {
        head.send_if_modified(|h| {
            let moved = top > *h;
            *h = (*h).max(top);
            moved
        });
    }
}

/// Appends one command alone: what a group falls back to when its shared transaction failed.
async fn append_alone(log: &dyn EventLog, command: &AppendCommand) -> Result<Vec<u64>, StoreError> {
    match log.append(std::slice::from_ref(command), None).await? {
        Some(mut results) => results
            .pop()
            .unwrap_or(Err(crate::store::Conflict {
                expected: command.expected,
                actual: 0,
            }))
            .map_err(StoreError::Conflict),
        None => Err(StoreError::Database("transaction rolled back".into())),
    }
}

async fn commit_group(log: &dyn EventLog, jobs: Vec<Job>, head: &watch::Sender<u64>) {
    let (commands, replies): (Vec<AppendCommand>, Vec<_>) =
        jobs.into_iter().map(|j| (j.command, j.reply)).unzip();
    let results: Vec<Result<Vec<u64>, StoreError>> = match log.append(&commands, None).await {
        Ok(Some(results)) => results
            .into_iter()
            .map(|r| r.map_err(StoreError::Conflict))
            .collect(),
        Ok(None) => commands
            .iter()
            .map(|_| Err(StoreError::Database("transaction rolled back".into())))
            .collect(),
        Err(e) if commands.len() == 1 => vec![Err(e)],
        // The database is down or busy: every command would fail alone too (after its own
        // acquire timeout), so fail them all at once.
        Err(StoreError::Unavailable(why)) => commands
            .iter()
            .map(|_| Err(StoreError::Unavailable(why.clone())))
            .collect(),
        Err(_) => {
            // One bad command must not fail its neighbours: retry each on its own.
            let mut out = Vec::with_capacity(commands.len());
            for command in &commands {
                out.push(append_alone(log, command).await);
            }
            out
        }
    };
    for (result, reply) in results.into_iter().zip(replies) {
        if let Ok(positions) = &result {
            advance_head(head, positions);
        }
        // A caller that gave up waiting is not an error of the store.
        let _ = reply.send(result);
    }
}
