//! [`RegionalLeases`]: the home store's leases, with every change of owner recorded in each
//! Local Storage region's store before the new holder acts, so that a fenced write to a
//! region's store is checked in its own transaction, as in the home store (ADR 0016, 0019).

use super::{Fence, Lease, LeaseRow, Leases, RegionStores, StoreError};
use async_trait::async_trait;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// The home store's [`Leases`], mirrored into the regions' stores.
#[derive(Debug)]
pub struct RegionalLeases {
    home: Arc<dyn Leases>,
    regions: Arc<RegionStores>,
    /// The owner and epoch of each lease this process last recorded in the regions: a renewal
    /// (same owner, same epoch) is not recorded again.
    mirrored: Mutex<HashMap<String, (String, u64)>>,
}

impl RegionalLeases {
    /// `home`'s leases, mirrored into the stores of `regions`.
    pub fn new(home: Arc<dyn Leases>, regions: Arc<RegionStores>) -> Self {
        Self {
            home,
            regions,
            mirrored: Mutex::new(HashMap::new()),
        }
    }

    fn already_mirrored(&self, lease: &Lease) -> bool {
        self.mirrored
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&lease.name)
            .is_some_and(|(owner, epoch)| *owner == lease.owner && *epoch == lease.epoch)
    }
}

#[async_trait]
impl Leases for RegionalLeases {
    /// A lease granted under a new owner or epoch is recorded in every region's store before
    /// it is handed out; if that fails the caller is told so (an error), and holds nothing it
    /// could act on.
    async fn acquire(
        &self,
        name: &str,
        owner: &str,
        now: i64,
        ttl_ms: i64,
    ) -> Result<Option<Lease>, StoreError> {
        let Some(lease) = self.home.acquire(name, owner, now, ttl_ms).await? else {
            return Ok(None);
        };
        if !self.already_mirrored(&lease) {
            self.regions
                .mirror(&LeaseRow {
                    name: lease.name.clone(),
                    owner: lease.owner.clone(),
                    epoch: lease.epoch,
                    acquired_at: now,
                    expires_at: lease.expires_at,
                })
                .await?;
            self.mirrored
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .insert(lease.name.clone(), (lease.owner.clone(), lease.epoch));
        }
        Ok(Some(lease))
    }

    async fn release(&self, lease: &Lease) -> Result<(), StoreError> {
        self.home.release(lease).await
    }

    async fn free_all(&self) -> Result<(), StoreError> {
        self.home.free_all().await
    }

    async fn leases(&self) -> Result<Vec<LeaseRow>, StoreError> {
        self.home.leases().await
    }

    async fn check(&self, fence: &Fence) -> Result<(), StoreError> {
        self.home.check(fence).await
    }

    async fn mirror(&self, lease: &LeaseRow) -> Result<(), StoreError> {
        self.home.mirror(lease).await
    }
}
