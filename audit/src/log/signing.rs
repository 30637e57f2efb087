//! The audit log's signing key and its rotation (ADR 0026): generation 1 is the seed the log
//! always had; a rotation makes the next generation's seed, and the log's next checkpoint is a
//! hand-over, signed by the new key and by the one it takes over from. A node follows a
//! rotation made elsewhere before each checkpoint it signs.

use super::{AuditError, AuditLog};
use ed25519_dalek::{SigningKey, VerifyingKey};
use sealpost_adapters::vault::Vault;
use sealpost_domain::{Region, Timestamp};

/// The key checkpoints are signed with now, and the one it took over from until a hand-over
/// checkpoint has been signed.
#[derive(Debug)]
pub(super) struct Signing {
    pub(super) generation: u32,
    pub(super) key: SigningKey,
    pub(super) handing_over: Option<SigningKey>,
}

impl Signing {
    /// The newest generation of `region`'s audit seed (the first made on first use).
    pub(super) async fn newest(
        vault: &Vault,
        region: Region,
        now: Timestamp,
    ) -> Result<Self, AuditError> {
        let mut generation = 1;
        let mut seed = vault.audit_signing_seed(region, now).await?;
        while let Some(next) = vault.audit_seed(region, generation + 1, None).await? {
            generation += 1;
            seed = next;
        }
        Ok(Self {
            generation,
            key: SigningKey::from_bytes(&seed),
            handing_over: None,
        })
    }
}

impl AuditLog {
    fn signing(&self) -> std::sync::MutexGuard<'_, Signing> {
        self.signing
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The signing key's generation (1 until the first rotation).
    pub fn key_generation(&self) -> u32 {
        self.signing().generation
    }

    /// The key that signs now.
    pub(super) fn signer(&self) -> SigningKey {
        self.signing().key.clone()
    }

    /// Makes the next generation's signing key (once: a second call finds it) and returns it,
    /// without signing under it yet: the log's next checkpoint hands over to it.
    pub async fn make_next_key(&self, now: Timestamp) -> Result<(u32, VerifyingKey), AuditError> {
        let generation = self.key_generation() + 1;
        let seed = self
            .vault
            .audit_seed(self.region, generation, Some(now))
            .await?
            .ok_or(sealpost_adapters::vault::VaultError::KeyDestroyed)?;
        Ok((generation, SigningKey::from_bytes(&seed).verifying_key()))
    }

    /// Takes up a newer generation made here or elsewhere, keeping the current key to sign the
    /// hand-over with.
    pub(super) async fn follow_rotation(&self) -> Result<(), AuditError> {
        let generation = self.key_generation();
        let Some(seed) = self
            .vault
            .audit_seed(self.region, generation + 1, None)
            .await?
        else {
            return Ok(());
        };
        let mut signing = self.signing();
        if signing.generation == generation {
            let old = std::mem::replace(&mut signing.key, SigningKey::from_bytes(&seed));
            signing.handing_over.get_or_insert(old);
            signing.generation = generation + 1;
            tracing::info!(generation = generation + 1, "audit signing key rotated");
        }
        Ok(())
    }

    /// The key a checkpoint signed now hands over from, if any.
    pub(super) fn handing_over(&self) -> Option<SigningKey> {
        self.signing().handing_over.clone()
    }

    /// The hand-over is signed: checkpoints are the new key's alone from now on.
    pub(super) fn handed_over(&self) {
        self.signing().handing_over = None;
    }
}
