//! `cqrs-es` on the sealed store: [`SealedRepository`] implements `PersistedEventRepository`,
//! so `cqrs_es::persist::PersistedEventStore` and `CqrsFramework` run unchanged on top of
//! encryption, group commit and the gap-safe global order.

use crate::ledger::{meta, EventContext, EventStore, LedgerError, OpenedEvent, PlainEvent};
use crate::store::{StoreError, StreamId};
use cqrs_es::persist::{
    PersistedEventRepository, PersistenceError, ReplayStream, SerializedEvent, SerializedSnapshot,
};
use cqrs_es::Aggregate;
use sealpost_domain::{EpochId, Region};
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;

/// The `cqrs-es` repository over the sealed event store, for one business: cqrs-es names an
/// aggregate by its id alone, and every stream's key includes its business (ADR 0018), so a
/// repository (and the `CqrsFramework` over it) serves one tenant.
#[derive(Debug, Clone)]
pub struct SealedRepository {
    store: Arc<EventStore>,
    business: String,
}

impl SealedRepository {
    /// The repository of `business`'s aggregates in `store`.
    pub fn new(store: Arc<EventStore>, business: &str) -> Self {
        Self {
            store,
            business: business.to_owned(),
        }
    }

    fn stream<A: Aggregate>(&self, aggregate_id: impl Into<String>) -> StreamId {
        StreamId::new(&self.business, A::TYPE, aggregate_id)
    }
}

fn to_persistence(e: LedgerError) -> PersistenceError {
    match e {
        LedgerError::Store(StoreError::Conflict(_)) => PersistenceError::OptimisticLockError,
        LedgerError::Store(StoreError::Unavailable(_) | StoreError::Database(_))
        | LedgerError::ShutDown => PersistenceError::ConnectionError(Box::new(e)),
        LedgerError::Store(StoreError::Corrupt(_)) => {
            PersistenceError::DeserializationError(Box::new(e))
        }
        other => PersistenceError::UnknownError(Box::new(other)),
    }
}

fn serialized(e: OpenedEvent) -> SerializedEvent {
    SerializedEvent {
        aggregate_id: e.header.stream.id,
        sequence: e.header.sequence as usize,
        aggregate_type: e.header.stream.kind,
        event_type: e.header.event_type,
        event_version: e.header.event_version.to_string(),
        payload: e.payload,
        metadata: serde_json::to_value(e.metadata).unwrap_or(Value::Null),
    }
}

/// The plaintext columns of an event, taken from its metadata.
pub fn context_from_metadata(
    metadata: &BTreeMap<String, String>,
) -> Result<EventContext, StoreError> {
    let business_id = metadata
        .get(meta::BUSINESS_ID)
        .cloned()
        .ok_or(StoreError::Invalid("event metadata lacks business_id"))?;
    let region: Region = metadata
        .get(meta::REGION)
        .ok_or(StoreError::Invalid("event metadata lacks region"))?
        .parse()
        .map_err(|_| StoreError::Invalid("event metadata has an unknown region"))?;
    let epoch = match metadata.get(meta::EPOCH) {
        None => None,
        Some(e) => {
            Some(EpochId::new(e.parse().map_err(|_| {
                StoreError::Invalid("event metadata has a bad epoch")
            })?))
        }
    };
    Ok(EventContext {
        business_id,
        region,
        epoch,
    })
}

fn metadata_map(v: &Value) -> BTreeMap<String, String> {
    serde_json::from_value(v.clone()).unwrap_or_default()
}

impl SealedRepository {
    async fn events_after<A: Aggregate>(
        &self,
        aggregate_id: &str,
        after: u64,
    ) -> Result<Vec<SerializedEvent>, PersistenceError> {
        let stream = self.stream::<A>(aggregate_id);
        let events = self
            .store
            .read_stream(&stream, after)
            .await
            .map_err(to_persistence)?;
        Ok(events.into_iter().map(serialized).collect())
    }

