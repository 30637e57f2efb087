//! The services stand on their own: each is built from just the parts it uses.

use super::*;
use sealpost_adapters::clock::SimClock;

/// A clock that stands still at a known moment, so the recorded time proves whose clock ran.
const AT: Timestamp = Timestamp::from_millis(1_767_225_600_000);

#[tokio::test]
async fn a_catalog_needs_only_an_executor_a_store_and_a_clock() {
    let dir = tempfile::tempdir().expect("tempdir");
    let stores = Stores::sqlite(dir.path()).await.expect("stores");
    let clock = SimClock::starting_at(AT);
    let roots =
        sealpost_adapters::vault::RootKeys::from_dir_or_env(Some(&dir.path().join(ROOT_KEY_DIR)));
    let vault = Arc::new(Vault::new(stores.keys.clone(), roots));
    let store = EventStore::start(stores.events.clone(), vault, Arc::new(clock.clone()))
        .await
        .expect("store");
    let exec = Executor::new(store.clone());
    let catalog = Catalog {
        exec: &exec,
        store: &store,
        clock: &clock,
    };

    let business = catalog
        .register_business("Corner Shop", Region::Eu)
        .await
        .expect("registered");
    assert_eq!(
        catalog.business(&business).await.expect("read").name,
        "Corner Shop"
    );
    assert_eq!(
        catalog.business_region(&business).await.expect("region"),
        Region::Eu
    );
    let recorded = store
        .scan(|h| h.stream.kind == "business")
        .await
        .expect("scan");
    assert_eq!(recorded.len(), 1);
    assert_eq!(
        recorded[0].header.recorded_at,
        AT.millis(),
        "the service's clock stamped it"
    );

    let unknown = BusinessId::parse("999999999999999").expect("id");
    assert!(matches!(
        catalog.business(&unknown).await,
        Err(AppError::Domain(DomainError::NotFound))
    ));
}
