//! The Signal port: Sealpost's own view of a Signal implementation, a pure function of explicit
//! state (ADR 0011). An [`Account`] (one per business phone number, and one per simulated
//! device) holds the identity key pair, signed prekeys, the last-resort Kyber1024 prekey and the
//! one-time prekeys; a [`Session`] (one per peer) holds the serialized session record. Callers
//! load them, call the engine, and store what comes back: the account wrapped by the region root
//! key, each session sealed under the consumer's subject key, so that erasure destroys it with
//! everything else. `adapters::signal::Libsignal` implements it.
//!
//! Identity changes are not errors: like WhatsApp's "security code changed" notice, the new
//! identity is accepted and reported (`identity_changed`), so the pipeline records an event.

use crate::time::Timestamp;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// Signal failures. `Display` carries no key material and no plaintext.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignalError {
    /// There is no session with the peer and no bundle to start one: fetch the peer's bundle.
    #[error("no session with the peer")]
    NoSession,
    /// The ciphertext is malformed, forged, or for a session that no longer exists; record a
    /// decryption failure (the sender retries or re-establishes the session).
    #[error("message could not be decrypted: {0}")]
    InvalidMessage(&'static str),
    /// The ciphertext was already decrypted (a replay or a duplicate delivery): drop it.
    #[error("duplicate message")]
    Duplicate,
    /// The peer's prekey bundle is malformed or its signatures do not verify.
    #[error("invalid prekey bundle")]
    InvalidBundle,
    /// A one-time prekey named by the message is not (or no longer) held.
    #[error("unknown prekey")]
    UnknownPreKey,
    /// Stored state would not parse: corruption. Alert.
    #[error("stored Signal state is corrupt")]
    CorruptState,
}

/// Where the peer is: a name (a routing handle, never logged) and a device number.
#[derive(Clone, PartialEq, Eq)]
pub struct Peer {
    /// The peer's address name.
    pub name: String,
    /// Its device id (1 to 127).
    pub device: u8,
}

impl fmt::Debug for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Peer(<redacted>, device {})", self.device)
    }
}

/// One party's long-lived Signal state. Secret: `Debug` prints nothing of it, `Drop` zeroizes
/// it; callers store it wrapped by the region root key. The records are the engine's own
/// serialized forms: only the engine that made them reads them.
#[derive(Clone, Serialize, Deserialize)]
pub struct Account {
    /// The identity key pair record.
    pub identity: Vec<u8>,
    /// The registration id.
    pub registration_id: u32,
    /// Signed prekey records by id; the highest id is current, older ones serve messages in flight.
    pub signed: BTreeMap<u32, Vec<u8>>,
    /// The last-resort Kyber1024 prekey record.
    pub kyber: Vec<u8>,
    /// Its id.
    pub kyber_id: u32,
    /// One-time prekey records by id.
    pub one_time: BTreeMap<u32, Vec<u8>>,
    /// The id the next one-time prekey gets.
    pub next_prekey_id: u32,
    /// When the current signed prekey was made.
    #[serde(rename = "signed_at_ms")]
    pub signed_at: Timestamp,
}

impl fmt::Debug for Account {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Account")
            .field("one_time_prekeys", &self.one_time.len())
            .field("signed_prekeys", &self.signed.len())
            .finish_non_exhaustive()
    }
}

impl Drop for Account {
    fn drop(&mut self) {
        use zeroize::Zeroize as _;
        self.identity.zeroize();
        self.kyber.zeroize();
        for v in self.signed.values_mut().chain(self.one_time.values_mut()) {
            v.zeroize();
        }
    }
}

impl Account {
    /// One-time prekeys still held.
    pub fn one_time_prekeys(&self) -> usize {
        self.one_time.len()
    }

    /// When the current signed prekey was made.
    pub fn signed_prekey_made_at(&self) -> Timestamp {
        self.signed_at
    }

    /// Serialized form, to be wrapped by the region root key.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("an account is plain bytes and numbers")
    }

    /// Parses [`Account::to_bytes`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, SignalError> {
        serde_json::from_slice(bytes).map_err(|_| SignalError::CorruptState)
    }
}

/// A serialized session record with one peer. Secret: callers seal it under the subject key.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session(pub Vec<u8>);

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Session({} bytes)", self.0.len())
    }
}

