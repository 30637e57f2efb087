pub mod crypto;
pub mod telemetry;
