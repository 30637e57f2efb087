//! Region root keys (KEKs) behind one port, [`RootCustody`]: the embedded default's
//! [`RootKeys`] (from the environment or a 0600 key file, with the private-file writer that
//! creates such files) and a PKCS#11 token's [`super::TokenRoots`] (ADR 0023).

use super::VaultError;
use crate::crypto::{self, SecretKey};
use base64::Engine as _;
use sealpost_domain::Region;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Where the region root keys are and how wrapping under them is done: every key below a root
/// is sealed and opened through this, so a root key may live where its bytes cannot be read.
pub trait RootCustody: Send + Sync + std::fmt::Debug {
    /// Seals `plaintext` under `region`'s root key (made on first use), bound to `aad`.
    fn seal(&self, region: Region, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>, VaultError>;
    /// Opens what [`RootCustody::seal`] sealed under `region`'s root key with `aad`.
    fn open(
        &self,
        region: Region,
        sealed: &[u8],
        aad: &[u8],
    ) -> Result<zeroize::Zeroizing<Vec<u8>>, VaultError>;
    /// Where the root keys are, as the start-up log and the record of processing say it.
    fn describe(&self) -> String;
    /// Whether the root keys are in a token (an HSM) rather than in this process's memory.
    fn in_token(&self) -> bool {
        false
    }
}

/// The name under which the home store records which custody its keys are wrapped in.
pub const CUSTODY_RECORD: &str = "custody:root-keys";

/// Records the custody on a store's first start and refuses a start under the other one: keys
/// wrapped under one custody do not open under the other, and new keys would be wrapped under
/// a second set of roots (ADR 0023).
pub async fn hold_custody(
    events: &dyn crate::store::EventLog,
    roots: &dyn RootCustody,
) -> Result<(), VaultError> {
    let (here, name) = match roots.in_token() {
        true => (2, "a PKCS#11 token"),
        false => (1, "this process's memory (key files or environment)"),
    };
    match events.load_checkpoint(CUSTODY_RECORD).await? {
        0 => Ok(events.save_checkpoint(CUSTODY_RECORD, here, None).await?),
        there if there == here => Ok(()),
        _ => Err(VaultError::Custody(format!(
            "this store's keys are wrapped under root keys kept elsewhere than in {name}, as this process is configured; start it with the custody it was made with"
        ))),
    }
}

/// The root keys' custody the vault is given.
pub type Roots = Arc<dyn RootCustody>;

impl From<RootKeys> for Roots {
    fn from(keys: RootKeys) -> Self {
        Arc::new(keys)
    }
}

/// The custody the environment configures: a PKCS#11 token when `SEALPOST_PKCS11_MODULE` is
/// set (logged in now, so a wrong PIN or a missing token stops the start), else the embedded
/// default's keys from the environment or files in `dir`.
pub fn configured_roots(dir: Option<&Path>) -> Result<Roots, VaultError> {
    match super::TokenConfig::from_env().map_err(VaultError::Custody)? {
        Some(config) => Ok(Arc::new(super::TokenRoots::open(config)?)),
        None => Ok(RootKeys::from_dir_or_env(dir).into()),
    }
}

/// Region root keys in this process's memory: from `SEALPOST_ROOT_KEY_<REGION>`, a 0600 key
/// file per region, or given directly.
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

    /// The root key of a region (loaded, or made in its file, on first use).
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

impl RootCustody for RootKeys {
    fn seal(&self, region: Region, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>, VaultError> {
        Ok(crypto::seal(self.get(region)?.as_ref(), plaintext, aad))
    }

    fn open(
        &self,
        region: Region,
        sealed: &[u8],
        aad: &[u8],
    ) -> Result<zeroize::Zeroizing<Vec<u8>>, VaultError> {
        Ok(zeroize::Zeroizing::new(crypto::open(
            self.get(region)?.as_ref(),
            sealed,
            aad,
        )?))
    }

    fn describe(&self) -> String {
        match &self.dir {
            Some(dir) => format!(
                "root keys in this process's memory, from SEALPOST_ROOT_KEY_<REGION> or key files in {} (0600)",
                dir.display()
            ),
            None => "root keys in this process's memory, from SEALPOST_ROOT_KEY_<REGION>".to_owned(),
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
