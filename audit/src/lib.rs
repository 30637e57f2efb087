//! Evidence: the access gate that decides and records every read of classified data.
//!
//! Later: the tamper-evident Merkle log, auditor queries and DPO reports (issue 5).

pub mod gate;

pub use gate::{AccessGate, AccessRequest, FieldRef, GateError};
