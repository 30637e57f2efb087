//! Region root keys rotate online (issue 15 part 2, ADR 0025), on each key store and each
//! custody (keys given in memory, key files, a PKCS#11 token): a new generation is recorded and
//! new keys are wrapped under it at once; while keys and Signal accounts are being made, every
//! older row is rewrapped, each key opening to the same bytes throughout; the old generation is
//! destroyed only once no row is left under it and the rotation has settled; and afterwards the
//! old generation opens nothing, not even the bytes it wrapped before.

use sealpost_adapters::crypto::SecretKey;
use sealpost_adapters::store::{KeyStore, Stores, UnderRoot};
use sealpost_adapters::vault::{Retirement, RootKeys, Roots, TokenRoots, Vault, ROOT_SETTLE_MS};
use sealpost_domain::{EpochId, Region, SubjectId, Timestamp};
use std::sync::Arc;

#[macro_use]
mod common;
use common::{postgres_fixture, sqlite_fixture, Fixture};

const B: &str = "100000000000001";
const NOW: Timestamp = Timestamp::from_millis(1_772_323_200_000);
/// The region rotated; another region's root key is left alone.
const R: Region = Region::Eu;
const OTHER: Region = Region::Jp;

fn subject(n: u8) -> SubjectId {
    SubjectId::from_random([n; 16])
}

/// Every key and account the test made, as a fresh vault (nothing cached) opens them.
async fn everything(vault: &Vault, subjects: u8, accounts: u8) -> Vec<Vec<u8>> {
    let mut seen = Vec::new();
    for n in 1..=subjects {
        let key = vault
            .subject_key(B, R, &subject(n), None)
            .await
            .expect("opens")
            .expect("exists");
        seen.push(key.expose().to_vec());
    }
    let epoch = vault
        .epoch_key(B, R, EpochId::new(3), None)
        .await
        .expect("opens")
        .expect("exists");
    seen.push(epoch.expose().to_vec());
    let (_, ledger) = vault.ledger_key(B, R, NOW).await.expect("opens");
    seen.push(ledger.expose().to_vec());
    for n in 1..=accounts {
        let account = vault
            .load_signal_account(&format!("pn{n}"), B, R)
            .await
            .expect("opens")
            .expect("exists");
        seen.push(account.to_vec());
    }
    seen
}

/// The whole rotation on `stores` under `roots`; `fresh` opens the custody again, as another
/// process would.
async fn rotate_rewrap_retire(stores: &Stores, roots: Roots, fresh: &dyn Fn() -> Roots) {
    let keys: Arc<dyn KeyStore> = stores.keys.clone();
    let vault = Arc::new(Vault::new(keys.clone(), roots.clone()));
    for n in 1..=20 {
        vault
            .create_subject_key(B, R, &subject(n), NOW)
            .await
            .expect("make");
    }
    vault
        .epoch_key(B, R, EpochId::new(3), Some(NOW))
        .await
        .expect("make");
    for n in 1..=5 {
        vault
            .save_signal_account(&format!("pn{n}"), B, R, &[n; 64], NOW)
            .await
            .expect("save");
    }
    vault
        .create_subject_key(B, OTHER, &subject(99), NOW)
        .await
        .expect("make");
    let before = everything(&vault, 20, 5).await;
    assert_eq!(vault.root_head(R).await.expect("head"), (1, 0));
    let old = keys.under_root(R.code(), 2, 1_000).await.expect("list");
    assert_eq!(old.len(), 20 + 1 + 1 + 5, "every row is under generation 1");

    // Generation 2: recorded, and new keys are wrapped under it at once.
    vault.advance_root(R, 2, NOW).await.expect("rotate");
    assert_eq!(vault.root_head(R).await.expect("head"), (2, NOW.millis()));
    keys.set_root_generation(R.code(), 1, NOW.millis())
        .await
        .expect("an older generation is ignored");
    assert_eq!(vault.root_head(R).await.expect("head").0, 2);
    assert_eq!(
        vault.retire_root(R, 1, NOW).await.expect("ask"),
        Retirement::Settling(NOW.millis() + ROOT_SETTLE_MS),
        "too soon after the rotation"
    );

    // Keys and accounts are made while the rewrap runs; every row ends under generation 2.
    let making = {
        let vault = vault.clone();
        tokio::spawn(async move {
            for n in 21..=40 {
                vault
                    .create_subject_key(B, R, &subject(n), NOW)
                    .await
                    .expect("make during the rewrap");
                let owner = format!("pn{}", (n % 5) + 1);
                vault
                    .save_signal_account(&owner, B, R, &[n; 64], NOW)
                    .await
                    .expect("save during the rewrap");
                tokio::task::yield_now().await;
            }
        })
    };
    let mut heard = 0;
    let rewrapped = vault
        .rewrap_root(R, &mut |n| heard = n)
        .await
        .expect("rewrap");
    making.await.expect("the writer");
    assert!(rewrapped > 0 && heard == rewrapped, "{rewrapped} {heard}");
    // Accounts written meanwhile were wrapped under 2 already; a second pass finds nothing.
    assert_eq!(vault.rewrap_root(R, &mut |_| {}).await.expect("again"), 0);
    assert_eq!(vault.rewrap_pending(R, 10).await.expect("pending"), 0);
    let after_rewrap = Vault::new(keys.clone(), fresh());
    let accounts_now: Vec<Vec<u8>> = {
        let all = everything(&after_rewrap, 40, 5).await;
        all[all.len() - 5..].to_vec()
    };
    let keys_now = everything(&after_rewrap, 20, 0).await;
    assert_eq!(
        keys_now[..],
        before[..before.len() - 5],
        "every key opens to the same bytes after the rewrap"
    );
    for (n, account) in accounts_now.iter().enumerate() {
        assert_eq!(account.len(), 64, "account {n}");
    }

    // Settled: generation 1 is destroyed; generation 2 opens everything, 1 nothing.
    let later = Timestamp::from_millis(NOW.millis() + ROOT_SETTLE_MS);
    assert_eq!(
        vault.retire_root(R, 2, later).await.expect("ask"),
        Retirement::Current
    );
    assert_eq!(
        vault.retire_root(R, 1, later).await.expect("retire"),
        Retirement::Destroyed
    );
    assert_eq!(
        vault.retire_root(R, 1, later).await.expect("again"),
        Retirement::Absent
    );
    let reopened = fresh();
    let after = Vault::new(keys.clone(), reopened.clone());
    assert_eq!(everything(&after, 20, 0).await[..], keys_now[..]);
    assert_eq!(everything(&after, 40, 5).await.len(), 40 + 2 + 5);
    for row in &old {
        let aad = match row.table {
            UnderRoot::Key => sealpost_adapters::vault::wrap_aad(&row.id),
            UnderRoot::Account => continue,
        };
        assert!(
            reopened.open(R, 1, &row.sealed, &aad).is_err(),
            "the destroyed generation opens nothing it wrapped"
        );
    }
    // Another region's root key was not touched.
    assert!(after
        .subject_key(B, OTHER, &subject(99), None)
        .await
        .expect("opens")
        .is_some());
}

