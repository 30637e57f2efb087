//! Local Storage regions keep their keys, blind index and Signal state in a store of their own
//! (issue 14, ADR 0019): written through the one key-store port, found in that region's
//! physical store only (every SQLite file, WAL included; every table of every Postgres schema),
//! and a region nobody used has no store at all.

#[macro_use]
mod common;
use common::{postgres_fixture, sqlite_fixture, Fixture};
use sealpost_adapters::store::{
    ChunkRow, Destruction, KeyKind, KeyState, OfBusiness, SessionRow, StoreError, WrappedKey,
};
use sealpost_domain::Region;
use sealpost_testkit::Holders;

fn key(kind: KeyKind, region: &str, rest: &str, epoch: Option<i64>, marker: &str) -> WrappedKey {
    WrappedKey {
        key_id: format!("{}/{region}/b1/{rest}", kind.as_str()),
        kind,
        business_id: "b1".into(),
        region: region.into(),
        epoch,
        subject_id: None,
        version: 1,
        wrapped: marker.as_bytes().to_vec(),
        created_at: 1,
        root: 1,
    }
}

/// Which physical stores hold `needle`.
async fn holders(f: &Fixture, needle: &str) -> Holders {
    match (f.pg(), f.dir()) {
        (Some(pg), _) => pg.stores_holding(needle.as_bytes()).await,
        (None, Some(dir)) => sealpost_testkit::files_holding(dir, needle.as_bytes()),
        _ => unreachable!("a fixture is on one backend"),
    }
}

fn only(store: &str) -> Holders {
    Holders::from([store.to_owned()])
}

async fn each_region_keeps_its_keys_in_its_own_store(f: &Fixture) {
    let keys = &f.stores.keys;
    for region in ["DE", "IN", "EU"] {
        let k = key(
            KeyKind::Ledger,
            region,
            "v1",
            None,
            &format!("MARKER-LEDGER-{region}-0123456789"),
        );
        keys.insert_if_absent(&k).await.expect("insert");
        assert!(
            matches!(keys.get("b1", &k.key_id).await.expect("get"), KeyState::Live(w) if w == k),
            "{region}'s key reads back through the one port"
        );
        assert_eq!(
            keys.latest_ledger("b1", region).await.expect("latest"),
            Some(k)
        );
    }
    assert_eq!(
        f.stores.regions.regions().await.expect("regions"),
        vec![Region::In, Region::De],
        "a store per Local Storage region written to (in Region::ALL order), none for the default regions"
    );
    assert_eq!(holders(f, "MARKER-LEDGER-DE-0123456789").await, only("DE"));
    assert_eq!(holders(f, "MARKER-LEDGER-IN-0123456789").await, only("IN"));
    assert_eq!(
        holders(f, "MARKER-LEDGER-EU-0123456789").await,
        only("home")
    );

    // A read of a region nobody wrote to finds nothing and creates no store.
    assert_eq!(
        keys.get("b1", "ledger/JP/b1/v1").await.expect("get"),
        KeyState::Missing
    );
    assert_eq!(keys.latest_ledger("b1", "JP").await.expect("latest"), None);
    assert_eq!(
        keys.signal_account("b1", "JP", "pn1").await.expect("get"),
        None
    );
    assert_eq!(
        f.stores.regions.regions().await.expect("regions"),
        vec![Region::In, Region::De]
    );
    if let Some(dir) = f.dir() {
        assert!(!dir.join("regions/JP").exists());
    }
}

