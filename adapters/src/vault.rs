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

use crate::crypto::{self, CryptoError, SecretKey};
use crate::store::{Destruction, KeyKind, KeyState, KeyStore, StoreError, WrappedKey};
use base64::Engine as _;
use sealpost_domain::{
    EpochId, FieldScope, MediaId, Opened, Region, Sealed, SubjectId, Timestamp, E164,
};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use zeroize::Zeroizing;

/// The owner recorded on the audit log's signing key: it belongs to no business.
pub const AUDIT_OWNER: &str = "0";

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
}

impl VaultError {
    /// Whether the failure is transient (the key store is down, unreachable or busy).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, VaultError::Store(e) if e.is_unavailable())
    }
}

/// Where region root keys come from.
#[derive(Debug)]
pub struct RootKeys {
    dir: Option<PathBuf>,
    loaded: Mutex<HashMap<Region, Arc<SecretKey>>>,
}

/// Environment variable prefix for root keys: `SEALPOST_ROOT_KEY_EU=<base64 of 32 bytes>`.
pub const ROOT_KEY_ENV_PREFIX: &str = "SEALPOST_ROOT_KEY_";

impl RootKeys {
    /// Root keys from the environment, or else from `<dir>/<REGION>.key` files created 0600 on
    /// first use (the embedded default; production keeps root keys away from the data).
    pub fn from_dir_or_env(dir: Option<&Path>) -> Self {
        Self {
            dir: dir.map(Path::to_path_buf),
            loaded: Mutex::new(HashMap::new()),
        }
    }

    /// Root keys given directly (tests, KMS adapters).
    pub fn fixed(keys: impl IntoIterator<Item = (Region, SecretKey)>) -> Self {
        let loaded = keys.into_iter().map(|(r, k)| (r, Arc::new(k))).collect();
        Self {
            dir: None,
            loaded: Mutex::new(loaded),
        }
    }

    /// The root key of a region.
    pub fn get(&self, region: Region) -> Result<Arc<SecretKey>, VaultError> {
        let mut loaded = self
            .loaded
            .lock()
            .expect("root key lock is never poisoned: no panics inside");
        if let Some(k) = loaded.get(&region) {
            return Ok(k.clone());
        }
        let key = Arc::new(self.load(region)?);
        loaded.insert(region, key.clone());
        Ok(key)
    }

    fn load(&self, region: Region) -> Result<SecretKey, VaultError> {
        let b64 = base64::engine::general_purpose::STANDARD;
        if let Ok(v) = std::env::var(format!("{ROOT_KEY_ENV_PREFIX}{}", region.code())) {
            let bytes = b64.decode(v.trim()).map_err(|_| {
                VaultError::RootKey(region, "environment value is not base64".into())
            })?;
            return SecretKey::from_slice(&bytes)
                .map_err(|_| VaultError::RootKey(region, "must be 32 bytes".into()));
        }
        let dir = self.dir.as_ref().ok_or_else(|| {
            VaultError::RootKey(region, "no key directory and no environment key".into())
        })?;
        let path = dir.join(format!("{}.key", region.code()));
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let bytes = b64
                    .decode(text.trim())
                    .map_err(|_| VaultError::RootKey(region, "key file is not base64".into()))?;
                SecretKey::from_slice(&bytes)
                    .map_err(|_| VaultError::RootKey(region, "key file must hold 32 bytes".into()))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = SecretKey::random();
                write_private_file(&path, b64.encode(key.expose()).as_bytes())
                    .map_err(|e| VaultError::RootKey(region, e.to_string()))?;
                tracing::warn!(
                    region = region.code(),
                    "created a root key file in the data directory (embedded default); in production keep root keys apart from the data"
                );
                Ok(key)
            }
            Err(e) => Err(VaultError::RootKey(region, e.to_string())),
        }
    }
}

