//! Evidence: the access gate that decides and records every read of classified data, the
//! tamper-evident Merkle log over every stored row with its signed checkpoints and proofs,
//! `audit verify`, and the record of processing.

pub mod certificate;
mod error;
pub mod gate;
pub mod html;
pub mod log;
pub mod merkle;
pub mod note;
pub mod ropa;
pub mod tiles;
pub mod verify;

pub use gate::{AccessGate, AccessRequest, FieldRef, GateError};
