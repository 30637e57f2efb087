//! The persisted projections a node folds from the log (each with its checkpoint, in the event
//! store's database): what `serve` loads at start, refreshes every minute and at stop, and what
//! `sealpost projections rebuild NAME` folds again from position 0.

use crate::app::AppError;
use crate::http::BusinessNumbers;
use crate::identity::TokenIndex;
use crate::webhooks::Apps;
use sealpost_adapters::ledger::EventStore;
use sealpost_adapters::projection::{Fold, Persisted};

/// Every persisted projection by name.
pub const NAMES: [&str; 3] = [BusinessNumbers::NAME, Apps::NAME, TokenIndex::NAME];

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
