//! One conformance suite, run against every store: SQLite (the embedded default) and Postgres.
//! Postgres tests use a schema each on `SEALPOST_TEST_DATABASE_URL`.

use async_trait::async_trait;
use futures::future::BoxFuture;
use rand::Rng;
use sealpost_adapters::clock::SystemClock;
use sealpost_adapters::ledger::{EventContext, EventStore, PlainEvent};
use sealpost_adapters::store::{
    AppendCommand, AppendOutcome, AuditLeaf, AuditNode, CheckpointRow, Conflict, Destruction,
    EventLog, Fence, KeyKind, KeyState, OfBusiness, SessionRow, SnapshotRow, StoreError, StoredRow,
    StreamId, TxHook, WrappedKey,
};
use sealpost_adapters::vault::Vault;
use sealpost_domain::Region;
use serde_json::json;
use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[macro_use]
mod common;
use common::{postgres_fixture, sqlite_fixture, token_fixture, Fixture};

/// A vault over the fixture's key store, its root keys in the fixture's custody.
fn vault(f: &Fixture) -> Arc<Vault> {
    Arc::new(Vault::new(f.stores.keys.clone(), f.roots()))
}

async fn sealed_store(f: &Fixture) -> Arc<EventStore> {
    EventStore::start(f.stores.events.clone(), vault(f), Arc::new(SystemClock))
        .await
        .expect("start")
}

/// The business of the suite's events.
const B1: &str = "100000000000001";

fn ctx() -> EventContext {
    EventContext {
        business_id: B1.into(),
        region: Region::Eu,
        epoch: None,
    }
}

fn event(n: u64, tag: &str) -> PlainEvent {
    PlainEvent {
        event_type: "Tested".into(),
        event_version: 1,
        payload: json!({ "n": n, "tag": tag }),
        metadata: BTreeMap::from([("correlation_id".to_owned(), tag.to_owned())]),
    }
}

/// Counts transactions while delegating to the real log.
#[derive(Debug)]
struct CountingLog {
    inner: Arc<dyn EventLog>,
    transactions: AtomicUsize,
}

#[async_trait]
impl EventLog for CountingLog {
    async fn append(
        &self,
        commands: &[AppendCommand],
        hook: Option<&dyn TxHook>,
    ) -> Result<AppendOutcome, StoreError> {
        self.transactions.fetch_add(1, Ordering::SeqCst);
        self.inner.append(commands, hook).await
    }
    async fn read_stream(
        &self,
        stream: &StreamId,
        after: u64,
    ) -> Result<Vec<StoredRow>, StoreError> {
        self.inner.read_stream(stream, after).await
    }
    async fn read_streams(
        &self,
        business: &str,
        kind: &str,
        ids: &[String],
    ) -> Result<Vec<StoredRow>, StoreError> {
        self.inner.read_streams(business, kind, ids).await
    }
    async fn business_of(&self, kind: &str, id: &str) -> Result<Option<String>, StoreError> {
        self.inner.business_of(kind, id).await
    }
    async fn read_all(&self, after: u64, limit: u32) -> Result<Vec<StoredRow>, StoreError> {
        self.inner.read_all(after, limit).await
    }
    async fn read_kind(
        &self,
        kind: &str,
        after: u64,
        limit: u32,
    ) -> Result<Vec<StoredRow>, StoreError> {
        self.inner.read_kind(kind, after, limit).await
    }
    async fn read_types(
        &self,
        after: u64,
        types: &[&str],
        limit: u32,
    ) -> Result<Vec<StoredRow>, StoreError> {
        self.inner.read_types(after, types, limit).await
    }
    async fn read_positions(&self, positions: &[u64]) -> Result<Vec<StoredRow>, StoreError> {
        self.inner.read_positions(positions).await
    }
    async fn head(&self) -> Result<u64, StoreError> {
        self.inner.head().await
    }
    async fn stream_version(&self, stream: &StreamId) -> Result<u64, StoreError> {
        self.inner.stream_version(stream).await
    }
    async fn load_snapshot(&self, stream: &StreamId) -> Result<Option<SnapshotRow>, StoreError> {
        self.inner.load_snapshot(stream).await
    }
    async fn save_snapshot(&self, snapshot: &SnapshotRow) -> Result<(), StoreError> {
        self.inner.save_snapshot(snapshot).await
    }
    async fn load_checkpoint(&self, name: &str) -> Result<u64, StoreError> {
        self.inner.load_checkpoint(name).await
    }
    async fn save_checkpoint(
        &self,
        name: &str,
        position: u64,
        fence: Option<&Fence>,
    ) -> Result<(), StoreError> {
        self.inner.save_checkpoint(name, position, fence).await
    }
    async fn audit_leaves(&self, after: u64, limit: u32) -> Result<Vec<AuditLeaf>, StoreError> {
        self.inner.audit_leaves(after, limit).await
    }
    async fn audit_size(&self) -> Result<u64, StoreError> {
        self.inner.audit_size().await
    }
    async fn audit_nodes(
        &self,
        level: u32,
        from: u64,
        limit: u32,
    ) -> Result<Vec<AuditNode>, StoreError> {
        self.inner.audit_nodes(level, from, limit).await
    }
    async fn audit_append_leaves(
        &self,
        leaves: &[AuditLeaf],
        nodes: &[AuditNode],
    ) -> Result<(), StoreError> {
        self.inner.audit_append_leaves(leaves, nodes).await
    }
    async fn audit_put_checkpoint(&self, checkpoint: &CheckpointRow) -> Result<(), StoreError> {
        self.inner.audit_put_checkpoint(checkpoint).await
    }
    async fn audit_checkpoints(&self) -> Result<Vec<CheckpointRow>, StoreError> {
        self.inner.audit_checkpoints().await
    }
}

