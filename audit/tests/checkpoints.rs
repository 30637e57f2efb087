//! Checkpoints as C2SP signed notes (ADR 0022): what verifies and what does not; and the
//! signing key handing the log over (ADR 0026).

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use ed25519_dalek::{Signer as _, SigningKey};
use sealpost_audit::log::{Checkpoint, CheckpointError};
use sealpost_audit::note::signed_note;

/// An embedded store in a temporary directory and a vault over it with EU's root key in memory.
async fn embedded_store() -> (
    tempfile::TempDir,
    sealpost_adapters::store::Stores,
    std::sync::Arc<sealpost_adapters::vault::Vault>,
) {
    use sealpost_adapters::crypto::SecretKey;
    use sealpost_adapters::store::Stores;
    use sealpost_adapters::vault::{RootKeys, Vault};
    use sealpost_domain::Region;
    let dir = tempfile::tempdir().expect("dir");
    let stores = Stores::sqlite(dir.path()).await.expect("sqlite");
    let vault = std::sync::Arc::new(Vault::new(
        stores.keys.clone(),
        RootKeys::fixed([(Region::Eu, SecretKey::random())]),
    ));
    (dir, stores, vault)
}

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
    use sealpost_adapters::store::CheckpointRow;
    use sealpost_audit::log::{stored_checkpoints, AuditLog};
    use sealpost_domain::{Region, Timestamp};
    let (_dir, stores, vault) = embedded_store().await;
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

/// The signing key hands the log over (ADR 0026): the hand-over checkpoint names both keys
/// and is signed by both; a log opened again signs with the new key; a rotation that stopped
/// before its hand-over is handed over by the next checkpoint.
#[tokio::test]
async fn the_signing_key_hands_over_even_after_a_stop() {
    use sealpost_audit::log::AuditLog;
    use sealpost_domain::{Region, Timestamp};
    let (_dir, stores, vault) = embedded_store().await;
    let now = Timestamp::from_millis(1_772_323_200_000);
    let origin = "sealpost/audit/v1";
    let log = AuditLog::open(stores.events.clone(), &vault, origin, None, now)
        .await
        .expect("open");
    log.checkpoint(now).await.expect("checkpoint");
    let old = log.public_key();
    let (generation, new, handover) = log.rotate_key(now).await.expect("rotate");
    assert_eq!(
        (generation, log.key_generation(), log.public_key()),
        (2, 2, new)
    );
    assert!(handover.is_handover());
    assert_eq!(handover.previous_key, hex::encode(old.as_bytes()));
    assert_eq!(handover.verify(Some(&new)), Ok(()));
    assert_eq!(
        handover.note.matches("\n\u{2014} ").count(),
        2,
        "{}",
        handover.note
    );
    let line = format!(
        "key-handover {} {}\n",
        sealpost_audit::note::verifier_key(origin, &old),
        sealpost_audit::note::verifier_key(origin, &new)
    );
    assert!(handover.note.contains(&line), "{}", handover.note);
    assert_eq!(
        log.checkpoint(now).await.expect("again"),
        handover,
        "not signed again"
    );

    // Generation 3 made, and the process stops before its hand-over: the next one to open
    // the log hands over from generation 2 with its first checkpoint.
    let third = vault
        .audit_seed(Region::Eu, 3, Some(now))
        .await
        .expect("seed")
        .expect("made");
    let third = SigningKey::from_bytes(&third).verifying_key();
    let reopened = AuditLog::open(stores.events.clone(), &vault, origin, None, now)
        .await
        .expect("open");
    assert_eq!(reopened.public_key(), third);
    let next = reopened.checkpoint(now).await.expect("checkpoint");
    assert!(next.is_handover(), "{next:?}");
    assert_eq!(next.previous_key, hex::encode(new.as_bytes()));
    assert_eq!(next.verify(Some(&third)), Ok(()));
}

