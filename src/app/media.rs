//! Media objects: uploads of a business and attachments consumers send. The bytes and their
//! description are sealed under the media key (see [`sealpost_domain::media`]); reading either
//! goes through the access gate as message content, deleting destroys the object's key.

use super::{region_of, AppError, Catalog};
use rand::RngCore as _;
use sealpost_adapters::exec::CommandMeta;
use sealpost_adapters::exec::Executor;
use sealpost_adapters::ledger::EventStore;
use sealpost_adapters::ledger::{EventContext, PlainEvent};
use sealpost_adapters::store::StreamId;
use sealpost_audit::{AccessGate, FieldRef, GateError};
use sealpost_domain::access::DenyReason;
use sealpost_domain::media::{
    fields, MediaCommand, MediaEvent, MediaObject, MediaOrigin, INBOUND_MEDIA_TTL_MS,
    MEDIA_STREAM_TYPE,
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

/// The largest media object accepted (the Cloud API's video and sticker-pack limits are below).
pub const MAX_MEDIA_BYTES: usize = 16 * 1024 * 1024;

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

/// Whether a MIME type is syntactically `type/subtype` of a kind media messages carry.
pub fn acceptable_mime(mime: &str) -> bool {
    let Some((top, sub)) = mime.split_once('/') else {
        return false;
    };
    let token = |s: &str| {
        !s.is_empty()
            && s.len() <= 100
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$&^_.+-".contains(&b))
    };
    matches!(top, "image" | "audio" | "video" | "application" | "text") && token(sub)
}

/// What the first bytes of an object must show for a declared type.
#[derive(Debug, Clone, Copy)]
enum Magic {
    /// The signature `infer` knows for this MIME type.
    Sniffed(&'static str),
    /// An ISO base media file (`ftyp` box first): MP4, 3GPP, M4A. `infer` knows only some of
    /// their brands.
    IsoMedia,
}

impl Magic {
    fn matches(self, bytes: &[u8]) -> bool {
        match self {
            Magic::Sniffed(mime) => infer::is_mime(bytes, mime),
            Magic::IsoMedia => bytes.get(4..8) == Some(b"ftyp".as_slice()),
        }
    }
}

/// The signatures a declared type may show: the Cloud API's media types and their aliases.
fn magic_of(declared: &str) -> Option<&'static [Magic]> {
    use Magic::{IsoMedia, Sniffed};
    Some(match declared {
        "image/jpeg" | "image/jpg" | "image/pjpeg" => &[Sniffed("image/jpeg")],
        "image/png" => &[Sniffed("image/png")],
        "image/webp" => &[Sniffed("image/webp")],
        "video/mp4" | "video/3gpp" | "audio/mp4" | "audio/m4a" | "audio/x-m4a" | "audio/3gpp" => {
            &[IsoMedia]
        }
        "audio/aac" | "audio/x-aac" => &[Sniffed("audio/aac"), IsoMedia],
        "audio/mpeg" | "audio/mp3" => &[Sniffed("audio/mpeg")],
        "audio/amr" => &[Sniffed("audio/amr")],
        "audio/ogg" | "audio/opus" => &[Sniffed("audio/ogg")],
        "application/pdf" => &[Sniffed("application/pdf")],
        // Office 97-2003: an OLE compound file (which application wrote it is not sniffed).
        "application/msword" | "application/vnd.ms-excel" | "application/vnd.ms-powerpoint" => {
            &[Sniffed("application/x-ole-storage")]
        }
        // Office Open XML is a ZIP container; `infer` recognises only some layouts of it.
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document" => &[
            Sniffed("application/vnd.openxmlformats-officedocument.wordprocessingml.document"),
            Sniffed("application/zip"),
        ],
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet" => &[
            Sniffed("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
            Sniffed("application/zip"),
        ],
        "application/vnd.openxmlformats-officedocument.presentationml.presentation" => &[
            Sniffed("application/vnd.openxmlformats-officedocument.presentationml.presentation"),
            Sniffed("application/zip"),
        ],
        _ => return None,
    })
}

