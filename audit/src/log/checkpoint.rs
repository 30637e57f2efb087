//! A signed checkpoint (tree head) and how it verifies: a C2SP signed note (ADR 0022), and on a
//! key hand-over one signed by the new key and by the key it takes over from (ADR 0026).

use super::note;
use crate::merkle::Hash;
use ed25519_dalek::{Signature, Verifier, VerifyingKey};
use sealpost_adapters::store::CheckpointRow;
use serde::{Deserialize, Serialize};

/// A signed checkpoint (tree head). Hashes, keys and signatures are lowercase hex.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Checkpoint {
    /// The log's name.
    pub origin: String,
    /// Number of leaves.
    pub size: u64,
    /// Merkle root of the first `size` leaves.
    pub root: String,
    /// When it was signed (ms since the Unix epoch).
    pub signed_at: i64,
    /// The Ed25519 public key that signed it.
    pub public_key: String,
    /// Ed25519 signature over [`Checkpoint::body`].
    pub signature: String,
    /// The checkpoint as a C2SP signed note (its body and signature line), as transparency-log
    /// tools read it; empty for a checkpoint signed before notes (ADR 0022).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub note: String,
    /// On a key hand-over (ADR 0026): the public key the log is handed over from, which signed
    /// the same text too; empty on every other checkpoint.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub previous_key: String,
    /// The handed-over key's signature over the same text.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub previous_signature: String,
}

/// Why a checkpoint does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointError {
    /// A field is not valid hex of the right length.
    #[error("malformed {0}")]
    Malformed(&'static str),
    /// It was signed by another key than the one trusted.
    #[error("signed by an untrusted key")]
    UntrustedKey,
    /// It was signed by a key for a larger tree than the one it handed the log over at.
    #[error("signed by a key after it handed the log over")]
    HandedOver,
    /// A hand-over by a key that handed the log over to two different keys (a fork).
    #[error("the key it hands over from handed the log over twice")]
    Forked,
    /// The signature does not match.
    #[error("bad signature")]
    BadSignature,
}

impl Checkpoint {
    /// The signed text: a C2SP `tlog-checkpoint` body (origin, size, base64 root) with the
    /// time as an extension line.
    pub fn body(origin: &str, size: u64, root: &Hash, signed_at: i64) -> String {
        note::checkpoint_body(origin, size, root, signed_at)
    }

    /// The text checkpoints were signed over before they were notes: origin, size, hex root and
    /// time, one per line.
    fn earlier_body(origin: &str, size: u64, root: &Hash, signed_at: i64) -> String {
        format!("{origin}\n{size}\n{}\n{signed_at}\n", hex::encode(root))
    }

    /// The verifier key of the checkpoint's signer in the note format.
    pub fn verifier_key(&self) -> Result<String, CheckpointError> {
        let key = parse_public_key(&self.public_key).ok_or(CheckpointError::Malformed("key"))?;
        Ok(note::verifier_key(&self.origin, &key))
    }

    /// The root as bytes.
    pub fn root_hash(&self) -> Result<Hash, CheckpointError> {
        decode_hash(&self.root).ok_or(CheckpointError::Malformed("root"))
    }

    /// Whether this checkpoint hands the log over from one key to another (ADR 0026).
    pub fn is_handover(&self) -> bool {
        !self.previous_key.is_empty()
    }

    /// The key it hands the log over from, on a hand-over.
    pub fn previous(&self) -> Option<VerifyingKey> {
        parse_public_key(&self.previous_key)
    }

    /// The signed text: the note body, with the hand-over line (naming the previous key and
    /// this one) on a hand-over.
    fn signed_text(&self, key: &VerifyingKey, root: &Hash) -> String {
        let mut body = Self::body(&self.origin, self.size, root, self.signed_at);
        if let Some(previous) = self.previous() {
            body.push_str(&note::handover_line(&self.origin, &previous, key));
        }
        body
    }

