//! The tamper-evident logs of the Local Storage regions' own stores (issue 14, ADR 0020): each
//! region's log of sealed bodies has its own leaves, computed as its rows are written, and its
//! own checkpoints, signed by a key wrapped by that region's root key and kept in its store.

use super::{AppError, Evidence, Sealpost, AUDIT_ORIGIN};
use sealpost_adapters::ledger::{EventStore, LedgerError, Reference};
use sealpost_adapters::store::{PhysicalStore, StoredRow, Stores};
use sealpost_audit::certificate::RegionProof;
use sealpost_audit::log::{AuditLog, Checkpoint};
use sealpost_audit::verify::BundleRow;
use sealpost_domain::{Region, Timestamp};
use sealpost_projections::report::{CheckpointRef, StoreRow};
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
        let known = opened.lock().await.get(&region).cloned();
        let audit = match known {
            Some(audit) => audit,
            None => {
                // Opened without the lock: a region out of reach holds up no other caller.
                let events = stores
                    .regions
                    .events_for_write(region)
                    .await
                    .map_err(LedgerError::from)?;
                let origin = region_origin(region);
                let audit =
                    AuditLog::open_in(events, store.vault(), region, &origin, None, now).await?;
                // Two callers may have opened it at once: the first one kept is everyone's.
                opened.lock().await.entry(region).or_insert(audit).clone()
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

    /// The log of Local Storage region `region`, if it has a store.
    pub async fn region_audit(&self, region: Region) -> Result<Option<Arc<AuditLog>>, AppError> {
        Ok(self
            .region_audits()
            .await?
            .into_iter()
            .find_map(|(r, audit)| (r == region).then_some(audit)))
    }
}

impl Evidence<'_> {
    /// A current checkpoint of each Local Storage region's log: what an answer drawing on a
    /// region's store names.
    pub async fn region_checkpoints(&self) -> Result<BTreeMap<Region, Checkpoint>, AppError> {
        let audits = open_all(self.region_audits, self.stores, self.store, self.now()).await?;
        checkpoints(audits, self.now()).await
    }

    /// The physical stores (the home store first), each Local Storage region's with a current
    /// checkpoint of its own log.
    pub(super) async fn checkpointed_layout(
        &self,
    ) -> Result<Vec<(PhysicalStore, Option<Checkpoint>)>, AppError> {
        let mut regions = self.region_checkpoints().await?;
        Ok(self
            .stores
            .layout()
            .await?
            .into_iter()
            .map(|s| {
                let own = s.region.and_then(|r| regions.remove(&r));
                (s, own)
            })
            .collect())
    }

    /// The physical stores as the retention report lists them: the home store (whose log the
    /// report's checkpoint is of), then each region's with the checkpoint of its own log.
    pub(super) async fn store_rows(&self) -> Result<Vec<StoreRow>, AppError> {
        Ok(self
            .checkpointed_layout()
            .await?
            .into_iter()
            .map(|(s, own)| StoreRow {
                audit_log: match (s.region, &own) {
                    (None, _) => "this store's own: the report's checkpoint is of it".to_owned(),
                    (Some(_), Some(c)) => format!(
                        "its own (the region's sealed event bodies): checkpoint of size {} \
                         with root {}, signed by the region's key {}",
                        c.size, c.root, c.public_key
                    ),
                    (Some(_), None) => "its own: no checkpoint signed yet".to_owned(),
                },
                checkpoint: own.as_ref().map(checkpoint_ref),
                region: s.region.map(|r| r.code().to_owned()),
                location: s.location,
                holds: s.holds.to_owned(),
            })
            .collect())
    }

    /// For a home `row` whose body is in a Local Storage region's log: that body's row, proven
    /// under a fresh checkpoint of the region's log (`None` for a row whole at home).
    pub(super) async fn region_proof(
        &self,
        row: &StoredRow,
    ) -> Result<Option<RegionProof>, AppError> {
        let Some(reference) = Reference::decode(&row.payload) else {
            return Ok(None);
        };
        let region: Region = row
            .header
            .region
            .parse()
            .map_err(|_| AppError::Corrupt("region"))?;
        let audits = open_all(self.region_audits, self.stores, self.store, self.now()).await?;
        let audit = audits
            .into_iter()
            .find_map(|(r, audit)| (r == region).then_some(audit))
            .ok_or(AppError::Corrupt("a region's row without its store"))?;
        let log = self
            .stores
            .regions
            .events_for_read(region)
            .await
            .map_err(LedgerError::from)?
            .ok_or(AppError::Corrupt("a region's row without its store"))?;
        let body = log
            .read_positions(&[reference.position])
            .await
            .map_err(LedgerError::from)?
            .into_iter()
            .find(|b| b.position == reference.position)
            .ok_or(AppError::Corrupt("a referenced body is missing"))?;
        if sealpost_audit::log::sha256(&body.payload) != reference.hash {
            return Err(AppError::Corrupt(
                "a referenced body does not match its reference",
            ));
        }
        let checkpoint = audit.checkpoint(self.now()).await?;
        let inclusion_proof = audit.inclusion(body.position, checkpoint.size).await?;
        Ok(Some(RegionProof {
            region: region.code().to_owned(),
            reference: hex::encode(&row.payload),
            event: BundleRow::of(&body, None),
            inclusion_proof,
            checkpoint,
        }))
    }
}

/// A checkpoint as the retention report names it.
pub(super) fn checkpoint_ref(c: &Checkpoint) -> CheckpointRef {
    CheckpointRef {
        size: c.size,
        root: c.root.clone(),
        signed_at: c.signed_at,
        public_key: c.public_key.clone(),
    }
}
