//! The one module that owns every AEAD, KDF and MAC call of Sealpost.
//!
//! * AES-256-GCM-SIV (RFC 8452) for everything at rest. Sealed form: `nonce (12) ‖ ciphertext ‖
//!   tag (16)`. GCM-SIV stays safe if a random nonce ever repeats (misuse resistance).
//! * HKDF-SHA256 for derived keys, HMAC-SHA256 for blind indexes and token hashes.
//! * Key material lives in [`SecretKey`], zeroized on drop, never printed.
//! * A malformed sealed value and a wrong tag produce the same [`CryptoError::Opaque`].

use aes_gcm_siv::aead::{Aead, KeyInit, Payload};
use aes_gcm_siv::{Aes256GcmSiv, Nonce};
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;
use std::fmt;
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop};

/// Length of every symmetric key: 32 bytes (AES-256, HMAC-SHA256).
pub const KEY_LEN: usize = 32;
/// Length of a GCM-SIV nonce.
pub const NONCE_LEN: usize = 12;
/// Length of a GCM-SIV tag.
pub const TAG_LEN: usize = 16;
/// Bytes a sealed value adds to its plaintext.
pub const SEAL_OVERHEAD: usize = NONCE_LEN + TAG_LEN;

/// Crypto failures. Deliberately uninformative.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    /// The value could not be opened: malformed, tampered, wrong key or wrong associated data.
    /// Callers treat it as corruption (or tampering) of stored data; it is never shown to a client.
    #[error("sealed value could not be opened")]
    Opaque,
    /// A key of the wrong length was supplied. A bug or a corrupt key file.
    #[error("key material has the wrong length")]
    BadKeyLength,
}

/// A 256-bit secret key. Zeroized on drop; `Debug` prints nothing of it; no `Clone` leaks it
/// silently (clone explicitly with [`SecretKey::duplicate`]).
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct SecretKey([u8; KEY_LEN]);

impl SecretKey {
    /// Wraps raw key bytes.
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        Self(bytes)
    }

    /// Copies a slice of exactly [`KEY_LEN`] bytes.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, CryptoError> {
        let arr: [u8; KEY_LEN] = bytes.try_into().map_err(|_| CryptoError::BadKeyLength)?;
        Ok(Self(arr))
    }

    /// A fresh random key from the operating system's CSPRNG.
    pub fn random() -> Self {
        let mut k = [0u8; KEY_LEN];
        rand::rng().fill_bytes(&mut k);
        Self(k)
    }

    /// The raw bytes, for wrapping or deriving. Never log them.
    pub fn expose(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    /// An explicit copy.
    pub fn duplicate(&self) -> Self {
        Self(self.0)
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey(<redacted>)")
    }
}

impl PartialEq for SecretKey {
    /// Constant-time comparison.
    fn eq(&self, other: &Self) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}
impl Eq for SecretKey {}

fn cipher(key: &SecretKey) -> Aes256GcmSiv {
    Aes256GcmSiv::new_from_slice(key.expose()).expect("KEY_LEN is the AES-256 key length")
}

/// Seals `plaintext` bound to `aad` with a random nonce.
pub fn seal(key: &SecretKey, plaintext: &[u8], aad: &[u8]) -> Vec<u8> {
    let mut nonce = [0u8; NONCE_LEN];
    rand::rng().fill_bytes(&mut nonce);
    seal_with_nonce(key, &nonce, plaintext, aad)
}

/// Seals with a caller-chosen nonce: the body of [`seal`], private so that nothing outside this
/// module can reuse a nonce; the known-answer tests below call it with the RFC's nonce.
fn seal_with_nonce(
    key: &SecretKey,
    nonce: &[u8; NONCE_LEN],
    plaintext: &[u8],
    aad: &[u8],
) -> Vec<u8> {
    let n = Nonce::from(*nonce);
    let ct = cipher(key)
        .encrypt(
            &n,
            Payload {
                msg: plaintext,
                aad,
            },
        )
        .expect("GCM-SIV encryption only fails for inputs over 2^36 bytes");
    let mut out = Vec::with_capacity(NONCE_LEN + ct.len());
    out.extend_from_slice(nonce);
    out.extend_from_slice(&ct);
    out
}

