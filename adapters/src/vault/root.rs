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
///
/// A region's root key has generations (ADR 0025): generation 1 is the key a region has from
/// its first use; a rotation makes the next with [`RootCustody::make`], everything wrapped is
/// rewrapped under it, and the old one is then destroyed with [`RootCustody::destroy`]. Which
/// generation seals is the key store's record, not the custody's.
pub trait RootCustody: Send + Sync + std::fmt::Debug {
    /// Seals `plaintext` under generation `generation` of `region`'s root key, bound to `aad`
    /// (generation 1 is made on first use; later ones only by [`RootCustody::make`]).
    fn seal(
        &self,
        region: Region,
        generation: u32,
        plaintext: &[u8],
        aad: &[u8],
    ) -> Result<Vec<u8>, VaultError>;
    /// Opens what [`RootCustody::seal`] sealed under that generation with `aad`.
    fn open(
        &self,
        region: Region,
        generation: u32,
        sealed: &[u8],
        aad: &[u8],
    ) -> Result<zeroize::Zeroizing<Vec<u8>>, VaultError>;
    /// Makes generation `generation` of `region`'s root key, unless it exists.
    fn make(&self, region: Region, generation: u32) -> Result<(), VaultError>;
    /// Destroys generation `generation` of `region`'s root key: nothing wrapped under it opens
    /// again. `false` if there was none.
    fn destroy(&self, region: Region, generation: u32) -> Result<bool, VaultError>;
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
    /// Given directly ([`RootKeys::fixed`]): a rotation makes its next generation in memory.
    given: bool,
    loaded: Mutex<HashMap<(Region, u32), Arc<SecretKey>>>,
}

/// Environment variable prefix for root keys: `SEALPOST_ROOT_KEY_EU=<base64 of 32 bytes>`
/// (generation 1), `SEALPOST_ROOT_KEY_EU_2=…` (generation 2, after a rotation), and so on.
pub const ROOT_KEY_ENV_PREFIX: &str = "SEALPOST_ROOT_KEY_";

/// Where generation `generation` of `region`'s root key is named: its environment variable
/// and its file name.
fn names(region: Region, generation: u32) -> (String, String) {
    match generation {
        1 => (
            format!("{ROOT_KEY_ENV_PREFIX}{}", region.code()),
            format!("{}.key", region.code()),
        ),
        g => (
            format!("{ROOT_KEY_ENV_PREFIX}{}_{g}", region.code()),
            format!("{}.{g}.key", region.code()),
        ),
    }
}

impl RootKeys {
    /// Root keys from the environment, or else from `<dir>/<REGION>.key` files created 0600 on
    /// first use (the embedded default; production keeps root keys away from the data).
    pub fn from_dir_or_env(dir: Option<&Path>) -> Self {
        Self {
            dir: dir.map(Path::to_path_buf),
            given: false,
            loaded: Mutex::new(HashMap::new()),
        }
    }

    /// Root keys given directly (tests, KMS adapters).
    pub fn fixed(keys: impl IntoIterator<Item = (Region, SecretKey)>) -> Self {
        let loaded = keys
            .into_iter()
            .map(|(r, k)| ((r, 1), Arc::new(k)))
            .collect();
        Self {
            dir: None,
            given: true,
            loaded: Mutex::new(loaded),
        }
    }

    /// Generation `generation` of a region's root key, loaded on first use; `create` makes
    /// its file when there is none.
    pub fn get(
        &self,
        region: Region,
        generation: u32,
        create: bool,
    ) -> Result<Arc<SecretKey>, VaultError> {
        let mut loaded = self
            .loaded
            .lock()
            .expect("root key lock is never poisoned: no panics inside");
        if let Some(k) = loaded.get(&(region, generation)) {
            return Ok(k.clone());
        }
        let key = Arc::new(self.load(region, generation, create)?);
        loaded.insert((region, generation), key.clone());
        Ok(key)
    }

