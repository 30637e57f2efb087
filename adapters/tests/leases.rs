//! Leases on every store (issue 13, ADR 0016): acquire, renew, expire, take over, release,
//! and fencing, where a write under a lease that was taken over is refused in its own
//! transaction and writes nothing.

#[macro_use]
mod common;
use common::{postgres_fixture, sqlite_fixture, Fixture};
use sealpost_adapters::store::{Lease, LeaseRow, SessionRow, StoreError};

const TTL: i64 = 10_000;
const T0: i64 = 1_800_000_000_000;

async fn take(f: &Fixture, name: &str, owner: &str, now: i64) -> Option<Lease> {
    f.stores
        .leases
        .acquire(name, owner, now, TTL)
        .await
        .expect("acquire")
}

async fn a_lease_has_one_owner_until_it_expires(f: &Fixture) {
    let a = take(f, "pipeline", "node-a", T0)
        .await
        .expect("free: granted");
    assert_eq!((a.epoch, a.expires_at), (1, T0 + TTL));
    assert_eq!(
        take(f, "pipeline", "node-b", T0 + 1).await,
        None,
        "held by another: refused"
    );
    // Renewal keeps the epoch and moves the expiry.
    let renewed = take(f, "pipeline", "node-a", T0 + 5_000)
        .await
        .expect("renew");
    assert_eq!((renewed.epoch, renewed.expires_at), (1, T0 + 5_000 + TTL));
    assert_eq!(
        take(f, "pipeline", "node-b", T0 + TTL + 1).await,
        None,
        "the renewal counts: not yet expired"
    );
    // Expired: another node takes it over, at a higher epoch.
    let b = take(f, "pipeline", "node-b", T0 + 5_000 + TTL)
        .await
        .expect("expired: taken over");
    assert_eq!(b.epoch, 2);
    assert_eq!(
        take(f, "pipeline", "node-a", T0 + 5_000 + TTL + 1).await,
        None,
        "the old owner cannot renew what was taken over"
    );
    // Another lease is independent.
    assert_eq!(
        take(f, "housekeeping", "node-a", T0).await.map(|l| l.epoch),
        Some(1)
    );

    let rows = f.stores.leases.leases().await.expect("list");
    let names: Vec<(&str, &str, u64)> = rows
        .iter()
        .map(|r| (r.name.as_str(), r.owner.as_str(), r.epoch))
        .collect();
    assert_eq!(
        names,
        vec![("housekeeping", "node-a", 1), ("pipeline", "node-b", 2)]
    );
    assert_eq!(rows[1].acquired_at, T0 + 5_000 + TTL, "when node-b took it");
}

async fn a_released_lease_is_free_at_once_and_its_epoch_rises(f: &Fixture) {
    let a = take(f, "webhook:app1", "node-a", T0)
        .await
        .expect("granted");
    // A stale release (an older epoch) changes nothing.
    let stale = Lease {
        epoch: 0,
        ..a.clone()
    };
    f.stores.leases.release(&stale).await.expect("release");
    assert_eq!(take(f, "webhook:app1", "node-b", T0 + 1).await, None);
    f.stores.leases.release(&a).await.expect("release");
    let b = take(f, "webhook:app1", "node-b", T0 + 2)
        .await
        .expect("free after the release, long before the expiry");
    assert_eq!(b.epoch, 2);
    // Releasing again what node-b now holds, as node-a, does nothing.
    f.stores.leases.release(&a).await.expect("release");
    assert_eq!(take(f, "webhook:app1", "node-a", T0 + 3).await, None);
    // Freeing every lease (a process that alone holds the store, after a crash): taken at once.
    f.stores.leases.free_all().await.expect("free all");
    let c = take(f, "webhook:app1", "node-c", T0 + 4)
        .await
        .expect("free at once");
    assert_eq!(c.epoch, 3);
}

async fn of_nodes_racing_for_a_free_lease_exactly_one_wins(f: &Fixture) {
    let racers = (0..8).map(|i| {
        let leases = f.stores.leases.clone();
        tokio::spawn(async move {
            leases
                .acquire("pipeline", &format!("node-{i}"), T0, TTL)
                .await
                .expect("acquire")
        })
    });
    let granted: Vec<Lease> = futures::future::join_all(racers)
        .await
        .into_iter()
        .filter_map(|r| r.expect("task"))
        .collect();
    assert_eq!(granted.len(), 1, "one winner: {granted:?}");
    assert_eq!(granted[0].epoch, 1);
}

