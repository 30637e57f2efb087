//! The key vault: the key hierarchy of docs/design.md.
//!
//! 1. Region root key (KEK): from `SEALPOST_ROOT_KEY_<REGION>` (base64) or a 0600 key file.
//! 2. Ledger key per business per region, versioned: seals every event payload (outer layer).
//! 3. Retention-epoch key per business per region per epoch: destroyed when the epoch expires.
//! 4. Subject key per business per consumer: destroyed on erasure or when its last message expires.
//! 5. Message key = HKDF(epoch key ‖ subject key, salt = message id): never stored.
//!
//! Keys 2–4 and the blind-index key are random, wrapped by the KEK, and kept in the
//! [`KeyStore`]. Unwrapped keys are cached in memory (zeroized when dropped) and evicted the
//! moment they are destroyed.

mod chunks;
mod fields;
mod keys;
mod rewrap;
mod root;
mod routing;
mod signal_state;
mod token;

pub use chunks::{chunk_count, ChunkedObject, CHUNK_BYTES};
pub use keys::{epoch_key_id, media_key_id, subject_key_id};
pub use rewrap::{Retirement, RootState, ROOT_SETTLE_MS};
pub use root::{
    configured_roots, hold_custody, write_private_file, RootCustody, RootKeys, Roots,
    CUSTODY_RECORD, ROOT_KEY_ENV_PREFIX,
};
pub use signal_state::SessionSave;
pub use token::{env as token_env, root_key_template, TokenConfig, TokenRoots, DEFAULT_KEY_LABEL};

use crate::crypto::{self, CryptoError, SecretKey};
use crate::store::{KeyKind, KeyState, KeyStore, StoreError, WrappedKey};
use sealpost_domain::{Region, Timestamp};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// The owner recorded on the audit log's signing key: it belongs to no business.
pub const AUDIT_OWNER: &str = sealpost_domain::DEPLOYMENT;

/// Vault failures. None carries key material or personal data.
#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    /// A key needed to write was destroyed (retention or erasure): refuse the write; the
    /// subject or epoch is gone for good (HTTP 400, code 131026).
    #[error("key was destroyed")]
    KeyDestroyed,
    /// A key needed to write does not exist (a subject that was never created): a caller bug.
    #[error("key does not exist")]
    KeyMissing,
    /// The key store failed: retry later if [`StoreError::is_unavailable`] (HTTP 503), else
    /// alert (HTTP 500).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A wrapped key or a sealed value would not open: corruption, tampering or the wrong root
    /// key. Stop and alert.
    #[error("stored key material could not be opened")]
    Crypto(#[from] CryptoError),
    /// No root key could be loaded or created for a region: fix the configuration.
    #[error("root key unavailable for region {0}: {1}")]
    RootKey(Region, String),
    /// The root keys' custody (a PKCS#11 token) could not be reached or used: retry later
    /// (HTTP 503), and fix the token if it lasts.
    #[error("root key custody unavailable: {0}")]
    Custody(String),
}

impl VaultError {
    /// Whether the failure is transient (the key store is down, unreachable or busy).
    pub fn is_unavailable(&self) -> bool {
        match self {
            VaultError::Store(e) => e.is_unavailable(),
            VaultError::Custody(_) => true,
            _ => false,
        }
    }
}

/// A key with its version.
type VersionedKey = (u32, Arc<SecretKey>);

/// Unwrapped keys kept in memory at most.
pub const MAX_CACHED_KEYS: usize = 50_000;

/// The key vault.
#[derive(Debug)]
pub struct Vault {
    keys: Arc<dyn KeyStore>,
    roots: Roots,
    cache: Mutex<HashMap<String, Arc<SecretKey>>>,
    /// The current ledger key per business and region, so sealing needs no key-store query.
    /// A rotation by this process updates it; one by another process is picked up on restart
    /// (events sealed under the older version stay valid and readable).
    current_ledger: Mutex<HashMap<(String, Region), (VersionedKey, std::time::Instant)>>,
    /// The root-key generation new keys are wrapped under, per region, and when it was read
    /// (ADR 0025; re-read from the key store within [`rewrap::ROOT_RECHECK`]).
    current_root: Mutex<HashMap<Region, (u32, std::time::Instant)>>,
    /// Whether destroyed key bytes may still be in the key store's files: set by every
    /// destruction, and at start (a crash may have come between a destruction and its scrub).
    scrub_owed: AtomicBool,
}

fn key_id(kind: KeyKind, region: Region, business: &str, rest: &str) -> String {
    format!("{}/{}/{}/{}", kind.as_str(), region.code(), business, rest)
}

