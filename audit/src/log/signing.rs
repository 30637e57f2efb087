//! The audit log's signing key and its rotation (ADR 0026): generation 1 is the seed the log
//! always had; a rotation makes the next generation's seed, and the log's next checkpoint is a
//! hand-over, signed by the new key and by the key of the newest checkpoint stored (the key
//! the chain ends with). A node takes up the newest generation before each checkpoint it
//! signs, and when it opens: if the newest checkpoint stored is an older generation's (a
//! rotation stopped before its hand-over, or was made elsewhere), its next checkpoint is the
//! hand-over from that key.

use super::{stored_checkpoints, AuditError, AuditLog, Checkpoint};
use ed25519_dalek::{SigningKey, VerifyingKey};
use sealpost_adapters::vault::{Vault, VaultError};
use sealpost_domain::{Region, Timestamp};

/// The key checkpoints are signed with now, and the one it takes over from until a hand-over
/// checkpoint has been signed.
#[derive(Debug)]
pub(super) struct Signing {
    pub(super) generation: u32,
    pub(super) key: SigningKey,
    pub(super) handing_over: Option<SigningKey>,
}

/// Every generation of `region`'s audit seed, oldest first; `make_first` makes the first at
/// that time if it was never made.
async fn generations(
    vault: &Vault,
    region: Region,
    make_first: Option<Timestamp>,
) -> Result<Vec<SigningKey>, AuditError> {
    let first = vault
        .audit_seed(region, 1, make_first)
        .await?
        .ok_or(VaultError::KeyDestroyed)?;
    let mut keys = vec![SigningKey::from_bytes(&first)];
    while let Some(next) = vault
        .audit_seed(region, keys.len() as u32 + 1, None)
        .await?
    {
        keys.push(SigningKey::from_bytes(&next));
    }
    Ok(keys)
}

/// The newest of `keys`, and the key a hand-over to it must come from: that of `latest` (the
/// newest checkpoint stored) when it is an older generation's, or the generation before when
/// the log has signed nothing yet (its key was published all the same).
fn newest_of(mut keys: Vec<SigningKey>, latest: Option<&Checkpoint>) -> Signing {
    let key = keys.pop().expect("generation 1 is always there");
    let handing_over = match latest {
        None => keys.pop(),
        Some(latest) => {
            let signed_by =
                |k: &SigningKey| latest.public_key == hex::encode(k.verifying_key().as_bytes());
            match signed_by(&key) {
                true => None,
                false => keys.into_iter().rev().find(|k| signed_by(k)),
            }
        }
    };
    Signing {
        generation: 0,
        key,
        handing_over,
    }
}

impl Signing {
    /// The newest generation of `region`'s audit seed, handing over from `latest`'s key.
    pub(super) async fn newest(
        vault: &Vault,
        region: Region,
        now: Timestamp,
        latest: Option<&Checkpoint>,
    ) -> Result<Self, AuditError> {
        let keys = generations(vault, region, Some(now)).await?;
        let generation = keys.len() as u32;
        Ok(Signing {
            generation,
            ..newest_of(keys, latest)
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

    /// Hands the log over to a new signing key now: takes up any rotation made elsewhere,
    /// makes the next generation and signs the hand-over checkpoint, all with the sequencer
    /// held (so the checkpoint returned is the hand-over). Returns the new generation, its
    /// public key and the hand-over.
    pub async fn rotate_key(
        &self,
        now: Timestamp,
    ) -> Result<(u32, VerifyingKey, Checkpoint), AuditError> {
        let mut state = self.state.lock().await;
        self.follow_rotation().await?;
        let generation = self.key_generation() + 1;
        self.vault
            .audit_seed(self.region, generation, Some(now))
            .await?
            .ok_or(VaultError::KeyDestroyed)?;
        self.follow_rotation().await?;
        let checkpoint = self.checkpoint_locked(&mut state, now).await?;
        Ok((generation, self.public_key(), checkpoint))
    }

    /// Takes up the newest generation made here or elsewhere, keeping the key of the newest
    /// checkpoint stored to sign the hand-over with.
    pub(super) async fn follow_rotation(&self) -> Result<(), AuditError> {
        let generation = self.key_generation();
        if self
            .vault
            .audit_seed(self.region, generation + 1, None)
            .await?
            .is_none()
        {
            return Ok(());
        }
        // The first was made when this log opened.
        let keys = generations(&self.vault, self.region, None).await?;
        let latest = stored_checkpoints(self.events.as_ref()).await?.pop();
        let newest = keys.len() as u32;
        let next = newest_of(keys, latest.as_ref());
        let mut signing = self.signing();
        if signing.generation < newest {
            *signing = Signing {
                generation: newest,
                ..next
            };
            tracing::info!(generation = newest, "audit signing key rotated");
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
