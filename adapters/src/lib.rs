pub mod clock;
pub mod crypto;
pub mod ledger;
pub mod repository;
pub mod store;
pub mod telemetry;
pub mod testkit;
pub mod vault;