    /// Checks the signature (and on a hand-over the handed-over key's too), and that it was
    /// made by `trusted` when given.
    pub fn verify(&self, trusted: Option<&VerifyingKey>) -> Result<(), CheckpointError> {
        let key = parse_public_key(&self.public_key).ok_or(CheckpointError::Malformed("key"))?;
        if trusted.is_some_and(|t| t.as_bytes() != key.as_bytes()) {
            return Err(CheckpointError::UntrustedKey);
        }
        let signature = signature_of(&self.signature)?;
        let root = self.root_hash()?;
        if self.is_handover() {
            let previous = self
                .previous()
                .ok_or(CheckpointError::Malformed("previous key"))?;
            let theirs = signature_of(&self.previous_signature)?;
            let body = self.signed_text(&key, &root);
            key.verify(body.as_bytes(), &signature)
                .and_then(|()| previous.verify(body.as_bytes(), &theirs))
                .map_err(|_| CheckpointError::BadSignature)?;
            let signed = note::signed_by(
                &body,
                &self.origin,
                &[(&key, &signature), (&previous, &theirs)],
            );
            return match self.note.is_empty() || self.note == signed {
                true => Ok(()),
                false => Err(CheckpointError::Malformed("note")),
            };
        }
        match self.signed_note(&key, &root, &signature) {
            // A copy without its note still verifies; one with a note must carry this one.
            Some(note) if self.note.is_empty() || note == self.note => Ok(()),
            Some(_) => Err(CheckpointError::Malformed("note")),
            // Signed before notes: over the earlier text, and then it claims no note.
            None if self.note.is_empty() => key
                .verify(
                    Self::earlier_body(&self.origin, self.size, &root, self.signed_at).as_bytes(),
                    &signature,
                )
                .map_err(|_| CheckpointError::BadSignature),
            None => Err(CheckpointError::BadSignature),
        }
    }

    /// The signed note of these fields, if `signature` by `key` is over their note body.
    fn signed_note(
        &self,
        key: &VerifyingKey,
        root: &Hash,
        signature: &Signature,
    ) -> Option<String> {
        let body = Self::body(&self.origin, self.size, root, self.signed_at);
        key.verify(body.as_bytes(), signature).ok()?;
        note::is_key_name(&self.origin)
            .then(|| note::signed_note(&body, &self.origin, key, signature))
    }

    pub(super) fn from_row(row: CheckpointRow) -> Self {
        let (previous_key, previous_signature) = match &row.handover {
            Some((key, sig)) => (hex::encode(key), hex::encode(sig)),
            None => (String::new(), String::new()),
        };
        let mut checkpoint = Self {
            origin: row.origin,
            size: row.size,
            root: hex::encode(&row.root),
            signed_at: row.signed_at,
            public_key: hex::encode(&row.public_key),
            signature: hex::encode(&row.signature),
            note: String::new(),
            previous_key,
            previous_signature,
        };
        let parts = (
            parse_public_key(&checkpoint.public_key),
            decode_hash(&checkpoint.root),
            <[u8; 64]>::try_from(row.signature.as_slice()).ok(),
        );
        if let (Some(key), Some(root), Some(sig)) = parts {
            let signature = Signature::from_bytes(&sig);
            checkpoint.note = match (
                checkpoint.previous(),
                signature_of(&checkpoint.previous_signature),
            ) {
                (Some(previous), Ok(theirs)) => note::signed_by(
                    &checkpoint.signed_text(&key, &root),
                    &checkpoint.origin,
                    &[(&key, &signature), (&previous, &theirs)],
                ),
                _ => checkpoint
                    .signed_note(&key, &root, &signature)
                    .unwrap_or_default(),
            };
        }
        checkpoint
    }
}

/// A hex Ed25519 signature.
fn signature_of(hex_signature: &str) -> Result<Signature, CheckpointError> {
    let sig: [u8; 64] = hex::decode(hex_signature)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or(CheckpointError::Malformed("signature"))?;
    Ok(Signature::from_bytes(&sig))
}

/// Parses a hex Ed25519 public key.
pub fn parse_public_key(s: &str) -> Option<VerifyingKey> {
    let bytes: [u8; 32] = hex::decode(s.trim()).ok()?.try_into().ok()?;
    VerifyingKey::from_bytes(&bytes).ok()
}

pub(super) fn decode_hash(s: &str) -> Option<Hash> {
    hex::decode(s).ok()?.try_into().ok()
}
