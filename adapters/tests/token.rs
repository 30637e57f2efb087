//! Region root keys in a PKCS#11 token (ADR 0023), on SoftHSM2: made in the token, sensitive and
//! never extractable; every wrap and unwrap happens inside it; a vault over the token keeps its
//! keys across a new login; a destroyed root key opens nothing of its region, and only of it.

use sealpost_adapters::crypto::SecretKey;
use sealpost_adapters::store::Stores;
use sealpost_adapters::vault::{RootCustody, RootKeys, TokenRoots, Vault, VaultError};
use sealpost_domain::{Region, Timestamp};
use sealpost_testkit::hsm::test_token;

const B: &str = "100000000000001";

/// One test at a time: SoftHSM2's file store fails now and then (`CKR_GENERAL_ERROR`, or a
/// template called inconsistent) when several sessions of one process change token objects at
/// once. `serve` has one session; these tests have several, one or more each.
fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
const NOW: Timestamp = Timestamp::from_millis(1_772_323_200_000);

#[test]
fn root_keys_are_made_in_the_token_and_wrap_inside_it() {
    let Some(config) = test_token("wrap") else {
        return;
    };
    let _serial = one_at_a_time();
    let roots = TokenRoots::open(config).expect("login");
    assert_eq!(
        roots.never_leaves(Region::De, 1).expect("ask"),
        None,
        "none yet"
    );
    let sealed = roots
        .seal(Region::De, 1, b"a ledger key", b"aad-1")
        .expect("seal");
    assert!(
        !sealed.windows(12).any(|w| w == b"a ledger key"),
        "sealed, not copied"
    );
    assert_eq!(
        roots.never_leaves(Region::De, 1).expect("ask"),
        Some(true),
        "made sensitive and never extractable"
    );
    assert_eq!(
        roots
            .open(Region::De, 1, &sealed, b"aad-1")
            .expect("open")
            .as_slice(),
        b"a ledger key"
    );
    let refused = |r: Result<zeroize::Zeroizing<Vec<u8>>, VaultError>| {
        matches!(r, Err(VaultError::Crypto(_)))
    };
    assert!(
        refused(roots.open(Region::De, 1, &sealed, b"aad-2")),
        "bound to its associated data"
    );
    let mut changed = sealed.clone();
    *changed.last_mut().expect("a tag") ^= 1;
    assert!(
        refused(roots.open(Region::De, 1, &changed, b"aad-1")),
        "a changed byte"
    );
    roots
        .seal(Region::In, 1, b"IN's", b"aad-1")
        .expect("IN's key made");
    assert!(
        refused(roots.open(Region::In, 1, &sealed, b"aad-1")),
        "another region's key opens nothing of DE's"
    );
    assert!(roots.describe().starts_with("PKCS#11 token"));
}

#[tokio::test]
#[allow(clippy::await_holding_lock)] // the turn is held for the whole test, on purpose
async fn a_vault_over_the_token_keeps_its_keys_across_a_new_login() {
    let Some(config) = test_token("vault") else {
        return;
    };
    let _serial = one_at_a_time();
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
    let _serial = one_at_a_time();
    let roots = TokenRoots::open(config.clone()).expect("login");
    let de = roots.seal(Region::De, 1, b"de", b"a").expect("seal");
    let india = roots.seal(Region::In, 1, b"in", b"a").expect("seal");
    assert!(roots.destroy(Region::De, 1).expect("destroy"));
    assert!(roots.open(Region::De, 1, &de, b"a").is_err(), "DE is gone");
    assert_eq!(
        roots
            .open(Region::In, 1, &india, b"a")
            .expect("IN")
            .as_slice(),
        b"in"
    );
    // A new login finds no DE key either (the token forgot it, not only this process).
    let fresh = TokenRoots::open(config).expect("login");
    assert!(fresh.open(Region::De, 1, &de, b"a").is_err());
    assert_eq!(fresh.never_leaves(Region::De, 1).expect("ask"), None);
    assert!(!fresh.destroy(Region::De, 1).expect("nothing to destroy"));
}

/// A key label that does not name the region is refused: every region would share one key.
#[test]
fn a_key_label_without_the_region_is_refused() {
    let Some(mut config) = test_token("label") else {
        return;
    };
    let _serial = one_at_a_time();
    config.key_label = "one-key-for-all".into();
    assert!(matches!(
        TokenRoots::open(config),
        Err(VaultError::Custody(m)) if m.contains("{region}")
    ));
}

/// Two processes that made a region's first key at once each left one: what either sealed
/// opens, a new login seals under the lowest id, and a login that knew only one key finds the
/// other when it meets a value sealed under it.
#[test]
fn two_keys_made_at_once_for_a_region_both_stay_readable() {
    use cryptoki::mechanism::Mechanism;
    use cryptoki::session::UserType;
    use cryptoki::types::AuthPin;
    use sealpost_adapters::vault::root_key_template;
    let Some(config) = test_token("twins") else {
        return;
    };
    let _serial = one_at_a_time();
    let first = TokenRoots::open(config.clone()).expect("login");
    let early = first.seal(Region::De, 1, b"early", b"a").expect("seal");
    // The other process's key, with the lowest id there is.
    let context = cryptoki::context::Pkcs11::new(&config.module).expect("module");
    let _ = context.initialize(cryptoki::context::CInitializeArgs::new(
        cryptoki::context::CInitializeFlags::OS_LOCKING_OK,
    ));
    let slot = context
        .get_slots_with_initialized_token()
        .expect("slots")
        .into_iter()
        .find(|s| {
            context
                .get_token_info(*s)
                .is_ok_and(|t| t.label().trim_end() == config.token)
        })
        .expect("the token");
    let session = context.open_rw_session(slot).expect("session");
    let _ = session.login(
        UserType::User,
        Some(&AuthPin::new(config.pin.as_str().into())),
    );
    session
        .generate_key(
            &Mechanism::AesKeyGen,
            &root_key_template(config.label(Region::De).into_bytes(), vec![0; 16]),
        )
        .expect("a twin key");
    let second = TokenRoots::open(config).expect("login");
    let late = second.seal(Region::De, 1, b"late", b"a").expect("seal");
    assert_eq!(
        second
            .open(Region::De, 1, &early, b"a")
            .expect("early")
            .as_slice(),
        b"early"
    );
    assert_eq!(
        first
            .open(Region::De, 1, &late, b"a")
            .expect("late")
            .as_slice(),
        b"late"
    );
    assert_eq!(second.never_leaves(Region::De, 1).expect("ask"), Some(true));
    assert!(second.destroy(Region::De, 1).expect("destroy"));
    assert!(
        first.open(Region::De, 1, &early, b"a").is_err(),
        "both keys destroyed"
    );
    assert!(
        first.open(Region::De, 1, &late, b"a").is_err(),
        "both keys destroyed"
    );
    std::mem::forget(context); // never finalise the process's module
}
