//! Erasure certificates (GDPR Art. 17): what was erased, when, how, and the proof that the
//! erasure is recorded in the tamper-evident log under a signed checkpoint.

use crate::log::{Checkpoint, InclusionProof};
use crate::verify::BundleRow;
use ed25519_dalek::VerifyingKey;
use serde::{Deserialize, Serialize};

/// The certificate format marker.
pub const CERTIFICATE_FORMAT: &str = "sealpost-erasure-certificate/1";

/// How Sealpost erases.
pub const METHOD: &str = "cryptographic erase (NIST SP 800-88 Rev. 1): the subject's AES-256 key, its blind-index entry and its Signal session were destroyed in one key-store transaction and scrubbed from the key store's files; every field sealed under that key is unreadable for good";

/// An erasure certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErasureCertificate {
    /// Format marker.
    pub format: String,
    /// The business (controller) the subject belonged to.
    pub business_id: String,
    /// The business phone number the request named, if it named one.
    pub phone_number_id: Option<String>,
    /// The erased subject (a random id: the certificate holds no phone number).
    pub subject_id: String,
    /// Who asked: principal kind.
    pub requested_by_kind: String,
    /// Who asked: principal id.
    pub requested_by: String,
    /// The categories of data erased.
    pub categories: Vec<String>,
    /// How.
    pub method: String,
    /// When the erasure was recorded (ms).
    pub requested_at: i64,
    /// When the keys were destroyed (ms), from the key store's tombstone.
    pub completed_at: Option<i64>,
    /// The `SubjectErased` row as stored (header and payload hash): its leaf is proven below.
    pub event: BundleRow,
    /// Inclusion proof of that row in the checkpoint.
    pub inclusion_proof: InclusionProof,
    /// The signed checkpoint.
    pub checkpoint: Checkpoint,
}

impl ErasureCertificate {
    /// Checks the certificate against the log's published key: the checkpoint's signature, that
    /// the proven leaf is this `SubjectErased` row of this subject, and the inclusion proof.
    pub fn verify(&self, published_key: &VerifyingKey) -> Result<(), String> {
        self.checkpoint
            .verify(Some(published_key))
            .map_err(|e| format!("checkpoint: {e}"))?;
        if self.event.event_type != "SubjectErased"
            || self.event.stream_type != "subject"
            || self.event.stream_id != self.subject_id
        {
            return Err("the proven row is not this subject's erasure".into());
        }
        let p = &self.inclusion_proof;
        if p.position != self.event.position || p.size != self.checkpoint.size {
            return Err("the proof is for another position or tree size".into());
        }
        if hex::encode(self.event.recomputed_leaf()) != p.leaf {
            return Err("the row does not hash to the proven leaf".into());
        }
        let root = self
            .checkpoint
            .root_hash()
            .map_err(|e| format!("checkpoint: {e}"))?;
        if !p.verify(&root) {
            return Err("the inclusion proof does not lead to the checkpoint's root".into());
        }
        Ok(())
    }
}
