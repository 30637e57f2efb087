//! [`RegionalKeys`]: the [`KeyStore`] that keeps each Local Storage region's keys, blind index
//! and Signal state in that region's own store, and the rest (NA, EU) in the home store
//! (issue 14, ADR 0019). Every key names its region (`kind/REGION/business/…`), and every
//! index, account and session call names it too, so each write goes to one store; only work
//! across all keys (retention's expired epochs, scrubbing, a subject's index entries) visits
//! each store in turn.
//!
//! What a region stored before it had a store of its own (an earlier version kept every
//! region's keys at home) stays at home until it expires, as data stored before an election
//! does: a read of a region looks in its own store, then at home; a write never goes home; a
//! key, an index entry or an account found at home wins over a new one (first writer wins, a
//! home tombstone still forbids the id), and destroying a region's keys destroys their home
//! copies too.

use super::{
    ChunkRow, Destruction, Fence, KeyState, KeyStore, MediaChunks, RegionStores, RootSealed,
    SessionRow, StoreError, WrappedKey,
};
use async_trait::async_trait;
use sealpost_domain::Region;
use std::collections::BTreeMap;
use std::sync::Arc;

/// The home key store and the regions' key stores behind one [`KeyStore`].
#[derive(Debug)]
pub struct RegionalKeys {
    home: Arc<dyn KeyStore>,
    regions: Arc<RegionStores>,
}

/// The Local Storage region a region code names; `None` for the home store's (NA, EU, or a
/// code this build does not know).
fn local(code: &str) -> Option<Region> {
    code.parse::<Region>().ok().filter(|r| r.is_local_storage())
}

/// The region code inside a key id (`kind/REGION/business/…`).
fn region_of_key(key_id: &str) -> &str {
    key_id.split('/').nth(1).unwrap_or("")
}

impl RegionalKeys {
    /// Routes between `home` and the stores of `regions`.
    pub fn new(home: Arc<dyn KeyStore>, regions: Arc<RegionStores>) -> Self {
        Self { home, regions }
    }

    /// The store a write of `region`'s data goes to (a region's store is created on first use).
    async fn for_write(&self, region: &str) -> Result<Arc<dyn KeyStore>, StoreError> {
        match local(region) {
            None => Ok(self.home.clone()),
            Some(r) => self.regions.keys_for_write(r).await,
        }
    }

    /// The stores a read of `region`'s data looks in, in order: a Local Storage region's own
    /// (when it has one), then home (what the region stored before it had a store).
    async fn readers(&self, region: &str) -> Result<Vec<Arc<dyn KeyStore>>, StoreError> {
        let mut stores = Vec::with_capacity(2);
        if let Some(r) = local(region) {
            stores.extend(self.regions.keys_for_read(r).await?);
        }
        stores.push(self.home.clone());
        Ok(stores)
    }

    /// Every region's store, then the home store's (`None`).
    async fn every(&self) -> Result<Vec<(Option<Region>, Arc<dyn KeyStore>)>, StoreError> {
        let mut all = Vec::new();
        for region in self.regions.regions().await? {
            all.push((Some(region), self.regions.keys_for_write(region).await?));
        }
        all.push((None, self.home.clone()));
        Ok(all)
    }
}

#[async_trait]
impl KeyStore for RegionalKeys {
    async fn insert_if_absent(&self, key: &WrappedKey) -> Result<WrappedKey, StoreError> {
        if local(&key.region).is_some() {
            match self.home.get(&key.business_id, &key.key_id).await? {
                KeyState::Live(existing) => return Ok(existing),
                KeyState::Destroyed => return Err(StoreError::KeyDestroyed),
                KeyState::Missing => {}
            }
        }
        self.for_write(&key.region)
            .await?
            .insert_if_absent(key)
            .await
    }

    async fn get(&self, business: &str, key_id: &str) -> Result<KeyState, StoreError> {
        for store in self.readers(region_of_key(key_id)).await? {
            match store.get(business, key_id).await? {
                KeyState::Missing => continue,
                found => return Ok(found),
            }
        }
        Ok(KeyState::Missing)
    }

    async fn latest_ledger(
        &self,
        business_id: &str,
        region: &str,
    ) -> Result<Option<WrappedKey>, StoreError> {
        for store in self.readers(region).await? {
            if let Some(key) = store.latest_ledger(business_id, region).await? {
                return Ok(Some(key));
            }
        }
        Ok(None)
    }

    async fn destroyed_at(&self, business: &str, key_id: &str) -> Result<Option<i64>, StoreError> {
        for store in self.readers(region_of_key(key_id)).await? {
            if let Some(at) = store.destroyed_at(business, key_id).await? {
                return Ok(Some(at));
            }
        }
        Ok(None)
    }

