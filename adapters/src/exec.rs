//! Runs a command against an aggregate: load its stream, fold, `decide`, append the new events
//! at the version it was decided on, and retry from the top when another writer got there
//! first. This is the hot path (it goes straight to group commit); the `cqrs-es` framework
//! runs on the same store through [`crate::repository::SealedRepository`].

use crate::ledger::{meta, EventContext, EventStore, LedgerError, OpenedEvent, PlainEvent};
use crate::store::{StoreError, StreamId};
use cqrs_es::Aggregate;
use sealpost_domain::{Decider, DomainError, EpochId, Principal, Region, Timestamp};
use std::collections::BTreeMap;
use std::sync::Arc;

/// How many times a command is re-decided after losing a race (defined by the ledger, which
/// retries its own appends by the same bound).
pub use crate::ledger::MAX_ATTEMPTS;

/// Why a command did not take effect.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// The domain refused it: return the Cloud API code of the [`DomainError`] to the client.
    #[error(transparent)]
    Domain(#[from] DomainError),
    /// Storage failed, or the command kept losing races: retry later (HTTP 503) when
    /// [`LedgerError::is_unavailable`], else alert (HTTP 500).
    #[error(transparent)]
    Ledger(#[from] LedgerError),
}

impl ExecError {
    /// Whether the failure is transient: the database is down or busy.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, ExecError::Ledger(e) if e.is_unavailable())
    }
}

/// The metadata of a command: where its events belong and who caused them.
#[derive(Debug, Clone)]
pub struct CommandMeta {
    /// Plaintext columns.
    pub ctx: EventContext,
    /// Who issued it.
    pub actor: String,
    /// The request or job it belongs to.
    pub correlation_id: String,
    /// What caused it (a command id or an event position).
    pub causation_id: String,
}

impl CommandMeta {
    /// Metadata for a command of `business` in `region` by `actor`; correlation and causation
    /// start as a fresh random id.
    pub fn new(business_id: &str, region: Region, actor: &Principal) -> Self {
        let id = uuid::Uuid::new_v4().to_string();
        Self {
            ctx: EventContext {
                business_id: business_id.to_owned(),
                region,
                epoch: None,
            },
            actor: format!("{:?}:{}", actor.kind, actor.id).to_lowercase(),
            correlation_id: id.clone(),
            causation_id: id,
        }
    }

    /// Sets the retention epoch column.
    pub fn with_epoch(mut self, epoch: EpochId) -> Self {
        self.ctx.epoch = Some(epoch);
        self
    }

    /// The metadata as stored with each event.
    pub fn to_map(&self) -> BTreeMap<String, String> {
        let mut m = BTreeMap::new();
        m.insert(meta::BUSINESS_ID.to_owned(), self.ctx.business_id.clone());
        m.insert(meta::REGION.to_owned(), self.ctx.region.code().to_owned());
        if let Some(e) = self.ctx.epoch {
            m.insert(meta::EPOCH.to_owned(), e.index().to_string());
        }
        m.insert(meta::ACTOR.to_owned(), self.actor.clone());
        m.insert(meta::CORRELATION_ID.to_owned(), self.correlation_id.clone());
        m.insert(meta::CAUSATION_ID.to_owned(), self.causation_id.clone());
        if let Some(tp) = crate::telemetry::current_traceparent() {
            m.insert(meta::TRACEPARENT.to_owned(), tp);
        }
        m
    }
}

/// What the executor runs: a `cqrs_es` aggregate whose decisions are its (versioned) events.
pub trait Stream:
    Aggregate<Event: sealpost_domain::VersionedEvent>
    + Decider<Event = <Self as Aggregate>::Event, Command: Clone>
{
}

impl<A> Stream for A where
    A: Aggregate<Event: sealpost_domain::VersionedEvent>
        + Decider<Event = <A as Aggregate>::Event, Command: Clone>
{
}

/// Executes commands against aggregates stored in an [`EventStore`].
#[derive(Debug, Clone)]
pub struct Executor {
    store: Arc<EventStore>,
}

impl Executor {
    /// An executor over `store`.
    pub fn new(store: Arc<EventStore>) -> Self {
        Self { store }
    }

    /// The store.
    pub fn store(&self) -> &Arc<EventStore> {
        &self.store
    }

    /// The business the aggregate `id` of type `A` belongs to (`None` if it has no events): a
    /// lookup across businesses, for a caller that holds an id and no business (ADR 0018).
    pub async fn business_of<A: Stream>(&self, id: &str) -> Result<Option<String>, ExecError> {
        Ok(self.store.business_of(A::TYPE, id).await?)
    }

