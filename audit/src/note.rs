//! Checkpoints in the formats transparency-log tools read: a C2SP `tlog-checkpoint` body
//! signed as a C2SP `signed-note` with an Ed25519 note key, and the verifier key in the note
//! format (ADR 0022).
//!
//! * The body: the origin, the tree size in decimal and the root hash in standard base64, one
//!   per line, then one extension line `signed_at <ms>` (tools ignore extension lines).
//! * The note: the body, an empty line, and one signature line per key,
//!   `— <name> <base64(key id ‖ signature)>`, where the key's name is the log's origin and its
//!   id the first four bytes of `SHA-256(name ‖ "\n" ‖ 0x01 ‖ public key)`.
//! * The verifier key: `<name>+<key id, 8 hex digits>+<base64(0x01 ‖ public key)>`.
//!
//! Only rendering lives here: a checkpoint is verified from its fields
//! ([`crate::log::Checkpoint::verify`]), and the tests check these notes with an independent
//! implementation of the formats and against the reference implementation's vectors.

use crate::merkle::Hash;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use ed25519_dalek::{Signature, VerifyingKey};
use sha2::{Digest, Sha256};

/// The signature type byte of an Ed25519 note key.
pub const ED25519: u8 = 0x01;

/// The em dash and space that open a signature line.
const SIGNATURE_LINE: &str = "\u{2014} ";

/// The `tlog-checkpoint` body of a tree of `size` leaves with root `root`, signed at
/// `signed_at` (ms since the Unix epoch).
pub fn checkpoint_body(origin: &str, size: u64, root: &Hash, signed_at: i64) -> String {
    format!(
        "{origin}\n{size}\n{}\nsigned_at {signed_at}\n",
        STANDARD.encode(root)
    )
}

/// Whether `name` may name a note key: not empty, no whitespace, no `+`.
pub fn is_key_name(name: &str) -> bool {
    !name.is_empty() && !name.chars().any(|c| c.is_whitespace() || c == '+')
}

/// The key id of the Ed25519 note key `key` named `name`.
pub fn key_id(name: &str, key: &VerifyingKey) -> [u8; 4] {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update(b"\n");
    h.update([ED25519]);
    h.update(key.as_bytes());
    let digest = h.finalize();
    [digest[0], digest[1], digest[2], digest[3]]
}

/// The verifier key of `key` named `name`, as note verifiers take it.
pub fn verifier_key(name: &str, key: &VerifyingKey) -> String {
    let mut encoded = vec![ED25519];
    encoded.extend_from_slice(key.as_bytes());
    format!(
        "{name}+{}+{}",
        hex::encode(key_id(name, key)),
        STANDARD.encode(encoded)
    )
}

/// The signed note: `body` (which ends with a newline) with the signature `signature` of
/// `key` named `name` over it.
pub fn signed_note(body: &str, name: &str, key: &VerifyingKey, signature: &Signature) -> String {
    signed_by(body, name, &[(key, signature)])
}

/// The signed note: `body` with one signature line per `(key, signature)`, in order (a key
/// hand-over is signed by the new key and the one it takes over from, ADR 0026).
pub fn signed_by(body: &str, name: &str, signatures: &[(&VerifyingKey, &Signature)]) -> String {
    let mut note = format!("{body}\n");
    for (key, signature) in signatures {
        let mut sig = key_id(name, key).to_vec();
        sig.extend_from_slice(&signature.to_bytes());
        note.push_str(&format!(
            "{SIGNATURE_LINE}{name} {}\n",
            STANDARD.encode(sig)
        ));
    }
    note
}

/// The extension line of a key hand-over: the verifier keys the log is handed over from and
/// to, both under both signatures (so neither can be swapped).
pub fn handover_line(name: &str, from: &VerifyingKey, to: &VerifyingKey) -> String {
    format!(
        "key-handover {} {}\n",
        verifier_key(name, from),
        verifier_key(name, to)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::{Signer as _, SigningKey};

    /// The reference implementation's vectors (Go, `golang.org/x/mod/sumdb/note`,
    /// `TestSign` and `TestNewVerifier`): the same key and text give the same bytes.
    #[test]
    fn notes_match_the_reference_vectors() {
        let skey = "AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
        let seed = STANDARD.decode(skey).expect("base64");
        assert_eq!(seed[0], ED25519);
        let signing = SigningKey::from_bytes(&seed[1..].try_into().expect("32 bytes"));
        let key = signing.verifying_key();
        assert_eq!(
            verifier_key("PeterNeumann", &key),
            "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
        );
        let text = "If you think cryptography is the answer to your problem,\n\
                    then you don't know what your problem is.\n";
        let note = signed_note(text, "PeterNeumann", &key, &signing.sign(text.as_bytes()));
        assert_eq!(
            note,
            "If you think cryptography is the answer to your problem,\n\
             then you don't know what your problem is.\n\
             \n\
             \u{2014} PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
        );
    }

    #[test]
    fn key_names_have_no_space_or_plus() {
        assert!(is_key_name("sealpost/audit/v1/DE"));
        for bad in ["", "a b", "a+b", "a\tb"] {
            assert!(!is_key_name(bad), "{bad:?}");
        }
    }
}
