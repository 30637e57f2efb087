//! Region root keys in a PKCS#11 token (ADR 0023), on SoftHSM2: made in the token, sensitive and
//! never extractable; every wrap and unwrap happens inside it; a vault over the token keeps its
//! keys across a new login; a destroyed root key opens nothing of its region, and only of it.

use sealpost_adapters::crypto::SecretKey;
use sealpost_adapters::store::Stores;
use sealpost_adapters::vault::{RootCustody, RootKeys, TokenRoots, Vault};
use sealpost_domain::{Region, Timestamp};
use sealpost_testkit::hsm::test_token;

const B: &str = "100000000000001";
const NOW: Timestamp = Timestamp::from_millis(1_772_323_200_000);

#[test]
fn root_keys_are_made_in_the_token_and_wrap_inside_it() {
    let Some(config) = test_token("wrap") else {
        return;
    };
    let roots = TokenRoots::open(config).expect("login");
    assert_eq!(
        roots.never_leaves(Region::De).expect("ask"),
        None,
        "none yet"
    );
    let sealed = roots
        .seal(Region::De, b"a ledger key", b"aad-1")
        .expect("seal");
    assert!(
        !sealed.windows(12).any(|w| w == b"a ledger key"),
        "sealed, not copied"
    );
    assert_eq!(
        roots.never_leaves(Region::De).expect("ask"),
        Some(true),
        "made sensitive and never extractable"
    );
    assert_eq!(
        roots
            .open(Region::De, &sealed, b"aad-1")
            .expect("open")
            .as_slice(),
        b"a ledger key"
    );
    assert!(
        roots.open(Region::De, &sealed, b"aad-2").is_err(),
        "bound to its associated data"
    );
    let mut changed = sealed.clone();
    *changed.last_mut().expect("a tag") ^= 1;
    assert!(
        roots.open(Region::De, &changed, b"aad-1").is_err(),
        "a changed byte"
    );
    assert!(
        roots.open(Region::In, &sealed, b"aad-1").is_err(),
        "another region's key opens nothing of DE's"
    );
    assert!(roots.describe().starts_with("PKCS#11 token"));
}

#[tokio::test]
async fn a_vault_over_the_token_keeps_its_keys_across_a_new_login() {
    let Some(config) = test_token("vault") else {
        return;
    };
    let dir = tempfile::tempdir().expect("dir");
    let stores = Stores::sqlite(dir.path()).await.expect("sqlite");
    let first = Vault::new(
        stores.keys.clone(),
        TokenRoots::open(config.clone()).expect("login"),
    );
    let (version, key) = first.ledger_key(B, Region::Eu, NOW).await.expect("made");
    drop(first);
    let again = Vault::new(
        stores.keys.clone(),
        TokenRoots::open(config).expect("login"),
    );
    let (same_version, same) = again
        .ledger_key(B, Region::Eu, NOW)
        .await
        .expect("unwrapped in the token");
    assert_eq!(version, same_version);
    assert!(*key == *same, "the same key, unwrapped again");
    // The wrapped key is no key file's: a vault with a root key in memory cannot open it.
    let memory = Vault::new(
        stores.keys.clone(),
        RootKeys::fixed([(Region::Eu, SecretKey::random())]),
    );
    assert!(memory.ledger_key(B, Region::Eu, NOW).await.is_err());
    assert!(
        !dir.path().join("root-keys").exists(),
        "no root key file anywhere"
    );
}

#[test]
fn a_destroyed_root_key_opens_nothing_of_its_region_and_only_of_it() {
    let Some(config) = test_token("destroy") else {
        return;
    };
    let roots = TokenRoots::open(config.clone()).expect("login");
    let de = roots.seal(Region::De, b"de", b"a").expect("seal");
    let india = roots.seal(Region::In, b"in", b"a").expect("seal");
    assert!(roots.destroy(Region::De).expect("destroy"));
    assert!(roots.open(Region::De, &de, b"a").is_err(), "DE is gone");
    assert_eq!(
        roots.open(Region::In, &india, b"a").expect("IN").as_slice(),
        b"in"
    );
    // A new login finds no DE key either (the token forgot it, not only this process).
    let fresh = TokenRoots::open(config).expect("login");
    assert!(fresh.open(Region::De, &de, b"a").is_err());
    assert_eq!(fresh.never_leaves(Region::De).expect("ask"), None);
    assert!(!fresh.destroy(Region::De).expect("nothing to destroy"));
}