    /// Loads `business`'s aggregate `id`: its state and version (0 if it has no events).
    pub async fn load<A: Stream>(&self, business: &str, id: &str) -> Result<(A, u64), ExecError> {
        let loaded = self.loaded::<A>(business, id).await?;
        Ok((loaded.state, loaded.version))
    }

    /// Loads an aggregate for the commands of one operation: hand it to [`Executor::execute_on`]
    /// for each of them, and the stream is read once.
    pub async fn loaded<A: Stream>(
        &self,
        business: &str,
        id: &str,
    ) -> Result<Loaded<A>, ExecError> {
        Ok(self.loaded_with_events::<A>(business, id).await?.0)
    }

    /// [`Executor::loaded`], with the opened events themselves, for a caller that also needs
    /// what they carry sealed (a message's content): still one read of the stream.
    pub async fn loaded_with_events<A: Stream>(
        &self,
        business: &str,
        id: &str,
    ) -> Result<(Loaded<A>, Vec<OpenedEvent>), ExecError> {
        let stream = StreamId::new(business, A::TYPE, id);
        let events = self.store.read_stream(&stream, 0).await?;
        Ok((Self::fold::<A>(&events)?, events))
    }

    /// [`Executor::loaded_with_events`] for several streams of one type, in one read of the log;
    /// in the order of `ids`.
    #[allow(clippy::type_complexity)]
    pub async fn loaded_many<A: Stream>(
        &self,
        business: &str,
        ids: &[String],
    ) -> Result<Vec<(Loaded<A>, Vec<OpenedEvent>)>, ExecError> {
        let mut found = self.store.read_streams(business, A::TYPE, ids).await?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            let events = found.remove(id).unwrap_or_default();
            out.push((Self::fold::<A>(&events)?, events));
        }
        Ok(out)
    }

    fn fold<A: Stream>(events: &[OpenedEvent]) -> Result<Loaded<A>, ExecError> {
        let version = events.last().map_or(0, |e| e.header.sequence);
        let mut state = A::default();
        for e in events {
            let event: <A as Aggregate>::Event = e.decode().map_err(LedgerError::Store)?;
            Decider::apply(&mut state, event);
        }
        Ok(Loaded { state, version })
    }

    /// Decides `command` at `now` and appends the events to the stream `id` of the business
    /// `meta` names; returns them (empty when the command changed nothing, such as a repeated
    /// receipt).
    pub async fn execute<A: Stream>(
        &self,
        id: &str,
        command: <A as Decider>::Command,
        meta: &CommandMeta,
        now: Timestamp,
    ) -> Result<Vec<<A as Aggregate>::Event>, ExecError> {
        let mut loaded = self.loaded::<A>(&meta.ctx.business_id, id).await?;
        self.execute_on(id, &mut loaded, command, meta, now).await
    }

    /// Decides `command` on the state already loaded and appends at its version; on success
    /// `loaded` holds the state after the events, ready for the next command of the same
    /// operation. Only a lost race reads the stream again (then decides anew).
    pub async fn execute_on<A: Stream>(
        &self,
        id: &str,
        loaded: &mut Loaded<A>,
        command: <A as Decider>::Command,
        meta: &CommandMeta,
        now: Timestamp,
    ) -> Result<Vec<<A as Aggregate>::Event>, ExecError> {
        let stream = StreamId::new(&meta.ctx.business_id, A::TYPE, id);
        let metadata = meta.to_map();
        for attempt in 0..MAX_ATTEMPTS {
            if attempt > 0 {
                *loaded = self.loaded::<A>(&meta.ctx.business_id, id).await?;
            }
            let events = loaded.state.decide(command.clone(), now)?;
            if events.is_empty() {
                return Ok(events);
            }
            let plain = events
                .iter()
                .map(|e| PlainEvent::of(e, metadata.clone()))
                .collect::<Result<Vec<_>, _>>()
                .map_err(LedgerError::Store)?;
            match self
                .store
                .append(&stream, loaded.version, &meta.ctx, plain)
                .await
            {
                Ok(_) => {
                    loaded.version += events.len() as u64;
                    for e in &events {
                        Decider::apply(&mut loaded.state, e.clone());
                    }
                    return Ok(events);
                }
                Err(e) if e.is_conflict() => continue,
                Err(e) => return Err(e.into()),
            }
        }
        // Contention, not a fault: the client may retry (503).
        Err(LedgerError::Store(StoreError::Unavailable(
            "command kept losing races on its stream".into(),
        ))
        .into())
    }
}

/// An aggregate's state as loaded, and the version the next append follows.
#[derive(Debug, Clone, Default)]
pub struct Loaded<A> {
    /// The state.
    pub state: A,
    /// The sequence of its last event (0 for none).
    pub version: u64,
}
