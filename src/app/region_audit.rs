//! The tamper-evident logs of the Local Storage regions' own stores (issue 14, ADR 0020): each
//! region's log of sealed bodies has its own leaves, computed as its rows are written, and its
//! own checkpoints, signed by a key wrapped by that region's root key and kept in its store.

use super::{AppError, Evidence, Sealpost, AUDIT_ORIGIN};
use sealpost_adapters::ledger::{EventStore, LedgerError};
use sealpost_adapters::store::Stores;
use sealpost_audit::log::{AuditLog, Checkpoint};
use sealpost_domain::{Region, Timestamp};
use std::collections::BTreeMap;
use std::sync::Arc;

/// The regions' logs this process has opened.
pub(super) type RegionAudits = Arc<tokio::sync::Mutex<BTreeMap<Region, Arc<AuditLog>>>>;

/// The origin line of `region`'s log.
pub fn region_origin(region: Region) -> String {
    format!("{AUDIT_ORIGIN}/{}", region.code())
}

/// The log of each Local Storage region that has a store, in region order, opened into
/// `opened` (with its signing key) on first use.
async fn open_all(
    opened: &RegionAudits,
    stores: &Stores,
    store: &EventStore,
    now: Timestamp,
) -> Result<Vec<(Region, Arc<AuditLog>)>, AppError> {
    let mut out = Vec::new();
    for region in stores.regions.regions().await? {
        let mut opened = opened.lock().await;
        let audit = match opened.get(&region) {
            Some(audit) => audit.clone(),
            None => {
                let events = stores
                    .regions
                    .events_for_write(region)
                    .await
                    .map_err(LedgerError::from)?;
                let origin = region_origin(region);
                let audit =
                    AuditLog::open_in(events, store.vault(), region, &origin, None, now).await?;
                opened.insert(region, audit.clone());
                audit
            }
        };
        out.push((region, audit));
    }
    Ok(out)
}

/// A checkpoint of each region's log: newly signed, or its newest if nothing came since.
async fn checkpoints(
    audits: Vec<(Region, Arc<AuditLog>)>,
    now: Timestamp,
) -> Result<BTreeMap<Region, Checkpoint>, AppError> {
    let mut out = BTreeMap::new();
    for (region, audit) in audits {
        out.insert(region, audit.checkpoint(now).await?);
    }
    Ok(out)
}

impl Sealpost {
    /// The tamper-evident log of each Local Storage region that has a store, in region order.
    pub async fn region_audits(&self) -> Result<Vec<(Region, Arc<AuditLog>)>, AppError> {
        open_all(&self.region_audits, &self.stores, &self.store, self.now()).await
    }
}

impl Evidence<'_> {
    /// A current checkpoint of each Local Storage region's log: what an answer drawing on a
    /// region's store names.
    pub async fn region_checkpoints(&self) -> Result<BTreeMap<Region, Checkpoint>, AppError> {
        let audits = open_all(self.region_audits, self.stores, self.store, self.now()).await?;
        checkpoints(audits, self.now()).await
    }
}
