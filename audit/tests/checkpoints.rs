//! Checkpoints as C2SP signed notes (ADR 0022): what verifies and what does not.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use ed25519_dalek::{Signer as _, SigningKey};
use sealpost_audit::log::{Checkpoint, CheckpointError};
use sealpost_audit::note::signed_note;

/// A checkpoint signed over its note body verifies with its note, without it, and not with
/// another note; one signed before notes verifies over the earlier text, and only without
/// a note.
#[test]
fn checkpoints_verify_with_their_note_or_over_the_earlier_text() {
    let signing = SigningKey::from_bytes(&[3; 32]);
    let key = signing.verifying_key();
    let (origin, size, root, at) = ("sealpost/audit/v1", 42, [9u8; 32], 1_700_000_000_000);
    let body = Checkpoint::body(origin, size, &root, at);
    assert_eq!(
        body,
        format!("{origin}\n42\n{}\nsigned_at {at}\n", STANDARD.encode(root))
    );
    let of = |signed: &str, note: String| Checkpoint {
        origin: origin.to_owned(),
        size,
        root: hex::encode(root),
        signed_at: at,
        public_key: hex::encode(key.as_bytes()),
        signature: hex::encode(signing.sign(signed.as_bytes()).to_bytes()),
        note,
    };
    let signature = signing.sign(body.as_bytes());
    let note = signed_note(&body, origin, &key, &signature);
    assert_eq!(of(&body, note.clone()).verify(Some(&key)), Ok(()));
    assert_eq!(of(&body, String::new()).verify(Some(&key)), Ok(()));
    let other = note.replace("\n42\n", "\n43\n");
    assert_eq!(
        of(&body, other).verify(Some(&key)),
        Err(CheckpointError::Malformed("note"))
    );
    let earlier = format!("{origin}\n42\n{}\n{at}\n", hex::encode(root));
    assert_eq!(of(&earlier, String::new()).verify(Some(&key)), Ok(()));
    assert_eq!(
        of(&earlier, note).verify(Some(&key)),
        Err(CheckpointError::BadSignature)
    );
}