async fn round_trip(f: &Fixture) {
    let store = sealed_store(f).await;
    let s = StreamId::new(B1, "message", "wamid.a");
    let p = store
        .append(&s, 0, &ctx(), vec![event(1, "x"), event(2, "y")])
        .await
        .expect("append");
    assert_eq!(p.len(), 2);
    assert_eq!(p[1], p[0] + 1);
    let back = store.read_stream(&s, 0).await.expect("read");
    assert_eq!(back.len(), 2);
    assert_eq!(back[0].payload, json!({"n": 1, "tag": "x"}));
    assert_eq!(back[1].header.sequence, 2);
    assert_eq!(
        back[1].metadata.get("correlation_id").map(String::as_str),
        Some("y")
    );
    assert_eq!(store.read_stream(&s, 1).await.expect("read").len(), 1);
    // The raw row never holds the payload in plaintext.
    let raw = f.stores.events.read_stream(&s, 0).await.expect("raw");
    assert!(!raw[0].payload.windows(3).any(|w| w == b"tag"));
    assert_eq!(
        f.stores.events.stream_version(&s).await.expect("version"),
        2
    );
}

async fn several_streams_in_one_read(f: &Fixture) {
    let store = sealed_store(f).await;
    let (a, b) = (
        StreamId::new(B1, "message", "m-a"),
        StreamId::new(B1, "message", "m-b"),
    );
    store
        .append(&a, 0, &ctx(), vec![event(1, "a1"), event(2, "a2")])
        .await
        .expect("append");
    store
        .append(&b, 0, &ctx(), vec![event(3, "b1")])
        .await
        .expect("append");
    // Same id, other type: not read.
    store
        .append(
            &StreamId::new(B1, "subject", "m-a"),
            0,
            &ctx(),
            vec![event(4, "s")],
        )
        .await
        .expect("append");
    store
        .append(&a, 2, &ctx(), vec![event(5, "a3")])
        .await
        .expect("append");
    let ids = ["m-b", "m-a", "m-none"].map(String::from);
    let found = store.read_streams(B1, "message", &ids).await.expect("read");
    let tags = |id: &str| -> Vec<String> {
        found[id]
            .iter()
            .map(|e| e.payload["tag"].as_str().expect("tag").to_owned())
            .collect()
    };
    assert_eq!(tags("m-a"), ["a1", "a2", "a3"], "in sequence order");
    assert_eq!(tags("m-b"), ["b1"]);
    assert!(
        found["m-none"].is_empty(),
        "a stream with no events is empty"
    );
    assert_eq!(found.len(), 3);
    // Every address of a stream names its business: another business's name reaches nothing.
    let foreign = store
        .read_streams("100000000000002", "message", &ids)
        .await
        .expect("read");
    assert!(foreign.values().all(Vec::is_empty), "{:?}", foreign.keys());
    assert!(store
        .read_stream(&StreamId::new("100000000000002", "message", "m-a"), 0)
        .await
        .expect("read")
        .is_empty());
    assert!(store
        .read_streams(B1, "message", &[])
        .await
        .expect("none")
        .is_empty());
    // One kind after a position, in log order, a page at a time (how nodes follow tokens).
    let of_kind = |after: u64, limit: u32| {
        let store = store.clone();
        async move {
            store
                .read_kind("message", after, limit)
                .await
                .expect("read kind")
                .iter()
                .map(|e| {
                    (
                        e.position,
                        e.payload["tag"].as_str().expect("tag").to_owned(),
                    )
                })
                .collect::<Vec<_>>()
        }
    };
    let all = of_kind(0, 100).await;
    let tags: Vec<&str> = all.iter().map(|(_, t)| t.as_str()).collect();
    assert_eq!(tags, ["a1", "a2", "b1", "a3"], "log order, no other kind");
    assert_eq!(of_kind(0, 2).await, all[..2].to_vec(), "a page");
    assert_eq!(
        of_kind(all[2].0, 100).await,
        all[3..].to_vec(),
        "after a position"
    );
    assert!(store
        .read_kind("media", 0, 100)
        .await
        .expect("none")
        .is_empty());
}

