//! The key hierarchy on a real key store: root keys from files (0600) or the environment,
//! field sealing under message and subject keys, shredding, the erasure fence for keys, and
//! ledger-key rotation.

use sealpost_adapters::crypto::SecretKey;
use sealpost_adapters::store::{KeyKind, KeyState, OfBusiness, Stores};
use sealpost_adapters::vault::{epoch_key_id, subject_key_id, RootKeys, Vault, VaultError};
use sealpost_domain::{EpochId, FieldScope, MessageId, Opened, Region, SubjectId, Timestamp, E164};
use std::sync::Arc;

const B: &str = "100000000000001";

async fn vault(dir: &std::path::Path) -> (Arc<Vault>, Stores) {
    let stores = Stores::sqlite(dir).await.expect("sqlite");
    let roots = RootKeys::fixed([(Region::Eu, SecretKey::random())]);
    (Arc::new(Vault::new(stores.keys.clone(), roots)), stores)
}

#[test]
fn root_key_files_are_private_and_stable() {
    let dir = tempfile::tempdir().expect("dir");
    let keys_dir = dir.path().join("root-keys");
    let first = RootKeys::from_dir_or_env(Some(&keys_dir))
        .get(Region::Jp, 1, true)
        .expect("created");
    let path = keys_dir.join("JP.key");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&path).expect("file").permissions().mode() & 0o777;
        assert_eq!(
            mode, 0o600,
            "root key files are readable by their owner only"
        );
    }
    let again = RootKeys::from_dir_or_env(Some(&keys_dir))
        .get(Region::Jp, 1, false)
        .expect("loaded");
    assert!(*first == *again, "the same key is read back");
    std::fs::write(&path, "not base64!").expect("write");
    let bad = RootKeys::from_dir_or_env(Some(&keys_dir)).get(Region::Jp, 1, false);
    assert!(matches!(bad, Err(VaultError::RootKey(Region::Jp, _))));
    assert!(matches!(
        RootKeys::from_dir_or_env(None).get(Region::Za, 1, true),
        Err(VaultError::RootKey(..))
    ));
}

#[tokio::test]
async fn fields_open_until_either_key_is_destroyed() {
    let dir = tempfile::tempdir().expect("dir");
    let (vault, stores) = vault(dir.path()).await;
    let now = Timestamp::from_millis(1_000);
    let s1 = SubjectId::from_random([1; 16]);
    let s2 = SubjectId::from_random([2; 16]);
    for s in [&s1, &s2] {
        vault
            .create_subject_key(B, Region::Eu, s, now)
            .await
            .expect("subject key");
    }
    let m = |s: &SubjectId, e: i64, id: u8| FieldScope::Message {
        epoch: EpochId::new(e),
        subject: s.clone(),
        message: MessageId::from_random([id; 18]),
    };
    let (a, b, c) = (m(&s1, 7, 1), m(&s1, 8, 2), m(&s2, 7, 3));
    let mut sealed = Vec::new();
    for scope in [&a, &b, &c] {
        sealed.push(
            vault
                .seal_field(B, Region::Eu, scope, "content", b"hello", now)
                .await
                .expect("seal"),
        );
    }
    let open = |scope: FieldScope, i: usize| {
        let vault = vault.clone();
        let sealed = sealed[i].clone();
        async move {
            vault
                .open_field(B, Region::Eu, &scope, "content", &sealed)
                .await
                .expect("open")
        }
    };
    assert_eq!(open(a.clone(), 0).await, Opened::Plain(b"hello".to_vec()));
    // The field name and the message id are bound in: another field name does not open.
    assert!(vault
        .open_field(B, Region::Eu, &a, "caption", &sealed[0])
        .await
        .is_err());

    // Destroying epoch 7 shreds a and c (both subjects), not b.
    vault
        .destroy_epoch_keys(
            vec![OfBusiness::new(
                B,
                epoch_key_id(B, Region::Eu, EpochId::new(7)),
            )],
            now,
        )
        .await
        .expect("destroy");
    assert_eq!(open(a.clone(), 0).await, Opened::Shredded);
    assert_eq!(open(c.clone(), 2).await, Opened::Shredded);
    assert_eq!(open(b.clone(), 1).await, Opened::Plain(b"hello".to_vec()));
    // Destroying subject 1 shreds b too.
    vault
        .destroy_subject(B, Region::Eu, &s1, now)
        .await
        .expect("destroy");
    assert_eq!(open(b.clone(), 1).await, Opened::Shredded);
    // Nothing is ever written under a destroyed key again, and destroyed keys are not remade.
    assert!(matches!(
        vault
            .seal_field(B, Region::Eu, &a, "content", b"x", now)
            .await,
        Err(VaultError::KeyDestroyed)
    ));
    assert!(matches!(
        vault
            .seal_field(B, Region::Eu, &b, "content", b"x", now)
            .await,
        Err(VaultError::KeyDestroyed)
    ));
    assert_eq!(
        stores
            .keys
            .get(B, &subject_key_id(B, Region::Eu, &s1))
            .await
            .expect("get"),
        KeyState::Destroyed
    );
    // Message keys are derived, never stored: only the four stored kinds exist.
    for kind in [
        KeyKind::Ledger,
        KeyKind::Epoch,
        KeyKind::Subject,
        KeyKind::Index,
    ] {
        assert_eq!(KeyKind::parse(kind.as_str()).expect("kind"), kind);
    }
    assert!(KeyKind::parse("message").is_err());
}

