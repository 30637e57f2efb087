//! A Local Storage region's events keep their sealed bodies in the region's own log (ADR
//! 0020): the home log holds the header and a reference (position and hash), every read
//! through the event store opens the body from the region, and a body that does not match
//! its reference is refused.

#[macro_use]
mod common;
use common::{postgres_fixture, sqlite_fixture, Fixture};
use sealpost_adapters::clock::SystemClock;
use sealpost_adapters::crypto::SecretKey;
use sealpost_adapters::ledger::{EventContext, EventStore, LedgerError, PlainEvent, Reference};
use sealpost_adapters::store::{AppendCommand, NewRow, StoreError, StreamId};
use sealpost_adapters::vault::{RootKeys, Vault};
use sealpost_domain::Region;
use serde_json::json;
use std::sync::Arc;

async fn store(f: &Fixture) -> Arc<EventStore> {
    let roots = RootKeys::fixed([
        (Region::Eu, SecretKey::random()),
        (Region::De, SecretKey::random()),
    ]);
    EventStore::start_with_regions(
        f.stores.events.clone(),
        f.stores.regions.clone(),
        Arc::new(Vault::new(f.stores.keys.clone(), roots)),
        Arc::new(SystemClock),
    )
    .await
    .expect("start")
}

fn ctx(region: Region) -> EventContext {
    EventContext {
        business_id: "b1".into(),
        region,
        epoch: None,
    }
}

fn event(text: &str) -> PlainEvent {
    PlainEvent {
        event_type: "Tested".into(),
        event_version: 1,
        payload: json!({ "text": text }),
        metadata: Default::default(),
    }
}

/// The texts of opened events.
fn texts(events: &[sealpost_adapters::ledger::OpenedEvent]) -> Vec<String> {
    events
        .iter()
        .map(|e| e.payload["text"].as_str().unwrap_or_default().to_owned())
        .collect()
}

async fn a_region_s_bodies_are_in_its_own_log(f: &Fixture) {
    let store = store(f).await;
    let de = StreamId::new("b1", "message", "m-de");
    let eu = StreamId::new("b1", "message", "m-eu");
    store
        .append(&de, 0, &ctx(Region::De), vec![event("eins"), event("zwei")])
        .await
        .expect("append in DE");
    store
        .append(&eu, 0, &ctx(Region::Eu), vec![event("one")])
        .await
        .expect("append in EU");

    // Every read opens the DE bodies from DE's log.
    let read = store.read_stream(&de, 0).await.expect("read DE stream");
    assert_eq!(texts(&read), ["eins", "zwei"]);
    let all = store.read_all(0, 10).await.expect("read all");
    assert_eq!(texts(&all), ["eins", "zwei", "one"]);

    // Home holds a reference for each DE row and the EU row whole; DE's log holds the bodies.
    let home = f.stores.events.read_all(0, 10).await.expect("home rows");
    let references: Vec<Option<Reference>> =
        home.iter().map(|r| Reference::decode(&r.payload)).collect();
    assert!(references[0].is_some() && references[1].is_some());
    assert!(references[2].is_none(), "an EU event is whole at home");
    let region = f
        .stores
        .regions
        .events_for_read(Region::De)
        .await
        .expect("regions")
        .expect("DE has a store");
    let bodies = region.read_all(0, 10).await.expect("DE rows");
    assert_eq!(bodies.len(), 2);
    assert_eq!(bodies[0].header.region, "DE");
    assert_eq!(
        Reference::decode(&home[0].payload).map(|r| r.position),
        Some(bodies[0].position)
    );

    // A home row whose reference does not match the body it names does not open.
    let forged = AppendCommand {
        stream: StreamId::new("b1", "message", "m-forged"),
        expected: 0,
        rows: vec![NewRow {
            header: sealpost_adapters::store::RowHeader {
                stream: StreamId::new("b1", "message", "m-forged"),
                sequence: 1,
                ..home[0].header.clone()
            },
            payload: Reference {
                position: bodies[0].position,
                hash: [0; 32],
            }
            .encode(),
        }],
    };
    f.stores
        .events
        .append(&[forged], None)
        .await
        .expect("append the forged reference");
    let refused = store
        .read_stream(&StreamId::new("b1", "message", "m-forged"), 0)
        .await;
    assert!(
        matches!(
            &refused,
            Err(LedgerError::Store(StoreError::Corrupt(why))) if why.contains("does not match")
        ),
        "a forged reference: {refused:?}"
    );
}

/// More bodies than one read of a region's log takes, far apart: each opens.
async fn many_bodies_far_apart_open(f: &Fixture) {
    let store = store(f).await;
    let sparse = StreamId::new("b1", "message", "m-sparse");
    store
        .append(&sparse, 0, &ctx(Region::De), vec![event("first")])
        .await
        .expect("append");
    let bulk = StreamId::new("b1", "message", "m-bulk");
    let many: Vec<PlainEvent> = (0..1_200).map(|i| event(&format!("n{i}"))).collect();
    store
        .append(&bulk, 0, &ctx(Region::De), many)
        .await
        .expect("append many");
    store
        .append(&sparse, 1, &ctx(Region::De), vec![event("last")])
        .await
        .expect("append");
    assert_eq!(
        texts(&store.read_stream(&sparse, 0).await.expect("sparse")),
        ["first", "last"]
    );
    let all = texts(&store.read_stream(&bulk, 0).await.expect("bulk"));
    assert_eq!(all.len(), 1_200);
    assert_eq!((all[0].as_str(), all[1_199].as_str()), ("n0", "n1199"));
}

on_every_store!(
    a_region_s_bodies_are_in_its_own_log,
    many_bodies_far_apart_open
);