/// `verify` follows hand-overs from either end, and refuses what a hand-over must not allow:
/// a key swapped into a hand-over, a stranger's key, a handed-over key signing a larger tree,
/// and a key handed over twice (a stolen old key naming a successor of its own).
#[test]
fn verify_follows_the_key_chain_and_nothing_else() {
    use sealpost_audit::merkle::Frontier;
    use sealpost_audit::note::handover_line;
    use sealpost_audit::verify::{verify, Evidence, Finding};
    let origin = "sealpost/audit/v1";
    let leaves: Vec<[u8; 32]> = (1..=4u8).map(|i| [i; 32]).collect();
    let rows: Vec<(u64, [u8; 32])> = leaves.iter().zip(1u64..).map(|(h, p)| (p, *h)).collect();
    let key = |b: u8| SigningKey::from_bytes(&[b; 32]);
    let (old, new, stranger) = (key(1), key(2), key(3));
    let sign = |by: &SigningKey, size: u64, from: Option<&SigningKey>| {
        let mut tree = Frontier::new();
        for h in &leaves[..size as usize] {
            tree.push(*h);
        }
        let root = tree.root();
        let at = 1_000 + size as i64;
        let mut body = Checkpoint::body(origin, size, &root, at);
        if let Some(from) = from {
            body.push_str(&handover_line(
                origin,
                &from.verifying_key(),
                &by.verifying_key(),
            ));
        }
        Checkpoint {
            origin: origin.to_owned(),
            size,
            root: hex::encode(root),
            signed_at: at,
            public_key: hex::encode(by.verifying_key().as_bytes()),
            signature: hex::encode(by.sign(body.as_bytes()).to_bytes()),
            previous_key: from
                .map(|f| hex::encode(f.verifying_key().as_bytes()))
                .unwrap_or_default(),
            previous_signature: from
                .map(|f| hex::encode(f.sign(body.as_bytes()).to_bytes()))
                .unwrap_or_default(),
            ..Checkpoint::default()
        }
    };
    let checked = |checkpoints: &[Checkpoint], trusted: Option<&SigningKey>| {
        let trusted = trusted.map(SigningKey::verifying_key);
        verify(&Evidence {
            rows: &rows,
            leaves: &rows,
            checkpoints,
            witness: &[],
            trusted_key: trusted.as_ref(),
        })
    };
    let chain = vec![
        sign(&old, 1, None),
        sign(&old, 2, None),
        sign(&new, 2, Some(&old)),
        sign(&new, 3, None),
    ];
    for trusted in [Some(&old), Some(&new), None] {
        let verdict = checked(&chain, trusted);
        assert!(verdict.is_ok(), "{:?}", verdict.findings);
        assert_eq!(verdict.checkpoints, 3);
    }
    assert!(!checked(&chain, Some(&stranger)).is_ok());
    let bad = |verdict: sealpost_audit::verify::Verdict, size: u64, why: &str| {
        assert!(
            verdict.findings.iter().any(|f| matches!(
                f,
                Finding::BadCheckpoint { size: s, reason } if *s == size && reason.contains(why)
            )),
            "{:?}",
            verdict.findings
        );
    };
    // The stranger swapped into the real hand-over: the new key's signature names the old key.
    let mut swapped = sign(&new, 2, Some(&old));
    swapped.previous_key = hex::encode(stranger.verifying_key().as_bytes());
    swapped.note.clear();
    let mut with = chain.clone();
    with.extend([swapped, sign(&stranger, 1, None)]);
    bad(checked(&with, Some(&new)), 1, "untrusted");
    // The old key signing a larger tree than the one it handed over at.
    let mut with = chain.clone();
    with.push(sign(&old, 4, None));
    bad(checked(&with, Some(&old)), 4, "handed the log over");
    // A stolen old key hands over to a key of its own: a fork, and nothing it signs counts.
    let mut with = chain.clone();
    with.extend([sign(&stranger, 3, Some(&old)), sign(&stranger, 4, None)]);
    let verdict = checked(&with, Some(&old));
    bad(verdict, 3, "handed the log over twice");
}
