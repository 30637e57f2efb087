//! The events the store takes and gives: [`PlainEvent`] before sealing, [`OpenedEvent`] after
//! opening, and the [`EventContext`] that fills their plaintext columns.

use crate::store::{RowHeader, StoreError};
use sealpost_domain::{EpochId, Region};
use serde_json::Value;
use std::collections::BTreeMap;

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