/// Programs: never media, whatever the upload says it is. (`infer`'s weaker two-byte
/// signatures of object files and bitcode are left out: text and other data can start so.)
const EXECUTABLES: [&str; 7] = [
    "application/vnd.microsoft.portable-executable",
    "application/x-executable",
    "application/x-mach-binary",
    "application/java",
    "application/vnd.android.dex",
    "application/vnd.android.dey",
    "application/wasm",
];

/// Whether the bytes read as text: UTF-8 without control characters other than whitespace.
/// Programs and archives always hold bytes that text does not.
fn looks_like_text(bytes: &[u8]) -> bool {
    const PREFIX: usize = 8 * 1024;
    let head = &bytes[..bytes.len().min(PREFIX)];
    let valid = match std::str::from_utf8(head) {
        Ok(s) => s,
        // A character cut off by the prefix is fine; anything else is not UTF-8.
        Err(e) if e.error_len().is_none() && bytes.len() > PREFIX => {
            std::str::from_utf8(&head[..e.valid_up_to()]).unwrap_or_default()
        }
        Err(_) => return false,
    };
    valid
        .chars()
        .all(|c| !c.is_control() || matches!(c, '\t' | '\n' | '\r' | '\x0c'))
}

/// Whether an upload's bytes can be what its declared MIME type says, by their magic number.
/// A type with a signature (the Cloud API's images, video, audio, PDF and Office documents,
/// and whatever else `infer` knows) must show it; a type without one (`text/plain`,
/// `text/csv` …) takes anything but bytes that sniff as a program, an archive or an office
/// document of another type. A program is refused under every declaration.
pub fn content_matches(declared: &str, bytes: &[u8]) -> bool {
    let declared = declared.to_ascii_lowercase();
    let sniffed = infer::get(bytes);
    let program = sniffed.is_some_and(|t| EXECUTABLES.contains(&t.mime_type()));
    if let Some(magic) = magic_of(&declared) {
        return !program && magic.iter().any(|m| m.matches(bytes));
    }
    let has_magic = infer::is_mime_supported(&declared)
        && !declared.starts_with("text/")
        && declared != "application/octet-stream";
    if has_magic {
        return !program && infer::is_mime(bytes, &declared);
    }
    if looks_like_text(bytes) {
        return true;
    }
    !sniffed.is_some_and(|t| {
        program
            || (t.mime_type() != declared
                && matches!(
                    t.matcher_type(),
                    infer::MatcherType::Archive | infer::MatcherType::Doc
                ))
    })
}

