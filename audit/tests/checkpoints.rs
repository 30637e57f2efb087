//! Checkpoints as C2SP signed notes (ADR 0022): what verifies and what does not; and the
//! signing key handing the log over (ADR 0026).

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use ed25519_dalek::{Signer as _, SigningKey, VerifyingKey};
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
        ..Checkpoint::default()
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

/// A store whose newest checkpoint was signed before notes: the next checkpoint of the same
/// tree is signed as a note and replaces it in the store, so a reopened log (and the export
/// bundle, which reads the store) has the note without signing again.
#[tokio::test]
async fn a_checkpoint_signed_before_notes_is_signed_again_and_stored() {
    use sealpost_adapters::crypto::SecretKey;
    use sealpost_adapters::store::{CheckpointRow, Stores};
    use sealpost_adapters::vault::{RootKeys, Vault};
    use sealpost_audit::log::{stored_checkpoints, AuditLog};
    use sealpost_domain::{Region, Timestamp};
    let dir = tempfile::tempdir().expect("dir");
    let stores = Stores::sqlite(dir.path()).await.expect("sqlite");
    let vault = std::sync::Arc::new(Vault::new(
        stores.keys.clone(),
        RootKeys::fixed([(Region::Eu, SecretKey::random())]),
    ));
    let now = Timestamp::from_millis(1_772_323_200_000);
    let origin = "sealpost/audit/v1";
    let seed = vault
        .audit_signing_seed(Region::Eu, now)
        .await
        .expect("seed");
    let signing = SigningKey::from_bytes(&seed);
    let root = sealpost_audit::merkle::EMPTY_ROOT;
    let earlier = format!("{origin}\n0\n{}\n{}\n", hex::encode(root), now.millis());
    stores
        .events
        .audit_put_checkpoint(&CheckpointRow {
            size: 0,
            root: root.to_vec(),
            signed_at: now.millis(),
            origin: origin.to_owned(),
            public_key: signing.verifying_key().as_bytes().to_vec(),
            signature: signing.sign(earlier.as_bytes()).to_bytes().to_vec(),
            handover: None,
        })
        .await
        .expect("an old checkpoint");
    let before = stored_checkpoints(stores.events.as_ref())
        .await
        .expect("stored");
    assert_eq!(before.len(), 1);
    assert!(before[0].note.is_empty(), "signed before notes");
    assert_eq!(before[0].verify(Some(&signing.verifying_key())), Ok(()));

    let log = AuditLog::open(stores.events.clone(), &vault, origin, None, now)
        .await
        .expect("open");
    let later = Timestamp::from_millis(now.millis() + 1_000);
    let signed = log.checkpoint(later).await.expect("checkpoint");
    assert!(!signed.note.is_empty(), "signed again as a note");
    assert_eq!(signed.verify(Some(&signing.verifying_key())), Ok(()));
    let after = stored_checkpoints(stores.events.as_ref())
        .await
        .expect("stored");
    assert_eq!(after, vec![signed.clone()], "it replaced the old one");
    let reopened = AuditLog::open(stores.events.clone(), &vault, origin, None, later)
        .await
        .expect("open");
    assert_eq!(
        reopened.checkpoint(later).await.expect("checkpoint"),
        signed,
        "not signed a third time"
    );
}

