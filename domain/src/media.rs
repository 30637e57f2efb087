//! Media objects: an upload of a business (`POST /{version}/{phone-number-id}/media`) or an
//! attachment a consumer sent. The bytes and their description (MIME type, size, SHA-256, file
//! name) are sealed under the media key (HKDF of the retention-epoch key and the object's own
//! key): retention shreds them with the epoch, deleting the object shreds them at once.

use crate::error::DomainError;
use crate::ids::{BusinessId, MediaId, PhoneNumberId, SubjectId};
use crate::sealed::Sealed;
use crate::shim::{cqrs_aggregate, Decider};
use crate::time::{EpochId, Timestamp, DAY_MS};
use serde::{Deserialize, Serialize};

/// The stream type of media events (one stream per media id).
pub const MEDIA_STREAM_TYPE: &str = "media";
/// Sealed field names (bound into the AEAD associated data).
pub mod fields {
    /// The description: `{"mime_type","sha256","file_size","filename"}` as JSON.
    pub const META: &str = "media-meta";
    /// The bytes, whole (objects stored before they were chunked: ADR 0030).
    pub const BYTES: &str = "media-bytes";
    /// The object's data key, under which its chunks are sealed in the key store (ADR 0030).
    pub const DATA_KEY: &str = "media-data-key";
}
/// How long the id of an attachment a consumer sent stays usable (as the Cloud API says).
pub const INBOUND_MEDIA_TTL_MS: i64 = 7 * DAY_MS;

/// Where a media object came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum MediaOrigin {
    /// Uploaded by the business.
    Upload,
    /// Sent by a consumer, stored when the message was decrypted.
    Inbound,
}

/// What happened to a media object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MediaEvent {
    /// The object was stored, sealed.
    MediaStored {
        /// The object.
        media_id: MediaId,
        /// Its business.
        business_id: BusinessId,
        /// The business number it was uploaded to or received on.
        phone_number_id: PhoneNumberId,
        /// For an attachment a consumer sent: that consumer (their key seals it too).
        subject_id: Option<SubjectId>,
        /// The retention epoch whose key it is sealed under.
        epoch: EpochId,
        /// Upload or inbound attachment.
        origin: MediaOrigin,
        /// The sealed description ([`fields::META`]).
        meta: Sealed,
        /// The sealed bytes ([`fields::BYTES`]).
        bytes: Sealed,
        /// After this the id no longer answers (its keys go with the epoch at the latest).
        expires_at: Timestamp,
        /// When.
        at: Timestamp,
    },
    /// The object was stored in sealed chunks beside the keys (ADR 0030): the event holds its
    /// sealed description and the sealed data key of its chunks, never its bytes.
    MediaStoredInChunks {
        /// The object.
        media_id: MediaId,
        /// Its business.
        business_id: BusinessId,
        /// The business number it was uploaded to or received on.
        phone_number_id: PhoneNumberId,
        /// For an attachment a consumer sent: that consumer (their key seals it too).
        subject_id: Option<SubjectId>,
        /// The retention epoch whose key it is sealed under.
        epoch: EpochId,
        /// Upload or inbound attachment.
        origin: MediaOrigin,
        /// The sealed description ([`fields::META`]).
        meta: Sealed,
        /// The sealed data key of its chunks ([`fields::DATA_KEY`]).
        data_key: Sealed,
        /// After this the id no longer answers (its keys go with the epoch at the latest).
        expires_at: Timestamp,
        /// When.
        at: Timestamp,
    },
    /// The business deleted the object; its key was destroyed.
    MediaDeleted {
        /// When.
        at: Timestamp,
    },
}

crate::shim::domain_event!(MediaEvent {
    MediaStored => "1",
    MediaStoredInChunks => "1",
    MediaDeleted => "1",
});

/// A media object folded from its events. Storing one happens outside [`Decider::decide`]
/// (its fields are sealed first, under a fresh id); deleting goes through `decide`, so the
/// executor appends the deletion at the version it was decided on and a second, concurrent
/// delete is re-decided against the deleted object and refused.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MediaObject {
    /// The stored object, if any.
    pub stored: Option<MediaEvent>,
    /// Whether it was deleted.
    pub deleted: bool,
}

