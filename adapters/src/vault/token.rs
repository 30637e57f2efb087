//! Region root keys in a PKCS#11 token (an HSM; SoftHSM2 in the tests): each region's root key
//! is an AES-256 key made in the token, sensitive and not extractable, and every wrap and unwrap
//! under it is an AES-GCM operation inside the token (ADR 0023). The key's bytes never reach
//! this process.
//!
//! * A region's keys are found by their label. Two processes making a region's first key at
//!   once may both make one: sealing then uses the one with the lowest `CKA_ID` and opening
//!   tries each, so nothing sealed under either is lost.
//! * A lost session or login (a token reset, a removed device) is reopened once per operation;
//!   other token failures are unavailability (retry later), never "corrupt data". Only the
//!   token's verdict on the ciphertext itself is corruption.

mod config;

pub use config::{env, TokenConfig, DEFAULT_KEY_LABEL};

use super::VaultError;
use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error, RvError};
use cryptoki::mechanism::aead::GcmParams;
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;
use sealpost_domain::Region;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};
use zeroize::Zeroizing;

/// The first byte of a value sealed in the token (its format; a value sealed by the embedded
/// default begins with a random nonce, and opens under neither custody's other key).
const SEALED_IN_TOKEN: u8 = 0xA5;
/// AES-GCM nonce length.
const IV_LEN: usize = 12;
/// AES-GCM tag length in bits.
const TAG_BITS: u64 = 128;
/// Length of the random `CKA_ID` a root key is made with.
const ID_LEN: usize = 16;

/// The root keys in a token: one logged-in session, and each region's key handles once found
/// (the sealing key first).
pub struct TokenRoots {
    config: TokenConfig,
    context: Pkcs11,
    slot: Slot,
    session: Mutex<Session>,
    handles: Mutex<HashMap<(Region, u32), Vec<ObjectHandle>>>,
}

impl std::fmt::Debug for TokenRoots {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenRoots")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// How one attempt at a token operation failed.
enum Failure {
    /// The token answered with an error.
    Token(&'static str, Error),
    /// Anything else (no key, corrupt data).
    Vault(VaultError),
}

impl From<VaultError> for Failure {
    fn from(e: VaultError) -> Self {
        Failure::Vault(e)
    }
}

/// Whether `e` means the session or its login is gone (reopen and try again).
fn lost(e: &Failure) -> bool {
    matches!(
        e,
        Failure::Token(
            _,
            Error::Pkcs11(
                RvError::SessionHandleInvalid
                    | RvError::SessionClosed
                    | RvError::UserNotLoggedIn
                    | RvError::DeviceRemoved
                    | RvError::TokenNotPresent
                    | RvError::ObjectHandleInvalid
                    | RvError::KeyHandleInvalid,
                _
            )
        )
    )
}

/// A token failure as the vault reports it: the token is unavailable (the PKCS#11 return value
/// names no secret).
fn unavailable(what: &str, e: impl std::fmt::Display) -> VaultError {
    VaultError::Custody(format!("PKCS#11 {what}: {e}"))
}

impl From<Failure> for VaultError {
    fn from(f: Failure) -> Self {
        match f {
            Failure::Token(what, e) => unavailable(what, e),
            Failure::Vault(e) => e,
        }
    }
}

/// The right to change the token's objects, one change at a time in this process: SoftHSM2's
/// file store fails (`CKR_GENERAL_ERROR`) now and then when two sessions of one process make or
/// destroy token objects at once.
fn writing() -> std::sync::MutexGuard<'static, ()> {
    static WRITING: Mutex<()> = Mutex::new(());
    WRITING
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A value the token refused to open: corrupt, tampered, or sealed under another key.
fn corrupt() -> VaultError {
    VaultError::Crypto(crate::crypto::CryptoError::Opaque)
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
    let context = Pkcs11::new(path).map_err(|e| unavailable("module", e))?;
    match context.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        Ok(()) | Err(Error::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
        Err(e) => return Err(unavailable("initialize", e)),
    }
    loaded.insert(path.to_owned(), context.clone());
    Ok(context)
}

impl From<TokenRoots> for super::Roots {
    fn from(token: TokenRoots) -> Self {
        std::sync::Arc::new(token)
    }
}

impl TokenRoots {
    /// Loads the module, finds the token by its label and logs in.
    pub fn open(config: TokenConfig) -> Result<Self, VaultError> {
        let config = config.checked().map_err(VaultError::Custody)?;
        let context = context(&config.module)?;
        let slot = context
            .get_slots_with_initialized_token()
            .map_err(|e| unavailable("slots", e))?
            .into_iter()
            .find(|s| {
                context
                    .get_token_info(*s)
                    .is_ok_and(|t| t.label().trim_end() == config.token)
            })
            .ok_or_else(|| unavailable("token", format!("no token labelled {}", config.token)))?;
        let session = login(&context, slot, &config)?;
        Ok(Self {
            config,
            context,
            slot,
            session: Mutex::new(session),
            handles: Mutex::new(HashMap::new()),
        })
    }