async fn blind_index_and_signal_state_stay_in_the_region(f: &Fixture) {
    let keys = &f.stores.keys;
    let blind = b"BLIND-DE-VALUE-0123456789".as_slice();
    assert_eq!(
        keys.index_put("b1", "DE", blind, "sub_de")
            .await
            .expect("put"),
        "sub_de"
    );
    assert_eq!(
        keys.index_get("b1", "DE", blind).await.expect("get"),
        Some("sub_de".to_owned())
    );
    assert_eq!(keys.index_get("b1", "EU", blind).await.expect("get"), None);
    keys.put_signal_account("pn_de", "b1", "DE", (1, b"ACCOUNT-DE-0123456789"), 1)
        .await
        .expect("account");
    assert_eq!(
        keys.signal_account("b1", "DE", "pn_de").await.expect("get"),
        Some((1, b"ACCOUNT-DE-0123456789".to_vec()))
    );
    let session = |region: &str, subject: &str, marker: &str| SessionRow {
        business_id: "b1".into(),
        region: region.into(),
        subject_id: subject.into(),
        device: 1,
        sealed: marker.as_bytes().to_vec(),
        at: 1,
    };
    keys.put_signal_sessions(
        &[
            session("DE", "sub_de", "SESSION-DE-0123456789"),
            session("EU", "sub_eu", "SESSION-EU-0123456789"),
        ],
        None,
    )
    .await
    .expect("one batch across two stores");
    assert_eq!(
        keys.signal_session("b1", "DE", "sub_de", 1)
            .await
            .expect("get"),
        Some(b"SESSION-DE-0123456789".to_vec())
    );
    for (needle, store) in [
        ("BLIND-DE-VALUE-0123456789", "DE"),
        ("ACCOUNT-DE-0123456789", "DE"),
        ("SESSION-DE-0123456789", "DE"),
        ("SESSION-EU-0123456789", "home"),
    ] {
        assert_eq!(holders(f, needle).await, only(store), "{needle}");
    }

    // The subject's destruction reaches its region's store.
    let subject_key = key(
        KeyKind::Subject,
        "DE",
        "sub_de",
        None,
        "SUBJECT-DE-0123456789",
    );
    keys.insert_if_absent(&subject_key).await.expect("insert");
    let n = keys
        .destroy(&Destruction {
            keys: vec![OfBusiness::new("b1", &subject_key.key_id)],
            index_subjects: vec![OfBusiness::new("b1", "sub_de")],
            at: 5,
        })
        .await
        .expect("destroy");
    assert_eq!(n, 1);
    assert_eq!(
        keys.get("b1", &subject_key.key_id).await.expect("get"),
        KeyState::Destroyed
    );
    assert_eq!(
        keys.destroyed_at("b1", &subject_key.key_id)
            .await
            .expect("at"),
        Some(5)
    );
    assert_eq!(keys.index_get("b1", "DE", blind).await.expect("get"), None);
    assert_eq!(
        keys.signal_session("b1", "DE", "sub_de", 1)
            .await
            .expect("get"),
        None
    );
    assert!(
        matches!(
            keys.insert_if_absent(&subject_key).await,
            Err(StoreError::KeyDestroyed)
        ),
        "the region's tombstone keeps it from being made again"
    );
    keys.scrub().await.expect("scrub every store");
    assert!(holders(f, "SUBJECT-DE-0123456789").await.is_empty());
}

/// A number that moves region takes its account along and leaves none behind; between the two
/// default regions (one store) the account row simply changes region.
async fn a_moved_account_leaves_nothing_behind(f: &Fixture) {
    let keys = &f.stores.keys;
    keys.put_signal_account("pn1", "b1", "DE", (1, b"ACCOUNT-OLD-0123456789"), 1)
        .await
        .expect("put");
    keys.put_signal_account("pn1", "b1", "IN", (1, b"ACCOUNT-NEW-0123456789"), 2)
        .await
        .expect("put");
    keys.delete_signal_account("b1", "DE", "pn1")
        .await
        .expect("delete");
    assert_eq!(
        keys.signal_account("b1", "DE", "pn1").await.expect("get"),
        None
    );
    assert_eq!(
        keys.signal_account("b1", "IN", "pn1").await.expect("get"),
        Some((1, b"ACCOUNT-NEW-0123456789".to_vec()))
    );
    if f.pg().is_some() {
        // (SQLite's deleted bytes leave the file as pages are reused: not asserted here.)
        assert!(
            holders(f, "ACCOUNT-OLD-0123456789").await.is_empty(),
            "gone at once"
        );
    }

    keys.put_signal_account("pn2", "b1", "EU", (1, b"ACCOUNT-EU-0123456789"), 1)
        .await
        .expect("put");
    keys.put_signal_account("pn2", "b1", "NA", (1, b"ACCOUNT-NA-0123456789"), 2)
        .await
        .expect("put");
    keys.delete_signal_account("b1", "EU", "pn2")
        .await
        .expect("delete");
    assert_eq!(
        keys.signal_account("b1", "NA", "pn2").await.expect("get"),
        Some((1, b"ACCOUNT-NA-0123456789".to_vec())),
        "the row now of NA stays"
    );
}