    /// Each region's heads from its store, where its keys are made; a head at home of a
    /// region that has a store of its own (written before it had one) is older than any there.
    async fn ledger_heads(&self) -> Result<Vec<WrappedKey>, StoreError> {
        let mut newest: BTreeMap<(String, String), WrappedKey> = BTreeMap::new();
        for (_, store) in self.every().await? {
            for key in store.ledger_heads().await? {
                let slot = (key.business_id.clone(), key.region.clone());
                match newest.get(&slot) {
                    Some(known) if known.version >= key.version => {}
                    _ => {
                        newest.insert(slot, key);
                    }
                }
            }
        }
        Ok(newest.into_values().collect())
    }

    async fn expired_epochs(&self, up_to: i64, limit: u32) -> Result<Vec<WrappedKey>, StoreError> {
        let mut all = Vec::new();
        for (_, store) in self.every().await? {
            all.extend(store.expired_epochs(up_to, limit).await?);
        }
        all.sort_by_key(|k| k.epoch);
        all.truncate(limit as usize);
        Ok(all)
    }

    /// Each store's keys are destroyed in that store's own transaction, the regions' first,
    /// with the subjects' index entries and sessions of that store; the other stores' entries
    /// of those subjects go in a transaction each (a subject's region is its number's, which
    /// the destruction does not name). A crash between two stores leaves the rest to the
    /// retry, which destroys what is left.
    async fn destroy(&self, destruction: &Destruction) -> Result<u64, StoreError> {
        let mut by_region: BTreeMap<Option<Region>, Vec<_>> = BTreeMap::new();
        for key in &destruction.keys {
            by_region
                .entry(local(region_of_key(&key.id)))
                .or_default()
                .push(key.clone());
        }
        let mut deleted = 0;
        // Home copies of a region's keys (stored before the region had a store) go too: only
        // those that exist, so no tombstone naming a region's subject is written home.
        let mut at_home = Vec::new();
        for (region, keys) in &by_region {
            if region.is_some() {
                for key in keys {
                    if matches!(
                        self.home.get(&key.business, &key.id).await?,
                        KeyState::Live(_)
                    ) {
                        at_home.push(key.clone());
                    }
                }
            }
        }
        if !at_home.is_empty() {
            by_region.entry(None).or_default().extend(at_home);
        }
        for (region, keys) in by_region.iter().rev() {
            let store = match region {
                Some(r) => self.regions.keys_for_write(*r).await?,
                None => self.home.clone(),
            };
            deleted += store
                .destroy(&Destruction {
                    keys: keys.clone(),
                    index_subjects: destruction.index_subjects.clone(),
                    at: destruction.at,
                })
                .await?;
        }
        if !destruction.index_subjects.is_empty() {
            for (region, store) in self.every().await? {
                if by_region.contains_key(&region) {
                    continue; // done with its keys, in their transaction
                }
                store
                    .destroy(&Destruction {
                        keys: Vec::new(),
                        index_subjects: destruction.index_subjects.clone(),
                        at: destruction.at,
                    })
                    .await?;
            }
        }
        Ok(deleted)
    }

    async fn scrub(&self) -> Result<(), StoreError> {
        for (_, store) in self.every().await? {
            store.scrub().await?;
        }
        Ok(())
    }

    async fn index_put(
        &self,
        business_id: &str,
        region: &str,
        blind: &[u8],
        subject_id: &str,
    ) -> Result<String, StoreError> {
        if local(region).is_some() {
            if let Some(taken) = self.home.index_get(business_id, region, blind).await? {
                return Ok(taken);
            }
        }
        self.for_write(region)
            .await?
            .index_put(business_id, region, blind, subject_id)
            .await
    }

    async fn index_get(
        &self,
        business_id: &str,
        region: &str,
        blind: &[u8],
    ) -> Result<Option<String>, StoreError> {
        for store in self.readers(region).await? {
            if let Some(subject) = store.index_get(business_id, region, blind).await? {
                return Ok(Some(subject));
            }
        }
        Ok(None)
    }

    async fn signal_account(
        &self,
        business: &str,
        region: &str,
        owner: &str,
    ) -> Result<Option<(u32, Vec<u8>)>, StoreError> {
        for store in self.readers(region).await? {
            if let Some(account) = store.signal_account(business, region, owner).await? {
                return Ok(Some(account));
            }
        }
        Ok(None)
    }

    async fn delete_signal_account(
        &self,
        business: &str,
        region: &str,
        owner: &str,
    ) -> Result<(), StoreError> {
        for store in self.readers(region).await? {
            store.delete_signal_account(business, region, owner).await?;
        }
        Ok(())
    }

