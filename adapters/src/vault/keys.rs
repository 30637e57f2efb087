//! Each kind of key of the hierarchy: its id, how it is made on first use (ledger, epoch,
//! subject, index, app, audit), and its destruction, which tombstones it for good.

use super::{key_id, KeySpec, Vault, VaultError, AUDIT_OWNER};
use crate::crypto::SecretKey;
use crate::store::{Destruction, KeyKind, OfBusiness};
use sealpost_domain::{EpochId, MediaId, Region, SubjectId, Timestamp};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use zeroize::Zeroizing;

/// The key id of a retention-epoch key.
pub fn epoch_key_id(business: &str, region: Region, epoch: EpochId) -> String {
    key_id(KeyKind::Epoch, region, business, &epoch.index().to_string())
}

/// The key id of a media object's own key.
pub fn media_key_id(business: &str, region: Region, media: &MediaId) -> String {
    key_id(KeyKind::Media, region, business, media.as_str())
}

/// The key id of a subject key.
pub fn subject_key_id(business: &str, region: Region, subject: &SubjectId) -> String {
    key_id(KeyKind::Subject, region, business, subject.as_str())
}

/// How long a remembered current ledger key is used before the key store is asked again for a
/// newer version (made by a rotation in another process or on another node).
const LEDGER_RECHECK: std::time::Duration = std::time::Duration::from_secs(60);

impl Vault {
    /// The current ledger key of a business in a region (made at version 1 on first use). A
    /// version made elsewhere is picked up within [`LEDGER_RECHECK`].
    pub async fn ledger_key(
        &self,
        business: &str,
        region: Region,
        now: Timestamp,
    ) -> Result<(u32, Arc<SecretKey>), VaultError> {
        let slot = (business.to_owned(), region);
        let known = self
            .current_ledger
            .lock()
            .expect("ledger lock is never poisoned")
            .get(&slot)
            .cloned();
        if let Some((current, at)) = &known {
            if at.elapsed() < LEDGER_RECHECK {
                return Ok(current.clone());
            }
        }
        let current = match self.keys.latest_ledger(business, region.code()).await? {
            Some(w) if known.as_ref().is_some_and(|((v, _), _)| *v == w.version) => {
                known.map(|(c, _)| c).expect("known")
            }
            Some(w) => (w.version, self.unwrap_key(&w)?),
            None => (
                1,
                self.ledger_key_version(business, region, 1, Some(now))
                    .await?,
            ),
        };
        self.remember_ledger(slot, current.clone());
        Ok(current)
    }

    /// Remembers `current` as the ledger key of `slot` unless a newer version is remembered.
    fn remember_ledger(&self, slot: (String, Region), current: super::VersionedKey) {
        let mut remembered = self
            .current_ledger
            .lock()
            .expect("ledger lock is never poisoned");
        let newer = remembered
            .get(&slot)
            .is_some_and(|((v, _), _)| *v > current.0);
        if !newer {
            remembered.insert(slot, (current, std::time::Instant::now()));
        }
    }

    /// Makes ledger key `version` of a business in a region (once: a second call finds it) and
    /// seals new events under it from now on in this process (ADR 0024).
    pub async fn advance_ledger_key(
        &self,
        business: &str,
        region: Region,
        version: u32,
        now: Timestamp,
    ) -> Result<(), VaultError> {
        let key = self
            .ledger_key_version(business, region, version, Some(now))
            .await?;
        self.remember_ledger((business.to_owned(), region), (version, key));
        Ok(())
    }

    /// A specific version of a ledger key (old versions stay readable after rotation).
    pub async fn ledger_key_version(
        &self,
        business: &str,
        region: Region,
        version: u32,
        create: Option<Timestamp>,
    ) -> Result<Arc<SecretKey>, VaultError> {
        let id = key_id(KeyKind::Ledger, region, business, &format!("v{version}"));
        let spec = KeySpec {
            kind: KeyKind::Ledger,
            business,
            region,
            epoch: None,
            subject: None,
            version,
        };
        self.load(business, &id, create.map(|now| (spec, now)))
            .await?
            .ok_or(VaultError::KeyMissing)
    }