/// Opens a value sealed by [`seal`] with the same key and associated data.
pub fn open(key: &SecretKey, sealed: &[u8], aad: &[u8]) -> Result<Vec<u8>, CryptoError> {
    if sealed.len() < SEAL_OVERHEAD {
        return Err(CryptoError::Opaque);
    }
    let (nonce, ct) = sealed.split_at(NONCE_LEN);
    let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| CryptoError::Opaque)?;
    cipher(key)
        .decrypt(&Nonce::from(nonce), Payload { msg: ct, aad })
        .map_err(|_| CryptoError::Opaque)
}

/// HKDF-SHA256: a 32-byte key from input key material, a salt and a context label.
pub fn derive(ikm: &[u8], salt: &[u8], info: &[u8]) -> SecretKey {
    let hk = hkdf::Hkdf::<Sha256>::new(Some(salt), ikm);
    let mut okm = [0u8; KEY_LEN];
    hk.expand(info, &mut okm)
        .expect("32 bytes is far below HKDF-SHA256's 8160-byte limit");
    SecretKey(okm)
}

/// HMAC-SHA256 of `data` under `key`.
pub fn mac(key: &SecretKey, data: &[u8]) -> [u8; 32] {
    hmac_over(key, data).finalize().into_bytes().into()
}

fn hmac_over(key: &SecretKey, data: &[u8]) -> Hmac<Sha256> {
    let mut m =
        <Hmac<Sha256> as Mac>::new_from_slice(key.expose()).expect("HMAC takes keys of any length");
    m.update(data);
    m
}

/// HMAC-SHA256 under a key of any length (a webhook app secret), hex-encoded.
pub fn hmac_hex(key: &[u8], data: &[u8]) -> String {
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes keys of any length");
    m.update(data);
    hex::encode(m.finalize().into_bytes())
}

/// Checks an HMAC-SHA256 tag in constant time.
pub fn verify_mac(key: &SecretKey, data: &[u8], tag: &[u8]) -> bool {
    hmac_over(key, data).verify_slice(tag).is_ok()
}

/// SHA-256 of `data` (token hashes; never for personal data, which is HMACed under a key).
pub fn sha256(data: &[u8]) -> [u8; 32] {
    use sha2::Digest as _;
    Sha256::digest(data).into()
}

/// SHA-256 over bytes that arrive in pieces.
#[derive(Debug, Default, Clone)]
pub struct Sha256Stream(Sha256);

impl Sha256Stream {
    /// Adds the next piece.
    pub fn update(&mut self, piece: &[u8]) {
        use sha2::Digest as _;
        self.0.update(piece);
    }

    /// The digest of everything added.
    pub fn finish(self) -> [u8; 32] {
        use sha2::Digest as _;
        self.0.finalize().into()
    }
}

/// Constant-time equality of two byte strings (lengths may leak, contents do not).
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

