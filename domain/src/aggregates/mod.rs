//! The aggregates of docs/design.md: `Business`, `PhoneNumber`, `Subject`, `Message`, plus
//! the per-business `RetentionLedger` that records every key destruction.

pub mod business;
pub mod message;
pub mod phone_number;
pub mod profile;
pub mod retention;
pub mod subject;
pub mod templates;
