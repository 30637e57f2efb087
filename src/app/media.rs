//! Media objects: uploads of a business and attachments consumers send. The description and
//! the data key are sealed under the media key (see [`sealpost_domain::media`]), the bytes in
//! chunks under the data key ([`upload`], ADR 0030); reading goes through the access gate as
//! message content, deleting destroys the object's key.

use super::{region_of, AppError, Catalog};
use sealpost_adapters::exec::CommandMeta;
use sealpost_adapters::exec::Executor;
use sealpost_adapters::ledger::EventStore;
use sealpost_adapters::ledger::{EventContext, PlainEvent};
use sealpost_adapters::store::StreamId;
use sealpost_audit::{AccessGate, FieldRef, GateError};
use sealpost_domain::access::DenyReason;
use sealpost_domain::media::{
    fields, MediaCommand, MediaEvent, MediaObject, MediaOrigin, MEDIA_STREAM_TYPE,
};
use sealpost_domain::ports::Clock;
use sealpost_domain::MessageContent;
use sealpost_domain::RetentionPolicy;
use sealpost_domain::{
    BusinessId, DomainError, FieldScope, MediaId, Opened, PhoneNumberId, Principal, PrincipalKind,
    Purpose, Region, SubjectId, Timestamp,
};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

mod sniff;
mod upload;

pub use sniff::{acceptable_mime, content_matches, limit_of, MAX_MEDIA_BYTES};
pub use upload::{MediaReader, Upload};

/// What describes a media object (sealed beside its bytes).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MediaMeta {
    /// `type/subtype`.
    pub mime_type: String,
    /// Hex SHA-256 of the bytes.
    pub sha256: String,
    /// Size in bytes.
    pub file_size: u64,
    /// The uploaded file's name, if it had one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filename: Option<String>,
}

impl std::fmt::Debug for MediaMeta {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MediaMeta")
            .field("mime_type", &self.mime_type)
            .field("file_size", &self.file_size)
            .finish_non_exhaustive()
    }
}

/// Where a stored object's bytes are.
enum Body {
    /// Whole, sealed in its event (objects stored before ADR 0030).
    Inline(sealpost_domain::Sealed),
    /// In chunks beside the keys, under this sealed data key.
    Chunks(sealpost_domain::Sealed),
}

/// A stored object, with where it lives.
struct Found {
    business: BusinessId,
    subject: Option<SubjectId>,
    region: Region,
    epoch: sealpost_domain::EpochId,
    meta: sealpost_domain::Sealed,
    body: Body,
}

service! {
    /// Media objects, over the executor, the sealed store and the clock.
    Media<'a> {
        exec: &'a Executor,
        store: &'a Arc<EventStore>,
        gate: &'a Arc<AccessGate>,
        clock: &'a dyn Clock,
        policy: RetentionPolicy,
        transit: &'a Arc<super::transit::Transit>,
    }
    reaches {
        catalog: Catalog { exec, store, clock },
    }
}

