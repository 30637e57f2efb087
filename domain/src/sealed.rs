//! Sealed personal fields. The domain carries them as opaque bytes; only the adapters' key vault
//! can open them, and only through the access gate.

use crate::ids::{MessageId, SubjectId};
use crate::time::EpochId;
use base64::Engine as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// A personal field sealed under a message key or a subject key (AES-256-GCM-SIV, nonce and tag
/// included). Serialized as base64. Its `Debug` shows only the length.
#[derive(Clone, PartialEq, Eq)]
pub struct Sealed(Vec<u8>);

impl Sealed {
    /// Wraps bytes produced by the vault's sealing function.
    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }

    /// The sealed bytes (nonce ‖ ciphertext ‖ tag).
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Sealed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sealed({} bytes)", self.0.len())
    }
}

impl Serialize for Sealed {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(&self.0))
    }
}

impl<'de> Deserialize<'de> for Sealed {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        base64::engine::general_purpose::STANDARD
            .decode(s.as_bytes())
            .map(Sealed)
            .map_err(|_| serde::de::Error::custom("sealed field is not base64"))
    }
}

/// Which key a sealed field is under.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum FieldScope {
    /// A field of one message: message key = HKDF(epoch key ‖ subject key, salt = message id).
    /// Destroying either the epoch key or the subject key shreds it.
    Message {
        /// The retention epoch the message belongs to.
        epoch: EpochId,
        /// The consumer the message is with.
        subject: SubjectId,
        /// The message.
        message: MessageId,
    },
    /// A field of one media object: media key = HKDF(epoch key ‖ the media object's own key
    /// [‖ the sending consumer's subject key]). Retention (the epoch key), deleting the media
    /// (its own key) or erasing the consumer who sent it (the subject key) shreds it.
    Media {
        /// The retention epoch the upload belongs to.
        epoch: EpochId,
        /// The media object.
        media: crate::ids::MediaId,
        /// For an attachment a consumer sent: that consumer.
        subject: Option<SubjectId>,
    },
    /// A field that belongs to the consumer rather than to one message (routing phone number,
    /// Signal session, identity key): sealed under the subject key itself.
    Subject {
        /// The consumer.
        subject: SubjectId,
    },
}

/// The result of opening a sealed field: the plaintext, or the typed marker that its key was
/// destroyed (by retention or erasure). Shredded is an ordinary answer, never an error.
#[derive(Clone, PartialEq, Eq)]
pub enum Opened<T> {
    /// The key still exists and the field opened.
    Plain(T),
    /// The key was destroyed: the content is gone for good.
    Shredded,
}

impl<T> Opened<T> {
    /// Whether the field was shredded.
    pub fn is_shredded(&self) -> bool {
        matches!(self, Opened::Shredded)
    }

    /// The plaintext, if any.
    pub fn plain(self) -> Option<T> {
        match self {
            Opened::Plain(t) => Some(t),
            Opened::Shredded => None,
        }
    }

    /// Maps the plaintext.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Opened<U> {
        match self {
            Opened::Plain(t) => Opened::Plain(f(t)),
            Opened::Shredded => Opened::Shredded,
        }
    }
}

impl<T> fmt::Debug for Opened<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Opened::Plain(_) => f.write_str("Opened::Plain(<redacted>)"),
            Opened::Shredded => f.write_str("Opened::Shredded"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_is_base64_and_debug_hides_bytes() {
        let s = Sealed::from_bytes(vec![1, 2, 3]);
        assert_eq!(serde_json::to_string(&s).expect("serializes"), "\"AQID\"");
        assert_eq!(format!("{s:?}"), "Sealed(3 bytes)");
        assert_eq!(
            serde_json::from_str::<Sealed>("\"AQID\"").expect("parses"),
            s
        );
        assert!(serde_json::from_str::<Sealed>("\"**\"").is_err());
        assert_eq!(
            format!("{:?}", Opened::Plain("secret")),
            "Opened::Plain(<redacted>)"
        );
    }
}