/// What a key's wrapping under its region's root key is bound to: its id.
pub fn wrap_aad(key_id: &str) -> Vec<u8> {
    crypto::aad(&[b"sealpost/wrap/v1", key_id.as_bytes()])
}

/// A new key's identity, before it is made.
struct KeySpec<'a> {
    kind: KeyKind,
    business: &'a str,
    region: Region,
    epoch: Option<i64>,
    subject: Option<&'a str>,
    version: u32,
}

impl Vault {
    /// A vault over a key store and root keys.
    pub fn new(keys: Arc<dyn KeyStore>, roots: impl Into<Roots>) -> Self {
        Self {
            keys,
            roots: roots.into(),
            cache: Mutex::new(HashMap::new()),
            current_ledger: Mutex::new(HashMap::new()),
            current_root: Mutex::new(HashMap::new()),
            scrub_owed: AtomicBool::new(true),
        }
    }

    /// Where the region root keys are ([`RootCustody::describe`]).
    pub fn custody(&self) -> String {
        self.roots.describe()
    }

    /// Removes destroyed keys' bytes from the key store's files if a destruction since the last
    /// scrub (or a start) left them there; returns whether it scrubbed. A destruction commits
    /// at once and is unreadable from then on; this physical step is batched off the request
    /// path (`serve` runs it every second, retention after each pass; ADR 0013).
    pub async fn scrub(&self) -> Result<bool, VaultError> {
        if !self.scrub_owed.swap(false, Ordering::AcqRel) {
            return Ok(false);
        }
        if let Err(e) = self.keys.scrub().await {
            self.scrub_owed.store(true, Ordering::Release);
            return Err(e.into());
        }
        Ok(true)
    }

    /// The key store.
    pub fn key_store(&self) -> &Arc<dyn KeyStore> {
        &self.keys
    }

    fn cached(&self, id: &str) -> Option<Arc<SecretKey>> {
        self.cache
            .lock()
            .expect("cache lock is never poisoned")
            .get(id)
            .cloned()
    }

    fn remember(&self, id: &str, key: Arc<SecretKey>) {
        self.cache
            .lock()
            .expect("cache lock is never poisoned")
            .insert(id.to_owned(), key);
    }

    fn forget(&self, ids: &[String]) {
        let mut cache = self.cache.lock().expect("cache lock is never poisoned");
        for id in ids {
            cache.remove(id);
        }
    }

    fn unwrap_key(&self, w: &WrappedKey) -> Result<Arc<SecretKey>, VaultError> {
        let region: Region = w
            .region
            .parse()
            .map_err(|_| StoreError::Corrupt("unknown region on key"))?;
        let raw = self
            .roots
            .open(region, w.root, &w.wrapped, &wrap_aad(&w.key_id))?;
        let key = Arc::new(SecretKey::from_slice(&raw)?);
        self.remember(&w.key_id, key.clone());
        Ok(key)
    }

    /// Loads `business`'s key `id`; `create` makes it (first writer wins) if it was never made.
    async fn load(
        &self,
        business: &str,
        id: &str,
        create: Option<(KeySpec<'_>, Timestamp)>,
    ) -> Result<Option<Arc<SecretKey>>, VaultError> {
        if let Some(k) = self.cached(id) {
            return Ok(Some(k));
        }
        match self.keys.get(business, id).await? {
            KeyState::Live(w) => Ok(Some(self.unwrap_key(&w)?)),
            KeyState::Destroyed => Ok(None),
            KeyState::Missing => match create {
                None => Ok(None),
                Some((spec, now)) => {
                    let fresh = SecretKey::random();
                    let root = self.root_generation(spec.region).await?;
                    let w = WrappedKey {
                        key_id: id.to_owned(),
                        kind: spec.kind,
                        business_id: spec.business.to_owned(),
                        region: spec.region.code().to_owned(),
                        epoch: spec.epoch,
                        subject_id: spec.subject.map(str::to_owned),
                        version: spec.version,
                        wrapped: self.roots.seal(
                            spec.region,
                            root,
                            fresh.expose(),
                            &wrap_aad(id),
                        )?,
                        created_at: now.millis(),
                        root,
                    };
                    match self.keys.insert_if_absent(&w).await {
                        Ok(winner) => Ok(Some(self.unwrap_key(&winner)?)),
                        Err(StoreError::KeyDestroyed) => Ok(None),
                        Err(e) => Err(e.into()),
                    }
                }
            },
        }
    }
}
