//! Region root keys rotate online (issue 15 part 2, ADR 0025), on each key store and each
//! custody (keys given in memory, key files, a PKCS#11 token), for a home region (EU) and a
//! Local Storage region with its own store (DE): a new generation is recorded and new keys are
//! wrapped under it at once; while keys and Signal accounts are being made, every older row is
//! rewrapped, each key opening to the same bytes throughout; a node that had not yet learnt the
//! rotation wraps a key under the old generation, which holds its destruction back until a
//! rewrap takes it too; the old generation is destroyed only once the rotation has settled;
//! and afterwards it opens nothing, not even the bytes it wrapped before.

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
/// Another region, whose root key is left alone.
const OTHER: Region = Region::Jp;

fn subject(n: u8) -> SubjectId {
    SubjectId::from_random([n; 16])
}

/// Every key and account the test made in `r`, as a fresh vault (nothing cached) opens them.
async fn everything(vault: &Vault, r: Region, subjects: u8, accounts: u8) -> Vec<Vec<u8>> {
    let mut seen = Vec::new();
    for n in 1..=subjects {
        let key = vault
            .subject_key(B, r, &subject(n), None)
            .await
            .expect("opens")
            .expect("exists");
        seen.push(key.expose().to_vec());
    }
    let epoch = vault
        .epoch_key(B, r, EpochId::new(3), None)
        .await
        .expect("opens")
        .expect("exists");
    seen.push(epoch.expose().to_vec());
    let (_, ledger) = vault.ledger_key(B, r, NOW).await.expect("opens");
    seen.push(ledger.expose().to_vec());
    for n in 1..=accounts {
        let account = vault
            .load_signal_account(&format!("pn{n}"), B, r)
            .await
            .expect("opens")
            .expect("exists");
        seen.push(account.to_vec());
    }
    seen
}

/// Every row of `r` wrapped under generation 1, both tables.
async fn under_first(keys: &dyn KeyStore, r: Region) -> Vec<sealpost_adapters::store::RootSealed> {
    let mut all = Vec::new();
    for table in [UnderRoot::Key, UnderRoot::Account] {
        all.extend(
            keys.under_root(r.code(), (1, table), "", 1_000)
                .await
                .expect("list"),
        );
    }
    all
}