/// The home key store alone, as an earlier version (one store for every region) wrote it.
async fn raw_home(f: &Fixture) -> std::sync::Arc<dyn sealpost_adapters::store::KeyStore> {
    use sealpost_adapters::store::{postgres::PostgresStore, sqlite::SqliteKeyStore};
    match (f.pg(), f.dir()) {
        (Some(pg), _) => std::sync::Arc::new(PostgresStore::new(pg.pool.clone())),
        (None, Some(dir)) => std::sync::Arc::new(SqliteKeyStore::open(dir).await.expect("open")),
        _ => unreachable!("a fixture is on one backend"),
    }
}

/// What a region stored at home before it had a store of its own stays readable there until
/// it expires: found by every read, winning over a new key or index entry of the same id, and
/// destroyed with the region's keys; an account saved again moves to the region.
async fn what_a_region_stored_at_home_before_stays_until_it_expires(f: &Fixture) {
    let (keys, home) = (&f.stores.keys, raw_home(f).await);
    let legacy = key(
        KeyKind::Ledger,
        "DE",
        "v1",
        None,
        "LEGACY-LEDGER-DE-0123456789",
    );
    home.insert_if_absent(&legacy)
        .await
        .expect("an earlier version's key");
    assert!(
        matches!(keys.get("b1", &legacy.key_id).await.expect("get"), KeyState::Live(k) if k == legacy)
    );
    assert_eq!(
        keys.latest_ledger("b1", "DE").await.expect("latest"),
        Some(legacy.clone())
    );
    let newer = key(
        KeyKind::Ledger,
        "DE",
        "v1",
        None,
        "NEWER-LEDGER-DE-0123456789",
    );
    assert_eq!(
        keys.insert_if_absent(&newer).await.expect("insert"),
        legacy,
        "the first writer wins, wherever it wrote"
    );
    assert!(holders(f, "NEWER-LEDGER-DE-0123456789").await.is_empty());

    let blind = b"LEGACY-BLIND-0123456789".as_slice();
    home.index_put("b1", "DE", blind, "sub_old")
        .await
        .expect("put");
    assert_eq!(
        keys.index_get("b1", "DE", blind).await.expect("get"),
        Some("sub_old".into())
    );
    assert_eq!(
        keys.index_put("b1", "DE", blind, "sub_new")
            .await
            .expect("put"),
        "sub_old"
    );

    home.put_signal_account("pn1", "b1", "DE", (1, b"LEGACY-ACCOUNT-0123456789"), 1)
        .await
        .expect("put");
    assert_eq!(
        keys.signal_account("b1", "DE", "pn1").await.expect("get"),
        Some((1, b"LEGACY-ACCOUNT-0123456789".to_vec()))
    );
    keys.put_signal_account("pn1", "b1", "DE", (1, b"SAVED-ACCOUNT-0123456789"), 2)
        .await
        .expect("put");
    assert_eq!(
        keys.signal_account("b1", "DE", "pn1").await.expect("get"),
        Some((1, b"SAVED-ACCOUNT-0123456789".to_vec()))
    );
    assert_eq!(holders(f, "SAVED-ACCOUNT-0123456789").await, only("DE"));
    if f.pg().is_some() {
        assert!(
            holders(f, "LEGACY-ACCOUNT-0123456789").await.is_empty(),
            "moved, not copied"
        );
    }

    let subject = key(
        KeyKind::Subject,
        "DE",
        "sub_old",
        None,
        "LEGACY-SUBJECT-0123456789",
    );
    home.insert_if_absent(&subject).await.expect("insert");
    let n = keys
        .destroy(&Destruction {
            keys: vec![OfBusiness::new("b1", &subject.key_id)],
            index_subjects: vec![OfBusiness::new("b1", "sub_old")],
            at: 9,
        })
        .await
        .expect("destroy");
    assert_eq!(n, 1, "the home copy was the one there was");
    assert_eq!(
        keys.get("b1", &subject.key_id).await.expect("get"),
        KeyState::Destroyed
    );
    assert_eq!(
        home.get("b1", &subject.key_id).await.expect("get"),
        KeyState::Destroyed
    );
    assert_eq!(keys.index_get("b1", "DE", blind).await.expect("get"), None);
    assert!(
        matches!(
            keys.insert_if_absent(&subject).await,
            Err(StoreError::KeyDestroyed)
        ),
        "a home tombstone still forbids the id"
    );
    keys.scrub().await.expect("scrub");
    assert!(holders(f, "LEGACY-SUBJECT-0123456789").await.is_empty());
}

