//! [`Libsignal`], the [`SignalEngine`] over the official protocol code: the only file that
//! names libsignal types. Its in-memory stores never wait, so every call completes on the spot.

use super::{
    Account, Bundle, Decrypted, DirectoryEntry, Encrypted, Peer, Session, SignalEngine, SignalError,
};
use futures::FutureExt as _;
use libsignal_protocol::{
    kem, CiphertextMessage, CiphertextMessageType, DeviceId, GenericSignedPreKey as _, IdentityKey,
    IdentityKeyPair, IdentityKeyStore as _, InMemSignalProtocolStore, KeyPair, KyberPreKeyId,
    KyberPreKeyRecord, KyberPreKeyStore as _, PreKeyBundle, PreKeyId, PreKeyRecord,
    PreKeySignalMessage, PreKeyStore as _, ProtocolAddress, PublicKey, SessionRecord,
    SessionStore as _, SignalMessage, SignalProtocolError, SignedPreKeyId, SignedPreKeyRecord,
    SignedPreKeyStore as _, Timestamp as SignalTimestamp,
};
use sealpost_domain::time::Timestamp;
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

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

fn address(peer: &Peer) -> Result<ProtocolAddress, SignalError> {
    let device = DeviceId::new(peer.device).map_err(|_| SignalError::InvalidBundle)?;
    Ok(ProtocolAddress::new(peer.name.clone(), device))
}

/// The account's public identity key (what a peer pins).
fn identity_key(account: &Account) -> Result<Vec<u8>, SignalError> {
    let pair = IdentityKeyPair::try_from(account.identity.as_slice())
        .map_err(|_| SignalError::CorruptState)?;
    Ok(pair.identity_key().serialize().to_vec())
}

/// The official protocol code.
#[derive(Debug, Clone, Copy, Default)]
pub struct Libsignal;

/// Signed prekeys kept: the current one and the one before it.
const SIGNED_PREKEYS_KEPT: usize = 2;

fn millis(t: Timestamp) -> u64 {
    t.millis().max(0) as u64
}

/// The port speaks [`Timestamp`]; libsignal's session calls take a `SystemTime`.
fn system_time(t: Timestamp) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(millis(t))
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
        now: Timestamp,
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
        now_t: Timestamp,
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
            signed_at: now_t,
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
            identity_key: identity_key(account)?,
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
        now_t: Timestamp,
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
        account.signed_at = now_t;
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
        now_t: Timestamp,
    ) -> Result<Encrypted, SignalError> {
        let address = address(peer)?;
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
                system_time(now_t),
                &mut rng,
            ))?;
        }
        let message = now(libsignal_protocol::message_encrypt(
            plaintext,
            &address,
            &mut store.session_store,
            &mut store.identity_store,
            system_time(now_t),
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
        let address = address(peer)?;
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