/// The whole rotation of `r`'s root key on `stores` under `roots`; `fresh` opens the custody
/// again, as another process would.
async fn rotate_rewrap_retire(stores: &Stores, r: Region, roots: Roots, fresh: &dyn Fn() -> Roots) {
    let keys: Arc<dyn KeyStore> = stores.keys.clone();
    let vault = Arc::new(Vault::new(keys.clone(), roots.clone()));
    for n in 1..=20 {
        vault
            .create_subject_key(B, r, &subject(n), NOW)
            .await
            .expect("make");
    }
    vault
        .epoch_key(B, r, EpochId::new(3), Some(NOW))
        .await
        .expect("make");
    for n in 1..=5 {
        vault
            .save_signal_account(&format!("pn{n}"), B, r, &[n; 64], NOW)
            .await
            .expect("save");
    }
    vault
        .create_subject_key(B, OTHER, &subject(99), NOW)
        .await
        .expect("make");
    let before = everything(&vault, r, 20, 5).await;
    assert_eq!(vault.root_head(r).await.expect("head"), (1, 0));
    let old = under_first(keys.as_ref(), r).await;
    assert_eq!(old.len(), 20 + 1 + 1 + 5, "every row is under generation 1");
    assert_eq!(keys.count_under_root(r.code(), 2).await.expect("count"), 27);
    // A node that read the generation before the rotation and wraps under it for a while.
    let stale = Vault::new(keys.clone(), roots.clone());
    assert_eq!(stale.root_generation(r).await.expect("read"), 1);

    // Generation 2: recorded, and new keys are wrapped under it at once.
    vault.advance_root(r, 2, NOW).await.expect("rotate");
    assert_eq!(vault.root_head(r).await.expect("head"), (2, NOW.millis()));
    keys.set_root_generation(r.code(), 1, NOW.millis())
        .await
        .expect("an older generation is ignored");
    assert_eq!(vault.root_head(r).await.expect("head").0, 2);
    assert_eq!(
        vault.retire_root(r, 1, NOW).await.expect("ask"),
        Retirement::Settling(NOW.millis() + ROOT_SETTLE_MS),
        "too soon after the rotation"
    );

    // Keys and accounts are made while the rewrap runs; every row ends under generation 2.
    let making = {
        let vault = vault.clone();
        tokio::spawn(async move {
            for n in 21..=40 {
                vault
                    .create_subject_key(B, r, &subject(n), NOW)
                    .await
                    .expect("make during the rewrap");
                let owner = format!("pn{}", (n % 5) + 1);
                vault
                    .save_signal_account(&owner, B, r, &[n; 64], NOW)
                    .await
                    .expect("save during the rewrap");
                tokio::task::yield_now().await;
            }
        })
    };
    let mut heard = 0;
    let (target, rewrapped) = vault
        .rewrap_root(r, &mut |n| heard = n)
        .await
        .expect("rewrap");
    making.await.expect("the writer");
    assert_eq!(target, 2);
    assert!(rewrapped > 0 && heard == rewrapped, "{rewrapped} {heard}");
    // Accounts written meanwhile were wrapped under 2 already; a second pass finds nothing.
    assert_eq!(
        vault.rewrap_root(r, &mut |_| {}).await.expect("again"),
        (2, 0)
    );
    assert_eq!(vault.root_state(r).await.expect("state").pending, 0);
    let after_rewrap = Vault::new(keys.clone(), fresh());
    let accounts_now: Vec<Vec<u8>> = {
        let all = everything(&after_rewrap, r, 40, 5).await;
        all[all.len() - 5..].to_vec()
    };
    let keys_now = everything(&after_rewrap, r, 20, 0).await;
    assert_eq!(
        keys_now[..],
        before[..before.len() - 5],
        "every key opens to the same bytes after the rewrap"
    );
    for (n, account) in accounts_now.iter().enumerate() {
        assert_eq!(account.len(), 64, "account {n}");
    }

    // The stale node wraps one more key under generation 1: its destruction waits for it.
    stale
        .create_subject_key(B, r, &subject(41), NOW)
        .await
        .expect("made by the stale node");
    assert_eq!(vault.root_state(r).await.expect("state").pending, 1);
    let later = Timestamp::from_millis(NOW.millis() + ROOT_SETTLE_MS);
    assert_eq!(
        vault.retire_root(r, 1, later).await.expect("ask"),
        Retirement::Pending,
        "a key is still wrapped under generation 1"
    );
    assert_eq!(
        vault.rewrap_root(r, &mut |_| {}).await.expect("again"),
        (2, 1)
    );

    // Settled: generation 1 is destroyed; generation 2 opens everything, 1 nothing.
    assert_eq!(
        vault.retire_root(r, 2, later).await.expect("ask"),
        Retirement::Current
    );
    assert_eq!(
        vault.retire_root(r, 1, later).await.expect("retire"),
        Retirement::Destroyed
    );
    assert_eq!(
        vault.retire_root(r, 1, later).await.expect("again"),
        Retirement::Absent
    );
    let reopened = fresh();
    let after = Vault::new(keys.clone(), reopened.clone());
    assert_eq!(everything(&after, r, 20, 0).await[..], keys_now[..]);
    assert_eq!(everything(&after, r, 41, 5).await.len(), 41 + 2 + 5);
    for row in &old {
        let aad = match row.table {
            UnderRoot::Key => sealpost_adapters::vault::wrap_aad(&row.id),
            UnderRoot::Account => continue,
        };
        assert!(
            reopened.open(r, 1, &row.sealed, &aad).is_err(),
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
    let r = Region::Eu;
    let keys: Arc<dyn KeyStore> = stores.keys.clone();
    let vault = Vault::new(keys.clone(), roots);
    vault
        .create_subject_key(B, r, &subject(1), NOW)
        .await
        .expect("make");
    let row = under_first(keys.as_ref(), r).await.remove(0);
    let mut flipped = row.sealed.clone();
    *flipped.last_mut().expect("bytes") ^= 1;
    assert!(keys.rewrap(&row, 1, &flipped).await.expect("replace"));
    assert!(
        !keys.rewrap(&row, 1, &row.sealed).await.expect("stale"),
        "a row that changed since it was read is not replaced"
    );
    vault.advance_root(r, 2, NOW).await.expect("rotate");
    assert!(vault.rewrap_root(r, &mut |_| {}).await.is_err());
    assert_eq!(vault.root_state(r).await.expect("state").pending, 1);
}

/// Root keys given in memory for every region the tests use.
fn given() -> Roots {
    RootKeys::fixed([Region::Eu, Region::De, OTHER].map(|r| (r, SecretKey::random()))).into()
}

async fn rotation_with_keys_in_memory(f: &Fixture) {
    let roots = given();
    let same = roots.clone();
    rotate_rewrap_retire(&f.stores, Region::Eu, roots, &move || same.clone()).await;
}

/// DE keeps its keys in its own store (and what it kept at home before, ADR 0019).
async fn a_local_storage_region_rotates(f: &Fixture) {
    let roots = given();
    let same = roots.clone();
    rotate_rewrap_retire(&f.stores, Region::De, roots, &move || same.clone()).await;
}

async fn a_corrupt_row_stops_the_rewrap(f: &Fixture) {
    a_row_that_does_not_open_stops_the_rewrap(&f.stores, given()).await;
}

on_every_store!(
    rotation_with_keys_in_memory,
    a_local_storage_region_rotates,
    a_corrupt_row_stops_the_rewrap
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_files_rotate_and_the_old_file_is_gone() {
    let f = sqlite_fixture("files").await.expect("sqlite");
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().to_path_buf();
    let files = move || -> Roots { RootKeys::from_dir_or_env(Some(&path)).into() };
    rotate_rewrap_retire(&f.stores, Region::Eu, files(), &files).await;
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
    rotate_rewrap_retire(&f.stores, Region::Eu, open(), &open).await;
    let token = TokenRoots::open(config).expect("login");
    assert_eq!(
        token.never_leaves(Region::Eu, 2).expect("ask"),
        Some(true),
        "the new generation is made like the first"
    );
    assert_eq!(
        token.never_leaves(Region::Eu, 1).expect("ask"),
        None,
        "generation 1 is gone from the token"
    );
    f.finish().await;
}