#[tokio::test]
async fn the_blind_index_routes_a_number_to_one_subject_until_it_is_destroyed() {
    let dir = tempfile::tempdir().expect("dir");
    let (vault, _stores) = vault(dir.path()).await;
    let now = Timestamp::from_millis(1);
    let phone = E164::parse("+4915112345678").expect("phone");
    let s1 = SubjectId::from_random([1; 16]);
    let s2 = SubjectId::from_random([2; 16]);
    assert_eq!(
        vault
            .find_subject(B, Region::Eu, &phone, now)
            .await
            .expect("find"),
        None
    );
    assert_eq!(
        vault
            .route_subject(B, Region::Eu, &phone, &s1, now)
            .await
            .expect("route"),
        s1
    );
    assert_eq!(
        vault
            .route_subject(B, Region::Eu, &phone, &s2, now)
            .await
            .expect("route"),
        s1,
        "first route wins"
    );
    // Another business's index key gives another blind value: no cross-tenant linkage.
    let other = vault
        .blind_index("100000000000002", Region::Eu, &phone, now)
        .await
        .expect("blind");
    assert_ne!(
        other,
        vault
            .blind_index(B, Region::Eu, &phone, now)
            .await
            .expect("blind")
    );
    vault
        .create_subject_key(B, Region::Eu, &s1, now)
        .await
        .expect("key");
    vault
        .destroy_subject(B, Region::Eu, &s1, now)
        .await
        .expect("destroy");
    assert_eq!(
        vault
            .find_subject(B, Region::Eu, &phone, now)
            .await
            .expect("find"),
        None,
        "the route goes with the subject"
    );
}

#[tokio::test]
async fn rotated_ledger_keys_seal_new_events_and_still_open_old_ones() {
    let dir = tempfile::tempdir().expect("dir");
    let (vault, _stores) = vault(dir.path()).await;
    let now = Timestamp::from_millis(1);
    let (v1, k1) = vault.ledger_key(B, Region::Eu, now).await.expect("v1");
    assert_eq!(v1, 1);
    assert_eq!(
        vault
            .rotate_ledger_key(B, Region::Eu, now)
            .await
            .expect("rotate"),
        2
    );
    let (v2, k2) = vault.ledger_key(B, Region::Eu, now).await.expect("v2");
    assert_eq!(v2, 2);
    assert!(*k1 != *k2);
    let old = vault
        .ledger_key_version(B, Region::Eu, 1, None)
        .await
        .expect("old version");
    assert!(*old == *k1);
}

