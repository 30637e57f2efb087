//! The embedded store: SQLite files in the data directory, WAL mode, `synchronous=FULL`.
//!
//! `events.db` holds events, snapshots and checkpoints; `keys.db` holds wrapped keys,
//! tombstones and the blind index, with `secure_delete=ON` so that a destroyed key's bytes are
//! overwritten, and a `wal_checkpoint(TRUNCATE)` after destructions (`KeyStore::scrub`, batched
//! by `Vault::scrub`) so no copy stays in the WAL. Each file has a single-connection writer pool (SQLite has one writer anyway; one
//! connection makes `BEGIN IMMEDIATE` the sequencer lock) and a small reader pool.

use super::{impl_event_log, impl_key_store, AppendTx, AuditLeaf, NewRow, StoreError, StreamId};
use async_trait::async_trait;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Sqlite, SqlitePool, Transaction};
use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

static EVENTS_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite_events");
static KEYS_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite_keys");

/// File name of the event database inside the data directory.
pub const EVENTS_FILE: &str = "events.db";
/// File name of the key database inside the data directory.
pub const KEYS_FILE: &str = "keys.db";

/// How long a statement waits for a lock held by another connection.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

async fn open_pools(path: &Path, readers: u32) -> Result<(SqlitePool, SqlitePool), StoreError> {
    // Created 0600 before SQLite opens it; SQLite gives the -wal and -shm files the same mode.
    crate::files::ensure_private_file(path)
        .map_err(|e| StoreError::Database(format!("database file: {}", e.kind())))?;
    let options = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .busy_timeout(BUSY_TIMEOUT)
        .pragma("secure_delete", "ON")
        .foreign_keys(true);
    let writer = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(options.clone())
        .await?;
    let reader = SqlitePoolOptions::new()
        .max_connections(readers)
        .connect_with(options.read_only(true))
        .await?;
    Ok((writer, reader))
}

/// The SQLite event log.
#[derive(Debug, Clone)]
pub struct SqliteEventLog {
    writer: SqlitePool,
    reader: SqlitePool,
}

impl SqliteEventLog {
    /// Opens (creating and migrating) `<dir>/events.db`.
    pub async fn open(dir: &Path) -> Result<Self, StoreError> {
        let path = dir.join(EVENTS_FILE);
        let (writer, reader) = open_pools(&path, 4).await?;
        EVENTS_MIGRATOR.run(&writer).await?;
        Ok(Self { writer, reader })
    }

    /// Closes both pools (flushes the WAL on the last connection).
    pub async fn close(&self) {
        self.reader.close().await;
        self.writer.close().await;
    }
}

struct SqliteAppendTx {
    tx: Transaction<'static, Sqlite>,
}

#[async_trait]
impl AppendTx for SqliteAppendTx {
    async fn lock_head(&mut self) -> Result<u64, StoreError> {
        // BEGIN IMMEDIATE already holds the database's write lock.
        let (h,): (i64,) = sqlx::query_as(super::sql::HEAD)
            .fetch_one(&mut *self.tx)
            .await?;
        Ok(h as u64)
    }

    async fn stream_versions(
        &mut self,
        streams: &[&StreamId],
    ) -> Result<HashMap<StreamId, u64>, StoreError> {
        let mut out = HashMap::with_capacity(streams.len());
        for s in streams {
            if out.contains_key(*s) {
                continue;
            }
            let (v,): (i64,) = sqlx::query_as(super::sql::STREAM_VERSION)
                .bind(&s.business)
                .bind(&s.kind)
                .bind(&s.id)
                .fetch_one(&mut *self.tx)
                .await?;
            if v > 0 {
                out.insert((*s).clone(), v as u64);
            }
        }
        Ok(out)
    }

    async fn insert(&mut self, rows: &[(u64, &NewRow)]) -> Result<(), StoreError> {
        for (position, row) in rows {
            let h = &row.header;
            sqlx::query(
                "INSERT INTO sealpost_events (position, stream_type, stream_id, sequence, event_type, event_version, \
                 business_id, region, epoch, recorded_at, payload) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
            )
            .bind(*position as i64)
            .bind(&h.stream.kind)
            .bind(&h.stream.id)
            .bind(h.sequence as i64)
            .bind(&h.event_type)
            .bind(h.event_version as i32)
            .bind(&h.business_id)
            .bind(&h.region)
            .bind(h.epoch)
            .bind(h.recorded_at)
            .bind(&row.payload)
            .execute(&mut *self.tx)
            .await
            .map_err(super::unique_to_conflict)?;
        }
        Ok(())
    }

    async fn insert_leaves(&mut self, leaves: &[AuditLeaf]) -> Result<(), StoreError> {
        super::put_leaves_in_tx!(self.tx, leaves);
        Ok(())
    }

    async fn finish(self: Box<Self>, _new_head: u64, commit: bool) -> Result<(), StoreError> {
        if commit {
            self.tx.commit().await?;
        } else {
            self.tx.rollback().await?;
        }
        Ok(())
    }
}

