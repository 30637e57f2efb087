//! An object that arrives in pieces and leaves in pieces (ADR 0030). [`Upload`] seals each
//! full chunk under the object's data key and stores it as it completes, counting the size and
//! the SHA-256 on the way and keeping only the first chunk's bytes for sniffing; nothing else
//! of the object is in memory. [`Upload::finish`] seals the description and the data key into
//! the object's event. An upload never finished leaves chunks nobody can open (their key was
//! only in memory): [`Upload::abandon`] deletes them at once, retention's sweep after a crash.
//! [`MediaReader`] opens them again one by one.

use super::{Media, MediaMeta};
use crate::app::transit::InUse;
use crate::app::AppError;
use bytes::Bytes;
use futures::Stream;
use rand::RngCore as _;
use sealpost_adapters::crypto::{SecretKey, Sha256Stream};
use sealpost_adapters::vault::{chunk_count, ChunkedObject, Vault, CHUNK_BYTES};
use sealpost_audit::GateError;
use sealpost_domain::access::DenyReason;
use sealpost_domain::media::{fields, MediaEvent, MediaOrigin, INBOUND_MEDIA_TTL_MS};
use sealpost_domain::{
    BusinessId, DomainError, EpochId, FieldScope, MediaId, PhoneNumberId, Principal, Region,
    SubjectId, Timestamp,
};
use std::sync::Arc;

/// An object being stored: see the module's documentation.
pub struct Upload<'a> {
    media: Media<'a>,
    actor: Principal,
    business: BusinessId,
    region: Region,
    number: PhoneNumberId,
    origin: MediaOrigin,
    subject: Option<SubjectId>,
    id: MediaId,
    epoch: EpochId,
    expires_at: Timestamp,
    data_key: SecretKey,
    hash: Sha256Stream,
    size: u64,
    stored: u32,
    pending: Vec<u8>,
    head: Vec<u8>,
    /// Recorded, or its chunks deleted: nothing left for `Drop` to clean.
    settled: bool,
    _in_use: InUse,
}

impl std::fmt::Debug for Upload<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upload")
            .field("size", &self.size)
            .field("chunks", &self.stored)
            .finish_non_exhaustive()
    }
}

impl<'a> Media<'a> {
    /// Starts storing a media object on a business number. An upload by the business (`actor`
    /// must be of the number's business) lives until its retention epoch expires; an inbound
    /// attachment's id answers for 7 days at most and is sealed under the sending consumer's
    /// key too (`subject`), so erasing them shreds it.
    pub async fn begin_upload(
        &self,
        actor: &Principal,
        business: &BusinessId,
        number: &PhoneNumberId,
        origin: MediaOrigin,
        subject: Option<&SubjectId>,
    ) -> Result<Upload<'a>, AppError> {
        let (business, region) =
            crate::app::home_of(&self.catalog().phone_number(business, number).await?)?;
        if origin == MediaOrigin::Upload && actor.business.as_ref() != Some(&business) {
            return Err(GateError::Denied(DenyReason::NotOwner).into());
        }
        let now = self.now();
        let epoch = self.policy.epoch_of(now);
        let retention_end = self.policy.expiry_of(epoch);
        let expires_at = match origin {
            MediaOrigin::Upload => retention_end,
            MediaOrigin::Inbound => Timestamp::from_millis(
                retention_end
                    .millis()
                    .min(now.millis() + INBOUND_MEDIA_TTL_MS),
            ),
        };
        Ok(Upload {
            media: *self,
            actor: actor.clone(),
            business,
            region,
            number: number.clone(),
            origin,
            subject: subject.cloned(),
            id: MediaId::from_random(rand::rng().next_u64()),
            epoch,
            expires_at,
            data_key: SecretKey::random(),
            hash: Sha256Stream::default(),
            size: 0,
            stored: 0,
            pending: Vec::new(),
            head: Vec::new(),
            settled: false,
            _in_use: self.transit.hold(region),
        })
    }
}