impl Media<'_> {
    /// Seals and stores a media object whose bytes are all at hand (an attachment a consumer
    /// sent): [`Media::begin_upload`], one write, [`Upload::finish`].
    #[allow(clippy::too_many_arguments)]
    pub async fn store_media(
        &self,
        actor: &Principal,
        business: &BusinessId,
        number: &PhoneNumberId,
        origin: MediaOrigin,
        subject: Option<&SubjectId>,
        mime_type: &str,
        filename: Option<&str>,
        bytes: &[u8],
    ) -> Result<MediaId, AppError> {
        let mut upload = self
            .begin_upload(actor, business, number, origin, subject)
            .await?;
        if let Err(e) = upload.write(bytes).await {
            upload.abandon().await;
            return Err(e);
        }
        Ok(upload.finish(mime_type, filename).await?.0)
    }

    async fn append_media(
        &self,
        media: &MediaId,
        business: &BusinessId,
        region: Region,
        epoch: Option<sealpost_domain::EpochId>,
        actor: &Principal,
        event: &MediaEvent,
    ) -> Result<(), AppError> {
        let mut meta = sealpost_adapters::exec::CommandMeta::new(business.as_str(), region, actor);
        if let Some(e) = epoch {
            meta = meta.with_epoch(e);
        }
        let ctx = EventContext {
            business_id: business.as_str().to_owned(),
            region,
            epoch,
        };
        self.store
            .append_at_end(
                &StreamId::new(business.as_str(), MEDIA_STREAM_TYPE, media.as_str()),
                &ctx,
                vec![PlainEvent::of(event, meta.to_map())?],
            )
            .await?;
        Ok(())
    }

    /// The object, if it is stored and still answers now: under the principal's business, or
    /// found across businesses for a principal that has none.
    async fn find_media(&self, principal: &Principal, media: &MediaId) -> Result<Found, AppError> {
        let business =
            super::business_for::<MediaObject>(self.exec, principal, media.as_str()).await?;
        let stream = StreamId::new(business.as_str(), MEDIA_STREAM_TYPE, media.as_str());
        let events = self.store.read_stream(&stream, 0).await?;
        let mut object = MediaObject::default();
        let mut region = None;
        for e in events {
            region = Some(region_of(&e)?);
            object.apply(e.decode::<MediaEvent>()?);
        }
        if !object.available(self.now()) {
            return Err(DomainError::NotFound.into());
        }
        let Some(region) = region else {
            return Err(DomainError::NotFound.into());
        };
        let (business, subject, epoch, meta, body) = match object.stored {
            Some(MediaEvent::MediaStored {
                business_id,
                subject_id,
                epoch,
                meta,
                bytes,
                ..
            }) => (business_id, subject_id, epoch, meta, Body::Inline(bytes)),
            Some(MediaEvent::MediaStoredInChunks {
                business_id,
                subject_id,
                epoch,
                meta,
                data_key,
                ..
            }) => (business_id, subject_id, epoch, meta, Body::Chunks(data_key)),
            _ => return Err(DomainError::NotFound.into()),
        };
        Ok(Found {
            business,
            subject,
            region,
            epoch,
            meta,
            body,
        })
    }

    /// Opens one sealed field of a found object through the gate (recorded).
    async fn open_media(
        &self,
        (principal, purpose): (&Principal, Purpose),
        media: &MediaId,
        found: &Found,
        (field, sealed): (&'static str, &sealpost_domain::Sealed),
    ) -> Result<Vec<u8>, AppError> {
        let scope = FieldScope::Media {
            epoch: found.epoch,
            media: media.clone(),
            subject: found.subject.clone(),
        };
        let field = FieldRef {
            scope,
            field,
            sealed,
        };
        match super::messages::open_content(
            self.gate,
            principal,
            purpose,
            &found.business,
            found.region,
            media.as_str(),
            field,
        )
        .await?
        {
            Opened::Plain(p) => Ok(p),
            // Its key went (deleted, or retention ran before the expiry check saw it).
            Opened::Shredded => Err(DomainError::NotFound.into()),
        }
    }

    /// The description of a media object, read through the gate (recorded).
    pub async fn media_meta(
        &self,
        principal: &Principal,
        media: &MediaId,
    ) -> Result<MediaMeta, AppError> {
        let found = self.find_media(principal, media).await?;
        self.open_meta((principal, Purpose::BusinessApi), media, &found)
            .await
    }

    async fn open_meta(
        &self,
        reader: (&Principal, Purpose),
        media: &MediaId,
        found: &Found,
    ) -> Result<MediaMeta, AppError> {
        let raw = self
            .open_media(reader, media, found, (fields::META, &found.meta))
            .await?;
        serde_json::from_slice(&raw).map_err(|_| AppError::Corrupt("media description"))
    }

    /// A media object's description and a reader of its bytes (opened through the gate, both
    /// recorded, for `purpose`), with the hold that accounts for them while they are read (a
    /// Local Storage region's media outside its region): the caller keeps it until the bytes
    /// are sent or sealed.
    pub async fn media_reader(
        &self,
        principal: &Principal,
        purpose: Purpose,
        media: &MediaId,
    ) -> Result<(MediaMeta, MediaReader, super::transit::InUse), AppError> {
        let found = self.find_media(principal, media).await?;
        let in_use = self.transit.hold(found.region);
        let meta = self.open_meta((principal, purpose), media, &found).await?;
        let reader = match &found.body {
            Body::Inline(sealed) => MediaReader::inline(
                self.open_media((principal, purpose), media, &found, (fields::BYTES, sealed))
                    .await?,
            ),
            Body::Chunks(sealed) => {
                let key = zeroize::Zeroizing::new(
                    self.open_media(
                        (principal, purpose),
                        media,
                        &found,
                        (fields::DATA_KEY, sealed),
                    )
                    .await?,
                );
                MediaReader::chunks(
                    self.store.vault().clone(),
                    (found.business.clone(), found.region, media.clone()),
                    &key,
                    meta.file_size,
                )?
            }
        };
        Ok((meta, reader, in_use))
    }

    /// Deletes a media object of the principal's business: records it and destroys its key,
    /// so its bytes are gone for good, then deletes its chunks. Deleting an already deleted
    /// object is `NotFound`, also when two deletes race: the deletion is decided by the
    /// [`MediaObject`] aggregate and appended at the stream version it was decided on, so the
    /// loser is re-decided against the deleted object.
    pub async fn delete_media(
        &self,
        principal: &Principal,
        media: &MediaId,
    ) -> Result<(), AppError> {
        let found = self.find_media(principal, media).await?;
        if principal.kind != PrincipalKind::Business
            || principal.business.as_ref() != Some(&found.business)
        {
            return Err(GateError::Denied(DenyReason::NotOwner).into());
        }
        let now = self.now();
        let meta = CommandMeta::new(found.business.as_str(), found.region, principal);
        self.exec
            .execute::<MediaObject>(media.as_str(), MediaCommand::Delete, &meta, now)
            .await?;
        let vault = self.store.vault();
        vault
            .destroy_media(found.business.as_str(), found.region, media, now)
            .await?;
        if let Body::Chunks(_) = found.body {
            // Unreadable already; what a failure here leaves, retention's sweep deletes.
            let object = sealpost_adapters::vault::ChunkedObject {
                business: found.business.as_str(),
                region: found.region,
                media,
            };
            if let Err(e) = vault.drop_media_chunks(object).await {
                tracing::warn!(error = %e, "media chunks stay until retention sweeps them");
            }
        }
        Ok(())
    }
}