/// A failed rewrap would show here: a row that does not open stops it, and is not replaced.
async fn a_row_that_does_not_open_stops_the_rewrap(stores: &Stores, roots: Roots) {
    let keys: Arc<dyn KeyStore> = stores.keys.clone();
    let vault = Vault::new(keys.clone(), roots);
    vault
        .create_subject_key(B, R, &subject(1), NOW)
        .await
        .expect("make");
    let row = keys
        .under_root(R.code(), 2, 10)
        .await
        .expect("list")
        .remove(0);
    let mut flipped = row.sealed.clone();
    *flipped.last_mut().expect("bytes") ^= 1;
    assert!(keys.rewrap(&row, 1, &flipped).await.expect("replace"));
    assert!(
        !keys.rewrap(&row, 1, &row.sealed).await.expect("stale"),
        "a row that changed since it was read is not replaced"
    );
    vault.advance_root(R, 2, NOW).await.expect("rotate");
    assert!(vault.rewrap_root(R, &mut |_| {}).await.is_err());
    assert_eq!(vault.rewrap_pending(R, 10).await.expect("pending"), 1);
}

async fn rotation_with_keys_in_memory(f: &Fixture) {
    let given = || -> Roots {
        RootKeys::fixed([(R, SecretKey::random()), (OTHER, SecretKey::random())]).into()
    };
    let roots = given();
    let same = roots.clone();
    rotate_rewrap_retire(&f.stores, roots, &move || same.clone()).await;
}

async fn a_corrupt_row_stops_the_rewrap(f: &Fixture) {
    a_row_that_does_not_open_stops_the_rewrap(
        &f.stores,
        RootKeys::fixed([(R, SecretKey::random())]).into(),
    )
    .await;
}

on_every_store!(rotation_with_keys_in_memory, a_corrupt_row_stops_the_rewrap);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_files_rotate_and_the_old_file_is_gone() {
    let f = sqlite_fixture("files").await.expect("sqlite");
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().to_path_buf();
    let files = move || -> Roots { RootKeys::from_dir_or_env(Some(&path)).into() };
    rotate_rewrap_retire(&f.stores, files(), &files).await;
    assert!(!dir.path().join("EU.key").exists(), "generation 1's file");
    assert!(dir.path().join("EU.2.key").exists(), "generation 2's file");
    assert!(dir.path().join("JP.key").exists(), "another region's file");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_root_key_in_the_token_rotates() {
    let Some(config) = sealpost_testkit::hsm::test_token("rotate") else {
        return;
    };
    let f = postgres_fixture("token_rotation")
        .await
        .or(sqlite_fixture("token_rotation").await)
        .expect("a store");
    let same = config.clone();
    let open = move || -> Roots { TokenRoots::open(same.clone()).expect("login").into() };
    rotate_rewrap_retire(&f.stores, open(), &open).await;
    let token = TokenRoots::open(config).expect("login");
    assert_eq!(
        token.never_leaves(R, 2).expect("ask"),
        Some(true),
        "the new generation is made like the first"
    );
    assert_eq!(
        token.never_leaves(R, 1).expect("ask"),
        None,
        "generation 1 is gone from the token"
    );
    f.finish().await;
}