    fn load(&self, region: Region, generation: u32, create: bool) -> Result<SecretKey, VaultError> {
        let b64 = base64::engine::general_purpose::STANDARD;
        let (var, file) = names(region, generation);
        if let Ok(v) = std::env::var(&var) {
            let bytes = b64.decode(v.trim()).map_err(|_| {
                VaultError::RootKey(region, "environment value is not base64".into())
            })?;
            return SecretKey::from_slice(&bytes)
                .map_err(|_| VaultError::RootKey(region, "must be 32 bytes".into()));
        }
        let dir = self.dir.as_ref().ok_or_else(|| match generation {
            1 => VaultError::RootKey(region, "no key directory and no environment key".into()),
            g => VaultError::Custody(format!(
                "generation {g} of the root key of {} is not in {var}",
                region.code()
            )),
        })?;
        let path = dir.join(file);
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let bytes = b64
                    .decode(text.trim())
                    .map_err(|_| VaultError::RootKey(region, "key file is not base64".into()))?;
                SecretKey::from_slice(&bytes)
                    .map_err(|_| VaultError::RootKey(region, "key file must hold 32 bytes".into()))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && create => {
                let key = SecretKey::random();
                match write_private_file(&path, b64.encode(key.expose()).as_bytes()) {
                    Ok(()) => {}
                    // Another process made it first: use theirs.
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                        return self.load(region, generation, false)
                    }
                    Err(e) => return Err(VaultError::RootKey(region, e.to_string())),
                }
                tracing::warn!(
                    region = region.code(),
                    generation,
                    "created a root key file in the data directory (embedded default); in production keep root keys apart from the data"
                );
                Ok(key)
            }
            // A later generation this node was not given: unavailable here until it is (503).
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && generation > 1 => {
                Err(VaultError::Custody(format!(
                    "generation {generation} of the root key of {} is neither in {var} nor in its key file",
                    region.code()
                )))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(VaultError::RootKey(
                region,
                format!("the root key is neither in {var} nor in its key file"),
            )),
            Err(e) => Err(VaultError::RootKey(region, e.to_string())),
        }
    }
}

impl RootCustody for RootKeys {
    fn seal(
        &self,
        region: Region,
        generation: u32,
        plaintext: &[u8],
        aad: &[u8],
    ) -> Result<Vec<u8>, VaultError> {
        let key = self.get(region, generation, generation == 1)?;
        Ok(crypto::seal(key.as_ref(), plaintext, aad))
    }

    fn open(
        &self,
        region: Region,
        generation: u32,
        sealed: &[u8],
        aad: &[u8],
    ) -> Result<zeroize::Zeroizing<Vec<u8>>, VaultError> {
        let key = self.get(region, generation, false)?;
        Ok(zeroize::Zeroizing::new(crypto::open(
            key.as_ref(),
            sealed,
            aad,
        )?))
    }

    fn make(&self, region: Region, generation: u32) -> Result<(), VaultError> {
        if self.given {
            self.loaded
                .lock()
                .expect("root key lock is never poisoned: no panics inside")
                .entry((region, generation))
                .or_insert_with(|| Arc::new(SecretKey::random()));
            return Ok(());
        }
        let (var, _) = names(region, generation);
        // A region whose first key comes from the environment takes its next from there too:
        // never a key file beside the data that the operator did not ask for.
        let from_env = std::env::var_os(names(region, 1).0).is_some();
        if from_env && std::env::var_os(&var).is_none() {
            return Err(VaultError::Custody(format!(
                "the root keys of {} come from the environment: set {var} on every node first",
                region.code()
            )));
        }
        self.get(region, generation, self.dir.is_some() && !from_env)
            .map(drop)
    }

    /// Forgets the key and overwrites its file in place, removes it and syncs the directory. A
    /// key from the environment cannot be destroyed by the process: that is refused, naming
    /// the variable to remove. Another process that loaded the key keeps it until it stops.
    fn destroy(&self, region: Region, generation: u32) -> Result<bool, VaultError> {
        let (var, file) = names(region, generation);
        if std::env::var_os(&var).is_some() {
            return Err(VaultError::RootKey(
                region,
                format!("this root key comes from the environment: remove {var} from every node's environment to destroy it"),
            ));
        }
        let held = self
            .loaded
            .lock()
            .expect("root key lock is never poisoned: no panics inside")
            .remove(&(region, generation))
            .is_some();
        let Some(path) = self.dir.as_ref().map(|d| d.join(file)) else {
            return Ok(held);
        };
        match std::fs::metadata(&path) {
            Ok(meta) => {
                shred_file(&path, meta.len())
                    .map_err(|e| VaultError::RootKey(region, e.to_string()))?;
                Ok(true)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(held),
            Err(e) => Err(VaultError::RootKey(region, e.to_string())),
        }
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

/// Overwrites the `len` bytes of the file at `path` in place (no truncation first), syncs it,
/// removes it and syncs its directory.
fn shred_file(path: &Path, len: u64) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut f = std::fs::OpenOptions::new().write(true).open(path)?;
    f.write_all(&vec![0u8; usize::try_from(len).unwrap_or(0)])?;
    f.sync_all()?;
    drop(f);
    std::fs::remove_file(path)?;
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::File::open(parent)?.sync_all()?;
    }
    Ok(())
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
