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