async fn a_write_fenced_by_a_lease_taken_over_is_refused(f: &Fixture) {
    let log = &f.stores.events;
    let a = take(f, "pipeline", "node-a", T0).await.expect("granted");
    log.save_checkpoint("delivery", 5, Some(&a.fence()))
        .await
        .expect("the holder writes");
    f.stores.leases.check(&a.fence()).await.expect("held");
    // node-a pauses past its expiry; node-b takes over and moves on.
    let b = take(f, "pipeline", "node-b", T0 + TTL)
        .await
        .expect("taken over");
    log.save_checkpoint("delivery", 9, Some(&b.fence()))
        .await
        .expect("the new holder writes");
    // node-a resumes and writes what it had computed before the pause: refused, unwritten.
    let refused = log.save_checkpoint("delivery", 6, Some(&a.fence())).await;
    assert!(
        matches!(refused, Err(StoreError::Fenced(ref name)) if name == "pipeline"),
        "{refused:?}"
    );
    assert_eq!(log.load_checkpoint("delivery").await.expect("load"), 9);
    assert!(matches!(
        f.stores.leases.check(&a.fence()).await,
        Err(StoreError::Fenced(_))
    ));
    // A lease nobody ever took fences too.
    let never = sealpost_adapters::store::Fence {
        name: "nobody".into(),
        owner: "node-a".into(),
        epoch: 1,
    };
    assert!(matches!(
        log.save_checkpoint("other", 1, Some(&never)).await,
        Err(StoreError::Fenced(_))
    ));
    assert_eq!(log.load_checkpoint("other").await.expect("load"), 0);

    // Sessions: fenced in the key store's transaction where it shares the leases' database
    // (Postgres); the embedded store serves one process (its data directory is locked).
    let row = |byte: u8| SessionRow {
        business_id: "b1".into(),
        region: "EU".into(),
        subject_id: "sub_a".into(),
        device: 1,
        sealed: vec![byte; 40],
        at: T0,
    };
    let keys = &f.stores.keys;
    keys.put_signal_sessions(&[row(1)], Some(&b.fence()))
        .await
        .expect("the holder saves sessions");
    if f.stores.backend == "postgres" {
        let refused = keys.put_signal_sessions(&[row(2)], Some(&a.fence())).await;
        assert!(matches!(refused, Err(StoreError::Fenced(_))), "{refused:?}");
        assert_eq!(
            keys.signal_session("b1", "EU", "sub_a", 1)
                .await
                .expect("get"),
            Some(vec![1; 40]),
            "the fenced session write left nothing"
        );
    }
}

/// A mirrored lease (another store's, ADR 0019) is recorded with its owner and epoch, and a copy
/// with a lower epoch, arriving late, never replaces a higher one.
async fn a_mirrored_lease_only_moves_forward(f: &Fixture) {
    let leases = &f.stores.leases;
    let row = |owner: &str, epoch: u64| LeaseRow {
        name: "delivery:3".into(),
        owner: owner.into(),
        epoch,
        acquired_at: T0,
        expires_at: T0 + 10_000,
    };
    leases.mirror(&row("node-b", 2)).await.expect("mirror");
    leases
        .mirror(&row("node-a", 1))
        .await
        .expect("a late, older copy");
    assert_eq!(leases.leases().await.expect("list"), vec![row("node-b", 2)]);
    let fence = |owner: &str, epoch: u64| sealpost_adapters::store::Fence {
        name: "delivery:3".into(),
        owner: owner.into(),
        epoch,
    };
    leases
        .check(&fence("node-b", 2))
        .await
        .expect("the holder's fence holds");
    assert!(matches!(
        leases.check(&fence("node-a", 1)).await,
        Err(StoreError::Fenced(_))
    ));
    leases.mirror(&row("node-c", 3)).await.expect("mirror");
    assert_eq!(leases.leases().await.expect("list"), vec![row("node-c", 3)]);
}

on_every_store!(
    a_mirrored_lease_only_moves_forward,
    a_lease_has_one_owner_until_it_expires,
    a_released_lease_is_free_at_once_and_its_epoch_rises,
    of_nodes_racing_for_a_free_lease_exactly_one_wins,
    a_write_fenced_by_a_lease_taken_over_is_refused,
);