impl Upload<'_> {
    /// How many bytes arrived so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The object's first bytes (up to one chunk), to tell its type by.
    pub fn head(&self) -> &[u8] {
        &self.head
    }

    fn object(&self) -> ChunkedObject<'_> {
        ChunkedObject {
            business: self.business.as_str(),
            region: self.region,
            media: &self.id,
        }
    }

    /// Takes the next piece; every chunk it completes is sealed and stored before this returns.
    pub async fn write(&mut self, mut piece: &[u8]) -> Result<(), AppError> {
        self.hash.update(piece);
        self.size += piece.len() as u64;
        if self.head.len() < CHUNK_BYTES {
            let take = piece.len().min(CHUNK_BYTES - self.head.len());
            self.head.extend_from_slice(&piece[..take]);
        }
        while !piece.is_empty() {
            if self.pending.capacity() == 0 {
                self.pending.reserve_exact(CHUNK_BYTES);
            }
            let take = piece.len().min(CHUNK_BYTES - self.pending.len());
            self.pending.extend_from_slice(&piece[..take]);
            piece = &piece[take..];
            if self.pending.len() == CHUNK_BYTES {
                self.flush().await?;
            }
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), AppError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        self.media
            .store
            .vault()
            .put_media_chunk(
                self.object(),
                self.stored,
                &self.data_key,
                &self.pending,
                self.expires_at,
            )
            .await?;
        self.stored += 1;
        self.pending.clear();
        Ok(())
    }

    /// Stores the last chunk and records the object (`MediaStoredInChunks`: its sealed
    /// description and data key); returns its id and description. On failure its chunks are
    /// deleted.
    pub async fn finish(
        mut self,
        mime_type: &str,
        filename: Option<&str>,
    ) -> Result<(MediaId, MediaMeta), AppError> {
        match self.record(mime_type, filename).await {
            Ok(done) => {
                self.settled = true;
                Ok(done)
            }
            Err(e) => {
                self.abandon().await;
                Err(e)
            }
        }
    }

    async fn record(
        &mut self,
        mime_type: &str,
        filename: Option<&str>,
    ) -> Result<(MediaId, MediaMeta), AppError> {
        self.flush().await?;
        let meta = MediaMeta {
            mime_type: mime_type.to_owned(),
            sha256: hex::encode(std::mem::take(&mut self.hash).finish()),
            file_size: self.size,
            filename: filename.map(str::to_owned),
        };
        let meta_json = serde_json::to_vec(&meta).map_err(|_| AppError::Encode("media"))?;
        let scope = FieldScope::Media {
            epoch: self.epoch,
            media: self.id.clone(),
            subject: self.subject.clone(),
        };
        let now = self.media.now();
        let vault = self.media.store.vault();
        let business = self.business.as_str();
        let sealed_meta = vault
            .seal_field(business, self.region, &scope, fields::META, &meta_json, now)
            .await?;
        let sealed_key = vault
            .seal_field(
                business,
                self.region,
                &scope,
                fields::DATA_KEY,
                self.data_key.expose(),
                now,
            )
            .await?;
        let event = MediaEvent::MediaStoredInChunks {
            media_id: self.id.clone(),
            business_id: self.business.clone(),
            phone_number_id: self.number.clone(),
            subject_id: self.subject.clone(),
            epoch: self.epoch,
            origin: self.origin,
            meta: sealed_meta,
            data_key: sealed_key,
            expires_at: self.expires_at,
            at: now,
        };
        self.media
            .append_media(
                &self.id,
                &self.business,
                self.region,
                Some(self.epoch),
                &self.actor,
                &event,
            )
            .await?;
        Ok((self.id.clone(), meta))
    }

    /// Gives the upload up: deletes what it stored (unreadable anyway: its key goes with it).
    pub async fn abandon(mut self) {
        self.settled = true;
        if self.stored == 0 {
            return;
        }
        if let Err(e) = self
            .media
            .store
            .vault()
            .drop_media_chunks(self.object())
            .await
        {
            tracing::warn!(error = %e, "an abandoned upload's chunks stay until retention sweeps them");
        }
    }
}

/// An upload dropped half-way (its client went away, the server is stopping) deletes its
/// chunks in the background; what that cannot do, retention's sweep does. (Dropped while its
/// event was being appended, an object may be recorded without chunks: its id was never
/// answered, and a read of it answers as for a deleted object.)
impl Drop for Upload<'_> {
    fn drop(&mut self) {
        if self.settled || self.stored == 0 {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let vault = self.media.store.vault().clone();
        let (business, region, media) = (self.business.clone(), self.region, self.id.clone());
        runtime.spawn(async move {
            let object = ChunkedObject {
                business: business.as_str(),
                region,
                media: &media,
            };
            if let Err(e) = vault.drop_media_chunks(object).await {
                tracing::warn!(error = %e, "a dropped upload's chunks stay until retention sweeps them");
            }
        });
    }
}

/// The bytes of a stored object, opened: whole (stored before ADR 0030) or chunk by chunk.
pub enum MediaReader {
    /// The whole object.
    Inline(Vec<u8>),
    /// Chunks to read and open in turn.
    Chunks {
        /// Where they are.
        vault: Arc<Vault>,
        /// The object's business, region and id.
        object: (BusinessId, Region, MediaId),
        /// Its data key.
        key: Arc<SecretKey>,
        /// How many.
        chunks: u32,
    },
}

impl std::fmt::Debug for MediaReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Inline(bytes) => write!(f, "MediaReader::Inline({} bytes)", bytes.len()),
            Self::Chunks { chunks, .. } => write!(f, "MediaReader::Chunks({chunks})"),
        }
    }
}

impl MediaReader {
    pub(super) fn inline(bytes: Vec<u8>) -> Self {
        Self::Inline(bytes)
    }

    pub(super) fn chunks(
        vault: Arc<Vault>,
        object: (BusinessId, Region, MediaId),
        key: &[u8],
        size: u64,
    ) -> Result<Self, AppError> {
        let key = SecretKey::from_slice(key).map_err(|_| AppError::Corrupt("media data key"))?;
        Ok(Self::Chunks {
            vault,
            object,
            key: Arc::new(key),
            chunks: chunk_count(size),
        })
    }

    /// The bytes, one chunk after another; a chunk that went meanwhile ends it with
    /// `NotFound`.
    pub fn into_stream(self) -> impl Stream<Item = Result<Bytes, AppError>> + Send + 'static {
        use futures::StreamExt as _;
        match self {
            Self::Inline(bytes) => futures::stream::iter([Ok(Bytes::from(bytes))]).left_stream(),
            Self::Chunks {
                vault,
                object,
                key,
                chunks,
            } => futures::stream::iter(0..chunks)
                .then(move |seq| {
                    let (vault, object, key) = (vault.clone(), object.clone(), key.clone());
                    async move {
                        let (business, region, media) = &object;
                        let at = ChunkedObject {
                            business: business.as_str(),
                            region: *region,
                            media,
                        };
                        match vault.media_chunk(at, seq, &key).await? {
                            Some(plain) => Ok(Bytes::from(plain)),
                            None => Err(DomainError::NotFound.into()),
                        }
                    }
                })
                .right_stream(),
        }
    }

    /// All the bytes in memory (what a message to a device carries).
    pub async fn read_all(self) -> Result<Vec<u8>, AppError> {
        use futures::TryStreamExt as _;
        self.into_stream()
            .try_fold(Vec::new(), |mut all, piece| async move {
                all.extend_from_slice(&piece);
                Ok(all)
            })
            .await
    }
}