impl MediaObject {
    /// Folds one event.
    pub fn apply(&mut self, event: MediaEvent) {
        match event {
            e @ (MediaEvent::MediaStored { .. } | MediaEvent::MediaStoredInChunks { .. }) => {
                self.stored = Some(e)
            }
            MediaEvent::MediaDeleted { .. } => self.deleted = true,
        }
    }

    /// Whether the id still answers at `now`: stored, not deleted, not expired.
    pub fn available(&self, now: Timestamp) -> bool {
        match &self.stored {
            Some(
                MediaEvent::MediaStored { expires_at, .. }
                | MediaEvent::MediaStoredInChunks { expires_at, .. },
            ) => !self.deleted && now.millis() < expires_at.millis(),
            _ => false,
        }
    }
}

/// What a media object can be asked to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaCommand {
    /// Delete it (its key is destroyed after the event is recorded). `NotFound` unless the
    /// object is stored, not deleted and not expired.
    Delete,
}

impl Decider for MediaObject {
    type Command = MediaCommand;
    type Event = MediaEvent;

    fn decide(
        &self,
        command: MediaCommand,
        now: Timestamp,
    ) -> Result<Vec<MediaEvent>, DomainError> {
        match command {
            MediaCommand::Delete if self.available(now) => {
                Ok(vec![MediaEvent::MediaDeleted { at: now }])
            }
            MediaCommand::Delete => Err(DomainError::NotFound),
        }
    }

    fn apply(&mut self, event: MediaEvent) {
        MediaObject::apply(self, event);
    }
}

cqrs_aggregate!(MediaObject, "media");

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(expires: i64) -> MediaEvent {
        MediaEvent::MediaStored {
            media_id: MediaId::from_random(1),
            business_id: BusinessId::from_random(2),
            phone_number_id: PhoneNumberId::from_random(3),
            subject_id: None,
            epoch: EpochId::new(0),
            origin: MediaOrigin::Upload,
            meta: Sealed::from_bytes(vec![1]),
            bytes: Sealed::from_bytes(vec![2]),
            expires_at: Timestamp::from_millis(expires),
            at: Timestamp::from_millis(0),
        }
    }

    #[test]
    fn available_until_expiry_or_deletion() {
        let mut m = MediaObject::default();
        assert!(!m.available(Timestamp::from_millis(0)), "nothing stored");
        m.apply(stored(1_000));
        assert!(m.available(Timestamp::from_millis(999)));
        assert!(!m.available(Timestamp::from_millis(1_000)), "expired");
        m.apply(MediaEvent::MediaDeleted {
            at: Timestamp::from_millis(10),
        });
        assert!(!m.available(Timestamp::from_millis(10)), "deleted");
    }

    #[test]
    fn a_media_object_is_deleted_once() {
        let now = Timestamp::from_millis(10);
        let stored_object = MediaObject::replay([stored(1_000)]);
        assert_eq!(
            stored_object.decide(MediaCommand::Delete, now),
            Ok(vec![MediaEvent::MediaDeleted { at: now }])
        );
        let deleted = MediaObject::replay([stored(1_000), MediaEvent::MediaDeleted { at: now }]);
        assert_eq!(
            deleted.decide(MediaCommand::Delete, now),
            Err(DomainError::NotFound),
            "a second delete is refused"
        );
        assert_eq!(
            MediaObject::default().decide(MediaCommand::Delete, now),
            Err(DomainError::NotFound),
            "nothing stored"
        );
        assert_eq!(
            stored_object.decide(MediaCommand::Delete, Timestamp::from_millis(1_000)),
            Err(DomainError::NotFound),
            "expired"
        );
    }

    #[test]
    fn the_aggregate_type_is_the_media_stream_type() {
        assert_eq!(<MediaObject as cqrs_es::Aggregate>::TYPE, MEDIA_STREAM_TYPE);
    }
}