    /// Makes a new ledger key version; new events are sealed under it, old ones still open.
    pub async fn rotate_ledger_key(
        &self,
        business: &str,
        region: Region,
        now: Timestamp,
    ) -> Result<u32, VaultError> {
        let current = self
            .keys
            .latest_ledger(business, region.code())
            .await?
            .map_or(0, |w| w.version);
        let next = current + 1;
        self.advance_ledger_key(business, region, next, now).await?;
        Ok(next)
    }

    /// A retention-epoch key; `create_at` makes it if it was never made. `None` when it was
    /// destroyed (or never made and not asked to create).
    pub async fn epoch_key(
        &self,
        business: &str,
        region: Region,
        epoch: EpochId,
        create_at: Option<Timestamp>,
    ) -> Result<Option<Arc<SecretKey>>, VaultError> {
        let id = epoch_key_id(business, region, epoch);
        let spec = KeySpec {
            kind: KeyKind::Epoch,
            business,
            region,
            epoch: Some(epoch.index()),
            subject: None,
            version: 1,
        };
        self.load(business, &id, create_at.map(|now| (spec, now)))
            .await
    }

    /// A subject key; `create_at` makes it if it was never made. `None` when destroyed.
    pub async fn subject_key(
        &self,
        business: &str,
        region: Region,
        subject: &SubjectId,
        create_at: Option<Timestamp>,
    ) -> Result<Option<Arc<SecretKey>>, VaultError> {
        let id = subject_key_id(business, region, subject);
        let spec = KeySpec {
            kind: KeyKind::Subject,
            business,
            region,
            epoch: None,
            subject: Some(subject.as_str()),
            version: 1,
        };
        self.load(business, &id, create_at.map(|now| (spec, now)))
            .await
    }

    pub(super) async fn index_key(
        &self,
        business: &str,
        region: Region,
        now: Timestamp,
    ) -> Result<Arc<SecretKey>, VaultError> {
        let id = key_id(KeyKind::Index, region, business, "v1");
        let spec = KeySpec {
            kind: KeyKind::Index,
            business,
            region,
            epoch: None,
            subject: None,
            version: 1,
        };
        self.load(business, &id, Some((spec, now)))
            .await?
            .ok_or(VaultError::KeyDestroyed)
    }

    /// Makes the key of a new subject.
    pub async fn create_subject_key(
        &self,
        business: &str,
        region: Region,
        subject: &SubjectId,
        now: Timestamp,
    ) -> Result<(), VaultError> {
        self.subject_key(business, region, subject, Some(now))
            .await?
            .ok_or(VaultError::KeyDestroyed)?;
        Ok(())
    }

    /// An app's secret (base64url of 32 random bytes, wrapped at rest like every key);
    /// `create_at` makes it if it was never made.
    pub async fn app_secret(
        &self,
        business: &str,
        region: Region,
        app_id: &str,
        create_at: Option<Timestamp>,
    ) -> Result<Option<String>, VaultError> {
        use base64::Engine as _;
        let id = key_id(KeyKind::App, region, business, app_id);
        let spec = KeySpec {
            kind: KeyKind::App,
            business,
            region,
            epoch: None,
            subject: None,
            version: 1,
        };
        let key = self
            .load(business, &id, create_at.map(|now| (spec, now)))
            .await?;
        Ok(key.map(|k| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(k.expose())))
    }

    /// The audit log's first Ed25519 signing seed (32 random bytes, wrapped at rest under the
    /// `region` root key like every key); made on first use.
    pub async fn audit_signing_seed(
        &self,
        region: Region,
        now: Timestamp,
    ) -> Result<Zeroizing<[u8; 32]>, VaultError> {
        self.audit_seed(region, 1, Some(now))
            .await?
            .ok_or(VaultError::KeyDestroyed)
    }

    /// Generation `generation` of the audit log's signing seed (ADR 0026: generation 1 is the
    /// seed [`Vault::audit_signing_seed`] made; a rotation makes the next); `create` makes it
    /// if it was never made. `None` when it does not exist.
    pub async fn audit_seed(
        &self,
        region: Region,
        generation: u32,
        create: Option<Timestamp>,
    ) -> Result<Option<Zeroizing<[u8; 32]>>, VaultError> {
        let name = match generation {
            1 => "signing".to_owned(),
            g => format!("signing-g{g}"),
        };
        self.operator_key(region, &name, create).await
    }