/// Message kinds whose payload is a media object.
pub const MEDIA_KINDS: [&str; 5] = ["image", "audio", "video", "document", "sticker"];

impl Media<'_> {
    /// An attachment arrives inline (`"<type>":{"data":"<base64>","mime_type":…}`) in what a
    /// consumer's device sent: store it as a media object and hand the business its id,
    /// MIME type and SHA-256 instead, as Cloud API webhooks do. Anything else is unchanged.
    pub(crate) async fn ingest_inbound_media(
        &self,
        business: &BusinessId,
        number: &PhoneNumberId,
        subject: &SubjectId,
        mut content: MessageContent,
    ) -> Result<MessageContent, AppError> {
        use base64::Engine as _;
        let Some(media) = content.media_mut() else {
            return Ok(content);
        };
        let Some(data) = media.data.take() else {
            return Ok(content);
        };
        let mime = media
            .mime_type
            .clone()
            .filter(|m| acceptable_mime(m))
            .unwrap_or_else(|| "application/octet-stream".to_owned());
        match base64::engine::general_purpose::STANDARD.decode(data.as_bytes()) {
            Ok(bytes) if bytes.len() as u64 <= MAX_MEDIA_BYTES => {
                let id = self
                    .store_media(
                        &Principal::processor("inbound"),
                        business,
                        number,
                        MediaOrigin::Inbound,
                        Some(subject),
                        &mime,
                        media.filename.as_deref(),
                        &bytes,
                    )
                    .await?;
                media.id = Some(id.as_str().to_owned());
                media.mime_type = Some(mime);
                media.sha256 = Some(hex::encode(sealpost_adapters::crypto::sha256(&bytes)));
            }
            // Unreadable or too large: the business gets the message without the attachment.
            _ => {}
        }
        Ok(content)
    }

    /// A message sent by media id names the object (ADR 0030): what leaves for the device
    /// carries the file itself, read here, at hand-over, through the gate for delivery. The
    /// same content comes back unchanged when it names no object or carries its bytes already
    /// (sent before ADR 0030); `NotFound` when the object went (deleted or expired) or is not
    /// `business`'s.
    pub(crate) async fn inline_attachment(
        &self,
        principal: &Principal,
        business: &BusinessId,
        mut content: MessageContent,
    ) -> Result<MessageContent, AppError> {
        use base64::Engine as _;
        let Some(media) = content.media_mut() else {
            return Ok(content);
        };
        let (Some(raw), None) = (media.id.as_deref(), media.data.as_ref()) else {
            return Ok(content);
        };
        let id = MediaId::parse(raw).map_err(|_| DomainError::NotFound)?;
        // The message's own business's object only, whoever reads it.
        if super::business_for::<MediaObject>(self.exec, principal, id.as_str()).await? != *business
        {
            return Err(DomainError::NotFound.into());
        }
        let (_, reader, _in_use) = self.media_reader(principal, Purpose::Delivery, &id).await?;
        let bytes = reader.read_all().await?;
        media.data = Some(base64::engine::general_purpose::STANDARD.encode(&bytes));
        Ok(content)
    }
}

#[cfg(test)]
mod tests;
