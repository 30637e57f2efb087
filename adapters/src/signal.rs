//! Signal on the business's behalf, behind Sealpost's own port.
//!
//! [`SignalEngine`] is the port: a pure function of explicit state. An [`Account`] (one per
//! business phone number, and one per simulated device) holds the identity key pair, signed
//! prekeys, the last-resort Kyber1024 prekey and the one-time prekeys; a [`Session`] (one per
//! peer) holds the serialized session record. Callers load them, call the engine, and store
//! what comes back: the account wrapped by the region root key, each session sealed under the
//! consumer's subject key, so that erasure destroys it with everything else.
//!
//! [`Libsignal`] implements the port with the official protocol code
//! (`libsignal-protocol-syft`, a vendored copy of `libsignal-protocol` 0.85.3: PQXDH with a
//! mandatory Kyber1024 prekey, then the Double Ratchet). Its store traits are async and not
//! `Send`, but the in-memory stores used here never wait, so every call completes on the spot
//! (`now_or_never`) and the engine is an ordinary synchronous, thread-safe value.
//!
//! Identity changes are not errors: like WhatsApp's "security code changed" notice, the new
//! identity is accepted and reported (`identity_changed`), so the pipeline records an event.

use futures::FutureExt as _;
use libsignal_protocol::{
    kem, CiphertextMessage, CiphertextMessageType, DeviceId, GenericSignedPreKey as _, IdentityKey,
    IdentityKeyPair, IdentityKeyStore as _, InMemSignalProtocolStore, KeyPair, KyberPreKeyId,
    KyberPreKeyRecord, KyberPreKeyStore as _, PreKeyBundle, PreKeyId, PreKeyRecord,
    PreKeySignalMessage, PreKeyStore as _, ProtocolAddress, PublicKey, SessionRecord,
    SessionStore as _, SignalMessage, SignalProtocolError, SignedPreKeyId, SignedPreKeyRecord,
    SignedPreKeyStore as _, Timestamp as SignalTimestamp,
};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

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