async fn conflicts_are_typed(f: &Fixture) {
    let store = sealed_store(f).await;
    let s = StreamId::new(B1, "subject", "sub_1");
    store
        .append(&s, 0, &ctx(), vec![event(1, "a")])
        .await
        .expect("first");
    let err = store
        .append(&s, 0, &ctx(), vec![event(1, "b")])
        .await
        .expect_err("second must conflict");
    match err {
        sealpost_adapters::ledger::LedgerError::Store(StoreError::Conflict(c)) => {
            assert_eq!(
                c,
                Conflict {
                    expected: 0,
                    actual: 1
                }
            )
        }
        other => panic!("expected a typed conflict, got {other:?}"),
    }
    assert_eq!(
        store.read_stream(&s, 0).await.expect("read")[0].payload["tag"],
        "a"
    );
}

/// 32 tasks race on one stream for 1,000 rounds: exactly one winner per sequence, nothing lost
/// or duplicated.
async fn one_winner_per_sequence(f: &Fixture) {
    let store = sealed_store(f).await;
    let s = StreamId::new(B1, "contended", "one");
    let wins = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for task in 0..32u64 {
        let store = store.clone();
        let s = s.clone();
        let wins = wins.clone();
        tasks.push(tokio::spawn(async move {
            let mut conflicts = 0u64;
            for round in 0..1_000u64 {
                let version = store.log().stream_version(&s).await.expect("version");
                let tag = format!("{task}:{round}");
                match store
                    .append(&s, version, &ctx(), vec![event(version + 1, &tag)])
                    .await
                {
                    Ok(p) => wins.lock().expect("lock").push((version + 1, tag, p[0])),
                    Err(e) if e.is_conflict() => conflicts += 1,
                    Err(e) => panic!("unexpected error: {e}"),
                }
            }
            conflicts
        }));
    }
    let mut conflicts = 0;
    for t in tasks {
        conflicts += t.await.expect("task");
    }
    let wins = wins.lock().expect("lock").clone();
    let stored = store.read_stream(&s, 0).await.expect("read");
    assert_eq!(
        wins.len() as u64 + conflicts,
        32_000,
        "every attempt either won or conflicted"
    );
    assert_eq!(stored.len(), wins.len(), "nothing lost, nothing duplicated");
    let won: BTreeMap<u64, String> = wins
        .iter()
        .map(|(seq, tag, _)| (*seq, tag.clone()))
        .collect();
    assert_eq!(won.len(), wins.len(), "exactly one winner per sequence");
    for (i, e) in stored.iter().enumerate() {
        assert_eq!(e.header.sequence, i as u64 + 1);
        assert_eq!(
            e.payload["tag"], won[&e.header.sequence],
            "the stored event is the winner's"
        );
    }
    assert!(wins.len() >= 1_000, "each round has at least one winner");
}

