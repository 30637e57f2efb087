//! The ports the application drives, declared here so that the application's signatures name
//! domain traits only and `adapters` implements them (ADR 0011). Declarations, no I/O.

pub mod signal;
pub mod transport;

use crate::time::Timestamp;

/// Where "now" comes from (`adapters` offers the system clock and a simulated one).
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// The current moment.
    fn now(&self) -> Timestamp;
}