impl SqliteEventLog {
    /// Takes the database's write lock at once, so the transaction is the sequencer.
    const BEGIN_WRITE: &'static str = "BEGIN IMMEDIATE";
    /// Several streams of one business and type: `$3` is a JSON array of their ids.
    const READ_STREAMS: &'static str = "SELECT position, stream_type, stream_id, sequence, event_type, event_version, business_id, region, epoch, recorded_at, payload \
     FROM sealpost_events WHERE business_id = $1 AND stream_type = $2 AND stream_id IN (SELECT value FROM json_each($3)) \
     ORDER BY stream_id, sequence";
    const READ_TYPES: &'static str = "SELECT position, stream_type, stream_id, sequence, event_type, event_version, business_id, region, epoch, recorded_at, payload \
     FROM sealpost_events WHERE position > $1 AND event_type IN (SELECT value FROM json_each($2)) \
     ORDER BY position LIMIT $3";
    /// Rows at the positions of a JSON array.
    const READ_POSITIONS: &'static str = "SELECT position, stream_type, stream_id, sequence, event_type, event_version, business_id, region, epoch, recorded_at, payload \
     FROM sealpost_events WHERE position IN (SELECT value FROM json_each($1)) ORDER BY position";
    /// The evidence fold's position (`BEGIN IMMEDIATE` already holds the write lock).
    const EV_POSITION_FOR_UPDATE: &'static str =
        "SELECT position FROM sealpost_checkpoints WHERE name = $1";
    /// Evidence messages of business `$1` whose id is in the JSON array `$2`.
    const EV_MESSAGES_IN: &'static str = "SELECT message_id, business_id, region, epoch, subject_tag, phone_number_id, kind, category, created_at \
     FROM sealpost_ev_messages WHERE business_id = $1 AND message_id IN (SELECT value FROM json_each($2))";

    /// A lease's owner and epoch (`BEGIN IMMEDIATE` already holds the write lock).
    const LEASE_FOR_SHARE: &'static str =
        "SELECT owner, epoch FROM sealpost_leases WHERE name = $1";

    fn append_tx(tx: Transaction<'static, Sqlite>) -> Box<dyn AppendTx> {
        Box::new(SqliteAppendTx { tx })
    }
}

impl_event_log!(SqliteEventLog);
super::impl_evidence_rows!(SqliteEventLog, Sqlite);
super::impl_leases!(SqliteEventLog, Sqlite);
super::region::impl_region_registry!(SqliteEventLog);

/// The SQLite key store (`keys.db`).
#[derive(Debug, Clone)]
pub struct SqliteKeyStore {
    writer: SqlitePool,
    reader: SqlitePool,
}

impl SqliteKeyStore {
    /// Opens (creating and migrating) `<dir>/keys.db`.
    pub async fn open(dir: &Path) -> Result<Self, StoreError> {
        let path = dir.join(KEYS_FILE);
        let (writer, reader) = open_pools(&path, 2).await?;
        KEYS_MIGRATOR.run(&writer).await?;
        Ok(Self { writer, reader })
    }

    /// Copies every WAL frame into the main file and truncates the WAL to zero bytes, retrying
    /// while readers hold old snapshots. With `secure_delete=ON` the main file then holds zeros
    /// where a deleted key was, and the WAL holds nothing.
    ///
    /// A truncating checkpoint that waits for readers holds back every writer meanwhile, so each
    /// attempt waits for nobody (busy timeout 0) and the writer connection is free between
    /// attempts: a busy store keeps saving sessions while the scrub looks for a quiet moment.
    pub async fn scrub_storage(&self) -> Result<(), StoreError> {
        for _ in 0..500 {
            if !self.try_checkpoint().await? {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Err(StoreError::Unavailable("WAL checkpoint stayed busy".into()))
    }

    /// One truncating checkpoint that does not wait; whether it was blocked.
    async fn try_checkpoint(&self) -> Result<bool, StoreError> {
        let mut conn = self.writer.acquire().await?;
        sqlx::query("PRAGMA busy_timeout = 0")
            .execute(&mut *conn)
            .await?;
        let attempt: Result<(i64, i64, i64), sqlx::Error> =
            sqlx::query_as("PRAGMA wal_checkpoint(TRUNCATE)")
                .fetch_one(&mut *conn)
                .await;
        sqlx::query(&format!(
            "PRAGMA busy_timeout = {}",
            BUSY_TIMEOUT.as_millis()
        ))
        .execute(&mut *conn)
        .await?;
        match attempt {
            Ok((busy, _log, _done)) => Ok(busy != 0),
            // SQLITE_BUSY or SQLITE_LOCKED: another connection holds what it needs.
            Err(sqlx::Error::Database(e)) if matches!(e.code().as_deref(), Some("5" | "6")) => {
                Ok(true)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Closes both pools.
    pub async fn close(&self) {
        self.reader.close().await;
        self.writer.close().await;
    }
}

impl SqliteKeyStore {
    const BEGIN_WRITE: &'static str = "BEGIN IMMEDIATE";

    /// Session writes are not fenced in the key file: the embedded store serves one process
    /// (`serve` holds the data directory's lock file), so no other node can hold a lease on it.
    async fn check_fence(
        _conn: &mut sqlx::SqliteConnection,
        _fence: &super::Fence,
    ) -> Result<(), StoreError> {
        Ok(())
    }
}

impl_key_store!(SqliteKeyStore);
super::impl_media_chunks!(SqliteKeyStore);