/// A filtered subscription hands out only what it keeps, passes over whole pages of rows it
/// does not keep (never reporting "caught up" while a kept row is still ahead), and moves its
/// position past what it skipped.
async fn a_filtered_subscription_skips_what_it_does_not_follow(f: &Fixture) {
    let store = sealed_store(f).await;
    let skipped = StreamId::new(B1, "noise", "n");
    // More than one page (256) of rows nobody follows, then one that is followed.
    let noise: Vec<PlainEvent> = (1..=300).map(|n| event(n, "noise")).collect();
    store
        .append(&skipped, 0, &ctx(), noise)
        .await
        .expect("append");
    let mut wanted = event(301, "wanted");
    wanted.event_type = "Wanted".into();
    let p = store
        .append(&StreamId::new(B1, "kept", "k"), 0, &ctx(), vec![wanted])
        .await
        .expect("append");
    let mut sub = store.subscribe(0).only(|h| h.event_type == "Wanted");
    let batch = sub.try_next_batch().await.expect("batch");
    assert_eq!(
        batch.len(),
        1,
        "only the followed row, past a page of others"
    );
    assert_eq!(batch[0].payload["tag"], "wanted");
    assert_eq!(sub.position(), p[0]);
    assert!(sub.try_next_batch().await.expect("caught up").is_empty());
}

/// A subscription of a few event types reads only those rows from the database, keeps what
/// its judgement of the header (here: one business) accepts, and once caught up stands at the
/// head of the log, past the rows of other types, so the next read does not scan them again.
async fn a_typed_subscription_reads_its_types_and_moves_to_the_head(f: &Fixture) {
    let store = sealed_store(f).await;
    let typed = |n: u64, ty: &str| {
        let mut e = event(n, ty);
        e.event_type = ty.into();
        e
    };
    let other = EventContext {
        business_id: "100000000000002".into(),
        ..ctx()
    };
    // A page and more of rows of another type, then one wanted row of each business.
    let noise: Vec<PlainEvent> = (1..=300).map(|n| event(n, "noise")).collect();
    store
        .append(&StreamId::new(B1, "noise", "n"), 0, &ctx(), noise)
        .await
        .expect("append");
    let mine = store
        .append(
            &StreamId::new(B1, "kept", "a"),
            0,
            &ctx(),
            vec![typed(301, "Wanted")],
        )
        .await
        .expect("append")[0];
    store
        .append(
            &StreamId::new(&other.business_id, "kept", "b"),
            0,
            &other,
            vec![typed(302, "Wanted")],
        )
        .await
        .expect("append");
    let tail: Vec<PlainEvent> = (303..=310).map(|n| event(n, "noise")).collect();
    store
        .append(&StreamId::new(B1, "noise", "n"), 300, &ctx(), tail)
        .await
        .expect("append");
    let head = store.log().head().await.expect("head");
    let business = ctx().business_id;
    let mut sub = store
        .subscribe(0)
        .of_types(&["Wanted", "AlsoWanted"])
        .only(move |h| h.business_id == business);
    let batch = sub.try_next_batch().await.expect("batch");
    assert_eq!(batch.len(), 1, "only the wanted row of the one business");
    assert_eq!(batch[0].payload["tag"], "Wanted");
    assert_eq!(batch[0].position, mine);
    assert!(sub.try_next_batch().await.expect("caught up").is_empty());
    assert_eq!(sub.position(), head, "caught up means at the head");
    // A wanted row written later is found from there.
    let later = store
        .append(
            &StreamId::new(B1, "kept", "a"),
            1,
            &ctx(),
            vec![typed(311, "AlsoWanted")],
        )
        .await
        .expect("append")[0];
    let batch = sub.try_next_batch().await.expect("batch");
    assert_eq!(
        batch.iter().map(|e| e.position).collect::<Vec<_>>(),
        [later]
    );
}

struct DelayHook {
    rollback: bool,
    delay: Duration,
}

impl TxHook for DelayHook {
    fn before_commit(&self) -> BoxFuture<'_, bool> {
        Box::pin(async move {
            tokio::time::sleep(self.delay).await;
            !self.rollback
        })
    }
}