/// A stored object, with where it lives.
struct Found {
    business: BusinessId,
    subject: Option<SubjectId>,
    region: Region,
    epoch: sealpost_domain::EpochId,
    meta: sealpost_domain::Sealed,
    bytes: sealpost_domain::Sealed,
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
    /// Seals and stores a media object on a business number; returns its id. An upload by the
    /// business (`actor` must be of the number's business) lives until its retention epoch
    /// expires; an inbound attachment's id answers for 7 days at most and is sealed under the
    /// sending consumer's key too (`subject`), so erasing them shreds it.
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
        let (business, region) =
            super::home_of(&self.catalog().phone_number(business, number).await?)?;
        let _in_use = self.transit.hold(region);
        if origin == MediaOrigin::Upload && actor.business.as_ref() != Some(&business) {
            return Err(GateError::Denied(DenyReason::NotOwner).into());
        }
        let now = self.now();
        let epoch = self.policy.epoch_of(now);
        let media = MediaId::from_random(rand::rng().next_u64());
        let meta = MediaMeta {
            mime_type: mime_type.to_owned(),
            sha256: hex::encode(sealpost_adapters::crypto::sha256(bytes)),
            file_size: bytes.len() as u64,
            filename: filename.map(str::to_owned),
        };
        let meta_json = serde_json::to_vec(&meta).map_err(|_| AppError::Encode("media"))?;
        let scope = FieldScope::Media {
            epoch,
            media: media.clone(),
            subject: subject.cloned(),
        };
        let vault = self.store.vault();
        let seal = |field: &'static str, plain: &[u8]| {
            let scope = scope.clone();
            let plain = plain.to_vec();
            let business = business.clone();
            async move {
                vault
                    .seal_field(business.as_str(), region, &scope, field, &plain, now)
                    .await
            }
        };
        let sealed_meta = seal(fields::META, &meta_json).await?;
        let sealed_bytes = seal(fields::BYTES, bytes).await?;
        let retention_end = self.policy.expiry_of(epoch);
        let expires_at = match origin {
            MediaOrigin::Upload => retention_end,
            MediaOrigin::Inbound => Timestamp::from_millis(
                retention_end
                    .millis()
                    .min(now.millis() + INBOUND_MEDIA_TTL_MS),
            ),
        };
        let event = MediaEvent::MediaStored {
            media_id: media.clone(),
            business_id: business.clone(),
            phone_number_id: number.clone(),
            subject_id: subject.cloned(),
            epoch,
            origin,
            meta: sealed_meta,
            bytes: sealed_bytes,
            expires_at,
            at: now,
        };
        self.append_media(&media, &business, region, Some(epoch), actor, &event)
            .await?;
        Ok(media)
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
        match (object.stored, region) {
            (
                Some(MediaEvent::MediaStored {
                    business_id,
                    subject_id,
                    epoch,
                    meta,
                    bytes,
                    ..
                }),
                Some(region),
            ) => Ok(Found {
                business: business_id,
                subject: subject_id,
                region,
                epoch,
                meta,
                bytes,
            }),
            _ => Err(DomainError::NotFound.into()),
        }
    }

    async fn open_media(
        &self,
        principal: &Principal,
        media: &MediaId,
        found: &Found,
        field: &'static str,
    ) -> Result<Vec<u8>, AppError> {
        let sealed = if field == fields::META {
            &found.meta
        } else {
            &found.bytes
        };
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
            Purpose::BusinessApi,
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
        self.open_meta(principal, media, &found).await
    }

    async fn open_meta(
        &self,
        principal: &Principal,
        media: &MediaId,
        found: &Found,
    ) -> Result<MediaMeta, AppError> {
        let raw = self
            .open_media(principal, media, found, fields::META)
            .await?;
        serde_json::from_slice(&raw).map_err(|_| AppError::Corrupt("media description"))
    }

    /// The bytes of a media object with their description, read through the gate (recorded),
    /// and the hold that accounts for them while they are in memory (a Local Storage region's
    /// media outside its region): the caller keeps it until the bytes are sent or sealed.
    pub async fn media_bytes(
        &self,
        principal: &Principal,
        media: &MediaId,
    ) -> Result<(MediaMeta, Vec<u8>, super::transit::InUse), AppError> {
        let found = self.find_media(principal, media).await?;
        let in_use = self.transit.hold(found.region);
        let meta = self.open_meta(principal, media, &found).await?;
        let bytes = self
            .open_media(principal, media, &found, fields::BYTES)
            .await?;
        Ok((meta, bytes, in_use))
    }

    /// Deletes a media object of the principal's business: records it and destroys its key,
    /// so its bytes are gone for good. Deleting an already deleted object is `NotFound`, also
    /// when two deletes race: the deletion is decided by the [`MediaObject`] aggregate and
    /// appended at the stream version it was decided on, so the loser is re-decided against
    /// the deleted object.
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
        self.store
            .vault()
            .destroy_media(found.business.as_str(), found.region, media, now)
            .await?;
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
            Ok(bytes) if bytes.len() <= MAX_MEDIA_BYTES => {
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
}

#[cfg(test)]
mod tests;