    /// Runs `op` on the session; if the session or its login was lost, opens a new one, logs
    /// in and runs it once more.
    fn attempt<T>(
        &self,
        op: impl Fn(&Self, &Session) -> Result<T, Failure>,
    ) -> Result<T, VaultError> {
        let mut session = self
            .session
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match op(self, &session) {
            Err(f) if lost(&f) => {
                tracing::warn!("the token's session was lost; logging in again");
                *session = login(&self.context, self.slot, &self.config)?;
                self.forget(None);
                op(self, &session).map_err(VaultError::from)
            }
            other => other.map_err(VaultError::from),
        }
    }

    /// Forgets the key handles of a region's generation (of every one when `None`).
    fn forget(&self, region: Option<(Region, u32)>) {
        let mut handles = self
            .handles
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match region {
            Some(r) => {
                handles.remove(&r);
            }
            None => handles.clear(),
        }
    }

    /// The token label of generation `generation` of `region`'s root key: the configured
    /// label for the first, `<label>.g<n>` for the n-th.
    fn label(&self, region: Region, generation: u32) -> Vec<u8> {
        match generation {
            1 => self.config.label(region),
            g => format!("{}.g{g}", self.config.label(region)),
        }
        .into_bytes()
    }

    /// The keys of a generation of `region`'s root key in the token, the sealing key (lowest
    /// `CKA_ID`) first: remembered, or found by label (`fresh`: found again), or (`create`,
    /// if there is none) made there.
    fn keys(
        &self,
        session: &Session,
        (region, generation): (Region, u32),
        create: bool,
        fresh: bool,
    ) -> Result<Vec<ObjectHandle>, Failure> {
        if !fresh {
            let handles = self
                .handles
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some(found) = handles.get(&(region, generation)).filter(|h| !h.is_empty()) {
                return Ok(found.clone());
            }
        }
        let label = self.label(region, generation);
        let mut found = find(session, &label)?;
        if found.is_empty() && create {
            let _one = writing();
            found = find(session, &label)?;
            if found.is_empty() {
                make(session, label.clone())?;
            }
            tracing::info!(
                region = region.code(),
                generation,
                "made a region root key in the token"
            );
            // Found again: another process may have made one at the same time.
            found = find(session, &label)?;
        }
        self.handles
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert((region, generation), found.clone());
        Ok(found)
    }

