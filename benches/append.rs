//! Sealed append throughput (durable, group commit) next to a raw batched insert of rows of the
//! same size into the same database, in the same run, on SQLite and on Postgres; and the same
//! sealed append for a Local Storage number (DE), whose bodies go to DE's own log first and a
//! reference to the home log (ADR 0020).
//!
//! `cargo bench --bench append` (Postgres from `SEALPOST_TEST_DATABASE_URL`, default the local
//! server; skipped with a message if unreachable). Results and how to read them:
//! docs/benchmarks.md.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use sealpost_adapters::clock::SystemClock;
use sealpost_adapters::crypto::SecretKey;
use sealpost_adapters::ledger::{EventContext, EventStore, PlainEvent};
use sealpost_adapters::store::{Stores, StreamId};
use sealpost_adapters::vault::{RootKeys, Vault};
use sealpost_domain::Region;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Events per measured iteration.
const EVENTS: u64 = 2_000;
/// Concurrent callers of the sealed store (each one command at a time); the offered
/// concurrency decides how full group-commit batches get. `SEALPOST_BENCH_CALLERS` overrides it.
fn callers() -> u64 {
    std::env::var("SEALPOST_BENCH_CALLERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| EVENTS.is_multiple_of(*n))
        .unwrap_or(64)
}
/// Rows per raw transaction, and raw clients, as in docs/design.md's baseline.
const RAW_BATCH: usize = 100;
const RAW_CLIENTS: usize = 4;
/// Stored payload size of every row, sealed or raw.
const ROW_BYTES: usize = 600;

fn event() -> PlainEvent {
    // JSON of this size seals to ROW_BYTES: 4 (key version) + 12 (nonce) + 16 (tag) overhead.
    let filler = "x".repeat(ROW_BYTES - 4 - 12 - 16 - 50);
    PlainEvent {
        event_type: "OutboundMessageAccepted".into(),
        event_version: 1,
        payload: serde_json::json!({ "f": filler }),
        metadata: BTreeMap::new(),
    }
}

fn ctx(region: Region) -> EventContext {
    EventContext {
        business_id: "100000000000001".into(),
        region,
        epoch: Some(sealpost_domain::EpochId::new(1)),
    }
}

/// The sealed store over `stores`, each Local Storage region's bodies in its own store.
async fn sealed_store(stores: &Stores) -> Arc<EventStore> {
    let vault = Arc::new(Vault::new(
        stores.keys.clone(),
        RootKeys::fixed([
            (Region::Eu, SecretKey::random()),
            (Region::De, SecretKey::random()),
        ]),
    ));
    EventStore::start_with_regions(
        stores.events.clone(),
        stores.regions.clone(),
        vault,
        Arc::new(SystemClock),
    )
    .await
    .expect("start")
}

static NEXT_STREAM: AtomicU64 = AtomicU64::new(0);

async fn sealed_round(store: &Arc<EventStore>, region: Region) -> Duration {
    let start = Instant::now();
    let mut tasks = Vec::new();
    let callers = callers();
    for _ in 0..callers {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..EVENTS / callers {
                let id = NEXT_STREAM.fetch_add(1, Ordering::Relaxed);
                store
                    .append(
                        &StreamId::new("100000000000001", "message", id.to_string()),
                        0,
                        &ctx(region),
                        vec![event()],
                    )
                    .await
                    .expect("append");
            }
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    start.elapsed()
}

async fn raw_sqlite_round(pool: &sqlx::SqlitePool) -> Duration {
    let payload = vec![7u8; ROW_BYTES];
    let start = Instant::now();
    for _ in 0..EVENTS as usize / RAW_BATCH {
        let mut tx = pool.begin().await.expect("begin");
        for _ in 0..RAW_BATCH {
            sqlx::query("INSERT INTO bench_raw (stream_id, payload) VALUES ($1, $2)")
                .bind(NEXT_STREAM.fetch_add(1, Ordering::Relaxed) as i64)
                .bind(&payload)
                .execute(&mut *tx)
                .await
                .expect("insert");
        }
        tx.commit().await.expect("commit");
    }
    start.elapsed()
}

async fn raw_postgres_round(pool: &sqlx::PgPool) -> Duration {
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..RAW_CLIENTS {
        let pool = pool.clone();
        tasks.push(tokio::spawn(async move {
            let payload = vec![7u8; ROW_BYTES];
            for _ in 0..EVENTS as usize / RAW_BATCH / RAW_CLIENTS {
                let ids: Vec<i64> = (0..RAW_BATCH).map(|_| NEXT_STREAM.fetch_add(1, Ordering::Relaxed) as i64).collect();
                let payloads: Vec<&[u8]> = (0..RAW_BATCH).map(|_| payload.as_slice()).collect();
                let mut tx = pool.begin().await.expect("begin");
                sqlx::query("INSERT INTO bench_raw (stream_id, payload) SELECT * FROM UNNEST($1::bigint[], $2::bytea[])")
                    .bind(&ids)
                    .bind(&payloads)
                    .execute(&mut *tx)
                    .await
                    .expect("insert");
                tx.commit().await.expect("commit");
            }
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    start.elapsed()
}

/// Measures `round` (which times one round of EVENTS itself) as one benchmark.
fn rounds<T, F, Fut>(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    rt: &tokio::runtime::Runtime,
    id: BenchmarkId,
    target: T,
    round: F,
) where
    T: Clone,
    F: Fn(T) -> Fut + Copy,
    Fut: std::future::Future<Output = Duration>,
{
    group.bench_function(id, |b| {
        b.to_async(rt).iter_custom(|iters| {
            let target = target.clone();
            async move {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    total += round(target.clone()).await;
                }
                total
            }
        })
    });
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut group = c.benchmark_group("append");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(10))
        .throughput(Throughput::Elements(EVENTS));

    // SQLite, the embedded default.
    let dir = tempfile::tempdir().expect("temp dir");
    let (store, raw) = rt.block_on(async {
        let stores = Stores::sqlite(dir.path()).await.expect("sqlite");
        let store = sealed_store(&stores).await;
        let options = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(dir.path().join("events.db"))
            .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
            .synchronous(sqlx::sqlite::SqliteSynchronous::Full);
        let raw = sqlx::sqlite::SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options)
            .await
            .expect("raw pool");
        sqlx::query("CREATE TABLE bench_raw (stream_id INTEGER NOT NULL, payload BLOB NOT NULL)")
            .execute(&raw)
            .await
            .expect("table");
        (store, raw)
    });
    rounds(
        &mut group,
        &rt,
        BenchmarkId::new("sqlite", "raw batched insert"),
        raw.clone(),
        |x| async move { raw_sqlite_round(&x).await },
    );
    rounds(
        &mut group,
        &rt,
        BenchmarkId::new("sqlite", "sealed append (group commit)"),
        store.clone(),
        |x| async move { sealed_round(&x, Region::Eu).await },
    );
    rounds(
        &mut group,
        &rt,
        BenchmarkId::new("sqlite", "sealed append, Local Storage DE"),
        store.clone(),
        |x| async move { sealed_round(&x, Region::De).await },
    );

    // Postgres.
    let pg = rt.block_on(sealpost_testkit::postgres_test_db("bench"));
    if let Some(pg) = pg {
        let (store, raw) = rt.block_on(async {
            sqlx::query(
                "CREATE TABLE bench_raw (stream_id BIGINT NOT NULL, payload BYTEA NOT NULL)",
            )
            .execute(&pg.pool)
            .await
            .expect("table");
            (
                sealed_store(&Stores::postgres(pg.pool.clone(), pg.regions())).await,
                pg.pool.clone(),
            )
        });
        rounds(
            &mut group,
            &rt,
            BenchmarkId::new("postgres", "raw batched insert"),
            raw.clone(),
            |x| async move { raw_postgres_round(&x).await },
        );
        rounds(
            &mut group,
            &rt,
            BenchmarkId::new("postgres", "sealed append (group commit)"),
            store.clone(),
            |x| async move { sealed_round(&x, Region::Eu).await },
        );
        rounds(
            &mut group,
            &rt,
            BenchmarkId::new("postgres", "sealed append, Local Storage DE"),
            store.clone(),
            |x| async move { sealed_round(&x, Region::De).await },
        );
        rt.block_on(pg.drop_schema());
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