    async fn put_signal_account(
        &self,
        owner: &str,
        business_id: &str,
        region: &str,
        wrapped: (u32, &[u8]),
        at: i64,
    ) -> Result<(), StoreError> {
        self.for_write(region)
            .await?
            .put_signal_account(owner, business_id, region, wrapped, at)
            .await?;
        if local(region).is_some() {
            // A copy from before the region had a store goes once the account is saved there.
            self.home
                .delete_signal_account(business_id, region, owner)
                .await?;
        }
        Ok(())
    }

    /// The home store's record serves every region: one generation per region, deployment wide.
    async fn root_generation(&self, region: &str) -> Result<Option<(u32, i64)>, StoreError> {
        self.home.root_generation(region).await
    }

    async fn set_root_generation(
        &self,
        region: &str,
        generation: u32,
        at: i64,
    ) -> Result<(), StoreError> {
        self.home.set_root_generation(region, generation, at).await
    }

    /// The region's own store's rows and what it left at home, merged in id order.
    async fn under_root(
        &self,
        region: &str,
        at: (u32, super::UnderRoot),
        after: &str,
        limit: u32,
    ) -> Result<Vec<RootSealed>, StoreError> {
        let mut found = Vec::new();
        for store in self.readers(region).await? {
            found.extend(store.under_root(region, at, after, limit).await?);
        }
        found.sort_by(|a, b| a.id.cmp(&b.id));
        found.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        Ok(found)
    }

    async fn count_under_root(&self, region: &str, below: u32) -> Result<u64, StoreError> {
        let mut n = 0;
        for store in self.readers(region).await? {
            n += store.count_under_root(region, below).await?;
        }
        Ok(n)
    }

    /// In the store that holds the row (a row's id and old bytes match in one store only).
    async fn rewrap(
        &self,
        row: &RootSealed,
        generation: u32,
        sealed: &[u8],
    ) -> Result<bool, StoreError> {
        for store in self.readers(&row.region).await? {
            if store.rewrap(row, generation, sealed).await? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    async fn signal_session(
        &self,
        business_id: &str,
        region: &str,
        subject_id: &str,
        device: u8,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        for store in self.readers(region).await? {
            if let Some(session) = store
                .signal_session(business_id, region, subject_id, device)
                .await?
            {
                return Ok(Some(session));
            }
        }
        Ok(None)
    }

    /// Each store's sessions in that store's transaction, with the fence checked there: a
    /// region's store holds a copy of every lease, recorded before each new holder acts
    /// ([`super::RegionalLeases`]), so a write under a lost lease is refused as at home.
    async fn put_signal_sessions(
        &self,
        sessions: &[SessionRow],
        fence: Option<&Fence>,
    ) -> Result<(), StoreError> {
        let mut by_region: BTreeMap<Option<Region>, Vec<SessionRow>> = BTreeMap::new();
        for s in sessions {
            by_region
                .entry(local(&s.region))
                .or_default()
                .push(s.clone());
        }
        for (region, rows) in by_region {
            match region {
                None => self.home.put_signal_sessions(&rows, fence).await?,
                Some(r) => {
                    let store = self.regions.keys_for_write(r).await?;
                    store.put_signal_sessions(&rows, fence).await?;
                }
            }
        }
        Ok(())
    }
}

/// Chunks go where their region's keys go: a Local Storage region's into its own store.
#[async_trait]
impl MediaChunks for RegionalKeys {
    async fn put_chunk(&self, chunk: ChunkRow<'_>) -> Result<(), StoreError> {
        self.for_write(chunk.region).await?.put_chunk(chunk).await
    }

    async fn chunk(
        &self,
        business: &str,
        region: &str,
        media: &str,
        seq: u32,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        for store in self.readers(region).await? {
            if let Some(sealed) = store.chunk(business, region, media, seq).await? {
                return Ok(Some(sealed));
            }
        }
        Ok(None)
    }

    async fn drop_chunks(
        &self,
        business: &str,
        region: &str,
        media: &str,
    ) -> Result<u64, StoreError> {
        let mut dropped = 0;
        for store in self.readers(region).await? {
            dropped += store.drop_chunks(business, region, media).await?;
        }
        Ok(dropped)
    }

    async fn drop_expired_chunks(&self, up_to: i64, limit: u32) -> Result<u64, StoreError> {
        let mut dropped = 0;
        for (_, store) in self.every().await? {
            let left = u32::try_from(u64::from(limit).saturating_sub(dropped)).unwrap_or(0);
            if left == 0 {
                break;
            }
            dropped += store.drop_expired_chunks(up_to, left).await?;
        }
        Ok(dropped)
    }
}
