//! Store errors say whether the database is unavailable (transient: HTTP 503, retry) or broken
//! (a bug or corruption: HTTP 500), from real failures of both backends; the Postgres pool
//! recovers by itself from a dropped connection; the embedded store's files are owner-only.

use sealpost_adapters::store::{postgres, StoreError, Stores, StreamId};
use sealpost_testkit::postgres_test_db;
use std::time::{Duration, Instant};

/// The default limits, waiting `connect` for the database.
fn within(connect: Duration) -> postgres::Limits {
    postgres::Limits {
        connect,
        ..postgres::Limits::default()
    }
}

#[tokio::test]
async fn an_unreachable_postgres_is_unavailable_and_named_by_host_and_port_only() {
    let started = Instant::now();
    let e = postgres::connect_within(
        "postgres://user-CANARY:pw-CANARY@127.0.0.1:1/db-CANARY",
        None,
        2,
        within(Duration::from_secs(1)),
    )
    .await
    .expect_err("nobody listens on port 1");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "gave up in time"
    );
    assert!(e.is_unavailable(), "{e}");
    let text = e.to_string();
    assert!(text.contains("127.0.0.1:1"), "{text}");
    assert!(
        !text.contains("CANARY"),
        "no user, password or database: {text}"
    );

    let bad = postgres::connect_within(
        "postgres://u:pw-CANARY@[::1",
        None,
        1,
        within(Duration::from_secs(1)),
    )
    .await
    .expect_err("not a URL");
    assert!(!bad.is_unavailable());
    assert!(!bad.to_string().contains("CANARY"), "{bad}");
}

/// A connection the server drops (57P01, as in a restart) is unavailable; the next query on
/// the pool gets a fresh connection. A bad statement is a database error, not unavailable.
#[tokio::test]
async fn a_dropped_postgres_connection_is_unavailable_and_the_pool_recovers() {
    let Some(pg) = postgres_test_db("unavailable").await else {
        return;
    };
    let pool =
        postgres::connect_within(&pg.url, Some(&pg.schema), 1, within(Duration::from_secs(5)))
            .await
            .expect("pool");
    let dropped: StoreError = sqlx::query("SELECT pg_terminate_backend(pg_backend_pid())")
        .execute(&pool)
        .await
        .expect_err("the server drops the connection")
        .into();
    assert!(dropped.is_unavailable(), "{dropped}");
    let (one,): (i32,) = sqlx::query_as("SELECT 1")
        .fetch_one(&pool)
        .await
        .expect("the pool reconnects by itself");
    assert_eq!(one, 1);
    let broken: StoreError = sqlx::query("SELEKT 1")
        .execute(&pool)
        .await
        .expect_err("syntax")
        .into();
    assert!(
        matches!(broken, StoreError::Database(_)),
        "a bug is not an outage: {broken}"
    );
    pool.close().await;
    pg.drop_schema().await;
}

/// A node paused inside a transaction (SIGSTOP, a partition) holds the sequencer's row, which
/// every append of every node locks first. The server ends the paused session once it has sat
/// idle for the pool's `idle_in_transaction` limit: the other node's append goes on, and the
/// paused node's transaction is gone when it resumes.
#[tokio::test]
async fn a_transaction_left_idle_is_ended_by_the_server_and_holds_no_one_up() {
    let Some(pg) = postgres_test_db("idletx").await else {
        return;
    };
    const LOCK_HEAD: &str = "SELECT last_position FROM sealpost_sequencer WHERE id = 1 FOR UPDATE";
    let limit = Duration::from_secs(1);
    let paused_node = postgres::connect_within(
        &pg.url,
        Some(&pg.schema),
        1,
        postgres::Limits {
            idle_in_transaction: limit,
            ..postgres::Limits::default()
        },
    )
    .await
    .expect("pool");
    let mut paused = paused_node.begin().await.expect("begin");
    sqlx::query(LOCK_HEAD)
        .execute(&mut *paused)
        .await
        .expect("the paused node holds the head");

    let started = Instant::now();
    let mut other = pg.pool.begin().await.expect("begin");
    let waited = tokio::time::timeout(
        Duration::from_secs(30),
        sqlx::query(LOCK_HEAD).execute(&mut *other),
    )
    .await;
    assert!(
        matches!(waited, Ok(Ok(_))),
        "the other node's append waited {:?} and did not get the head: {waited:?}",
        started.elapsed()
    );
    assert!(started.elapsed() >= limit, "it waited for the limit");
    other.rollback().await.expect("rollback");
    eprintln!(
        "the other node locked the head after {} ms (limit {} ms)",
        started.elapsed().as_millis(),
        limit.as_millis()
    );

    let resumed: StoreError = sqlx::query("SELECT 1")
        .execute(&mut *paused)
        .await
        .expect_err("the server ended the paused session")
        .into();
    assert!(resumed.is_unavailable(), "{resumed}");
    drop(paused);
    paused_node.close().await;
    pg.drop_schema().await;
}

/// SQLite's BUSY is unavailable (another writer holds the lock past the busy timeout).
#[tokio::test]
async fn a_busy_sqlite_database_is_unavailable() {
    use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
    let dir = tempfile::tempdir().expect("dir");
    let options = SqliteConnectOptions::new()
        .filename(dir.path().join("busy.db"))
        .create_if_missing(true)
        .busy_timeout(Duration::from_millis(0));
    let pool = SqlitePoolOptions::new()
        .max_connections(2)
        .connect_with(options)
        .await
        .expect("pool");
    sqlx::query("CREATE TABLE t (x INTEGER)")
        .execute(&pool)
        .await
        .expect("table");
    let mut holder = pool.acquire().await.expect("first");
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut *holder)
        .await
        .expect("lock");
    let busy: StoreError = sqlx::query("INSERT INTO t VALUES (1)")
        .execute(&pool)
        .await
        .expect_err("locked")
        .into();
    assert!(busy.is_unavailable(), "{busy}");
    sqlx::query("ROLLBACK")
        .execute(&mut *holder)
        .await
        .expect("unlock");
}

/// `events.db`, `keys.db` and the `-wal` and `-shm` files SQLite makes beside them are 0600,
/// in a data directory created 0700.
#[cfg(unix)]
#[tokio::test]
async fn the_embedded_store_files_are_owner_only() {
    use std::os::unix::fs::PermissionsExt as _;
    let tmp = tempfile::tempdir().expect("dir");
    let dir = tmp.path().join("data");
    let stores = Stores::sqlite(&dir).await.expect("open");
    // A read on each file keeps its WAL and shared memory open.
    stores.events.head().await.expect("head");
    stores
        .events
        .stream_version(&StreamId::new("b1", "t", "1"))
        .await
        .expect("version");
    stores.keys.get("b1", "nothing").await.expect("get");
    let mode = |p: &std::path::Path| {
        std::fs::metadata(p)
            .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
            .permissions()
            .mode()
            & 0o7777
    };
    assert_eq!(mode(&dir), 0o700);
    for name in [
        "events.db",
        "events.db-wal",
        "events.db-shm",
        "keys.db",
        "keys.db-wal",
        "keys.db-shm",
    ] {
        assert_eq!(mode(&dir.join(name)), 0o600, "{name}");
    }
}