async fn retention_sees_every_region_s_expired_epochs(f: &Fixture) {
    let keys = &f.stores.keys;
    for (region, epoch) in [("DE", 3), ("EU", 1), ("IN", 2), ("EU", 9)] {
        let k = key(
            KeyKind::Epoch,
            region,
            &format!("e{epoch}"),
            Some(epoch),
            &format!("EPOCH-{region}-{epoch}"),
        );
        keys.insert_if_absent(&k).await.expect("insert");
    }
    let expired = keys.expired_epochs(5, 10).await.expect("expired");
    let found: Vec<(String, Option<i64>)> = expired
        .iter()
        .map(|k| (k.region.clone(), k.epoch))
        .collect();
    assert_eq!(
        found,
        vec![
            ("EU".into(), Some(1)),
            ("IN".into(), Some(2)),
            ("DE".into(), Some(3))
        ],
        "oldest first across the stores"
    );
    assert_eq!(keys.expired_epochs(5, 2).await.expect("expired").len(), 2);
}

/// On Postgres, a region's sessions are fenced by the home store's lease, checked in the
/// region's own transaction: a store opened after a takeover and one that existed before it
/// both refuse the old holder.
async fn a_lost_lease_writes_no_region_session(f: &Fixture) {
    if f.stores.backend != "postgres" {
        return; // the embedded store serves one process: nothing to fence
    }
    let leases = &f.stores.leases;
    let a = leases
        .acquire("delivery:0", "node-a", 0, 10)
        .await
        .expect("acquire")
        .expect("granted");
    let b = leases
        .acquire("delivery:0", "node-b", 100, 10_000)
        .await
        .expect("acquire")
        .expect("taken over after expiry");
    let row = SessionRow {
        business_id: "b1".into(),
        region: "DE".into(),
        subject_id: "sub_de".into(),
        device: 1,
        sealed: b"FENCED-DE-0123456789".to_vec(),
        at: 1,
    };
    let refused = f
        .stores
        .keys
        .put_signal_sessions(std::slice::from_ref(&row), Some(&a.fence()))
        .await;
    assert!(matches!(refused, Err(StoreError::Fenced(_))), "{refused:?}");
    assert!(holders(f, "FENCED-DE-0123456789").await.is_empty());
    f.stores
        .keys
        .put_signal_sessions(std::slice::from_ref(&row), Some(&b.fence()))
        .await
        .expect("the holder writes");
    assert_eq!(holders(f, "FENCED-DE-0123456789").await, only("DE"));

    // DE's store exists now: the next takeover is recorded there before its holder acts.
    let c = leases
        .acquire("delivery:0", "node-c", 20_000, 10_000)
        .await
        .expect("acquire")
        .expect("taken over after expiry");
    let stale = SessionRow {
        sealed: b"STALE-DE-0123456789".to_vec(),
        ..row.clone()
    };
    let refused = f
        .stores
        .keys
        .put_signal_sessions(&[stale], Some(&b.fence()))
        .await;
    assert!(matches!(refused, Err(StoreError::Fenced(_))), "{refused:?}");
    assert!(holders(f, "STALE-DE-0123456789").await.is_empty());
    f.stores
        .keys
        .put_signal_sessions(&[row], Some(&c.fence()))
        .await
        .expect("the new holder writes");
}

