//! Media objects in sealed chunks (ADR 0030). Each object has a data key of its own, drawn when
//! its upload starts and kept in memory only until the object's event seals it under the media
//! field key ([`super::Vault::seal_field`], field `media-data-key`): destroying the media, epoch
//! or subject key shreds the data key and with it every chunk. A chunk is sealed under the data
//! key bound to its business, object and place, so a chunk cannot be moved to another object or
//! another place in its own; the object's sealed description names its size and SHA-256, which
//! pins the number of chunks and their contents.

use super::{Vault, VaultError};
use crate::crypto::{self, SecretKey};
use crate::store::ChunkRow;
use sealpost_domain::{MediaId, Region, Timestamp};

/// The plaintext size of a chunk; the last one of an object may be shorter.
pub const CHUNK_BYTES: usize = 1024 * 1024;

/// The chunks an object of `size` bytes has.
pub fn chunk_count(size: u64) -> u32 {
    u32::try_from(size.div_ceil(CHUNK_BYTES as u64)).unwrap_or(u32::MAX)
}

/// Which object's chunks: its business, region and id.
#[derive(Debug, Clone, Copy)]
pub struct ChunkedObject<'a> {
    /// The business.
    pub business: &'a str,
    /// Where its data lives.
    pub region: Region,
    /// The object.
    pub media: &'a MediaId,
}

impl ChunkedObject<'_> {
    fn aad(&self, seq: u32) -> Vec<u8> {
        crypto::aad(&[
            b"sealpost/media-chunk/v1",
            self.business.as_bytes(),
            self.media.as_str().as_bytes(),
            &seq.to_be_bytes(),
        ])
    }
}

impl Vault {
    /// Seals one chunk under the object's data key and stores it in the object's region.
    pub async fn put_media_chunk(
        &self,
        object: ChunkedObject<'_>,
        seq: u32,
        data_key: &SecretKey,
        plaintext: &[u8],
        expires_at: Timestamp,
    ) -> Result<(), VaultError> {
        let sealed = crypto::seal(data_key, plaintext, &object.aad(seq));
        self.keys
            .put_chunk(ChunkRow {
                business_id: object.business,
                region: object.region.code(),
                media_id: object.media.as_str(),
                seq,
                sealed: &sealed,
                expires_at: expires_at.millis(),
            })
            .await?;
        Ok(())
    }

    /// Reads and opens one chunk; `None` when it is not stored (deleted or expired).
    pub async fn media_chunk(
        &self,
        object: ChunkedObject<'_>,
        seq: u32,
        data_key: &SecretKey,
    ) -> Result<Option<Vec<u8>>, VaultError> {
        let Some(sealed) = self
            .keys
            .chunk(
                object.business,
                object.region.code(),
                object.media.as_str(),
                seq,
            )
            .await?
        else {
            return Ok(None);
        };
        Ok(Some(crypto::open(data_key, &sealed, &object.aad(seq))?))
    }

    /// Deletes an object's chunks (after its key went, or when its upload was abandoned).
    pub async fn drop_media_chunks(&self, object: ChunkedObject<'_>) -> Result<u64, VaultError> {
        Ok(self
            .keys
            .drop_chunks(object.business, object.region.code(), object.media.as_str())
            .await?)
    }

    /// Deletes up to `limit` chunks of objects that expired by `now` (retention's sweep; the
    /// keys that opened them are gone or going with their epoch).
    pub async fn drop_expired_media_chunks(
        &self,
        now: Timestamp,
        limit: u32,
    ) -> Result<u64, VaultError> {
        Ok(self.keys.drop_expired_chunks(now.millis(), limit).await?)
    }
}