/// Creates a file readable and writable by its owner only (0600), failing if it exists; a
/// missing directory is created 0700.
pub fn write_private_file(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        crate::files::create_private_dir_all(parent)?;
    }
    let mut f = crate::files::private_open_options()
        .write(true)
        .create_new(true)
        .open(path)?;
    f.write_all(contents)?;
    f.sync_all()
}

/// A key with its version.
type VersionedKey = (u32, Arc<SecretKey>);

/// Unwrapped keys kept in memory at most.
pub const MAX_CACHED_KEYS: usize = 50_000;

/// The key vault.
#[derive(Debug)]
pub struct Vault {
    keys: Arc<dyn KeyStore>,
    roots: RootKeys,
    cache: Mutex<HashMap<String, Arc<SecretKey>>>,
    /// The current ledger key per business and region, so sealing needs no key-store query.
    /// A rotation by this process updates it; one by another process is picked up on restart
    /// (events sealed under the older version stay valid and readable).
    current_ledger: Mutex<HashMap<(String, Region), VersionedKey>>,
}

fn key_id(kind: KeyKind, region: Region, business: &str, rest: &str) -> String {
    format!("{}/{}/{}/{}", kind.as_str(), region.code(), business, rest)
}

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

/// A field key from two keys that must both exist: HKDF(a ‖ b, salt = the object's id).
/// Destroying either shreds what it sealed.
fn combine(a: &SecretKey, b: &SecretKey, salt: &str, info: &[u8]) -> SecretKey {
    let mut ikm = zeroize::Zeroizing::new([0u8; 64]);
    ikm[..32].copy_from_slice(a.expose());
    ikm[32..].copy_from_slice(b.expose());
    crypto::derive(ikm.as_slice(), salt.as_bytes(), info)
}

fn wrap_aad(key_id: &str) -> Vec<u8> {
    crypto::aad(&[b"sealpost/wrap/v1", key_id.as_bytes()])
}

fn signal_account_aad(owner: &str, region: Region) -> Vec<u8> {
    crypto::aad(&[
        b"sealpost/signal-account/v1",
        owner.as_bytes(),
        region.code().as_bytes(),
    ])
}

fn session_aad(business: &str, subject: &SubjectId, device: u8) -> Vec<u8> {
    crypto::aad(&[
        b"sealpost/signal-session/v1",
        business.as_bytes(),
        subject.as_str().as_bytes(),
        &[device],
    ])
}

