//! The pure domain of Sealpost.
//!
//! Everything here is deterministic: no I/O, no clock, no randomness. Time arrives as a
//! [`Timestamp`] argument, ids and random bytes arrive already made. Commands are decided by
//! `decide(&state, command, now) -> Result<Vec<Event>, DomainError>` and folded by `apply`;
//! the `cqrs-es` [`cqrs_es::Aggregate`] implementations are thin shims over those functions.
//!
//! Personal data (message content, consumer phone numbers, profile names) never appears here in
//! plaintext inside an event: events carry [`Sealed`] fields that only the adapters can open, and
//! only through the access gate.

pub mod access;
pub mod aggregates;
pub mod apps;
pub mod content;
pub mod error;
pub mod identity;
pub mod ids;
pub mod integrity;
pub mod media;
pub mod phone;
pub mod ports;
pub mod region;
pub mod sealed;
pub mod shim;
pub mod time;
pub mod transit;
pub mod upcast;

pub use access::{Category, Decision, Principal, PrincipalKind, Purpose};
pub use aggregates::business::{Business, BusinessCommand, BusinessEvent};
pub use aggregates::message::{
    Direction, Message, MessageCommand, MessageEvent, MessageKind, MessageStatus,
};
pub use aggregates::phone_number::{PhoneNumber, PhoneNumberCommand, PhoneNumberEvent};
pub use aggregates::retention::{
    RetentionCommand, RetentionEvent, RetentionLedger, RotationReason,
};
pub use aggregates::subject::{Subject, SubjectCommand, SubjectEvent};
pub use content::MessageContent;
pub use error::DomainError;
pub use ids::{BusinessId, IdError, MediaId, MessageId, PhoneNumberId, SubjectId, DEPLOYMENT};
pub use phone::E164;
pub use region::Region;
pub use sealed::{FieldScope, Opened, Sealed};
pub use shim::{Decider, DecodeError, Stamped, VersionedEvent};
pub use time::{EpochId, RetentionPolicy, Timestamp};
