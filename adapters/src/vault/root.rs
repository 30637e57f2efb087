//! Region root keys (KEKs), from the environment or a 0600 key file, and the private-file
//! writer that creates such files.

use super::VaultError;
use crate::crypto::SecretKey;
use base64::Engine as _;
use sealpost_domain::Region;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

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