/// What a party publishes to the transport's key directory (public keys only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirectoryEntry {
    /// Registration id.
    pub registration_id: u32,
    /// Public identity key.
    pub identity_key: Vec<u8>,
    /// Current signed prekey: id, public key, signature.
    pub signed_prekey: (u32, Vec<u8>, Vec<u8>),
    /// Last-resort Kyber1024 prekey: id, public key, signature.
    pub kyber_prekey: (u32, Vec<u8>, Vec<u8>),
    /// One-time prekeys: id, public key. The directory hands out each at most once.
    pub one_time: Vec<(u32, Vec<u8>)>,
}

/// A prekey bundle as the directory hands it out: the entry with at most one one-time prekey.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bundle {
    /// The device the bundle is for.
    pub device: u8,
    /// The entry's long-lived parts.
    pub registration_id: u32,
    /// Public identity key.
    pub identity_key: Vec<u8>,
    /// Signed prekey.
    pub signed_prekey: (u32, Vec<u8>, Vec<u8>),
    /// Kyber prekey.
    pub kyber_prekey: (u32, Vec<u8>, Vec<u8>),
    /// A one-time prekey, if any was left.
    pub one_time: Option<(u32, Vec<u8>)>,
}

impl DirectoryEntry {
    /// Takes a bundle for `device`, consuming one one-time prekey if any is left.
    pub fn take_bundle(&mut self, device: u8) -> Bundle {
        let one_time = if self.one_time.is_empty() {
            None
        } else {
            Some(self.one_time.remove(0))
        };
        Bundle {
            device,
            registration_id: self.registration_id,
            identity_key: self.identity_key.clone(),
            signed_prekey: self.signed_prekey.clone(),
            kyber_prekey: self.kyber_prekey.clone(),
            one_time,
        }
    }
}

/// The result of encrypting.
#[derive(Debug, Clone)]
pub struct Encrypted {
    /// Wire form: one type byte (2 = message, 3 = prekey message) and the serialized message.
    pub ciphertext: Vec<u8>,
    /// The session after encrypting.
    pub session: Session,
    /// The peer's identity key as the session knows it.
    pub peer_identity: Vec<u8>,
    /// Whether it differs from the one the caller knew.
    pub identity_changed: bool,
}

/// The result of decrypting.
#[derive(Clone)]
pub struct Decrypted {
    /// The plaintext.
    pub plaintext: Vec<u8>,
    /// The session after decrypting.
    pub session: Session,
    /// The peer's identity key.
    pub peer_identity: Vec<u8>,
    /// Whether it differs from the one the caller knew (the consumer re-installed, say).
    pub identity_changed: bool,
}

impl fmt::Debug for Decrypted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Decrypted")
            .field("plaintext_len", &self.plaintext.len())
            .field("identity_changed", &self.identity_changed)
            .finish_non_exhaustive()
    }
}

/// Sealpost's port over a Signal implementation.
pub trait SignalEngine: Send + Sync + fmt::Debug {
    /// A new account with `one_time_prekeys` one-time prekeys.
    fn new_account(
        &self,
        registration_id: u32,
        one_time_prekeys: u32,
        now: Timestamp,
    ) -> Result<Account, SignalError>;

    /// What the account publishes to the key directory.
    fn directory_entry(&self, account: &Account) -> Result<DirectoryEntry, SignalError>;

    /// Adds one-time prekeys until `target` are held; returns the new public ones to publish.
    fn replenish(
        &self,
        account: &mut Account,
        target: u32,
    ) -> Result<Vec<(u32, Vec<u8>)>, SignalError>;

    /// Makes a new signed prekey (the previous one stays for messages in flight; older ones go).
    fn rotate_signed_prekey(
        &self,
        account: &mut Account,
        now: Timestamp,
    ) -> Result<(), SignalError>;

    /// Encrypts for `peer`, continuing `session`, or starting one from `bundle` (PQXDH).
    #[allow(clippy::too_many_arguments)]
    fn encrypt(
        &self,
        account: &Account,
        peer: &Peer,
        session: Option<&Session>,
        bundle: Option<&Bundle>,
        known_identity: Option<&[u8]>,
        plaintext: &[u8],
        now: Timestamp,
    ) -> Result<Encrypted, SignalError>;

    /// Decrypts a message from `peer`. A prekey message may consume a one-time prekey of the
    /// account, which is why the account is mutable.
    fn decrypt(
        &self,
        account: &mut Account,
        peer: &Peer,
        session: Option<&Session>,
        known_identity: Option<&[u8]>,
        ciphertext: &[u8],
    ) -> Result<Decrypted, SignalError>;
}
