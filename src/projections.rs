//! The persisted projections a node folds from the log (each with its checkpoint, in the event
//! store's database): what `serve` loads at start, refreshes every minute and at stop, and what
//! `sealpost projections rebuild NAME` folds again from position 0.

use crate::app::AppError;
use crate::app::Apps;
use crate::identity::TokenIndex;
use sealpost_adapters::ledger::EventStore;
use sealpost_adapters::projection::{Fold, Persisted};
use sealpost_domain::PhoneNumberEvent;
use std::collections::BTreeMap;

/// The evidence projections' name (rows of their own, folded up to a signed checkpoint:
/// `crate::app::evidence`).
pub const EVIDENCE: &str = "evidence";

/// Every projection `projections rebuild` takes, by name.
pub const NAMES: [&str; 4] = [
    BusinessNumbers::NAME,
    Apps::NAME,
    TokenIndex::NAME,
    EVIDENCE,
];

/// Catches every projection up with the log and saves it, so the next start folds only what
/// comes after.
pub async fn refresh_all(store: &EventStore) -> Result<(), AppError> {
    Persisted::<BusinessNumbers>::refresh(store).await?;
    Persisted::<Apps>::refresh(store).await?;
    Persisted::<TokenIndex>::refresh(store).await?;
    Ok(())
}

/// Folds projection `name` again from position 0 and saves it; `progress(position, head)`.
/// Idempotent: the same log gives the same state. Returns the position it reached, or `None`
/// when no projection has that name.
pub async fn rebuild(
    store: &EventStore,
    name: &str,
    progress: &mut (dyn FnMut(u64, u64) + Send),
) -> Result<Option<u64>, AppError> {
    Ok(Some(match name {
        BusinessNumbers::NAME => Persisted::<BusinessNumbers>::rebuild(store, progress)
            .await?
            .position(),
        Apps::NAME => Persisted::<Apps>::rebuild(store, progress)
            .await?
            .position(),
        TokenIndex::NAME => Persisted::<TokenIndex>::rebuild(store, progress)
            .await?
            .position(),
        _ => return Ok(None),
    }))
}

/// Business phone numbers: id → display number (business information, nothing personal).
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct BusinessNumbers(pub BTreeMap<String, String>);

impl Fold for BusinessNumbers {
    const NAME: &'static str = "business-numbers";
    const VERSION: u64 = 1;

    fn wants(header: &sealpost_adapters::store::RowHeader) -> bool {
        header.event_type == "PhoneNumberAdded"
    }

    fn apply(
        &mut self,
        e: &sealpost_adapters::ledger::OpenedEvent,
    ) -> Result<(), sealpost_adapters::store::StoreError> {
        if let PhoneNumberEvent::PhoneNumberAdded {
            phone_number_id,
            display_number,
            ..
        } = e.decode::<PhoneNumberEvent>()?
        {
            self.0.insert(phone_number_id.to_string(), display_number);
        }
        Ok(())
    }
}
