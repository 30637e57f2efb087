//! Region root keys in a PKCS#11 token (an HSM; SoftHSM2 in the tests): each region's root key
//! is an AES-256 key made in the token, sensitive and not extractable, and every wrap and unwrap
//! under it is an AES-GCM operation inside the token (ADR 0023). The key's bytes never reach
//! this process.

use super::VaultError;
use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error, RvError};
use cryptoki::mechanism::aead::GcmParams;
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::types::AuthPin;
use sealpost_domain::Region;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};
use zeroize::Zeroizing;

/// The environment variables that configure the token.
pub mod env {
    /// The module's path (the PKCS#11 library, e.g. `/usr/lib/softhsm/libsofthsm2.so`).
    pub const MODULE: &str = "SEALPOST_PKCS11_MODULE";
    /// The label of the token that holds the root keys.
    pub const TOKEN: &str = "SEALPOST_PKCS11_TOKEN";
    /// The user PIN.
    pub const PIN: &str = "SEALPOST_PKCS11_PIN";
    /// A file holding the user PIN (instead of [`PIN`]).
    pub const PIN_FILE: &str = "SEALPOST_PKCS11_PIN_FILE";
    /// The label of a region's root key, with `{region}` for its code.
    pub const KEY_LABEL: &str = "SEALPOST_PKCS11_KEY_LABEL";
}
use env::{
    KEY_LABEL as KEY_LABEL_ENV, MODULE as MODULE_ENV, PIN as PIN_ENV, PIN_FILE as PIN_FILE_ENV,
    TOKEN as TOKEN_ENV,
};

/// The default label of a region's root key.
pub const DEFAULT_KEY_LABEL: &str = "sealpost-root-{region}";

/// The first byte of a value sealed in the token (its format; a value sealed by the embedded
/// default begins with a random nonce, and opens under neither custody's other key).
const SEALED_IN_TOKEN: u8 = 0xA5;
/// AES-GCM nonce length.
const IV_LEN: usize = 12;
/// AES-GCM tag length in bits.
const TAG_BITS: u64 = 128;

/// Where the root keys' token is and how to reach it.
#[derive(Clone)]
pub struct TokenConfig {
    /// The PKCS#11 module.
    pub module: PathBuf,
    /// The token's label.
    pub token: String,
    /// The user PIN.
    pub pin: Zeroizing<String>,
    /// The label of a region's root key, with `{region}` for its code.
    pub key_label: String,
}

impl std::fmt::Debug for TokenConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenConfig")
            .field("module", &self.module)
            .field("token", &self.token)
            .field("key_label", &self.key_label)
            .finish_non_exhaustive()
    }
}

impl TokenConfig {
    /// The configuration in the environment: `None` unless [`MODULE_ENV`] is set; then the
    /// token label and a PIN (from [`PIN_ENV`] or the file [`PIN_FILE_ENV`] names) are needed.
    pub fn from_env() -> Result<Option<Self>, String> {
        let Ok(module) = std::env::var(MODULE_ENV) else {
            return Ok(None);
        };
        let token = std::env::var(TOKEN_ENV)
            .map_err(|_| format!("{MODULE_ENV} is set but {TOKEN_ENV} is not"))?;
        let pin = match (std::env::var(PIN_ENV), std::env::var(PIN_FILE_ENV)) {
            (Ok(pin), _) => pin,
            (Err(_), Ok(path)) => std::fs::read_to_string(&path)
                .map_err(|e| format!("{PIN_FILE_ENV}: {}", e.kind()))?
                .trim_end_matches(['\n', '\r'])
                .to_owned(),
            _ => {
                return Err(format!(
                    "{MODULE_ENV} is set but neither {PIN_ENV} nor {PIN_FILE_ENV}"
                ))
            }
        };
        Ok(Some(Self {
            module: module.into(),
            token,
            pin: Zeroizing::new(pin),
            key_label: std::env::var(KEY_LABEL_ENV)
                .unwrap_or_else(|_| DEFAULT_KEY_LABEL.to_owned()),
        }))
    }

    /// The label of `region`'s root key.
    pub fn label(&self, region: Region) -> String {
        self.key_label.replace("{region}", region.code())
    }
}

