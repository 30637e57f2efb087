//! [`MediaChunks`]: the sealed chunks of media objects, beside the keys (ADR 0030), and
//! `impl_media_chunks!`, the implementation both SQL backends share. The store sees only
//! ciphertext: each chunk is sealed under its object's data key before it arrives.

use super::StoreError;
use async_trait::async_trait;

/// One sealed chunk to write.
#[derive(Debug, Clone, Copy)]
pub struct ChunkRow<'a> {
    /// The object's business.
    pub business_id: &'a str,
    /// Its region code.
    pub region: &'a str,
    /// The media id.
    pub media_id: &'a str,
    /// The chunk's place, from 0.
    pub seq: u32,
    /// The sealed chunk.
    pub sealed: &'a [u8],
    /// When no id answers for it any more (ms): retention deletes it then.
    pub expires_at: i64,
}

/// Sealed chunks of media objects.
#[async_trait]
pub trait MediaChunks: Send + Sync {
    /// Writes one chunk (a chunk already there is an error: ids are never reused).
    async fn put_chunk(&self, chunk: ChunkRow<'_>) -> Result<(), StoreError>;

    /// Reads one chunk of `business`'s object in `region`.
    async fn chunk(
        &self,
        business: &str,
        region: &str,
        media: &str,
        seq: u32,
    ) -> Result<Option<Vec<u8>>, StoreError>;

    /// Deletes every chunk of one object; how many went.
    async fn drop_chunks(
        &self,
        business: &str,
        region: &str,
        media: &str,
    ) -> Result<u64, StoreError>;

    /// Deletes up to `limit` chunks that expired at or before `up_to` (ms); how many went.
    async fn drop_expired_chunks(&self, up_to: i64, limit: u32) -> Result<u64, StoreError>;
}

pub(crate) const CHUNK_PUT: &str = "INSERT INTO sealpost_media_chunks \
     (business_id, media_id, seq, region, sealed, expires_at) VALUES ($1, $2, $3, $4, $5, $6)";
pub(crate) const CHUNK_GET: &str = "SELECT sealed FROM sealpost_media_chunks \
     WHERE business_id = $1 AND media_id = $2 AND seq = $3 AND region = $4";
pub(crate) const CHUNKS_DROP: &str = "DELETE FROM sealpost_media_chunks \
     WHERE business_id = $1 AND media_id = $2 AND region = $3";
pub(crate) const CHUNKS_DROP_EXPIRED: &str = "DELETE FROM sealpost_media_chunks \
     WHERE (business_id, media_id, seq) IN (SELECT business_id, media_id, seq \
     FROM sealpost_media_chunks WHERE expires_at <= $1 ORDER BY expires_at LIMIT $2)";

/// Implements [`MediaChunks`] for a backend type with `reader` and `writer` pools.
macro_rules! impl_media_chunks {
    ($ty:ty) => {
        #[async_trait::async_trait]
        impl $crate::store::MediaChunks for $ty {
            async fn put_chunk(
                &self,
                c: $crate::store::ChunkRow<'_>,
            ) -> Result<(), $crate::store::StoreError> {
                sqlx::query($crate::store::media_chunks::CHUNK_PUT)
                    .bind(c.business_id)
                    .bind(c.media_id)
                    .bind(i64::from(c.seq))
                    .bind(c.region)
                    .bind(c.sealed)
                    .bind(c.expires_at)
                    .execute(&self.writer)
                    .await?;
                Ok(())
            }

            async fn chunk(
                &self,
                business: &str,
                region: &str,
                media: &str,
                seq: u32,
            ) -> Result<Option<Vec<u8>>, $crate::store::StoreError> {
                let row: Option<(Vec<u8>,)> =
                    sqlx::query_as($crate::store::media_chunks::CHUNK_GET)
                        .bind(business)
                        .bind(media)
                        .bind(i64::from(seq))
                        .bind(region)
                        .fetch_optional(&self.reader)
                        .await?;
                Ok(row.map(|(sealed,)| sealed))
            }

            async fn drop_chunks(
                &self,
                business: &str,
                region: &str,
                media: &str,
            ) -> Result<u64, $crate::store::StoreError> {
                Ok(sqlx::query($crate::store::media_chunks::CHUNKS_DROP)
                    .bind(business)
                    .bind(media)
                    .bind(region)
                    .execute(&self.writer)
                    .await?
                    .rows_affected())
            }

            async fn drop_expired_chunks(
                &self,
                up_to: i64,
                limit: u32,
            ) -> Result<u64, $crate::store::StoreError> {
                Ok(
                    sqlx::query($crate::store::media_chunks::CHUNKS_DROP_EXPIRED)
                        .bind(up_to)
                        .bind(i64::from(limit))
                        .execute(&self.writer)
                        .await?
                        .rows_affected(),
                )
            }
        }
    };
}
pub(crate) use impl_media_chunks;