/// The signing key hands the log over (ADR 0026): the hand-over checkpoint is signed by the old
/// and the new key, and `verify` follows the chain from either end; a forged hand-over, an
/// unrelated key and the old key signing after the hand-over (past its grace) are refused.
#[tokio::test]
async fn the_signing_key_hands_over_and_verify_follows_the_chain() {
    use sealpost_adapters::crypto::SecretKey;
    use sealpost_adapters::store::Stores;
    use sealpost_adapters::vault::{RootKeys, Vault};
    use sealpost_audit::log::AuditLog;
    use sealpost_audit::verify::{verify_store, HANDOVER_GRACE_MS};
    use sealpost_domain::{Region, Timestamp};
    let dir = tempfile::tempdir().expect("dir");
    let stores = Stores::sqlite(dir.path()).await.expect("sqlite");
    let vault = std::sync::Arc::new(Vault::new(
        stores.keys.clone(),
        RootKeys::fixed([(Region::Eu, SecretKey::random())]),
    ));
    let now = Timestamp::from_millis(1_772_323_200_000);
    let origin = "sealpost/audit/v1";
    let log = AuditLog::open(stores.events.clone(), &vault, origin, None, now)
        .await
        .expect("open");
    let first = log.checkpoint(now).await.expect("checkpoint");
    let old = log.public_key();
    assert_eq!(log.key_generation(), 1);
    let (generation, new) = log.make_next_key(now).await.expect("next key");
    assert_eq!(generation, 2);
    assert_eq!(
        log.public_key(),
        old,
        "not signing under it before the hand-over"
    );
    let later = Timestamp::from_millis(now.millis() + 1_000);
    let handover = log.checkpoint(later).await.expect("hand-over");
    assert_eq!((log.key_generation(), log.public_key()), (2, new));
    assert!(handover.is_handover());
    assert_eq!(handover.previous_key, hex::encode(old.as_bytes()));
    assert_eq!(handover.verify(Some(&new)), Ok(()));
    assert_eq!(
        handover.note.matches("\n\u{2014} ").count(),
        2,
        "two signature lines: {}",
        handover.note
    );
    assert!(handover.note.contains("key-handover sealpost/audit/v1+"));
    let again = log.checkpoint(later).await.expect("checkpoint");
    assert_eq!(again, handover, "it covers the tree: not signed again");
    // A log opened again takes up the newest key at once.
    let reopened = AuditLog::open(stores.events.clone(), &vault, origin, None, later)
        .await
        .expect("open");
    assert_eq!(reopened.public_key(), new);

    let verdict = |witness: Vec<Checkpoint>, trusted: Option<VerifyingKey>| {
        let events = stores.events.clone();
        async move {
            verify_store(events.as_ref(), &witness, trusted.as_ref(), &mut |_| {})
                .await
                .expect("verify")
        }
    };
    let published = vec![first.clone(), handover.clone()];
    assert!(
        verdict(published.clone(), Some(old)).await.is_ok(),
        "from the old key"
    );
    assert!(
        verdict(published.clone(), Some(new)).await.is_ok(),
        "from the new key"
    );
    assert!(
        verdict(published.clone(), None).await.is_ok(),
        "from the first checkpoint"
    );
    let stranger = SigningKey::from_bytes(&[9; 32]).verifying_key();
    assert!(!verdict(published.clone(), Some(stranger)).await.is_ok());
    // A hand-over whose old signature is not the old key's links nothing.
    let mut forged = handover.clone();
    forged.previous_signature = hex::encode(
        SigningKey::from_bytes(&[9; 32])
            .sign(b"anything")
            .to_bytes(),
    );
    forged.note.clear();
    assert!(!verdict(vec![first.clone(), forged], Some(old))
        .await
        .is_ok());
    // The old key signing well after it handed over: refused; within the grace: taken.
    let seed = vault
        .audit_seed(Region::Eu, 1, None)
        .await
        .expect("seed")
        .expect("kept");
    let old_signer = SigningKey::from_bytes(&seed);
    let signed_by_old = |at: i64| {
        let root = first.root_hash().expect("root");
        let body = Checkpoint::body(origin, first.size, &root, at);
        Checkpoint {
            signed_at: at,
            signature: hex::encode(old_signer.sign(body.as_bytes()).to_bytes()),
            note: String::new(),
            ..first.clone()
        }
    };
    let late = signed_by_old(handover.signed_at + HANDOVER_GRACE_MS + 1);
    assert!(
        !verdict(vec![first.clone(), handover.clone(), late], Some(old))
            .await
            .is_ok()
    );
    let in_grace = signed_by_old(handover.signed_at + 1);
    assert!(verdict(vec![first, handover, in_grace], Some(old))
        .await
        .is_ok());
}
