//! The evidence projections: access (every gate decision, for auditor queries), statistics
//! (non-identifiable counts), billing (billable messages per business and category) and the
//! retention facts behind the DPO's retention report.
//!
//! A catch-up fold over the log's outer layer, a page at a time: no inner (personal) field is
//! ever opened, so every figure here survives shredding and none of it can identify a consumer.
//! The results are rows in the event store's database ([`EvidenceRows`]), written with the
//! position they reach in one transaction, so the server's memory does not grow with the
//! messages in retention (ADR 0015). A consumer appears in them only as a keyed tag, to count
//! distinct consumers per statistics group (groups with fewer than the minimum are suppressed)
//! and to find its messages when its key goes; the tag is cleared then. No output carries it;
//! the DPO's erasure list names the random subject id that is the object of the erasure.
//! Rebuildable from position 0 at any time.
//!
//! A Local Storage region's consumers are tagged only in that region's own store: each region
//! store folds its region's messages with their tags, the distinct consumers of their groups
//! and their shredding, at the same log positions as the home store, whose rows keep every
//! count without those tags (ADR 0021). The answers add the two.

mod fold;
mod queries;
mod rows;

pub use queries::residual_risks;
pub use rows::{AccessPage, BillingRow, StatRow};
pub use sealpost_adapters::store::{AccessEntry, AccessQuery};

use fold::Part;
use sealpost_adapters::ledger::{EventStore, LedgerError};
use sealpost_adapters::store::{EvidenceRows, StoreError};
use sealpost_domain::{Region, Timestamp};
use std::sync::Arc;

/// The default minimum group size below which a statistic is suppressed.
pub const DEFAULT_MIN_GROUP: u32 = 5;

/// The pricing model every billing line is under (Cloud API per-message pricing).
pub const PRICING_MODEL: &str = "PMP";

/// Events read and folded per transaction.
const PAGE: u64 = 1_000;

fn day(ms: i64) -> String {
    Timestamp::from_millis(ms).utc_date()
}

/// The evidence projections of one store: the fold that fills their rows and the questions
/// they answer.
#[derive(Debug, Clone, Copy)]
pub struct EvidenceProjection<'a> {
    store: &'a EventStore,
    rows: &'a dyn EvidenceRows,
}

impl<'a> EvidenceProjection<'a> {
    /// The projections of `store`, kept in `rows`.
    pub fn new(store: &'a EventStore, rows: &'a dyn EvidenceRows) -> Self {
        Self { store, rows }
    }

    /// The last position folded in (by the home store's rows).
    pub async fn position(&self) -> Result<u64, LedgerError> {
        Ok(self.rows.evidence_position().await?)
    }

    /// The rows of each Local Storage region with a store, beside the home rows.
    async fn regions(&self) -> Result<Vec<(Region, Arc<dyn EvidenceRows>)>, StoreError> {
        let Some(stores) = self.store.region_stores() else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for region in stores.regions().await? {
            if let Some(rows) = stores.evidence_for_read(region).await? {
                out.push((region, rows));
            }
        }
        Ok(out)
    }

    /// The home store's part of the fold.
    fn home(&self) -> Part {
        Part::Home {
            regional: self.store.region_stores().is_some(),
        }
    }

    /// Folds events up to and including `up_to` (e.g. a checkpoint's size), so that an answer
    /// is exactly consistent with that checkpoint; returns the position reached: the home
    /// rows' and every region's, or, where they differ, the lowest below `up_to` if one is,
    /// else the highest. Each page of each store is one transaction; if another node folded
    /// meanwhile, it goes on from where that one got. `progress(done, total)` after each page,
    /// over the positions every store's rows fold.
    pub async fn catch_up(
        &self,
        up_to: u64,
        progress: &mut (dyn FnMut(u64, u64) + Send),
    ) -> Result<u64, LedgerError> {
        let parts = 1 + self.regions().await?.len() as u64;
        let home = self
            .catch_up_part((self.home(), self.rows), up_to, &mut |p, _| {
                progress(p, parts * up_to)
            })
            .await?;
        let mut reached = vec![home];
        // Listed after the home rows: their fold opens the store of a region it meets.
        let regions = self.regions().await?;
        let total = (1 + regions.len() as u64) * up_to;
        for (i, (region, rows)) in regions.iter().enumerate() {
            let before = (1 + i as u64) * up_to;
            let part = (Part::Region(*region), rows.as_ref());
            let mut step = |p: u64, _: u64| progress(before + p, total);
            reached.push(self.catch_up_part(part, up_to, &mut step).await?);
        }
        let low = reached.iter().copied().min().unwrap_or(home);
        Ok(match low < up_to {
            true => low,
            false => reached.into_iter().max().unwrap_or(home),
        })
    }

    /// [`Self::catch_up`] of one store's rows.
    async fn catch_up_part(
        &self,
        (part, rows): (Part, &dyn EvidenceRows),
        up_to: u64,
        progress: &mut (dyn FnMut(u64, u64) + Send),
    ) -> Result<u64, LedgerError> {
        let mut position = rows.evidence_position().await?;
        while position < up_to {
            let limit = (up_to - position).min(PAGE) as u32;
            let page = self.store.log().read_all(position, limit).await?;
            let page: Vec<_> = page.into_iter().filter(|r| r.position <= up_to).collect();
            let Some(to) = page.last().map(|r| r.position) else {
                break;
            };
            let write = fold::page(self.store, (part, rows), position, to, page).await?;
            position = if rows.evidence_write(&write).await? {
                to
            } else {
                rows.evidence_position().await?
            };
            progress(position, up_to);
        }
        Ok(position)
    }

    /// Empties the rows (the home store's and every region's) and folds the log again up to
    /// `up_to`.
    pub async fn rebuild(
        &self,
        up_to: u64,
        progress: &mut (dyn FnMut(u64, u64) + Send),
    ) -> Result<u64, LedgerError> {
        self.rows.evidence_reset().await?;
        for (_, rows) in self.regions().await? {
            rows.evidence_reset().await?;
        }
        self.catch_up(up_to, progress).await
    }
}

#[cfg(test)]
mod tests;
