//! Snapshots of aggregates and persisted projections, sealed under the ledger key like events;
//! their associated data binds stream, business, region and sequence.

use super::{EventContext, EventStore, LedgerError};
use crate::crypto;
use crate::store::{SnapshotRow, StoreError, StreamId};
use serde_json::Value;

fn snapshot_aad(stream: &StreamId, business: &str, region: &str, sequence: u64) -> Vec<u8> {
    crypto::aad(&[
        b"sealpost/snapshot/v1",
        stream.kind.as_bytes(),
        stream.id.as_bytes(),
        business.as_bytes(),
        region.as_bytes(),
        &sequence.to_be_bytes(),
    ])
}

impl EventStore {
    /// Seals and saves a snapshot of an aggregate.
    pub async fn save_snapshot(
        &self,
        stream: &StreamId,
        ctx: &EventContext,
        aggregate: &Value,
        current_sequence: u64,
        snapshot_version: u64,
    ) -> Result<(), LedgerError> {
        let plain = serde_json::to_vec(aggregate)
            .map_err(|_| StoreError::Invalid("snapshot does not serialize"))?;
        self.save_snapshot_bytes(stream, ctx, &plain, current_sequence, snapshot_version)
            .await
    }

    /// Seals and saves a snapshot given as bytes (a persisted projection's own encoding).
    pub async fn save_snapshot_bytes(
        &self,
        stream: &StreamId,
        ctx: &EventContext,
        plain: &[u8],
        current_sequence: u64,
        snapshot_version: u64,
    ) -> Result<(), LedgerError> {
        let now = self.clock.now();
        let (version, key) = self
            .vault
            .ledger_key(&ctx.business_id, ctx.region, now)
            .await?;
        let region = ctx.region.code();
        let mut payload = version.to_be_bytes().to_vec();
        payload.extend_from_slice(&crypto::seal(
            &key,
            plain,
            &snapshot_aad(stream, &ctx.business_id, region, current_sequence),
        ));
        let log = match self.region_stores() {
            Some(stores) if ctx.region.is_local_storage() => {
                stores.events_for_write(ctx.region).await?
            }
            _ => self.log.clone(),
        };
        log.save_snapshot(&SnapshotRow {
            stream: stream.clone(),
            business_id: ctx.business_id.clone(),
            region: region.to_owned(),
            current_sequence,
            snapshot_version,
            payload,
        })
        .await?;
        Ok(())
    }

    /// Loads and opens a snapshot: (aggregate JSON, current sequence, snapshot version).
    pub async fn load_snapshot(
        &self,
        stream: &StreamId,
    ) -> Result<Option<(Value, u64, u64)>, LedgerError> {
        let Some((plain, sequence, version)) = self.load_snapshot_bytes(stream).await? else {
            return Ok(None);
        };
        let value = serde_json::from_slice(&plain)
            .map_err(|_| StoreError::Corrupt("snapshot is not JSON"))?;
        Ok(Some((value, sequence, version)))
    }

    /// Loads and opens a snapshot: (its bytes, current sequence, snapshot version).
    pub async fn load_snapshot_bytes(
        &self,
        stream: &StreamId,
    ) -> Result<Option<(Vec<u8>, u64, u64)>, LedgerError> {
        let Some(s) = self.newest_snapshot(stream).await? else {
            return Ok(None);
        };
        let (key, skip) = self
            .ledger_key_for(&s.business_id, &s.region, &s.payload)
            .await?;
        let plain = crypto::open(
            &key,
            &s.payload[skip..],
            &snapshot_aad(stream, &s.business_id, &s.region, s.current_sequence),
        )
        .map_err(|_| StoreError::Corrupt("snapshot does not open"))?;
        Ok(Some((plain, s.current_sequence, s.snapshot_version)))
    }

    /// The newest snapshot of `stream` in the home store or any region's (a stream's snapshot
    /// is saved in the region of the command that saved it).
    async fn newest_snapshot(&self, stream: &StreamId) -> Result<Option<SnapshotRow>, LedgerError> {
        let mut newest = self.log.load_snapshot(stream).await?;
        // The deployment's own snapshots (persisted projections) are the operator's: home.
        let stores = match self.region_stores() {
            Some(stores) if stream.business != sealpost_domain::DEPLOYMENT => stores,
            _ => return Ok(newest),
        };
        for region in stores.regions().await? {
            // A snapshot is a cache: a region out of reach leaves the events to be folded.
            let found = match stores.events_for_read(region).await {
                Ok(Some(log)) => log.load_snapshot(stream).await,
                other => other.map(|_| None),
            };
            match found {
                Ok(Some(s))
                    if newest
                        .as_ref()
                        .is_none_or(|n| n.current_sequence < s.current_sequence) =>
                {
                    newest = Some(s);
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(region = region.code(), error = %e, "a region's snapshot not read");
                }
            }
        }
        Ok(newest)
    }
}