/// 16 writers hold transactions open for random times and roll back 1 %; a subscriber reading
/// concurrently sees every committed event exactly once, in order, and nothing rolled back.
async fn subscriber_sees_every_commit_in_order(f: &Fixture) {
    let store = sealed_store(f).await;
    let mut sub = store.subscribe(0);
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let done = done.clone();
        let store = store.clone();
        tokio::spawn(async move {
            let mut seen = Vec::new();
            loop {
                let batch = sub.try_next_batch().await.expect("read");
                if batch.is_empty() {
                    if done.load(Ordering::SeqCst)
                        && sub.position() >= store.log().head().await.expect("head")
                    {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                seen.extend(batch.into_iter().map(|e| {
                    (
                        e.position,
                        e.payload["tag"].as_str().unwrap_or("").to_owned(),
                    )
                }));
            }
            seen
        })
    };
    let mut writers = Vec::new();
    for w in 0..16u32 {
        let store = store.clone();
        writers.push(tokio::spawn(async move {
            let mut committed = Vec::new();
            let mut rolled_back = Vec::new();
            for i in 0..60u32 {
                let (delay, rollback) = {
                    let mut rng = rand::rng();
                    (
                        Duration::from_micros(rng.random_range(0..3_000)),
                        rng.random_range(0..100) == 0,
                    )
                };
                let tag = format!("w{w}-{i}");
                let s = StreamId::new(B1, "writer", format!("{w}-{i}"));
                let cmd = store
                    .seal(&s, 0, &ctx(), vec![event(1, &tag)])
                    .await
                    .expect("seal");
                let out = store
                    .log()
                    .append(&[cmd], Some(&DelayHook { rollback, delay }))
                    .await
                    .expect("append");
                match out {
                    Some(r) => committed.push((r[0].as_ref().expect("no conflict")[0], tag)),
                    None => rolled_back.push(tag),
                }
            }
            (committed, rolled_back)
        }));
    }
    let mut committed = Vec::new();
    let mut rolled_back = HashSet::new();
    for w in writers {
        let (c, r) = w.await.expect("writer");
        committed.extend(c);
        rolled_back.extend(r);
    }
    done.store(true, Ordering::SeqCst);
    let seen = reader.await.expect("reader");
    committed.sort();
    assert_eq!(
        seen, committed,
        "the subscriber saw exactly the committed events, in position order"
    );
    let positions: Vec<u64> = seen.iter().map(|(p, _)| *p).collect();
    assert!(
        positions.windows(2).all(|w| w[1] == w[0] + 1),
        "positions are gap-free"
    );
    assert!(
        seen.iter().all(|(_, t)| !rolled_back.contains(t)),
        "nothing rolled back is visible"
    );
}

async fn group_commit_batches_concurrent_commands(f: &Fixture) {
    let counting = Arc::new(CountingLog {
        inner: f.stores.events.clone(),
        transactions: AtomicUsize::new(0),
    });
    let store = EventStore::start(counting.clone(), vault(f), Arc::new(SystemClock))
        .await
        .expect("start");
    let mut tasks = Vec::new();
    for i in 0..400u64 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store
                .append(
                    &StreamId::new(B1, "batch", i.to_string()),
                    0,
                    &ctx(),
                    vec![event(i, "g")],
                )
                .await
        }));
    }
    for t in tasks {
        t.await.expect("task").expect("append");
    }
    let tx = counting.transactions.load(Ordering::SeqCst);
    assert!(
        tx < 400,
        "400 concurrent commands must share transactions, took {tx}"
    );
    assert_eq!(f.stores.events.head().await.expect("head"), 400);
}

async fn snapshots_and_checkpoints(f: &Fixture) {
    let store = sealed_store(f).await;
    let s = StreamId::new(B1, "subject", "snap");
    store
        .append(&s, 0, &ctx(), vec![event(1, "a")])
        .await
        .expect("append");
    store
        .save_snapshot(&s, &ctx(), &json!({"state": "secret-state"}), 1, 1)
        .await
        .expect("save");
    let (v, seq, ver) = store
        .load_snapshot(&s)
        .await
        .expect("load")
        .expect("present");
    assert_eq!((v, seq, ver), (json!({"state": "secret-state"}), 1, 1));
    let raw = f
        .stores
        .events
        .load_snapshot(&s)
        .await
        .expect("raw")
        .expect("present");
    assert!(
        !raw.payload.windows(12).any(|w| w == b"secret-state"),
        "snapshots are sealed"
    );

    let mut sub = store.subscribe_durable("proj").await.expect("sub");
    assert_eq!(sub.next_batch().await.expect("batch").len(), 1);
    sub.commit("proj").await.expect("commit");
    store
        .append(&s, 1, &ctx(), vec![event(2, "b")])
        .await
        .expect("append");
    let mut resumed = store.subscribe_durable("proj").await.expect("sub");
    let batch = resumed.next_batch().await.expect("batch");
    assert_eq!(batch.len(), 1, "resumes after the checkpoint");
    assert_eq!(batch[0].payload["tag"], "b");
}

