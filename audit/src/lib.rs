//! Evidence: the access gate that decides and records every read of classified data, and the
//! scanners that prove no plaintext personal data reached storage.
//!
//! Later: the tamper-evident Merkle log, auditor queries and DPO reports (issue 5).

pub mod gate;
pub mod scan;

pub use gate::{AccessGate, AccessRequest, FieldRef, GateError};
