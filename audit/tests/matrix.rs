//! Every cell of the data-availability matrix, through the real gate on a real (SQLite) store:
//! the decision, and that it was recorded.

use sealpost_adapters::clock::SystemClock;
use sealpost_adapters::crypto::SecretKey;
use sealpost_adapters::ledger::EventStore;
use sealpost_adapters::store::Stores;
use sealpost_adapters::vault::{RootKeys, Vault};
use sealpost_audit::{AccessGate, AccessRequest, GateError};
use sealpost_domain::access::{AccessEvent, DenyReason, ACCESS_STREAM_TYPE};
use sealpost_domain::{BusinessId, Category, Decision, Principal, PrincipalKind, Purpose, Region};
use std::sync::Arc;

/// The matrix of docs/design.md, written out independently of `MATRIX`:
/// rows in `Category::ALL` order; columns processor, operator, transport, business, auditor, DPO.
const EXPECTED: [(&str, [&str; 6]); 7] = [
    ("message content", ["yes", "no", "no", "own", "no", "no"]),
    (
        "consumer phone number",
        ["yes", "no", "yes", "own", "no", "no"],
    ),
    (
        "non-identifiable statistics",
        ["yes", "yes", "yes", "yes", "yes", "yes"],
    ),
    ("integrity signals", ["no", "no", "yes", "own", "no", "no"]),
    (
        "business information",
        ["yes", "yes", "yes", "yes", "yes", "yes"],
    ),
    ("billing", ["yes", "yes", "yes", "yes", "yes", "yes"]),
    ("access log", ["no", "no", "no", "own", "yes", "yes"]),
];

fn principal(kind: PrincipalKind, business: &BusinessId) -> Principal {
    match kind {
        PrincipalKind::Business => Principal::business(business.clone(), "system-user"),
        k => Principal::of_kind(k, "p"),
    }
}

/// A purpose the principal kind may act for (never advertising, which has its own rule).
fn purpose(kind: PrincipalKind) -> Purpose {
    kind.purposes()[0]
}

async fn gate() -> (Arc<AccessGate>, Arc<EventStore>, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let stores = Stores::sqlite(dir.path()).await.expect("sqlite");
    let vault = Arc::new(Vault::new(
        stores.keys.clone(),
        RootKeys::fixed([(Region::Eu, SecretKey::random())]),
    ));
    let store = EventStore::start(stores.events.clone(), vault, Arc::new(SystemClock))
        .await
        .expect("store");
    (AccessGate::new(store.clone()), store, dir)
}

async fn access_log(store: &EventStore) -> Vec<AccessEvent> {
    store
        .read_all(0, 100_000)
        .await
        .expect("read")
        .into_iter()
        .filter(|e| e.header.stream.kind == ACCESS_STREAM_TYPE)
        .map(|e| serde_json::from_value(e.payload).expect("access event"))
        .collect()
}

#[tokio::test]
async fn every_cell_is_decided_as_the_design_says_and_recorded() {
    let (gate, store, _dir) = gate().await;
    let mine = BusinessId::parse("100000000000001").expect("id");
    let theirs = BusinessId::parse("100000000000002").expect("id");
    let mut expected_records = 0usize;
    for (row, category) in Category::ALL.iter().enumerate() {
        assert!(category.label().starts_with(EXPECTED[row].0), "row order");
        for (col, kind) in PrincipalKind::ALL.iter().enumerate() {
            let cell = EXPECTED[row].1[col];
            let who = principal(*kind, &mine);
            for owner in [&mine, &theirs] {
                let req = AccessRequest {
                    principal: &who,
                    category: *category,
                    purpose: purpose(*kind),
                    object: "obj-1",
                    owner: Some(owner),
                    region: Region::Eu,
                };
                let allowed = gate
                    .authorize(&req)
                    .await
                    .map(|()| true)
                    .or_else(|e| match e {
                        GateError::Denied(_) => Ok(false),
                        other => Err(other),
                    });
                let allowed = allowed.expect("gate works");
                let want = match cell {
                    "yes" => true,
                    "no" => false,
                    _ => owner == &mine,
                };
                assert_eq!(
                    allowed,
                    want,
                    "{:?} reading {:?} of {}",
                    kind,
                    category,
                    if owner == &mine {
                        "own business"
                    } else {
                        "another business"
                    }
                );
                if *kind != PrincipalKind::Processor {
                    expected_records += 1;
                }
            }
        }
    }
    gate.flush().await.expect("flush");
    let log = access_log(&store).await;
    let decided: Vec<&AccessEvent> = log
        .iter()
        .filter(|e| matches!(e, AccessEvent::AccessDecided { .. }))
        .collect();
    assert_eq!(
        decided.len(),
        expected_records,
        "one AccessDecided per read by people and foreign systems"
    );
    let denied = decided
        .iter()
        .filter(|e| {
            matches!(
                e,
                AccessEvent::AccessDecided {
                    decision: Decision::Denied(_),
                    ..
                }
            )
        })
        .count();
    assert!(denied > 0);
    // Processor reads are counted per minute, purpose, category and business.
    let (allowed, refused): (u64, u64) = log
        .iter()
        .filter_map(|e| match e {
            AccessEvent::AccessCounted {
                allowed, denied, ..
            } => Some((*allowed, *denied)),
            _ => None,
        })
        .fold((0, 0), |(a, d), (x, y)| (a + x, d + y));
    assert_eq!(
        allowed + refused,
        2 * Category::ALL.len() as u64,
        "every processor read is counted"
    );
    assert_eq!(
        refused, 4,
        "the processor is refused integrity signals and the access log, for both businesses"
    );
}

#[tokio::test]
async fn purposes_outside_a_principals_role_are_denied() {
    let (gate, _store, _dir) = gate().await;
    let b = BusinessId::parse("100000000000001").expect("id");
    for kind in PrincipalKind::ALL {
        let who = principal(kind, &b);
        for p in Purpose::ALL {
            let req = AccessRequest {
                principal: &who,
                category: Category::BusinessInformation,
                purpose: p,
                object: "o",
                owner: Some(&b),
                region: Region::Eu,
            };
            let result = gate.authorize(&req).await;
            if kind.purposes().contains(&p) {
                assert!(
                    result.is_ok(),
                    "{kind:?} may read business information for {p:?}"
                );
            } else {
                assert!(
                    matches!(result, Err(GateError::Denied(DenyReason::Purpose))),
                    "{kind:?} must not act for {p:?}"
                );
            }
        }
    }
}

#[tokio::test]
async fn advertising_never_touches_cloud_api_data() {
    let (gate, _store, _dir) = gate().await;
    let b = BusinessId::parse("100000000000001").expect("id");
    let ads = Principal::of_kind(PrincipalKind::Operator, "ads");
    for category in Category::ALL {
        let req = AccessRequest {
            principal: &ads,
            category,
            purpose: Purpose::Advertising,
            object: "o",
            owner: Some(&b),
            region: Region::Eu,
        };
        let result = gate.authorize(&req).await;
        assert_eq!(
            result.is_ok(),
            category == Category::BusinessInformation,
            "{category:?}"
        );
    }
}
