//! The transport: the WhatsApp role. The port ([`Transport`], [`Envelope`], [`Address`],
//! [`Payload`], [`Receipt`], [`IntegritySink`]) is declared in `sealpost_domain::ports::transport`
//! (ADR 0011) and re-exported here.
//!
//! [`sim::SimNetwork`] is the default, an in-process simulated network with simulated consumer
//! devices ([`sim::SimDevice`]).

pub mod http;
pub mod integrity;
pub mod signals;
pub mod sim;
pub mod world;

pub use sealpost_domain::ports::transport::{
    Address, Envelope, IntegritySink, Payload, Receipt, SignalBatch, Transport, TransportError,
};