fn classify(e: SignalProtocolError) -> SignalError {
    match e {
        SignalProtocolError::SessionNotFound(_) | SignalProtocolError::NoSenderKeyState { .. } => {
            SignalError::NoSession
        }
        SignalProtocolError::DuplicatedMessage(..) => SignalError::Duplicate,
        SignalProtocolError::InvalidPreKeyId
        | SignalProtocolError::InvalidKyberPreKeyId
        | SignalProtocolError::InvalidSignedPreKeyId => SignalError::UnknownPreKey,
        SignalProtocolError::SignatureValidationFailed => SignalError::InvalidBundle,
        SignalProtocolError::InvalidMessage(..) => SignalError::InvalidMessage("invalid message"),
        SignalProtocolError::CiphertextMessageTooShort(_)
        | SignalProtocolError::InvalidMacKeyLength(_) => SignalError::InvalidMessage("malformed"),
        SignalProtocolError::UnrecognizedMessageVersion(_)
        | SignalProtocolError::LegacyCiphertextVersion(_) => {
            SignalError::InvalidMessage("unsupported version")
        }
        SignalProtocolError::InvalidProtobufEncoding => SignalError::InvalidMessage("malformed"),
        _ => SignalError::InvalidMessage("rejected by the protocol"),
    }
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

impl Peer {
    fn address(&self) -> Result<ProtocolAddress, SignalError> {
        let device = DeviceId::new(self.device).map_err(|_| SignalError::InvalidBundle)?;
        Ok(ProtocolAddress::new(self.name.clone(), device))
    }
}

/// One party's long-lived Signal state. Secret: `Debug` prints nothing of it; callers store it
/// wrapped by the region root key.
#[derive(Clone, Serialize, Deserialize)]
pub struct Account {
    identity: Vec<u8>,
    registration_id: u32,
    /// Signed prekey records by id; the highest id is current, older ones serve messages in flight.
    signed: BTreeMap<u32, Vec<u8>>,
    /// The last-resort Kyber1024 prekey record.
    kyber: Vec<u8>,
    kyber_id: u32,
    /// One-time prekey records by id.
    one_time: BTreeMap<u32, Vec<u8>>,
    next_prekey_id: u32,
    /// When the current signed prekey was made (ms since the Unix epoch).
    signed_at_ms: u64,
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

    /// The public identity key (what a peer pins).
    pub fn identity_key(&self) -> Result<Vec<u8>, SignalError> {
        let pair = IdentityKeyPair::try_from(self.identity.as_slice())
            .map_err(|_| SignalError::CorruptState)?;
        Ok(pair.identity_key().serialize().to_vec())
    }

    /// When the current signed prekey was made.
    pub fn signed_prekey_made_at(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(self.signed_at_ms)
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
        now: SystemTime,
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
        now: SystemTime,
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
        now: SystemTime,
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

/// The official protocol code.
#[derive(Debug, Clone, Copy, Default)]
pub struct Libsignal;

/// Signed prekeys kept: the current one and the one before it.
const SIGNED_PREKEYS_KEPT: usize = 2;

fn millis(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Completes a libsignal future over in-memory stores, which never wait.
fn now<T>(
    f: impl std::future::Future<Output = Result<T, SignalProtocolError>>,
) -> Result<T, SignalError> {
    f.now_or_never()
        .expect("in-memory Signal stores never wait")
        .map_err(classify)
}

fn corrupt<T, E>(r: Result<T, E>) -> Result<T, SignalError> {
    r.map_err(|_| SignalError::CorruptState)
}

impl Libsignal {
    fn identity(account: &Account) -> Result<IdentityKeyPair, SignalError> {
        corrupt(IdentityKeyPair::try_from(account.identity.as_slice()))
    }

    fn new_signed_prekey(
        identity: &IdentityKeyPair,
        id: u32,
        now: SystemTime,
    ) -> Result<Vec<u8>, SignalError> {
        let mut rng = rand::rng();
        let pair = KeyPair::generate(&mut rng);
        let signature = corrupt(
            identity
                .private_key()
                .calculate_signature(&pair.public_key.serialize(), &mut rng),
        )?;
        let record = SignedPreKeyRecord::new(
            SignedPreKeyId::from(id),
            SignalTimestamp::from_epoch_millis(millis(now)),
            &pair,
            &signature,
        );
        corrupt(record.serialize())
    }

    /// A store holding the account and, if given, the session and the known identity of `peer`.
    fn store(
        account: &Account,
        peer: &ProtocolAddress,
        session: Option<&Session>,
        known_identity: Option<&[u8]>,
        with_prekeys: bool,
    ) -> Result<InMemSignalProtocolStore, SignalError> {
        let mut store = corrupt(InMemSignalProtocolStore::new(
            Self::identity(account)?,
            account.registration_id,
        ))?;
        for (id, record) in &account.signed {
            let r = corrupt(SignedPreKeyRecord::deserialize(record))?;
            now(store.save_signed_pre_key(SignedPreKeyId::from(*id), &r))?;
        }
        let kyber = corrupt(KyberPreKeyRecord::deserialize(&account.kyber))?;
        now(store.save_kyber_pre_key(KyberPreKeyId::from(account.kyber_id), &kyber))?;
        if with_prekeys {
            for (id, record) in &account.one_time {
                let r = corrupt(PreKeyRecord::deserialize(record))?;
                now(store.save_pre_key(PreKeyId::from(*id), &r))?;
            }
        }
        if let Some(s) = session {
            let record = corrupt(SessionRecord::deserialize(&s.0))?;
            now(store.store_session(peer, &record))?;
        }
        if let Some(k) = known_identity {
            let key = corrupt(IdentityKey::decode(k))?;
            now(store.save_identity(peer, &key))?;
        }
        Ok(store)
    }

    fn session_out(
        store: &InMemSignalProtocolStore,
        peer: &ProtocolAddress,
    ) -> Result<(Session, Vec<u8>), SignalError> {
        let record = now(store.load_session(peer))?.ok_or(SignalError::NoSession)?;
        let identity =
            corrupt(record.remote_identity_key_bytes())?.ok_or(SignalError::CorruptState)?;
        Ok((Session(corrupt(record.serialize())?), identity))
    }

    fn bundle(bundle: &Bundle) -> Result<PreKeyBundle, SignalError> {
        let bad = |_| SignalError::InvalidBundle;
        let device = DeviceId::new(bundle.device).map_err(bad)?;
        let one_time = match &bundle.one_time {
            Some((id, key)) => Some((
                PreKeyId::from(*id),
                PublicKey::deserialize(key).map_err(|_| SignalError::InvalidBundle)?,
            )),
            None => None,
        };
        PreKeyBundle::new(
            bundle.registration_id,
            device,
            one_time,
            SignedPreKeyId::from(bundle.signed_prekey.0),
            PublicKey::deserialize(&bundle.signed_prekey.1)
                .map_err(|_| SignalError::InvalidBundle)?,
            bundle.signed_prekey.2.clone(),
            KyberPreKeyId::from(bundle.kyber_prekey.0),
            kem::PublicKey::deserialize(&bundle.kyber_prekey.1)
                .map_err(|_| SignalError::InvalidBundle)?,
            bundle.kyber_prekey.2.clone(),
            IdentityKey::decode(&bundle.identity_key).map_err(|_| SignalError::InvalidBundle)?,
        )
        .map_err(|_| SignalError::InvalidBundle)
    }
}

impl SignalEngine for Libsignal {
    fn new_account(
        &self,
        registration_id: u32,
        one_time_prekeys: u32,
        now_t: SystemTime,
    ) -> Result<Account, SignalError> {
        let mut rng = rand::rng();
        let identity = IdentityKeyPair::generate(&mut rng);
        let kyber_id = 1;
        let kyber = corrupt(KyberPreKeyRecord::generate(
            kem::KeyType::Kyber1024,
            KyberPreKeyId::from(kyber_id),
            identity.private_key(),
        ))?;
        let signed = Self::new_signed_prekey(&identity, 1, now_t)?;
        let mut account = Account {
            identity: identity.serialize().to_vec(),
            registration_id: registration_id & 0x3fff,
            signed: BTreeMap::from([(1, signed)]),
            kyber: corrupt(kyber.serialize())?,
            kyber_id,
            one_time: BTreeMap::new(),
            next_prekey_id: 1,
            signed_at_ms: millis(now_t),
        };
        self.replenish(&mut account, one_time_prekeys)?;
        Ok(account)
    }

    fn directory_entry(&self, account: &Account) -> Result<DirectoryEntry, SignalError> {
        let (signed_id, signed) = account
            .signed
            .iter()
            .next_back()
            .ok_or(SignalError::CorruptState)?;
        let signed = corrupt(SignedPreKeyRecord::deserialize(signed))?;
        let kyber = corrupt(KyberPreKeyRecord::deserialize(&account.kyber))?;
        let mut one_time = Vec::with_capacity(account.one_time.len());
        for (id, record) in &account.one_time {
            let r = corrupt(PreKeyRecord::deserialize(record))?;
            one_time.push((*id, corrupt(r.public_key())?.serialize().to_vec()));
        }
        Ok(DirectoryEntry {
            registration_id: account.registration_id,
            identity_key: account.identity_key()?,
            signed_prekey: (
                *signed_id,
                corrupt(signed.public_key())?.serialize().to_vec(),
                corrupt(signed.signature())?,
            ),
            kyber_prekey: (
                account.kyber_id,
                corrupt(kyber.public_key())?.serialize().to_vec(),
                corrupt(kyber.signature())?,
            ),
            one_time,
        })
    }

    fn replenish(
        &self,
        account: &mut Account,
        target: u32,
    ) -> Result<Vec<(u32, Vec<u8>)>, SignalError> {
        let mut rng = rand::rng();
        let mut published = Vec::new();
        while account.one_time.len() < target as usize {
            let id = account.next_prekey_id;
            account.next_prekey_id = account.next_prekey_id.wrapping_add(1).max(1);
            let pair = KeyPair::generate(&mut rng);
            let record = PreKeyRecord::new(PreKeyId::from(id), &pair);
            account.one_time.insert(id, corrupt(record.serialize())?);
            published.push((id, pair.public_key.serialize().to_vec()));
        }
        Ok(published)
    }

    fn rotate_signed_prekey(
        &self,
        account: &mut Account,
        now_t: SystemTime,
    ) -> Result<(), SignalError> {
        let identity = Self::identity(account)?;
        let next = account
            .signed
            .keys()
            .next_back()
            .copied()
            .unwrap_or(0)
            .wrapping_add(1)
            .max(1);
        account
            .signed
            .insert(next, Self::new_signed_prekey(&identity, next, now_t)?);
        while account.signed.len() > SIGNED_PREKEYS_KEPT {
            account.signed.pop_first();
        }
        account.signed_at_ms = millis(now_t);
        Ok(())
    }

    fn encrypt(
        &self,
        account: &Account,
        peer: &Peer,
        session: Option<&Session>,
        bundle: Option<&Bundle>,
        known_identity: Option<&[u8]>,
        plaintext: &[u8],
        now_t: SystemTime,
    ) -> Result<Encrypted, SignalError> {
        let address = peer.address()?;
        // The known identity is checked here, not by the store: a change is reported, not refused.
        let mut store = Self::store(account, &address, session, None, false)?;
        let mut rng = rand::rng();
        if session.is_none() {
            let bundle = Self::bundle(bundle.ok_or(SignalError::NoSession)?)?;
            now(libsignal_protocol::process_prekey_bundle(
                &address,
                &mut store.session_store,
                &mut store.identity_store,
                &bundle,
                now_t,
                &mut rng,
            ))?;
        }
        let message = now(libsignal_protocol::message_encrypt(
            plaintext,
            &address,
            &mut store.session_store,
            &mut store.identity_store,
            now_t,
            &mut rng,
        ))?;
        let mut ciphertext = Vec::with_capacity(message.serialize().len() + 1);
        ciphertext.push(message.message_type() as u8);
        ciphertext.extend_from_slice(message.serialize());
        let (session, peer_identity) = Self::session_out(&store, &address)?;
        let identity_changed = known_identity.is_some_and(|k| k != peer_identity.as_slice());
        Ok(Encrypted {
            ciphertext,
            session,
            peer_identity,
            identity_changed,
        })
    }

    fn decrypt(
        &self,
        account: &mut Account,
        peer: &Peer,
        session: Option<&Session>,
        known_identity: Option<&[u8]>,
        ciphertext: &[u8],
    ) -> Result<Decrypted, SignalError> {
        let address = peer.address()?;
        let (kind, body) = ciphertext
            .split_first()
            .ok_or(SignalError::InvalidMessage("empty"))?;
        let message = if *kind == CiphertextMessageType::PreKey as u8 {
            CiphertextMessage::PreKeySignalMessage(
                PreKeySignalMessage::try_from(body)
                    .map_err(|_| SignalError::InvalidMessage("malformed"))?,
            )
        } else if *kind == CiphertextMessageType::Whisper as u8 {
            CiphertextMessage::SignalMessage(
                SignalMessage::try_from(body)
                    .map_err(|_| SignalError::InvalidMessage("malformed"))?,
            )
        } else {
            return Err(SignalError::InvalidMessage("unknown message type"));
        };
        let prekey_message = matches!(message, CiphertextMessage::PreKeySignalMessage(_));
        let mut store = Self::store(account, &address, session, None, prekey_message)?;
        let mut rng = rand::rng();
        let plaintext = now(libsignal_protocol::message_decrypt(
            &message,
            &address,
            &mut store.session_store,
            &mut store.identity_store,
            &mut store.pre_key_store,
            &store.signed_pre_key_store,
            &mut store.kyber_pre_key_store,
            &mut rng,
        ))?;
        if prekey_message {
            // One-time prekeys the protocol consumed are gone from the account for good.
            let still: Vec<u32> = account
                .one_time
                .keys()
                .copied()
                .filter(|id| now(store.get_pre_key(PreKeyId::from(*id))).is_ok())
                .collect();
            account.one_time.retain(|id, _| still.contains(id));
        }
        let (session, peer_identity) = Self::session_out(&store, &address)?;
        let identity_changed = known_identity.is_some_and(|k| k != peer_identity.as_slice());
        Ok(Decrypted {
            plaintext,
            session,
            peer_identity,
            identity_changed,
        })
    }
}