fn field_aad(field: &str, scope: &FieldScope) -> Vec<u8> {
    match scope {
        FieldScope::Message { message, .. } => crypto::aad(&[
            b"sealpost/field/v1/message",
            field.as_bytes(),
            message.as_str().as_bytes(),
        ]),
        FieldScope::Subject { subject } => crypto::aad(&[
            b"sealpost/field/v1/subject",
            field.as_bytes(),
            subject.as_str().as_bytes(),
        ]),
        FieldScope::Media { media, .. } => crypto::aad(&[
            b"sealpost/field/v1/media",
            field.as_bytes(),
            media.as_str().as_bytes(),
        ]),
    }
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
    pub fn new(keys: Arc<dyn KeyStore>, roots: RootKeys) -> Self {
        Self {
            keys,
            roots,
            cache: Mutex::new(HashMap::new()),
            current_ledger: Mutex::new(HashMap::new()),
        }
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
        let root = self.roots.get(region)?;
        let raw = crypto::open(&root, &w.wrapped, &wrap_aad(&w.key_id))?;
        let key = Arc::new(SecretKey::from_slice(&raw)?);
        self.remember(&w.key_id, key.clone());
        Ok(key)
    }

    /// Loads a key; `create` makes it (first writer wins) if it was never made.
    async fn load(
        &self,
        id: &str,
        create: Option<(KeySpec<'_>, Timestamp)>,
    ) -> Result<Option<Arc<SecretKey>>, VaultError> {
        if let Some(k) = self.cached(id) {
            return Ok(Some(k));
        }
        match self.keys.get(id).await? {
            KeyState::Live(w) => Ok(Some(self.unwrap_key(&w)?)),
            KeyState::Destroyed => Ok(None),
            KeyState::Missing => match create {
                None => Ok(None),
                Some((spec, now)) => {
                    let root = self.roots.get(spec.region)?;
                    let fresh = SecretKey::random();
                    let w = WrappedKey {
                        key_id: id.to_owned(),
                        kind: spec.kind,
                        business_id: spec.business.to_owned(),
                        region: spec.region.code().to_owned(),
                        epoch: spec.epoch,
                        subject_id: spec.subject.map(str::to_owned),
                        version: spec.version,
                        wrapped: crypto::seal(&root, fresh.expose(), &wrap_aad(id)),
                        created_at: now.millis(),
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

    /// The current ledger key of a business in a region (made at version 1 on first use).
    pub async fn ledger_key(
        &self,
        business: &str,
        region: Region,
        now: Timestamp,
    ) -> Result<(u32, Arc<SecretKey>), VaultError> {
        let slot = (business.to_owned(), region);
        if let Some(current) = self
            .current_ledger
            .lock()
            .expect("ledger lock is never poisoned")
            .get(&slot)
        {
            return Ok(current.clone());
        }
        let current = match self.keys.latest_ledger(business, region.code()).await? {
            Some(w) => (w.version, self.unwrap_key(&w)?),
            None => (
                1,
                self.ledger_key_version(business, region, 1, Some(now))
                    .await?,
            ),
        };
        self.current_ledger
            .lock()
            .expect("ledger lock is never poisoned")
            .insert(slot, current.clone());
        Ok(current)
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
        self.load(&id, create.map(|now| (spec, now)))
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
        let key = self
            .ledger_key_version(business, region, next, Some(now))
            .await?;
        self.current_ledger
            .lock()
            .expect("ledger lock is never poisoned")
            .insert((business.to_owned(), region), (next, key));
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
        self.load(&id, create_at.map(|now| (spec, now))).await
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
        self.load(&id, create_at.map(|now| (spec, now))).await
    }

    async fn index_key(
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
        self.load(&id, Some((spec, now)))
            .await?
            .ok_or(VaultError::KeyDestroyed)
    }

    /// The key a field is sealed under; `None` when shredded. `create_at` makes a missing
    /// epoch key (writing), never a subject key (subjects are made by [`Vault::create_subject_key`]).
    async fn field_key(
        &self,
        business: &str,
        region: Region,
        scope: &FieldScope,
        create_at: Option<Timestamp>,
    ) -> Result<Option<SecretKey>, VaultError> {
        match scope {
            FieldScope::Subject { subject } => Ok(self
                .subject_key(business, region, subject, None)
                .await?
                .map(|k| k.duplicate())),
            FieldScope::Message {
                epoch,
                subject,
                message,
            } => {
                let Some(sk) = self.subject_key(business, region, subject, None).await? else {
                    return Ok(None);
                };
                let Some(ek) = self.epoch_key(business, region, *epoch, create_at).await? else {
                    return Ok(None);
                };
                Ok(Some(combine(
                    &ek,
                    &sk,
                    message.as_str(),
                    b"sealpost/message-key/v1",
                )))
            }
            FieldScope::Media {
                epoch,
                media,
                subject,
            } => {
                let id = media_key_id(business, region, media);
                let spec = KeySpec {
                    kind: KeyKind::Media,
                    business,
                    region,
                    epoch: None,
                    subject: None,
                    version: 1,
                };
                let Some(mk) = self.load(&id, create_at.map(|now| (spec, now))).await? else {
                    return Ok(None);
                };
                let Some(ek) = self.epoch_key(business, region, *epoch, create_at).await? else {
                    return Ok(None);
                };
                let key = combine(&ek, &mk, media.as_str(), b"sealpost/media-key/v1");
                match subject {
                    None => Ok(Some(key)),
                    // A consumer's attachment goes with the consumer's erasure too.
                    Some(s) => match self.subject_key(business, region, s, None).await? {
                        None => Ok(None),
                        Some(sk) => Ok(Some(combine(
                            &key,
                            &sk,
                            media.as_str(),
                            b"sealpost/media-key/consumer/v1",
                        ))),
                    },
                }
            }
        }
    }

    /// Destroys a media object's own key: its bytes and description are gone for good.
    pub async fn destroy_media(
        &self,
        business: &str,
        region: Region,
        media: &MediaId,
        now: Timestamp,
    ) -> Result<u64, VaultError> {
        self.destroy_keys(vec![media_key_id(business, region, media)], vec![], now)
            .await
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
        let key = self.load(&id, create_at.map(|now| (spec, now))).await?;
        Ok(key.map(|k| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(k.expose())))
    }

    /// The audit log's Ed25519 signing seed (32 random bytes, wrapped at rest under the
    /// `region` root key like every key); made on first use.
    pub async fn audit_signing_seed(
        &self,
        region: Region,
        now: Timestamp,
    ) -> Result<Zeroizing<[u8; 32]>, VaultError> {
        let id = key_id(KeyKind::Audit, region, AUDIT_OWNER, "signing");
        let spec = KeySpec {
            kind: KeyKind::Audit,
            business: AUDIT_OWNER,
            region,
            epoch: None,
            subject: None,
            version: 1,
        };
        let key = self
            .load(&id, Some((spec, now)))
            .await?
            .ok_or(VaultError::KeyDestroyed)?;
        let mut seed = Zeroizing::new([0u8; 32]);
        seed.copy_from_slice(&key.expose()[..]);
        Ok(seed)
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

    /// Seals a personal field. Fails with [`VaultError::KeyDestroyed`] if its keys were
    /// destroyed: nothing is ever written under a shredded key.
    pub async fn seal_field(
        &self,
        business: &str,
        region: Region,
        scope: &FieldScope,
        field: &str,
        plaintext: &[u8],
        now: Timestamp,
    ) -> Result<Sealed, VaultError> {
        let key = match self.field_key(business, region, scope, Some(now)).await? {
            Some(k) => k,
            None => {
                let subject = match scope {
                    FieldScope::Subject { subject } | FieldScope::Message { subject, .. } => {
                        subject
                    }
                    FieldScope::Media { .. } => return Err(VaultError::KeyDestroyed),
                };
                return Err(
                    match self
                        .keys
                        .get(&subject_key_id(business, region, subject))
                        .await?
                    {
                        KeyState::Missing => VaultError::KeyMissing,
                        _ => VaultError::KeyDestroyed,
                    },
                );
            }
        };
        Ok(Sealed::from_bytes(crypto::seal(
            &key,
            plaintext,
            &field_aad(field, scope),
        )))
    }

    /// Opens a personal field, or says it was shredded. Callers reach this only through the
    /// access gate.
    pub async fn open_field(
        &self,
        business: &str,
        region: Region,
        scope: &FieldScope,
        field: &str,
        sealed: &Sealed,
    ) -> Result<Opened<Vec<u8>>, VaultError> {
        match self.field_key(business, region, scope, None).await? {
            None => Ok(Opened::Shredded),
            Some(key) => Ok(Opened::Plain(crypto::open(
                &key,
                sealed.as_bytes(),
                &field_aad(field, scope),
            )?)),
        }
    }

    /// The blind index of a phone number for a business: HMAC under the business's index key.
    pub async fn blind_index(
        &self,
        business: &str,
        region: Region,
        phone: &E164,
        now: Timestamp,
    ) -> Result<[u8; 32], VaultError> {
        let key = self.index_key(business, region, now).await?;
        Ok(crypto::mac(&key, phone.expose_digits().as_bytes()))
    }

    /// The business-scoped user id of a consumer (`CC.<20 digits>`): stable per business and
    /// consumer, not derivable from the number without the business's index key.
    pub async fn user_id(
        &self,
        business: &str,
        region: Region,
        phone: &E164,
        now: Timestamp,
    ) -> Result<String, VaultError> {
        let key = self.index_key(business, region, now).await?;
        let tag = crypto::mac(
            &key,
            &crypto::aad(&[b"sealpost/user-id/v1", phone.expose_digits().as_bytes()]),
        );
        let a = u64::from_be_bytes(tag[..8].try_into().expect("8 bytes")) % 10_000_000_000;
        let b = u64::from_be_bytes(tag[8..16].try_into().expect("8 bytes")) % 10_000_000_000;
        Ok(format!("{}.{a:010}{b:010}", phone.country()))
    }

    fn user_index(key: &SecretKey, user_id: &str) -> [u8; 32] {
        crypto::mac(
            key,
            &crypto::aad(&[b"sealpost/user-index/v1", user_id.as_bytes()]),
        )
    }

    /// Routes the business-scoped user id of `phone` to `subject` (deleted with the subject's
    /// other routing entries).
    pub async fn route_user_id(
        &self,
        business: &str,
        region: Region,
        phone: &E164,
        subject: &SubjectId,
        now: Timestamp,
    ) -> Result<(), VaultError> {
        let user_id = self.user_id(business, region, phone, now).await?;
        let key = self.index_key(business, region, now).await?;
        self.keys
            .index_put(
                business,
                region.code(),
                &Self::user_index(&key, &user_id),
                subject.as_str(),
            )
            .await?;
        Ok(())
    }

    /// The subject a business-scoped user id routes to, if it is live.
    pub async fn find_user(
        &self,
        business: &str,
        region: Region,
        user_id: &str,
        now: Timestamp,
    ) -> Result<Option<SubjectId>, VaultError> {
        let key = self.index_key(business, region, now).await?;
        match self
            .keys
            .index_get(business, region.code(), &Self::user_index(&key, user_id))
            .await?
        {
            None => Ok(None),
            Some(s) => Ok(Some(
                SubjectId::parse(&s).map_err(|_| StoreError::Corrupt("subject id in index"))?,
            )),
        }
    }

    /// Finds the subject a phone number routes to, if one is live.
    pub async fn find_subject(
        &self,
        business: &str,
        region: Region,
        phone: &E164,
        now: Timestamp,
    ) -> Result<Option<SubjectId>, VaultError> {
        let blind = self.blind_index(business, region, phone, now).await?;
        match self.keys.index_get(business, region.code(), &blind).await? {
            None => Ok(None),
            Some(s) => Ok(Some(
                SubjectId::parse(&s).map_err(|_| StoreError::Corrupt("subject id in index"))?,
            )),
        }
    }

    /// Routes a phone number to `subject` unless it already routes somewhere; returns the
    /// subject it routes to (the first writer wins).
    pub async fn route_subject(
        &self,
        business: &str,
        region: Region,
        phone: &E164,
        subject: &SubjectId,
        now: Timestamp,
    ) -> Result<SubjectId, VaultError> {
        let blind = self.blind_index(business, region, phone, now).await?;
        let s = self
            .keys
            .index_put(business, region.code(), &blind, subject.as_str())
            .await?;
        Ok(SubjectId::parse(&s).map_err(|_| StoreError::Corrupt("subject id in index"))?)
    }

    /// Stores a Signal account (identity and prekeys of `owner`, a business phone number or a
    /// device), wrapped by the region root key.
    pub async fn save_signal_account(
        &self,
        owner: &str,
        business: &str,
        region: Region,
        account: &[u8],
        now: Timestamp,
    ) -> Result<(), VaultError> {
        let root = self.roots.get(region)?;
        let wrapped = crypto::seal(&root, account, &signal_account_aad(owner, region));
        self.keys
            .put_signal_account(owner, business, region.code(), &wrapped, now.millis())
            .await?;
        Ok(())
    }

    /// Loads a Signal account stored by [`Vault::save_signal_account`].
    pub async fn load_signal_account(
        &self,
        owner: &str,
        region: Region,
    ) -> Result<Option<zeroize::Zeroizing<Vec<u8>>>, VaultError> {
        let Some(wrapped) = self.keys.signal_account(owner).await? else {
            return Ok(None);
        };
        let root = self.roots.get(region)?;
        Ok(Some(zeroize::Zeroizing::new(crypto::open(
            &root,
            &wrapped,
            &signal_account_aad(owner, region),
        )?)))
    }

    /// Stores the Signal session with one device of a subject, sealed under the subject key.
    /// Fails with [`VaultError::KeyDestroyed`] once the subject is erased or expired.
    #[allow(clippy::too_many_arguments)]
    pub async fn save_session(
        &self,
        business: &str,
        region: Region,
        subject: &SubjectId,
        device: u8,
        session: &[u8],
        now: Timestamp,
    ) -> Result<(), VaultError> {
        let key = self
            .subject_key(business, region, subject, None)
            .await?
            .ok_or(VaultError::KeyDestroyed)?;
        let sealed = crypto::seal(&key, session, &session_aad(business, subject, device));
        self.keys
            .put_signal_session(
                business,
                region.code(),
                subject.as_str(),
                device,
                &sealed,
                now.millis(),
            )
            .await?;
        Ok(())
    }

    /// Loads the Signal session with one device of a subject: `Plain(None)` when there is none
    /// yet, `Shredded` once the subject key is gone.
    pub async fn load_session(
        &self,
        business: &str,
        region: Region,
        subject: &SubjectId,
        device: u8,
    ) -> Result<Opened<Option<zeroize::Zeroizing<Vec<u8>>>>, VaultError> {
        let Some(key) = self.subject_key(business, region, subject, None).await? else {
            return Ok(Opened::Shredded);
        };
        let Some(sealed) = self
            .keys
            .signal_session(business, subject.as_str(), device)
            .await?
        else {
            return Ok(Opened::Plain(None));
        };
        let plain = crypto::open(&key, &sealed, &session_aad(business, subject, device))?;
        Ok(Opened::Plain(Some(zeroize::Zeroizing::new(plain))))
    }

    /// The message id of an inbound message: keyed by the subject key over the transport's
    /// envelope id, so a redelivered envelope maps to the same message (recognised as a
    /// duplicate) while the id says nothing about the person. `None` once the subject is gone.
    pub async fn inbound_message_id(
        &self,
        business: &str,
        region: Region,
        subject: &SubjectId,
        envelope_id: &str,
    ) -> Result<Option<sealpost_domain::MessageId>, VaultError> {
        let Some(key) = self.subject_key(business, region, subject, None).await? else {
            return Ok(None);
        };
        let tag = crypto::mac(
            &key,
            &crypto::aad(&[b"sealpost/inbound-id/v1", envelope_id.as_bytes()]),
        );
        let mut id = [0u8; 18];
        id.copy_from_slice(&tag[..18]);
        Ok(Some(sealpost_domain::MessageId::from_random(id)))
    }

    /// Destroys keys (and the routing of `index_subjects`) in one transaction, forgetting any
    /// cached copy before and after. Returns how many existed.
    async fn destroy_keys(
        &self,
        ids: Vec<String>,
        index_subjects: Vec<String>,
        now: Timestamp,
    ) -> Result<u64, VaultError> {
        self.forget(&ids);
        let n = self
            .keys
            .destroy(&Destruction {
                key_ids: ids.clone(),
                index_subjects,
                at: now.millis(),
            })
            .await?;
        self.forget(&ids);
        Ok(n)
    }

    /// Destroys epoch keys (retention). Returns how many existed.
    pub async fn destroy_epoch_keys(
        &self,
        ids: Vec<String>,
        now: Timestamp,
    ) -> Result<u64, VaultError> {
        self.destroy_keys(ids, vec![], now).await
    }

    /// Destroys a subject's key and its routing entry in one transaction (erasure or expiry).
    pub async fn destroy_subject(
        &self,
        business: &str,
        region: Region,
        subject: &SubjectId,
        now: Timestamp,
    ) -> Result<u64, VaultError> {
        self.destroy_keys(
            vec![subject_key_id(business, region, subject)],
            vec![subject.as_str().to_owned()],
            now,
        )
        .await
    }
}