async fn live_tail_wakes_on_commit(f: &Fixture) {
    let store = sealed_store(f).await;
    let mut sub = store.subscribe(0);
    let waiter = tokio::spawn(async move { sub.next_batch().await.expect("batch").len() });
    tokio::time::sleep(Duration::from_millis(20)).await;
    store
        .append(
            &StreamId::new(B1, "tail", "1"),
            0,
            &ctx(),
            vec![event(1, "t")],
        )
        .await
        .expect("append");
    let n = tokio::time::timeout(Duration::from_secs(10), waiter)
        .await
        .expect("woken")
        .expect("task");
    assert_eq!(n, 1);
}

fn wrapped(id: &str, kind: KeyKind, epoch: Option<i64>, bytes: u8) -> WrappedKey {
    WrappedKey {
        key_id: id.into(),
        kind,
        business_id: "b1".into(),
        region: "EU".into(),
        epoch,
        subject_id: None,
        version: 1,
        wrapped: vec![bytes; 60],
        created_at: 1,
        root: 1,
    }
}

async fn key_store_contract(f: &Fixture) {
    let keys = &f.stores.keys;
    let first = keys
        .insert_if_absent(&wrapped("epoch/EU/b1/5", KeyKind::Epoch, Some(5), 1))
        .await
        .expect("insert");
    let second = keys
        .insert_if_absent(&wrapped("epoch/EU/b1/5", KeyKind::Epoch, Some(5), 2))
        .await
        .expect("insert");
    assert_eq!(first, second, "the first writer wins");
    keys.insert_if_absent(&wrapped("epoch/EU/b1/3", KeyKind::Epoch, Some(3), 3))
        .await
        .expect("insert");
    keys.insert_if_absent(&wrapped("epoch/EU/b1/9", KeyKind::Epoch, Some(9), 4))
        .await
        .expect("insert");
    let due: Vec<i64> = keys
        .expired_epochs(5, 10)
        .await
        .expect("due")
        .iter()
        .filter_map(|k| k.epoch)
        .collect();
    assert_eq!(due, vec![3, 5]);

    assert_eq!(
        keys.index_put("b1", "EU", &[7; 32], "sub_a")
            .await
            .expect("put"),
        "sub_a"
    );
    assert_eq!(
        keys.index_put("b1", "EU", &[7; 32], "sub_b")
            .await
            .expect("put"),
        "sub_a",
        "first route wins"
    );
    assert_eq!(
        keys.index_get("b1", "EU", &[7; 32])
            .await
            .expect("get")
            .as_deref(),
        Some("sub_a")
    );

    // Every address names the business: another business's name reaches nothing of b1's.
    assert_eq!(
        keys.get("b2", "epoch/EU/b1/5").await.expect("get"),
        KeyState::Missing
    );
    let none = keys
        .destroy(&Destruction {
            keys: vec![OfBusiness::new("b2", "epoch/EU/b1/5")],
            index_subjects: vec![OfBusiness::new("b2", "sub_a")],
            at: 8,
        })
        .await
        .expect("destroy");
    assert_eq!(none, 0, "b2 destroys nothing of b1's");
    assert_eq!(
        keys.index_get("b1", "EU", &[7; 32])
            .await
            .expect("get")
            .as_deref(),
        Some("sub_a"),
        "nor its routing"
    );
    let n = keys
        .destroy(&Destruction {
            keys: vec![
                OfBusiness::new("b1", "epoch/EU/b1/3"),
                OfBusiness::new("b1", "epoch/EU/b1/5"),
            ],
            index_subjects: vec![OfBusiness::new("b1", "sub_a")],
            at: 9,
        })
        .await
        .expect("destroy");
    assert_eq!(n, 2);
    assert_eq!(
        keys.get("b1", "epoch/EU/b1/5").await.expect("get"),
        KeyState::Destroyed
    );
    assert_eq!(
        keys.destroyed_at("b1", "epoch/EU/b1/5")
            .await
            .expect("tomb"),
        Some(9)
    );
    assert_eq!(
        keys.destroyed_at("b2", "epoch/EU/b1/5")
            .await
            .expect("tomb"),
        None
    );
    assert_eq!(
        keys.get("b1", "epoch/EU/b1/4").await.expect("get"),
        KeyState::Missing
    );
    assert!(matches!(
        keys.get("b1", "epoch/EU/b1/9").await.expect("get"),
        KeyState::Live(_)
    ));
    assert_eq!(
        keys.index_get("b1", "EU", &[7; 32]).await.expect("get"),
        None
    );
    let again = keys
        .insert_if_absent(&wrapped("epoch/EU/b1/5", KeyKind::Epoch, Some(5), 5))
        .await;
    assert!(
        matches!(again, Err(StoreError::KeyDestroyed)),
        "a destroyed key is never made again"
    );

    // The newest ledger-key version of every business in every region (ADR 0024).
    let ledger = |business: &str, region: &str, version: u32| WrappedKey {
        key_id: format!("ledger/{region}/{business}/v{version}"),
        business_id: business.into(),
        region: region.into(),
        version,
        ..wrapped("", KeyKind::Ledger, None, 6)
    };
    for key in [
        ledger("b1", "EU", 1),
        ledger("b1", "EU", 2),
        ledger("b1", "EU", 3),
        ledger("b1", "IN", 1),
        ledger("b2", "EU", 1),
    ] {
        keys.insert_if_absent(&key).await.expect("insert");
    }
    let heads: Vec<(String, String, u32)> = keys
        .ledger_heads()
        .await
        .expect("heads")
        .into_iter()
        .map(|k| (k.business_id, k.region, k.version))
        .collect();
    assert_eq!(
        heads,
        vec![
            ("b1".into(), "EU".into(), 3),
            ("b1".into(), "IN".into(), 1),
            ("b2".into(), "EU".into(), 1),
        ]
    );
}