/// The root keys in a token: one logged-in session, and each region's key handle once found.
pub struct TokenRoots {
    config: TokenConfig,
    /// The module the session is of (loaded once per process, never finalised).
    _context: Pkcs11,
    session: Mutex<Session>,
    handles: Mutex<HashMap<Region, ObjectHandle>>,
}

impl std::fmt::Debug for TokenRoots {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenRoots")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// The module at `path`, loaded and initialised once per process (PKCS#11 allows one
/// `C_Initialize` per process, and finalising on a drop would end every other user's sessions).
fn context(path: &std::path::Path) -> Result<Pkcs11, VaultError> {
    static LOADED: OnceLock<Mutex<HashMap<PathBuf, Pkcs11>>> = OnceLock::new();
    let mut loaded = LOADED
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(context) = loaded.get(path) {
        return Ok(context.clone());
    }
    let context = Pkcs11::new(path).map_err(|e| failed(None, "module", e))?;
    match context.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        Ok(()) | Err(Error::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
        Err(e) => return Err(failed(None, "initialize", e)),
    }
    loaded.insert(path.to_owned(), context.clone());
    Ok(context)
}

/// A token failure as the vault reports it (the PKCS#11 return value names no secret).
fn failed(region: Option<Region>, what: &str, e: impl std::fmt::Display) -> VaultError {
    VaultError::RootKey(region.unwrap_or(Region::Eu), format!("PKCS#11 {what}: {e}"))
}

impl From<TokenRoots> for super::Roots {
    fn from(token: TokenRoots) -> Self {
        std::sync::Arc::new(token)
    }
}

impl TokenRoots {
    /// Loads the module, finds the token by its label and logs in.
    pub fn open(config: TokenConfig) -> Result<Self, VaultError> {
        let context = context(&config.module)?;
        let slots = context
            .get_slots_with_initialized_token()
            .map_err(|e| failed(None, "slots", e))?;
        let slot = slots
            .into_iter()
            .find(|s| {
                context
                    .get_token_info(*s)
                    .is_ok_and(|t| t.label().trim_end() == config.token)
            })
            .ok_or_else(|| failed(None, "token", format!("no token labelled {}", config.token)))?;
        let session = context
            .open_rw_session(slot)
            .map_err(|e| failed(None, "session", e))?;
        // The login is the token's, for every session of this process: one already made
        // (another `TokenRoots` on the same token) serves this one too.
        let pin = AuthPin::new(config.pin.as_str().into());
        match session.login(UserType::User, Some(&pin)) {
            Ok(()) | Err(Error::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => {}
            Err(e) => return Err(failed(None, "login", e)),
        }
        Ok(Self {
            config,
            _context: context,
            session: Mutex::new(session),
            handles: Mutex::new(HashMap::new()),
        })
    }

    fn session(&self) -> std::sync::MutexGuard<'_, Session> {
        self.session
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// `region`'s key in the token: found by its label, or (`create`) made there.
    fn key(
        &self,
        session: &Session,
        region: Region,
        create: bool,
    ) -> Result<Option<ObjectHandle>, VaultError> {
        let mut handles = self
            .handles
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(h) = handles.get(&region) {
            return Ok(Some(*h));
        }
        let label = self.config.label(region).into_bytes();
        let found = session
            .find_objects(&[
                Attribute::Class(ObjectClass::SECRET_KEY),
                Attribute::Label(label.clone()),
            ])
            .map_err(|e| failed(Some(region), "find", e))?;
        let handle = match (found.first(), create) {
            (Some(h), _) => *h,
            (None, false) => return Ok(None),
            (None, true) => {
                let made = session
                    .generate_key(
                        &Mechanism::AesKeyGen,
                        &[
                            Attribute::Class(ObjectClass::SECRET_KEY),
                            Attribute::KeyType(KeyType::AES),
                            Attribute::ValueLen(32.into()),
                            Attribute::Token(true),
                            Attribute::Private(true),
                            Attribute::Sensitive(true),
                            Attribute::Extractable(false),
                            Attribute::Encrypt(true),
                            Attribute::Decrypt(true),
                            Attribute::Label(label),
                        ],
                    )
                    .map_err(|e| failed(Some(region), "generate", e))?;
                tracing::info!(
                    region = region.code(),
                    "made a region root key in the token"
                );
                made
            }
        };
        handles.insert(region, handle);
        Ok(Some(handle))
    }
}

impl super::RootCustody for TokenRoots {
    /// Seals `plaintext` under `region`'s root key in the token (made on first use), bound to
    /// `aad`: a marker byte, a fresh 12-byte nonce from the token, then ciphertext and tag.
    fn seal(&self, region: Region, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>, VaultError> {
        let session = self.session();
        let key = self
            .key(&session, region, true)?
            .ok_or_else(|| failed(Some(region), "key", "not made"))?;
        let mut iv = [0u8; IV_LEN];
        session
            .generate_random_slice(&mut iv)
            .map_err(|e| failed(Some(region), "random", e))?;
        let mut nonce = iv;
        let params = GcmParams::new(&mut nonce, aad, TAG_BITS.into())
            .map_err(|e| failed(Some(region), "parameters", e))?;
        let sealed = session
            .encrypt(&Mechanism::AesGcm(params), key, plaintext)
            .map_err(|e| failed(Some(region), "encrypt", e))?;
        let mut out = Vec::with_capacity(1 + IV_LEN + sealed.len());
        out.push(SEALED_IN_TOKEN);
        out.extend_from_slice(&iv);
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    /// Opens what [`Self::seal`] sealed under `region`'s root key with `aad`.
    fn open(
        &self,
        region: Region,
        sealed: &[u8],
        aad: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, VaultError> {
        let corrupt = || VaultError::Crypto(crate::crypto::CryptoError::Opaque);
        let (&mark, rest) = sealed.split_first().ok_or_else(corrupt)?;
        if mark != SEALED_IN_TOKEN || rest.len() < IV_LEN {
            return Err(corrupt());
        }
        let (iv, ciphertext) = rest.split_at(IV_LEN);
        let session = self.session();
        let key = self.key(&session, region, false)?.ok_or_else(|| {
            failed(
                Some(region),
                "key",
                "no root key of the region in the token",
            )
        })?;
        let mut nonce: [u8; IV_LEN] = iv.try_into().map_err(|_| corrupt())?;
        let params = GcmParams::new(&mut nonce, aad, TAG_BITS.into())
            .map_err(|e| failed(Some(region), "parameters", e))?;
        session
            .decrypt(&Mechanism::AesGcm(params), key, ciphertext)
            .map(Zeroizing::new)
            .map_err(|_| corrupt())
    }

    fn describe(&self) -> String {
        format!(
            "PKCS#11 token {} (module {}): root keys made in the token, not extractable",
            self.config.token,
            self.config.module.display()
        )
    }
}

impl TokenRoots {
    /// Destroys `region`'s root key in the token: everything wrapped under it is unreadable
    /// from then on. `false` if the token had none.
    pub fn destroy(&self, region: Region) -> Result<bool, VaultError> {
        let session = self.session();
        let Some(key) = self.key(&session, region, false)? else {
            return Ok(false);
        };
        session
            .destroy_object(key)
            .map_err(|e| failed(Some(region), "destroy", e))?;
        self.handles
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&region);
        Ok(true)
    }

    /// Whether `region`'s key in the token is sensitive and has never been extractable (`None`
    /// if the token has none).
    pub fn never_leaves(&self, region: Region) -> Result<Option<bool>, VaultError> {
        let session = self.session();
        let Some(key) = self.key(&session, region, false)? else {
            return Ok(None);
        };
        let attributes = session
            .get_attributes(
                key,
                &[
                    AttributeType::Sensitive,
                    AttributeType::Extractable,
                    AttributeType::NeverExtractable,
                ],
            )
            .map_err(|e| failed(Some(region), "attributes", e))?;
        let held = attributes.iter().all(|a| match a {
            Attribute::Sensitive(s) => *s,
            Attribute::Extractable(e) => !*e,
            Attribute::NeverExtractable(n) => *n,
            _ => true,
        });
        Ok(Some(held && attributes.len() == 3))
    }
}