/// Media chunks (ADR 0030) go where their region's keys go, read back by place, and leave with
/// their object or when they expire, in every store.
async fn media_chunks_stay_in_the_region_until_dropped_or_expired(f: &Fixture) {
    let keys = &f.stores.keys;
    let chunk =
        |region: &'static str, media: &'static str, seq: u32, sealed: &'static str| ChunkRow {
            business_id: "b1",
            region,
            media_id: media,
            seq,
            sealed: sealed.as_bytes(),
            expires_at: if media == "m_old" { 10 } else { 1_000 },
        };
    for c in [
        chunk("DE", "m_de", 0, "CHUNK-DE-0-0123456789"),
        chunk("DE", "m_de", 1, "CHUNK-DE-1-0123456789"),
        chunk("EU", "m_eu", 0, "CHUNK-EU-0-0123456789"),
        chunk("IN", "m_old", 0, "CHUNK-IN-OLD-0123456789"),
    ] {
        keys.put_chunk(c).await.expect("put");
    }
    let read = |region: &'static str, media: &'static str, seq| async move {
        keys.chunk("b1", region, media, seq).await.expect("read")
    };
    assert_eq!(
        read("DE", "m_de", 1).await,
        Some(b"CHUNK-DE-1-0123456789".to_vec())
    );
    assert_eq!(read("DE", "m_de", 2).await, None, "no chunk past the last");
    assert_eq!(
        read("EU", "m_de", 0).await,
        None,
        "another region's name reaches nothing"
    );
    assert!(keys
        .chunk("b2", "DE", "m_de", 0)
        .await
        .expect("read")
        .is_none());
    assert!(
        keys.put_chunk(chunk("DE", "m_de", 1, "CHUNK-DE-AGAIN-0123456789"))
            .await
            .is_err(),
        "a chunk is written once"
    );
    assert_eq!(holders(f, "CHUNK-DE-0-0123456789").await, only("DE"));
    assert_eq!(holders(f, "CHUNK-EU-0-0123456789").await, only("home"));
    assert_eq!(keys.drop_expired_chunks(500, 100).await.expect("sweep"), 1);
    assert_eq!(read("IN", "m_old", 0).await, None, "expired, gone");
    assert_eq!(keys.drop_chunks("b1", "DE", "m_de").await.expect("drop"), 2);
    assert_eq!(read("DE", "m_de", 0).await, None);
    assert_eq!(
        read("EU", "m_eu", 0).await,
        Some(b"CHUNK-EU-0-0123456789".to_vec())
    );
}

on_every_store!(
    media_chunks_stay_in_the_region_until_dropped_or_expired,
    each_region_keeps_its_keys_in_its_own_store,
    blind_index_and_signal_state_stay_in_the_region,
    retention_sees_every_region_s_expired_epochs,
    a_moved_account_leaves_nothing_behind,
    what_a_region_stored_at_home_before_stays_until_it_expires,
    a_lost_lease_writes_no_region_session,
);