    async fn feed(&self, events: Vec<SerializedEvent>) -> ReplayStream {
        let (mut feed, stream) = ReplayStream::new(events.len().max(1));
        for e in events {
            // The channel holds every event; pushing cannot block or fail while `stream` lives.
            let _ = feed.push(Ok(e)).await;
        }
        stream
    }
}

impl PersistedEventRepository for SealedRepository {
    async fn get_events<A: Aggregate>(
        &self,
        aggregate_id: &str,
    ) -> Result<Vec<SerializedEvent>, PersistenceError> {
        self.events_after::<A>(aggregate_id, 0).await
    }

    async fn get_last_events<A: Aggregate>(
        &self,
        aggregate_id: &str,
        last_sequence: usize,
    ) -> Result<Vec<SerializedEvent>, PersistenceError> {
        self.events_after::<A>(aggregate_id, last_sequence as u64)
            .await
    }

    async fn get_snapshot<A: Aggregate>(
        &self,
        aggregate_id: &str,
    ) -> Result<Option<SerializedSnapshot>, PersistenceError> {
        let stream = self.stream::<A>(aggregate_id);
        let snap = self
            .store
            .load_snapshot(&stream)
            .await
            .map_err(to_persistence)?;
        Ok(snap.map(
            |(aggregate, current_sequence, current_snapshot)| SerializedSnapshot {
                aggregate_id: aggregate_id.to_owned(),
                aggregate,
                current_sequence: current_sequence as usize,
                current_snapshot: current_snapshot as usize,
            },
        ))
    }

    async fn persist<A: Aggregate>(
        &self,
        events: &[SerializedEvent],
        snapshot_update: Option<(String, Value, usize)>,
    ) -> Result<(), PersistenceError> {
        let mut ctx = None;
        if let Some(first) = events.first() {
            let stream = self.stream::<A>(first.aggregate_id.clone());
            let c = context_from_metadata(&metadata_map(&first.metadata))
                .map_err(|e| PersistenceError::UnknownError(Box::new(e)))?;
            let mut plain = Vec::with_capacity(events.len());
            for e in events {
                plain.push(PlainEvent {
                    event_type: e.event_type.clone(),
                    event_version: e.event_version.parse().map_err(|_| {
                        PersistenceError::UnknownError(Box::new(StoreError::Invalid(
                            "event version must be a number",
                        )))
                    })?,
                    payload: e.payload.clone(),
                    metadata: metadata_map(&e.metadata),
                });
            }
            let expected = first.sequence.saturating_sub(1) as u64;
            self.store
                .append(&stream, expected, &c, plain)
                .await
                .map_err(to_persistence)?;
            ctx = Some(c);
        }
        if let (Some((id, aggregate, version)), Some(ctx)) = (snapshot_update, ctx) {
            let stream = self.stream::<A>(id);
            let current = events.last().map_or(0, |e| e.sequence as u64);
            // A snapshot is a cache: if saving it fails the events are still durable, so the
            // failure is logged (without contents) rather than reported as a failed command.
            if let Err(e) = self
                .store
                .save_snapshot(&stream, &ctx, &aggregate, current, version as u64)
                .await
            {
                tracing::warn!(error = %e, stream_type = A::TYPE, "snapshot not saved");
            }
        }
        Ok(())
    }

    async fn stream_events<A: Aggregate>(
        &self,
        aggregate_id: &str,
    ) -> Result<ReplayStream, PersistenceError> {
        let events = self.events_after::<A>(aggregate_id, 0).await?;
        Ok(self.feed(events).await)
    }

    async fn stream_all_events<A: Aggregate>(&self) -> Result<ReplayStream, PersistenceError> {
        let mut all = Vec::new();
        let mut after = 0;
        loop {
            let page = self
                .store
                .read_all(after, 1_000)
                .await
                .map_err(to_persistence)?;
            let Some(last) = page.last() else { break };
            after = last.position;
            all.extend(
                page.into_iter()
                    .filter(|e| e.header.stream.kind == A::TYPE)
                    .map(serialized),
            );
        }
        Ok(self.feed(all).await)
    }
}