#[tokio::test]
async fn signal_state_is_wrapped_or_sealed_and_erased_with_the_subject() {
    let dir = tempfile::tempdir().expect("dir");
    let (vault, _stores) = vault(dir.path()).await;
    let now = Timestamp::from_millis(1);
    let account = b"SIGNAL-ACCOUNT-CANARY-identity-and-prekeys".to_vec();
    vault
        .save_signal_account("106540352242922", B, Region::Eu, &account, now)
        .await
        .expect("save");
    let back = vault
        .load_signal_account("106540352242922", B, Region::Eu)
        .await
        .expect("load")
        .expect("present");
    assert_eq!(back.as_slice(), account.as_slice());

    let s = SubjectId::from_random([9; 16]);
    let session = b"SIGNAL-SESSION-CANARY-ratchet-state".to_vec();
    assert!(
        matches!(
            vault
                .save_session(B, Region::Eu, &s, 1, &session, now)
                .await,
            Err(VaultError::KeyDestroyed)
        ),
        "no subject key, no session"
    );
    vault
        .create_subject_key(B, Region::Eu, &s, now)
        .await
        .expect("key");
    assert!(matches!(
        vault
            .load_session(B, Region::Eu, &s, 1)
            .await
            .expect("load"),
        Opened::Plain(None)
    ));
    vault
        .save_session(B, Region::Eu, &s, 1, &session, now)
        .await
        .expect("save");
    match vault
        .load_session(B, Region::Eu, &s, 1)
        .await
        .expect("load")
    {
        Opened::Plain(Some(bytes)) => assert_eq!(bytes.as_slice(), session.as_slice()),
        other => panic!("expected the session, got {other:?}"),
    }
    let needles = vec![account.clone(), session.clone()];
    assert_eq!(
        sealpost_adapters::scan::scan_dir(dir.path(), &needles).expect("scan"),
        vec![],
        "stored wrapped or sealed"
    );

    vault
        .destroy_subject(B, Region::Eu, &s, now)
        .await
        .expect("erase");
    assert!(
        vault
            .load_session(B, Region::Eu, &s, 1)
            .await
            .expect("load")
            .is_shredded(),
        "erasure destroys the session"
    );
}

