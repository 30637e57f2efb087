//! The GDPR Art. 30 record of processing activities, generated from the data-availability
//! matrix and the configuration.
//!
//! The record has two parts: the processor's record (Art. 30(2): Sealpost processes on behalf of
//! each business) and, per tenant, the controller's part in the Art. 30(1) shape (the business is
//! the controller of its own data). Nothing category-specific is hand-written per recipient or
//! purpose: recipients are the principal kinds whose matrix cell is `Yes` or `Own`, purposes are
//! those recipients' [`PrincipalKind::purposes`] (less advertising, which the gate refuses for every
//! category but business information), and retention follows the configured periods. Only the
//! data subjects, the retention wording and whether a category survives shredding are chosen per
//! [`Category`], by an exhaustive `match`, so a new category cannot slip in undescribed.
//!
//! [`build_with`] takes the matrix rows as a parameter (so a test can prove that the record follows
//! the matrix); [`build`] uses [`MATRIX`]. Pure: no clock (the time comes in as
//! [`RopaInput::generated_at`]), no I/O.
//!
//! [`PrincipalKind::purposes`]: sealpost_domain::access::PrincipalKind::purposes
//! [`Category`]: sealpost_domain::access::Category

mod controller;
mod markdown;
mod processor;
mod record;
mod regions;

pub use record::{
    CategoryGrant, CategoryRecord, ControllerRecord, ProcessingActivity, ProcessorRecord,
    Recipient, RegionKind, RegionRecord, Ropa, StoreRecord, TenantRecipient, Transfers,
};

use controller::controller_record;
use processor::{activities, category_record, security_measures};
use regions::{regions, transfer_statement};
use sealpost_domain::access::{MatrixRow, MATRIX};
use serde::{Deserialize, Serialize};

/// How long data in use may sit outside its storage region (docs/design.md, "Local Storage").
pub const DATA_IN_USE_MAX_MINUTES: u32 = 60;

/// The processor's role, as stated in the record.
pub const PROCESSOR_ROLE: &str = "processor (GDPR Art. 28) on behalf of each business";

/// What the record is generated from, besides the matrix: the deployment's configuration and its
/// tenants.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RopaInput {
    /// When the record is generated, in milliseconds since the Unix epoch (UTC).
    pub generated_at: i64,
    /// The operator running Sealpost (the processor), e.g. `"Sealpost (self-hosted)"`.
    pub processor_name: String,
    /// Message retention in days (30): epoch keys are destroyed once this has passed.
    pub retention_days: u32,
    /// Granularity of the retention-epoch keys, in hours (1).
    pub epoch_hours: u32,
    /// How long billing lines are kept, in days.
    pub billing_retention_days: u32,
    /// Statistics groups smaller than this are suppressed (5).
    pub statistics_min_group: u32,
    /// The event store, e.g. `"sqlite (embedded)"` or `"postgres"`.
    pub store: String,
    /// The physical stores, the home store first, each with where it is and what it holds (from
    /// the deployment's store layout).
    #[serde(default)]
    pub stores: Vec<StoreRecord>,
    /// Where the region root keys come from, e.g. `"key file in the data directory (0600)"` or
    /// `"environment"`.
    pub root_key_source: String,
    /// The businesses (controllers) Sealpost processes for.
    pub tenants: Vec<TenantInput>,
}

/// One business (tenant, controller) as the record needs it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TenantInput {
    /// The business id (random, never personal).
    pub business_id: String,
    /// The business's name.
    pub name: String,
    /// The ids of the business's phone numbers.
    pub phone_number_ids: Vec<String>,
    /// Codes of the regions where this tenant's data is stored, e.g. `"EU"`, `"DE"`.
    pub regions: Vec<String>,
    /// Hosts of the business's own webhook endpoints (the business is the recipient there).
    pub webhook_hosts: Vec<String>,
}

/// Builds the record from [`MATRIX`] and `input`.
pub fn build(input: &RopaInput) -> Ropa {
    build_with(&MATRIX, input)
}

/// Builds the record from the given matrix rows and `input`.
pub fn build_with(matrix: &[MatrixRow], input: &RopaInput) -> Ropa {
    let categories: Vec<CategoryRecord> = matrix
        .iter()
        .map(|row| category_record(row, input))
        .collect();
    let all_regions: Vec<RegionRecord> = regions(
        input
            .tenants
            .iter()
            .flat_map(|t| t.regions.iter().map(String::as_str)),
    );
    let processor = ProcessorRecord {
        name: input.processor_name.clone(),
        role: PROCESSOR_ROLE.to_owned(),
        activities: activities(matrix),
        transfers: Transfers {
            statement: transfer_statement(&all_regions, &input.store, &input.stores),
            regions: all_regions,
            stores: input.stores.clone(),
        },
        security_measures: security_measures(matrix, input),
        categories,
    };
    let controllers = input
        .tenants
        .iter()
        .map(|t| controller_record(matrix, &processor.categories, t))
        .collect();
    Ropa {
        generated_at: input.generated_at,
        processor,
        controllers,
    }
}

#[cfg(test)]
mod tests;
