//! The `decide` / `apply` contract and the thin `cqrs-es` shim over it.

use crate::error::DomainError;
use crate::time::Timestamp;

/// A pure aggregate: `decide` turns a command into events without touching the world;
/// `apply` folds an event into the state. `apply` never fails: events are facts.
pub trait Decider: Default {
    /// What the aggregate is asked to do.
    type Command;
    /// What happened.
    type Event;

    /// Decides a command against the current state at `now`.
    fn decide(
        &self,
        command: Self::Command,
        now: Timestamp,
    ) -> Result<Vec<Self::Event>, DomainError>;

    /// Folds one event into the state.
    fn apply(&mut self, event: Self::Event);

    /// Folds many events into a fresh state.
    fn replay(events: impl IntoIterator<Item = Self::Event>) -> Self {
        let mut state = Self::default();
        for e in events {
            state.apply(e);
        }
        state
    }
}

/// A command with the moment it is decided at: the `cqrs-es` command type of every aggregate,
/// so that `Aggregate::handle` stays a pure shim over [`Decider::decide`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stamped<C> {
    /// The command.
    pub command: C,
    /// The moment, from the clock port.
    pub now: Timestamp,
}

impl<C> Stamped<C> {
    /// Stamps a command with `now`.
    pub fn at(command: C, now: Timestamp) -> Self {
        Self { command, now }
    }
}

/// An event enum that knows the current version of each of its types, so stored events can be
/// upcast before they are parsed.
pub trait VersionedEvent: serde::de::DeserializeOwned {
    /// The current version of `event_type`, or `None` if the enum has no such type.
    fn current_version(event_type: &str) -> Option<u32>;

    /// Parses a stored payload of `event_type` at `version`, upcasting old versions and refusing
    /// unknown types and versions from a newer release.
    fn decode(
        event_type: &str,
        version: u32,
        payload: serde_json::Value,
    ) -> Result<Self, DecodeError> {
        let current = Self::current_version(event_type).ok_or(DecodeError::UnknownType)?;
        let payload = crate::upcast::upcast(event_type, version, current, payload)?;
        serde_json::from_value(payload).map_err(|_| DecodeError::Malformed)
    }
}

/// Why a stored event could not be parsed. Carries no part of the payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The event type is not one of this enum's.
    #[error("event type does not belong to this stream")]
    UnknownType,
    /// See [`crate::upcast::UpcastError`].
    #[error(transparent)]
    Version(#[from] crate::upcast::UpcastError),
    /// The payload does not have the type's shape.
    #[error("event payload is malformed")]
    Malformed,
}

/// Implements `cqrs_es::DomainEvent` for an event enum from a list of its variants and versions,
/// and gives the enum the list of its type names (`TYPES`) for golden tests.
macro_rules! domain_event {
    ($enum:ident { $($variant:ident => $version:literal),* $(,)? }) => {
        impl cqrs_es::DomainEvent for $enum {
            fn event_type(&self) -> String {
                match self { $(Self::$variant { .. } => stringify!($variant).to_owned()),* }
            }
            fn event_version(&self) -> String {
                match self { $(Self::$variant { .. } => $version.to_owned()),* }
            }
        }
        impl $enum {
            /// Every event type name of this enum, in declaration order.
            pub const TYPES: &'static [&'static str] = &[$(stringify!($variant)),*];
        }
        impl $crate::shim::VersionedEvent for $enum {
            fn current_version(event_type: &str) -> Option<u32> {
                match event_type {
                    $(stringify!($variant) => $version.parse().ok(),)*
                    _ => None,
                }
            }
        }
    };
}
pub(crate) use domain_event;

/// Implements `cqrs_es::Aggregate` as a thin shim over [`Decider`].
macro_rules! cqrs_aggregate {
    ($ty:ty, $type_name:literal) => {
        impl cqrs_es::Aggregate for $ty {
            const TYPE: &'static str = $type_name;
            type Command = $crate::shim::Stamped<<$ty as $crate::shim::Decider>::Command>;
            type Event = <$ty as $crate::shim::Decider>::Event;
            type Error = $crate::error::DomainError;
            type Services = ();

            async fn handle(
                &mut self,
                command: Self::Command,
                _services: &Self::Services,
                sink: &cqrs_es::event_sink::EventSink<Self>,
            ) -> Result<(), Self::Error> {
                let events = $crate::shim::Decider::decide(self, command.command, command.now)?;
                for event in events {
                    sink.write(event, self).await;
                }
                Ok(())
            }

            fn apply(&mut self, event: Self::Event) {
                $crate::shim::Decider::apply(self, event)
            }
        }
    };
}
pub(crate) use cqrs_aggregate;