#[tokio::test]
async fn media_opens_until_it_is_deleted_or_its_epoch_expires() {
    let dir = tempfile::tempdir().expect("dir");
    let (vault, _stores) = vault(dir.path()).await;
    let now = Timestamp::from_millis(1_000);
    let scope = |media: u64, epoch: i64| FieldScope::Media {
        epoch: EpochId::new(epoch),
        media: sealpost_domain::MediaId::from_random(media),
        subject: None,
    };
    let (deleted, expiring, other) = (scope(1, 7), scope(2, 8), scope(3, 7));
    let mut sealed = Vec::new();
    for s in [&deleted, &expiring, &other] {
        let bytes = vault
            .seal_field(B, Region::Eu, s, "media-bytes", b"picture", now)
            .await
            .expect("sealed");
        assert_eq!(
            vault
                .open_field(B, Region::Eu, s, "media-bytes", &bytes)
                .await
                .expect("open"),
            Opened::Plain(b"picture".to_vec())
        );
        // Bound to its field name: the description's key does not open the bytes.
        assert!(vault
            .open_field(B, Region::Eu, s, "media-meta", &bytes)
            .await
            .is_err());
        sealed.push(bytes);
    }
    // Deleting one object destroys its own key only.
    vault
        .destroy_media(
            B,
            Region::Eu,
            &sealpost_domain::MediaId::from_random(1),
            now,
        )
        .await
        .expect("destroyed");
    // Retention destroys the epoch of another.
    vault
        .destroy_epoch_keys(
            vec![OfBusiness::new(
                B,
                epoch_key_id(B, Region::Eu, EpochId::new(8)),
            )],
            now,
        )
        .await
        .expect("destroyed");
    let opened = |i: usize, s: FieldScope| {
        let vault = vault.clone();
        let sealed = sealed[i].clone();
        async move {
            vault
                .open_field(B, Region::Eu, &s, "media-bytes", &sealed)
                .await
                .expect("open")
        }
    };
    assert!(opened(0, deleted.clone()).await.is_shredded(), "deleted");
    assert!(opened(1, expiring.clone()).await.is_shredded(), "expired");
    assert_eq!(opened(2, other).await, Opened::Plain(b"picture".to_vec()));
    // Nothing is ever sealed again under a destroyed key.
    assert!(matches!(
        vault
            .seal_field(B, Region::Eu, &deleted, "media-bytes", b"again", now)
            .await,
        Err(VaultError::KeyDestroyed)
    ));
    // A consumer's attachment is sealed under their subject key too: erasing them shreds it.
    let consumer = SubjectId::from_random([9; 16]);
    vault
        .create_subject_key(B, Region::Eu, &consumer, now)
        .await
        .expect("subject key");
    let attachment = FieldScope::Media {
        epoch: EpochId::new(7),
        media: sealpost_domain::MediaId::from_random(4),
        subject: Some(consumer.clone()),
    };
    let photo = vault
        .seal_field(B, Region::Eu, &attachment, "media-bytes", b"photo", now)
        .await
        .expect("sealed");
    let without_subject = FieldScope::Media {
        epoch: EpochId::new(7),
        media: sealpost_domain::MediaId::from_random(4),
        subject: None,
    };
    assert!(
        vault
            .open_field(B, Region::Eu, &without_subject, "media-bytes", &photo)
            .await
            .is_err(),
        "the epoch and media keys alone do not open it"
    );
    vault
        .destroy_subject(B, Region::Eu, &consumer, now)
        .await
        .expect("erased");
    assert!(vault
        .open_field(B, Region::Eu, &attachment, "media-bytes", &photo)
        .await
        .expect("open")
        .is_shredded());
}

/// A destruction is final at once (nothing opens the key) and its bytes leave the key store's
/// files at the next scrub, which only runs when a destruction (or a start) left some.
#[tokio::test]
async fn a_destroyed_keys_bytes_leave_the_files_at_the_next_scrub() {
    let dir = tempfile::tempdir().expect("dir");
    let (vault, stores) = vault(dir.path()).await;
    let now = Timestamp::from_millis(1);
    assert!(vault.scrub().await.expect("scrub"), "a start owes a scrub");
    assert!(
        !vault.scrub().await.expect("scrub"),
        "nothing destroyed since"
    );
    let subject = SubjectId::from_random([3; 16]);
    vault
        .create_subject_key(B, Region::Eu, &subject, now)
        .await
        .expect("key");
    let id = subject_key_id(B, Region::Eu, &subject);
    let KeyState::Live(key) = stores.keys.get(B, &id).await.expect("get") else {
        panic!("the key is live");
    };
    let on_disk = || {
        ["keys.db", "keys.db-wal"].iter().any(|f| {
            std::fs::read(dir.path().join(f)).is_ok_and(|bytes| {
                bytes
                    .windows(key.wrapped.len())
                    .any(|w| w == key.wrapped.as_slice())
            })
        })
    };
    assert!(on_disk(), "the wrapped key is in the files while it lives");
    vault
        .destroy_subject(B, Region::Eu, &subject, now)
        .await
        .expect("destroy");
    assert!(matches!(
        stores.keys.get(B, &id).await.expect("get"),
        KeyState::Destroyed
    ));
    assert!(
        vault.scrub().await.expect("scrub"),
        "the destruction owes one"
    );
    assert!(
        !on_disk(),
        "no byte of the destroyed key is left in keys.db or its WAL"
    );
    drop(stores);
}