/// Postgres's default layout: a region's store is a database of its own beside the home one,
/// created (and migrated) on the region's first write. The test names a throwaway database per
/// run through the template and drops it at the end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_region_gets_a_database_of_its_own() {
    use sealpost_adapters::store::{postgres, RegionLayout, Stores};
    let Some(pg) = sealpost_testkit::postgres_test_db("region database").await else {
        return;
    };
    let name = format!("sealpost_t{}", uuid::Uuid::new_v4().simple());
    let server = url::Url::parse(&pg.url).expect("url");
    let mut template = server.clone();
    template.set_path(&format!("/{name}_REGION"));
    let template = template.to_string().replace("_REGION", "_{region}");
    let layout = RegionLayout::postgres_beside(
        &pg.url_with_schema(),
        Some(&template),
        2,
        postgres::Limits::default(),
    )
    .expect("layout");
    let stores = Stores::postgres(pg.pool.clone(), layout);
    let k = key(KeyKind::Ledger, "DE", "v1", None, "MARKER-DB-DE-0123456789");
    stores.keys.insert_if_absent(&k).await.expect("insert");

    let admin = postgres::connect(&pg.url, None, 1).await.expect("connect");
    let exists: Option<(i32,)> = sqlx::query_as("SELECT 1 FROM pg_database WHERE datname = $1")
        .bind(format!("{name}_de"))
        .fetch_optional(&admin)
        .await
        .expect("query");
    assert!(exists.is_some(), "the DE database was created");
    let mut de = server.clone();
    de.set_path(&format!("/{name}_de"));
    let de_pool = postgres::connect(de.as_str(), None, 1)
        .await
        .expect("connect DE");
    let (found,): (String,) = sqlx::query_as("SELECT key_id FROM sealpost_keys")
        .fetch_one(&de_pool)
        .await
        .expect("the key is in DE's database");
    assert_eq!(found, k.key_id);
    de_pool.close().await;
    let location = stores.regions.layout().location(Region::De);
    assert!(
        location.starts_with(&format!("Postgres database {name}_de on ")),
        "{location}"
    );
    drop(stores);
    let _ = sqlx::query(&format!("DROP DATABASE \"{name}_de\" WITH (FORCE)"))
        .execute(&admin)
        .await;
    admin.close().await;
    pg.drop_schema().await;
}

/// Every node must keep a region's store in one place: a node configured for another place
/// refuses to open the region (instead of writing its keys to a second store), and the layout
/// the reports show is where the store was created.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_node_configured_elsewhere_refuses_a_region() {
    use sealpost_adapters::store::{postgres, RegionLayout, Stores};
    let Some(pg) = sealpost_testkit::postgres_test_db("region elsewhere").await else {
        return;
    };
    let here = Stores::postgres(pg.pool.clone(), pg.regions());
    let k = key(
        KeyKind::Ledger,
        "DE",
        "v1",
        None,
        "MARKER-HERE-DE-0123456789",
    );
    here.keys.insert_if_absent(&k).await.expect("insert");

    let template = format!(
        "{}?options=-csearch_path%3D{}_elsewhere_{{region}}",
        pg.url, pg.schema
    );
    let elsewhere = RegionLayout::postgres_beside(
        &pg.url_with_schema(),
        Some(&template),
        2,
        postgres::Limits::default(),
    )
    .expect("layout");
    let there = Stores::postgres(pg.pool.clone(), elsewhere);
    let refused = there.keys.get("b1", &k.key_id).await;
    assert!(
        matches!(refused, Err(StoreError::Invalid(_))),
        "{refused:?}"
    );
    let refused = there
        .keys
        .insert_if_absent(&key(
            KeyKind::Ledger,
            "DE",
            "v2",
            None,
            "MARKER-THERE-DE-0123456789",
        ))
        .await;
    assert!(
        matches!(refused, Err(StoreError::Invalid(_))),
        "{refused:?}"
    );
    assert!(pg
        .stores_holding(b"MARKER-THERE-DE-0123456789")
        .await
        .is_empty());

    let shown = there.layout().await.expect("layout");
    assert_eq!(shown.len(), 2);
    assert_eq!(
        shown[1].location,
        here.regions.layout().location(Region::De),
        "where it was created"
    );
    drop((here, there));
    pg.drop_schema().await;
}