/// Builds associated data from length-prefixed parts, so that no two different part lists
/// produce the same bytes.
pub fn aad(parts: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::with_capacity(parts.iter().map(|p| p.len() + 4).sum());
    for p in parts {
        out.extend_from_slice(&u32::try_from(p.len()).unwrap_or(u32::MAX).to_be_bytes());
        out.extend_from_slice(p);
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The key and nonce of the RFC 8452 Appendix C.2 vectors used here.
    fn rfc8452_key_and_nonce() -> (SecretKey, [u8; 12]) {
        let key = SecretKey::from_slice(
            &hex::decode("0100000000000000000000000000000000000000000000000000000000000000")
                .unwrap(),
        )
        .unwrap();
        let nonce = hex::decode("030000000000000000000000")
            .unwrap()
            .try_into()
            .unwrap();
        (key, nonce)
    }

    /// RFC 8452, Appendix C.2 (AEAD_AES_256_GCM_SIV), the first vector with 8-byte plaintext.
    #[test]
    fn rfc8452_known_answer() {
        let (key, nonce) = rfc8452_key_and_nonce();
        let pt = hex::decode("0100000000000000").unwrap();
        let sealed = seal_with_nonce(&key, &nonce, &pt, b"");
        assert_eq!(
            hex::encode(&sealed[NONCE_LEN..]),
            "c2ef328e5c71c83b843122130f7364b761e0b97427e3df28"
        );
        assert_eq!(open(&key, &sealed, b"").unwrap(), pt);
    }

    /// RFC 8452, Appendix C.2, a vector with associated data.
    #[test]
    fn rfc8452_known_answer_with_aad() {
        let (key, nonce) = rfc8452_key_and_nonce();
        let pt = hex::decode("0200000000000000").unwrap();
        let aad = hex::decode("01").unwrap();
        let sealed = seal_with_nonce(&key, &nonce, &pt, &aad);
        assert_eq!(
            hex::encode(&sealed[NONCE_LEN..]),
            "1de22967237a813291213f267e3b452f02d01ae33e4ec854"
        );
    }

    /// RFC 5869, test case 1 (HKDF-SHA256), first 32 bytes of OKM.
    #[test]
    fn hkdf_known_answer() {
        let ikm = hex::decode("0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b").unwrap();
        let salt = hex::decode("000102030405060708090a0b0c").unwrap();
        let info = hex::decode("f0f1f2f3f4f5f6f7f8f9").unwrap();
        let okm = derive(&ikm, &salt, &info);
        assert_eq!(
            hex::encode(okm.expose()),
            "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf"
        );
    }

    /// RFC 4231, test case 2 (HMAC-SHA256). The 4-byte key "Jefe" padded with zeros to 32 bytes
    /// is the same HMAC key, because HMAC pads short keys with zeros itself.
    #[test]
    fn hmac_known_answer() {
        let mut k = [0u8; 32];
        k[..4].copy_from_slice(b"Jefe");
        let tag = mac(&SecretKey::from_bytes(k), b"what do ya want for nothing?");
        assert_eq!(
            hex::encode(tag),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn hmac_verifies_in_constant_time_api() {
        let key = SecretKey::random();
        let tag = mac(&key, b"data");
        assert!(verify_mac(&key, b"data", &tag));
        assert!(!verify_mac(&key, b"datb", &tag));
        assert!(!verify_mac(&key, b"data", &tag[..31]));
    }

    #[test]
    fn debug_never_prints_key_bytes() {
        let key = SecretKey::from_bytes([0xAB; 32]);
        assert_eq!(format!("{key:?}"), "SecretKey(<redacted>)");
    }

    #[test]
    fn aad_is_unambiguous() {
        assert_ne!(aad(&[b"ab", b"c"]), aad(&[b"a", b"bc"]));
    }

    #[test]
    fn short_input_is_the_same_opaque_error() {
        let key = SecretKey::random();
        assert_eq!(open(&key, b"short", b""), Err(CryptoError::Opaque));
    }

    proptest! {
        #[test]
        fn round_trip(pt in proptest::collection::vec(any::<u8>(), 0..512), ad in proptest::collection::vec(any::<u8>(), 0..64)) {
            let key = SecretKey::random();
            let sealed = seal(&key, &pt, &ad);
            prop_assert_eq!(sealed.len(), pt.len() + SEAL_OVERHEAD);
            prop_assert_eq!(open(&key, &sealed, &ad).unwrap(), pt);
        }

        #[test]
        fn any_flipped_bit_is_the_same_error(pt in proptest::collection::vec(any::<u8>(), 0..128), bit in any::<usize>()) {
            let key = SecretKey::random();
            let mut sealed = seal(&key, &pt, b"aad");
            let bit = bit % (sealed.len() * 8);
            sealed[bit / 8] ^= 1 << (bit % 8);
            prop_assert_eq!(open(&key, &sealed, b"aad"), Err(CryptoError::Opaque));
        }

        #[test]
        fn wrong_aad_or_key_is_an_error(pt in proptest::collection::vec(any::<u8>(), 0..128), ad in proptest::collection::vec(any::<u8>(), 1..32)) {
            let key = SecretKey::random();
            let sealed = seal(&key, &pt, &ad);
            let mut other = ad.clone();
            other[0] ^= 1;
            prop_assert_eq!(open(&key, &sealed, &other), Err(CryptoError::Opaque));
            prop_assert_eq!(open(&SecretKey::random(), &sealed, &ad), Err(CryptoError::Opaque));
        }
    }
}