    /// The key that signs short-lived media download URLs: the operator's, kept like the audit
    /// seed, so that a URL stays good across a restart and on every node of one store.
    pub async fn media_url_key(
        &self,
        region: Region,
        now: Timestamp,
    ) -> Result<Zeroizing<[u8; 32]>, VaultError> {
        self.operator_secret(region, "media-urls", now).await
    }

    /// A 32-byte secret of the operator's own (no business), named `name`; made on first use.
    async fn operator_secret(
        &self,
        region: Region,
        name: &str,
        now: Timestamp,
    ) -> Result<Zeroizing<[u8; 32]>, VaultError> {
        self.operator_key(region, name, Some(now))
            .await?
            .ok_or(VaultError::KeyDestroyed)
    }

    /// A 32-byte secret of the operator's own named `name`, made if `create` and never made.
    async fn operator_key(
        &self,
        region: Region,
        name: &str,
        create: Option<Timestamp>,
    ) -> Result<Option<Zeroizing<[u8; 32]>>, VaultError> {
        let id = key_id(KeyKind::Audit, region, AUDIT_OWNER, name);
        let spec = KeySpec {
            kind: KeyKind::Audit,
            business: AUDIT_OWNER,
            region,
            epoch: None,
            subject: None,
            version: 1,
        };
        let Some(key) = self
            .load(AUDIT_OWNER, &id, create.map(|now| (spec, now)))
            .await?
        else {
            return Ok(None);
        };
        let mut seed = Zeroizing::new([0u8; 32]);
        seed.copy_from_slice(&key.expose()[..]);
        Ok(Some(seed))
    }

    /// Destroys a media object's own key: its bytes and description are gone for good.
    pub async fn destroy_media(
        &self,
        business: &str,
        region: Region,
        media: &MediaId,
        now: Timestamp,
    ) -> Result<u64, VaultError> {
        let key = OfBusiness::new(business, media_key_id(business, region, media));
        let n = self.destroy_keys(vec![key], vec![], now).await?;
        crate::telemetry::keys_destroyed("media", n);
        Ok(n)
    }

    /// Destroys keys (and the routing of `index_subjects`) in one transaction, forgetting any
    /// cached copy before and after. Returns how many existed.
    async fn destroy_keys(
        &self,
        keys: Vec<OfBusiness>,
        index_subjects: Vec<OfBusiness>,
        now: Timestamp,
    ) -> Result<u64, VaultError> {
        let ids: Vec<String> = keys.iter().map(|k| k.id.clone()).collect();
        self.forget(&ids);
        let n = self
            .keys
            .destroy(&Destruction {
                keys,
                index_subjects,
                at: now.millis(),
            })
            .await?;
        // After the commit, so a scrub that clears this flag starts after the deletion.
        self.scrub_owed.store(true, Ordering::Release);
        self.forget(&ids);
        Ok(n)
    }

    /// Destroys epoch keys (retention), each named with its business. Returns how many
    /// existed.
    pub async fn destroy_epoch_keys(
        &self,
        keys: Vec<OfBusiness>,
        now: Timestamp,
    ) -> Result<u64, VaultError> {
        let n = self.destroy_keys(keys, vec![], now).await?;
        crate::telemetry::keys_destroyed("epoch", n);
        Ok(n)
    }

    /// Destroys a subject's key and its routing entry in one transaction (erasure or expiry).
    pub async fn destroy_subject(
        &self,
        business: &str,
        region: Region,
        subject: &SubjectId,
        now: Timestamp,
    ) -> Result<u64, VaultError> {
        let n = self
            .destroy_keys(
                vec![OfBusiness::new(
                    business,
                    subject_key_id(business, region, subject),
                )],
                vec![OfBusiness::new(business, subject.as_str())],
                now,
            )
            .await?;
        crate::telemetry::keys_destroyed("subject", n);
        Ok(n)
    }
}