    /// Whether each key of a generation of `region`'s root key in the token is sensitive, has
    /// never been extractable and can neither wrap, unwrap nor derive (`None` if the token
    /// has none).
    pub fn never_leaves(
        &self,
        region: Region,
        generation: u32,
    ) -> Result<Option<bool>, VaultError> {
        self.attempt(|me, session| {
            let keys = me.keys(session, (region, generation), false, true)?;
            if keys.is_empty() {
                return Ok(None);
            }
            let asked = [
                AttributeType::Sensitive,
                AttributeType::Extractable,
                AttributeType::NeverExtractable,
                AttributeType::Wrap,
                AttributeType::Unwrap,
                AttributeType::Derive,
            ];
            let mut held = true;
            for key in keys {
                let attributes = session
                    .get_attributes(key, &asked)
                    .map_err(|e| Failure::Token("attributes", e))?;
                held &= attributes.len() == asked.len()
                    && attributes.iter().all(|a| match a {
                        Attribute::Sensitive(s) | Attribute::NeverExtractable(s) => *s,
                        Attribute::Extractable(b)
                        | Attribute::Wrap(b)
                        | Attribute::Unwrap(b)
                        | Attribute::Derive(b) => !*b,
                        _ => false,
                    });
            }
            Ok(Some(held))
        })
    }
}

impl super::RootCustody for TokenRoots {
    /// Seals `plaintext` under a generation of `region`'s root key in the token (the first is
    /// made on first use), bound to `aad`: a marker byte, the 12-byte nonce the token used,
    /// then ciphertext and tag.
    fn seal(
        &self,
        region: Region,
        generation: u32,
        plaintext: &[u8],
        aad: &[u8],
    ) -> Result<Vec<u8>, VaultError> {
        self.attempt(|me, session| {
            let at = (region, generation);
            let mut keys = me.keys(session, at, generation == 1, false)?;
            if keys.is_empty() {
                keys = me.keys(session, at, false, true)?;
            }
            let key = *keys.first().ok_or_else(|| {
                VaultError::RootKey(
                    region,
                    format!("generation {generation} of the root key is not in the token"),
                )
            })?;
            let mut nonce = [0u8; IV_LEN];
            session
                .generate_random_slice(&mut nonce)
                .map_err(|e| Failure::Token("random", e))?;
            let params = GcmParams::new(&mut nonce, aad, TAG_BITS.into())
                .map_err(|e| Failure::Token("parameters", e))?;
            let sealed = session
                .encrypt(&Mechanism::AesGcm(params), key, plaintext)
                .map_err(|e| Failure::Token("encrypt", e))?;
            // The nonce as the token left it: a token may choose its own and write it back.
            let mut out = Vec::with_capacity(1 + IV_LEN + sealed.len());
            out.push(SEALED_IN_TOKEN);
            out.extend_from_slice(&nonce);
            out.extend_from_slice(&sealed);
            Ok(out)
        })
    }