/// `cqrs-es` runs unchanged on the sealed store: `CqrsFramework` with a snapshotting
/// `PersistedEventStore` over `SealedRepository` executes commands, loads aggregates back
/// (through the sealed snapshot) and reports conflicts as `AggregateConflict`.
async fn cqrs_framework_runs_on_the_sealed_store(f: &Fixture) {
    use cqrs_es::persist::PersistedEventStore;
    use cqrs_es::{CqrsFramework, EventStore as _};
    use sealpost_adapters::repository::SealedRepository;
    use sealpost_domain::{
        BusinessId, Sealed, Stamped, Subject, SubjectCommand, SubjectId, Timestamp,
    };
    use std::collections::HashMap;

    let store = sealed_store(f).await;
    let repo = SealedRepository::new(store.clone(), B1);
    let es = PersistedEventStore::<SealedRepository, Subject>::new_snapshot_store(repo.clone(), 2);
    let cqrs = CqrsFramework::new(es, vec![], ());
    let id = SubjectId::from_random([3; 16]);
    let business = BusinessId::parse("100000000000001").expect("id");
    let meta = HashMap::from([
        ("business_id".to_owned(), business.to_string()),
        ("region".to_owned(), "EU".to_owned()),
    ]);
    let now = Timestamp::from_millis(1_000);
    let create = SubjectCommand::Create {
        subject_id: id.clone(),
        business_id: business.clone(),
        phone: Sealed::from_bytes(vec![1; 30]),
    };
    cqrs.execute_with_metadata(id.as_str(), Stamped::at(create.clone(), now), meta.clone())
        .await
        .expect("create");
    for i in 0..3 {
        cqrs.execute_with_metadata(
            id.as_str(),
            Stamped::at(SubjectCommand::RecordInboundActivity, now.plus_millis(i)),
            meta.clone(),
        )
        .await
        .expect("activity");
    }
    let again = cqrs
        .execute_with_metadata(id.as_str(), Stamped::at(create, now), meta.clone())
        .await;
    assert!(matches!(
        again,
        Err(cqrs_es::AggregateError::UserError(
            sealpost_domain::DomainError::AlreadyExists
        ))
    ));
    assert_eq!(
        store
            .read_stream(&StreamId::new(B1, "subject", id.as_str()), 0)
            .await
            .expect("read")
            .len(),
        4
    );
    assert!(
        store
            .load_snapshot(&StreamId::new(B1, "subject", id.as_str()))
            .await
            .expect("snapshot")
            .is_some(),
        "snapshots are written"
    );
    let loaded = PersistedEventStore::<SealedRepository, Subject>::new_snapshot_store(repo, 2)
        .load_aggregate(id.as_str())
        .await
        .expect("load");
    assert_eq!(
        loaded.aggregate.window_open_until,
        Some(now.plus_millis(2 + 24 * 3_600_000))
    );
    // A repository is one business's: another's does not reach the aggregate.
    let elsewhere = SealedRepository::new(store.clone(), "100000000000002");
    let foreign =
        PersistedEventStore::<SealedRepository, Subject>::new_snapshot_store(elsewhere, 2)
            .load_aggregate(id.as_str())
            .await
            .expect("load");
    assert_eq!(
        foreign.aggregate.id, None,
        "another business sees no such subject"
    );
}

