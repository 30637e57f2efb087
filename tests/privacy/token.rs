//! The whole privacy suite once more with the region root keys in the PKCS#11 token (issue 15,
//! ADR 0023): the canary scans for a home and a Local Storage number, nothing older than 30
//! days opening in a home and a Local Storage region, interrupted destructions finished, and
//! a root key destroyed in the token taking exactly its region. One at a time (SoftHSM2's file
//! store and several sessions of one process: see `adapters/tests/token.rs`).

use super::*;
use common::sqlite_env_in_token;

/// One token test at a time.
async fn one_token_test_at_a_time() -> tokio::sync::MutexGuard<'static, ()> {
    static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    SERIAL.lock().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_custody_never_stores_plaintext_of_a_local_storage_number() {
    let _turn = one_token_test_at_a_time().await;
    let Some(env) = sqlite_env_in_token("privacy-canary").await else {
        return;
    };
    no_plaintext_before_and_after_shredding(env, Region::De).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_custody_opens_nothing_older_than_30_days() {
    let _turn = one_token_test_at_a_time().await;
    let Some(env) = sqlite_env_in_token("privacy-thirty").await else {
        return;
    };
    nothing_older_than_30_days_opens(env, Region::Eu).await;
}

/// With the root keys in the token, DE's root key destroyed there (by another login) leaves
/// DE's content unreadable once the process has forgotten the keys it unwrapped (a restart),
/// while the business's own information, under EU's root key, still reads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_custody_a_destroyed_root_key_takes_exactly_its_region() {
    use sealpost::app::Sealpost;
    use sealpost_adapters::store::Stores;
    use sealpost_adapters::vault::TokenRoots;
    use sealpost_domain::{Purpose, RetentionPolicy};
    use std::sync::Arc;
    let _turn = one_token_test_at_a_time().await;
    let Some(token) = sealpost_testkit::hsm::test_token("privacy-roots") else {
        return;
    };
    let dir = tempfile::tempdir().expect("dir");
    let clock = sealpost_adapters::clock::SimClock::starting_at(
        sealpost_domain::Timestamp::from_millis(common::START_MS),
    );
    let open = || async {
        Sealpost::start(
            Stores::sqlite(dir.path()).await.expect("stores"),
            TokenRoots::open(token.clone()).expect("login"),
            Arc::new(clock.clone()),
            RetentionPolicy::default(),
        )
        .await
        .expect("start")
    };
    let readable = |app: &Sealpost, t: &Traffic, id: &MessageId| {
        let (app, t, id) = (app.clone(), (t.me.clone(), t.business.clone()), id.clone());
        async move {
            match app
                .messaging()
                .read_content(&t.0, Purpose::BusinessApi, &t.1, &id)
                .await
            {
                Ok(c) => c.plain().is_some(),
                // DE's keys no longer unwrap: nothing opens, and nothing else is wrong.
                Err(e) if matches!(format!("{e:?}"), d if d.contains("RootKey") || d.contains("Crypto")) => {
                    false
                }
                Err(e) => panic!("not a failure to unwrap: {e:?}"),
            }
        }
    };
    let env = Env {
        app: open().await,
        clock: clock.clone(),
        dir: None,
        pg: None,
    };
    let de = traffic(&env, Region::De).await;
    let id = de.recent[0].clone();
    assert!(readable(&env.app, &de, &id).await, "DE reads before");
    drop(env);
    let other = TokenRoots::open(token.clone()).expect("login");
    assert!(
        sealpost_adapters::vault::RootCustody::destroy(&other, Region::De, 1).expect("destroy"),
        "DE's key was in the token"
    );
    let app = open().await;
    assert!(!readable(&app, &de, &id).await, "DE reads nothing after");
    assert_eq!(
        app.catalog()
            .business(&de.business)
            .await
            .expect("business")
            .name,
        "Canary Shop",
        "the business's own information is not DE's"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_custody_never_stores_plaintext() {
    let _turn = one_token_test_at_a_time().await;
    let Some(env) = sqlite_env_in_token("privacy-canary-eu").await else {
        return;
    };
    no_plaintext_before_and_after_shredding(env, Region::Eu).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_custody_opens_nothing_older_than_30_days_in_a_local_storage_region() {
    let _turn = one_token_test_at_a_time().await;
    let Some(env) = sqlite_env_in_token("privacy-thirty-in").await else {
        return;
    };
    nothing_older_than_30_days_opens(env, Region::In).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_custody_finishes_interrupted_destructions() {
    let _turn = one_token_test_at_a_time().await;
    let Some(env) = sqlite_env_in_token("privacy-interrupted").await else {
        return;
    };
    interrupted_destructions_are_finished(env).await;
}