    /// Opens what [`Self::seal`] sealed under a generation of `region`'s root key with `aad`,
    /// trying each of its keys (and, if none opens it, the keys found again).
    fn open(
        &self,
        region: Region,
        generation: u32,
        sealed: &[u8],
        aad: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, VaultError> {
        let (&mark, rest) = sealed.split_first().ok_or_else(corrupt)?;
        if mark != SEALED_IN_TOKEN || rest.len() < IV_LEN {
            return Err(corrupt());
        }
        let (iv, ciphertext) = rest.split_at(IV_LEN);
        self.attempt(|me, session| {
            for fresh in [false, true] {
                let keys = me.keys(session, (region, generation), false, fresh)?;
                if keys.is_empty() && fresh {
                    return Err(VaultError::RootKey(
                        region,
                        format!("generation {generation} of the root key is not in the token"),
                    )
                    .into());
                }
                for key in keys {
                    let mut nonce: [u8; IV_LEN] = iv.try_into().map_err(|_| corrupt())?;
                    let params = GcmParams::new(&mut nonce, aad, TAG_BITS.into())
                        .map_err(|e| Failure::Token("parameters", e))?;
                    match session.decrypt(&Mechanism::AesGcm(params), key, ciphertext) {
                        Ok(plain) => return Ok(Zeroizing::new(plain)),
                        Err(e) if refused(&e) => continue,
                        Err(e) => return Err(Failure::Token("decrypt", e)),
                    }
                }
            }
            Err(corrupt().into())
        })
    }

    fn make(&self, region: Region, generation: u32) -> Result<(), VaultError> {
        self.attempt(|me, session| me.keys(session, (region, generation), true, true))
            .map(drop)
    }

    /// Destroys every key of the generation in the token: everything wrapped under it is
    /// unreadable from then on.
    fn destroy(&self, region: Region, generation: u32) -> Result<bool, VaultError> {
        let destroyed = self.attempt(|me, session| {
            let keys = me.keys(session, (region, generation), false, true)?;
            let _one = writing();
            for key in &keys {
                session
                    .destroy_object(*key)
                    .map_err(|e| Failure::Token("destroy", e))?;
            }
            Ok(!keys.is_empty())
        })?;
        self.forget(Some((region, generation)));
        Ok(destroyed)
    }

    fn in_token(&self) -> bool {
        true
    }

    fn describe(&self) -> String {
        format!(
            "PKCS#11 token {} (module {}): root keys made in the token, not extractable",
            self.config.token,
            self.config.module.display()
        )
    }
}

/// Whether the token refused the ciphertext itself (a wrong key, tag or length), as opposed to
/// failing. SoftHSM2 answers a GCM tag that does not verify with `CKR_GENERAL_ERROR`, so that
/// counts as a refusal of this key too (the next key is tried; if none opens it, it is corrupt).
fn refused(e: &Error) -> bool {
    matches!(
        e,
        Error::Pkcs11(
            RvError::EncryptedDataInvalid
                | RvError::EncryptedDataLenRange
                | RvError::GeneralError
                | RvError::FunctionFailed,
            _
        )
    )
}

/// A logged-in session on `slot`. The login is the token's, for every session of this
/// process: one already made (another `TokenRoots` on the token) serves this one too.
fn login(context: &Pkcs11, slot: Slot, config: &TokenConfig) -> Result<Session, VaultError> {
    let session = context
        .open_rw_session(slot)
        .map_err(|e| unavailable("session", e))?;
    let pin = AuthPin::new(config.pin.as_str().into());
    match session.login(UserType::User, Some(&pin)) {
        Ok(()) | Err(Error::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => Ok(session),
        Err(e) => Err(unavailable("login", e)),
    }
}

/// The AES keys labelled `label`, lowest `CKA_ID` first.
fn find(session: &Session, label: &[u8]) -> Result<Vec<ObjectHandle>, Failure> {
    let found = session
        .find_objects(&[
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::AES),
            Attribute::Label(label.to_vec()),
        ])
        .map_err(|e| Failure::Token("find", e))?;
    let mut ided = Vec::with_capacity(found.len());
    for key in found {
        let id = session
            .get_attributes(key, &[AttributeType::Id])
            .map_err(|e| Failure::Token("attributes", e))?
            .into_iter()
            .find_map(|a| match a {
                Attribute::Id(id) => Some(id),
                _ => None,
            })
            .unwrap_or_default();
        ided.push((id, key));
    }
    ided.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(ided.into_iter().map(|(_, key)| key).collect())
}

/// The template a region's root key is made with: AES-256, on the token, private, sensitive,
/// never extractable, for encryption and decryption only (no wrapping, unwrapping or
/// derivation), labelled `label`, with the id `id`.
pub fn root_key_template(label: Vec<u8>, id: Vec<u8>) -> Vec<Attribute> {
    vec![
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(KeyType::AES),
        Attribute::ValueLen(32.into()),
        Attribute::Token(true),
        Attribute::Private(true),
        Attribute::Sensitive(true),
        Attribute::Extractable(false),
        Attribute::Encrypt(true),
        Attribute::Decrypt(true),
        Attribute::Wrap(false),
        Attribute::Unwrap(false),
        Attribute::Derive(false),
        Attribute::Id(id),
        Attribute::Label(label),
    ]
}

/// Makes a root key labelled `label` in the token ([`root_key_template`]) with a random id.
fn make(session: &Session, label: Vec<u8>) -> Result<ObjectHandle, Failure> {
    let mut id = [0u8; ID_LEN];
    session
        .generate_random_slice(&mut id)
        .map_err(|e| Failure::Token("random", e))?;
    session
        .generate_key(
            &Mechanism::AesKeyGen,
            &root_key_template(label, id.to_vec()),
        )
        .map_err(|e| Failure::Token("generate", e))
}