/// Signal accounts and sessions: replaced on write, and a subject's sessions go with its
/// destruction.
async fn signal_state_contract(f: &Fixture) {
    let keys = &f.stores.keys;
    assert_eq!(
        keys.signal_account("b1", "EU", "pn1").await.expect("get"),
        None
    );
    keys.put_signal_account("pn1", "b1", "EU", (1, &[1; 40]), 1)
        .await
        .expect("put");
    keys.put_signal_account("pn1", "b1", "EU", (3, &[2; 40]), 2)
        .await
        .expect("replace");
    assert_eq!(
        keys.signal_account("b1", "EU", "pn1").await.expect("get"),
        Some((3, vec![2; 40])),
        "replaced with the root-key generation it is wrapped under"
    );
    assert_eq!(
        keys.signal_account("b2", "EU", "pn1").await.expect("get"),
        None,
        "another business's name reaches nothing"
    );
    assert_eq!(
        keys.signal_account("b1", "NA", "pn1").await.expect("get"),
        None,
        "an account wrapped for EU is not NA's (another root key would not open it)"
    );

    let row = |subject: &str, device: u8, byte: u8, at: i64| SessionRow {
        business_id: "b1".into(),
        region: "EU".into(),
        subject_id: subject.into(),
        device,
        sealed: vec![byte; 50],
        at,
    };
    keys.put_signal_sessions(&[row("sub_a", 1, 3, 1), row("sub_a", 2, 4, 1)], None)
        .await
        .expect("put two in one transaction");
    keys.put_signal_sessions(&[row("sub_b", 1, 5, 1)], None)
        .await
        .expect("put");
    keys.put_signal_sessions(&[row("sub_a", 1, 6, 2)], None)
        .await
        .expect("replace");
    assert_eq!(
        keys.signal_session("b1", "EU", "sub_a", 2)
            .await
            .expect("get"),
        Some(vec![4; 50]),
        "the second row of a batch is written too"
    );
    assert_eq!(
        keys.signal_session("b1", "EU", "sub_a", 1)
            .await
            .expect("get"),
        Some(vec![6; 50])
    );
    let destroy_sub_a = |business: &str| Destruction {
        keys: vec![],
        index_subjects: vec![OfBusiness::new(business, "sub_a")],
        at: 3,
    };
    keys.destroy(&destroy_sub_a("b2")).await.expect("destroy");
    assert_eq!(
        keys.signal_session("b1", "EU", "sub_a", 1)
            .await
            .expect("get"),
        Some(vec![6; 50]),
        "another business's destruction leaves b1's sessions"
    );
    keys.destroy(&destroy_sub_a("b1")).await.expect("destroy");
    assert_eq!(
        keys.signal_session("b1", "EU", "sub_a", 1)
            .await
            .expect("get"),
        None
    );
    assert_eq!(
        keys.signal_session("b1", "EU", "sub_a", 2)
            .await
            .expect("get"),
        None
    );
    assert_eq!(
        keys.signal_session("b1", "EU", "sub_b", 1)
            .await
            .expect("get"),
        Some(vec![5; 50]),
        "other subjects keep theirs"
    );
}

// On SQLite, on Postgres, and once more with the root keys in the PKCS#11 token (issue 15).
on_every_store!(
    and_the_token;
    round_trip,
    several_streams_in_one_read,
    a_filtered_subscription_skips_what_it_does_not_follow,
    a_typed_subscription_reads_its_types_and_moves_to_the_head,
    conflicts_are_typed,
    one_winner_per_sequence,
    subscriber_sees_every_commit_in_order,
    group_commit_batches_concurrent_commands,
    snapshots_and_checkpoints,
    live_tail_wakes_on_commit,
    key_store_contract,
    cqrs_framework_runs_on_the_sealed_store,
    signal_state_contract,
);
