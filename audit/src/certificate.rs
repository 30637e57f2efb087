//! Erasure certificates (GDPR Art. 17): what was erased, when, how, and the proof that the
//! erasure is recorded in the tamper-evident log under a signed checkpoint.

mod html;

use crate::log::{Checkpoint, InclusionProof};
use crate::verify::BundleRow;
use ed25519_dalek::VerifyingKey;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The certificate format marker.
pub const CERTIFICATE_FORMAT: &str = "sealpost-erasure-certificate/1";

/// How Sealpost erases.
pub const METHOD: &str = "cryptographic erase (NIST SP 800-88 Rev. 1): the subject's AES-256 key, its blind-index entry and its Signal session were destroyed in one key-store transaction and scrubbed from the key store's files; every field sealed under that key is unreadable for good";

/// An erasure certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
    /// For a subject of a Local Storage region: the erasure's sealed body in that region's own
    /// log, proven under the region's checkpoint (the certificate comes from the subject's
    /// region; ADR 0020).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<RegionProof>,
}

/// The erasure's body in a Local Storage region's own log, tied to the home row that
/// references it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RegionProof {
    /// The region's code.
    pub region: String,
    /// The home row's payload, hex: the reference (the body's position in the region's log and
    /// the SHA-256 of its bytes) whose hash the home row's leaf commits to.
    pub reference: String,
    /// The body's row in the region's log (header and payload hash).
    pub event: BundleRow,
    /// Inclusion proof of that row in the region's checkpoint.
    pub inclusion_proof: InclusionProof,
    /// The region log's checkpoint, signed by the region's own key.
    pub checkpoint: Checkpoint,
}

impl RegionProof {
    /// Checks that `home` (the certificate's proven row) references this body, and that the
    /// body is in the region's log under its checkpoint, signed by `region_key` (the region's
    /// published key; with none, the key the checkpoint names).
    fn verify(&self, home: &BundleRow, region_key: Option<&VerifyingKey>) -> Result<(), String> {
        let reference = hex::decode(&self.reference).map_err(|_| "reference is not hex")?;
        if home.region != self.region
            || self.event.region != self.region
            || !self
                .checkpoint
                .origin
                .ends_with(&format!("/{}", self.region))
        {
            return Err("the region proof is of another region".into());
        }
        if hex::encode(crate::log::sha256(&reference)) != home.payload_sha256 {
            return Err("the home row does not hold this reference".into());
        }
        let r = sealpost_adapters::ledger::Reference::decode(&reference)
            .ok_or("the home row's payload is not a reference")?;
        if r.position != self.event.position || hex::encode(r.hash) != self.event.payload_sha256 {
            return Err("the reference names another body".into());
        }
        self.checkpoint
            .verify(region_key)
            .map_err(|e| format!("region checkpoint: {e}"))?;
        proven(&self.event, &self.inclusion_proof, &self.checkpoint)
            .map_err(|e| format!("region: {e}"))
    }
}

/// Checks that `proof` proves `event`'s leaf under `checkpoint`'s root.
fn proven(
    event: &BundleRow,
    proof: &InclusionProof,
    checkpoint: &Checkpoint,
) -> Result<(), String> {
    if proof.position != event.position || proof.size != checkpoint.size {
        return Err("the proof is for another position or tree size".into());
    }
    if hex::encode(event.recomputed_leaf()) != proof.leaf {
        return Err("the row does not hash to the proven leaf".into());
    }
    let root = checkpoint
        .root_hash()
        .map_err(|e| format!("checkpoint: {e}"))?;
    if !proof.verify(&root) {
        return Err("the inclusion proof does not lead to the checkpoint's root".into());
    }
    Ok(())
}

impl ErasureCertificate {
    /// Checks the certificate against the log's published key: the checkpoint's signature, that
    /// the proven leaf is this `SubjectErased` row of this subject, and the inclusion proof; and,
    /// for a Local Storage region's subject, the body's proof in the region's own log.
    ///
    /// Without the regions' published keys the region proof's signature is checked only
    /// against the key its checkpoint names: the home proof and the reference's link to the
    /// body hold, the region's signature is not pinned. [`Self::verify_with_region_keys`]
    /// pins it.
    pub fn verify(&self, published_key: &VerifyingKey) -> Result<(), String> {
        self.verify_home(published_key)?;
        match &self.region {
            Some(region) => region.verify(&self.event, None),
            None => self.no_region_proof(),
        }
    }

    /// [`Self::verify`], with the Local Storage regions' published keys (`GET
    /// /sealpost/v1/audit/public-key`, `regions`) by region code: a region proof must then be
    /// signed by its region's key.
    pub fn verify_with_region_keys(
        &self,
        published_key: &VerifyingKey,
        region_keys: &BTreeMap<String, VerifyingKey>,
    ) -> Result<(), String> {
        self.verify_home(published_key)?;
        match &self.region {
            Some(region) => {
                let key = region_keys
                    .get(&region.region)
                    .ok_or("no published key of the region proof's region")?;
                region.verify(&self.event, Some(key))
            }
            None => self.no_region_proof(),
        }
    }

    /// A Local Storage subject's certificate must carry its region proof.
    fn no_region_proof(&self) -> Result<(), String> {
        if sealpost_domain::Region::code_is_local_storage(&self.event.region) {
            Err("a Local Storage subject's certificate lacks its region proof".into())
        } else {
            Ok(())
        }
    }

    /// The home checkpoint under the published key, the proven row, and its inclusion.
    fn verify_home(&self, published_key: &VerifyingKey) -> Result<(), String> {
        self.checkpoint
            .verify(Some(published_key))
            .map_err(|e| format!("checkpoint: {e}"))?;
        if self.event.event_type != "SubjectErased"
            || self.event.stream_type != "subject"
            || self.event.stream_id != self.subject_id
        {
            return Err("the proven row is not this subject's erasure".into());
        }
        proven(&self.event, &self.inclusion_proof, &self.checkpoint)
    }
}
