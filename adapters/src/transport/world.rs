//! Durable state of the simulated outside world: the transport (key directory, queued
//! envelopes, integrity signals) and the consumers' phones. Real phones and the real network do
//! not restart when the business's processor does, so the in-process simulation keeps its state
//! across restarts of `sealpost serve` in a folder of its own beside the store (`world/`).
//!
//! It is not Sealpost's data and never uses Sealpost's keys: the world has its own key
//! (`world.key`, 0600), as a phone has its own storage key. Every row is sealed under it
//! (AES-256-GCM-SIV, bound to its kind and row), and a phone number appears on disk only as an
//! HMAC under a key derived from it. A phone's inbox holds plaintext, so it is never on disk in
//! clear. Commits use WAL with `synchronous=NORMAL`: they survive a crash of the process (the
//! failure the simulation stands in for), not a power cut.

use crate::crypto::{self, SecretKey};
use serde::de::DeserializeOwned;
use serde::Serialize;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row as _, SqlitePool};
use std::path::{Path, PathBuf};
use std::time::Duration;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite_world");

/// The folder of the simulated world inside the data directory.
pub const WORLD_DIR: &str = "world";
const KEY_FILE: &str = "world.key";
const DB_FILE: &str = "world.db";

/// What the world store can fail with.
#[derive(Debug, thiserror::Error)]
pub enum WorldError {
    /// The world's files could not be read or written: the simulation cannot go on.
    #[error("world store unavailable: {0}")]
    Io(String),
    /// A row did not open under the world key (tampered, or another world's key).
    #[error("world store is corrupt: {0}")]
    Corrupt(&'static str),
}

impl From<sqlx::Error> for WorldError {
    fn from(e: sqlx::Error) -> Self {
        WorldError::Io(e.to_string())
    }
}

impl From<std::io::Error> for WorldError {
    fn from(e: std::io::Error) -> Self {
        WorldError::Io(e.to_string())
    }
}

/// Kinds of long-lived record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A party's key directory entry.
    Directory,
    /// The transport's integrity state of a business number.
    Integrity,
    /// A consumer phone.
    Device,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Directory => "directory",
            Kind::Integrity => "integrity",
            Kind::Device => "device",
        }
    }
}

/// The sealed SQLite file of the simulated world.
#[derive(Debug)]
pub struct WorldStore {
    pool: SqlitePool,
    key: SecretKey,
    index: SecretKey,
}

fn key_file(dir: &Path) -> Result<SecretKey, WorldError> {
    let path: PathBuf = dir.join(KEY_FILE);
    match std::fs::read(&path) {
        Ok(bytes) => SecretKey::from_slice(&bytes).map_err(|_| WorldError::Corrupt("world.key")),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = SecretKey::random();
            crate::vault::write_private_file(&path, key.expose())?;
            Ok(key)
        }
        Err(e) => Err(e.into()),
    }
}

impl WorldStore {
    /// Opens (creating) the world in `<dir>` (usually `<data-dir>/world`).
    pub async fn open(dir: &Path) -> Result<Self, WorldError> {
        crate::files::create_private_dir_all(dir)?;
        let key = key_file(dir)?;
        let db = dir.join(DB_FILE);
        // SQLite gives its -wal and -shm files the main file's mode: make that 0600 first.
        crate::files::ensure_private_file(&db)?;
        let options = SqliteConnectOptions::new()
            .filename(&db)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(30))
            .pragma("secure_delete", "ON");
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options)
            .await?;
        MIGRATOR
            .run(&pool)
            .await
            .map_err(|e| WorldError::Io(e.to_string()))?;
        let index = crypto::derive(key.expose(), b"sealpost-world", b"phone number index");
        Ok(Self { pool, key, index })
    }

    fn blind(&self, handle: &str) -> Vec<u8> {
        crypto::mac(&self.index, handle.as_bytes()).to_vec()
    }

    fn seal<T: Serialize>(&self, aad: &[u8], value: &T) -> Result<Vec<u8>, WorldError> {
        let plain = serde_json::to_vec(value).map_err(|_| WorldError::Corrupt("serialize"))?;
        Ok(crypto::seal(&self.key, &plain, aad))
    }

    fn open_sealed<T: DeserializeOwned>(&self, aad: &[u8], sealed: &[u8]) -> Result<T, WorldError> {
        let plain = crypto::open(&self.key, sealed, aad)
            .map_err(|_| WorldError::Corrupt("a row does not open under the world key"))?;
        serde_json::from_slice(&plain).map_err(|_| WorldError::Corrupt("a row is not what it was"))
    }

    /// Writes (replaces) the record of `kind` for `handle`.
    pub async fn put<T: Serialize>(
        &self,
        kind: Kind,
        handle: &str,
        value: &T,
    ) -> Result<(), WorldError> {
        let k = self.blind(handle);
        let sealed = self.seal(&crypto::aad(&[kind.as_str().as_bytes(), &k]), value)?;
        sqlx::query(
            "INSERT INTO world_records (kind, k, sealed) VALUES (?, ?, ?) \
             ON CONFLICT (kind, k) DO UPDATE SET sealed = excluded.sealed",
        )
        .bind(kind.as_str())
        .bind(k)
        .bind(sealed)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Every record of `kind`.
    pub async fn all<T: DeserializeOwned>(&self, kind: Kind) -> Result<Vec<T>, WorldError> {
        let rows = sqlx::query("SELECT k, sealed FROM world_records WHERE kind = ?")
            .bind(kind.as_str())
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                let k: Vec<u8> = r.get(0);
                let sealed: Vec<u8> = r.get(1);
                self.open_sealed(&crypto::aad(&[kind.as_str().as_bytes(), &k]), &sealed)
            })
            .collect()
    }

    /// Keeps an accepted envelope (or anything serializable) as row `row` of the inbox table.
    pub async fn enqueue<T: Serialize>(&self, row: u64, value: &T) -> Result<(), WorldError> {
        let sealed = self.seal(&row.to_be_bytes(), value)?;
        sqlx::query("INSERT OR REPLACE INTO world_inbox (row, sealed) VALUES (?, ?)")
            .bind(row as i64)
            .bind(sealed)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Forgets acknowledged inbox rows.
    pub async fn dequeue(&self, rows: &[u64]) -> Result<(), WorldError> {
        if rows.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool.begin().await?;
        for row in rows {
            sqlx::query("DELETE FROM world_inbox WHERE row = ?")
                .bind(*row as i64)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Every queued row, in order.
    pub async fn queued<T: DeserializeOwned>(&self) -> Result<Vec<(u64, T)>, WorldError> {
        let rows = sqlx::query("SELECT row, sealed FROM world_inbox ORDER BY row")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                let row = r.get::<i64, _>(0) as u64;
                let sealed: Vec<u8> = r.get(1);
                Ok((row, self.open_sealed(&row.to_be_bytes(), &sealed)?))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn records_and_queued_rows_survive_a_reopen_and_hold_no_plaintext() {
        let dir = tempfile::tempdir().expect("temp dir");
        let world = dir.path().join(WORLD_DIR);
        {
            let w = WorldStore::open(&world).await.expect("open");
            w.put(Kind::Device, "4915112345678", &"hello canary-plaintext")
                .await
                .expect("put");
            w.enqueue(7, &"queued canary-plaintext")
                .await
                .expect("enqueue");
            w.enqueue(8, &"second").await.expect("enqueue");
            w.dequeue(&[8]).await.expect("dequeue");
        }
        let w = WorldStore::open(&world).await.expect("reopen");
        let devices: Vec<String> = w.all(Kind::Device).await.expect("all");
        assert_eq!(devices, vec!["hello canary-plaintext".to_owned()]);
        let queued: Vec<(u64, String)> = w.queued().await.expect("queued");
        assert_eq!(queued, vec![(7, "queued canary-plaintext".to_owned())]);
        drop(w);
        for entry in std::fs::read_dir(&world).expect("list") {
            let path = entry.expect("entry").path();
            let bytes = std::fs::read(&path).expect("read");
            for needle in [&b"canary-plaintext"[..], b"4915112345678"] {
                assert!(
                    !bytes.windows(needle.len()).any(|w| w == needle),
                    "{} holds plaintext",
                    path.display()
                );
            }
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt as _;
                let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
                assert_eq!(mode & 0o077, 0, "{} is readable by others", path.display());
            }
        }
    }

    #[tokio::test]
    async fn a_row_sealed_under_another_world_key_is_refused() {
        let a = tempfile::tempdir().expect("temp dir");
        let w = WorldStore::open(a.path()).await.expect("open");
        w.put(Kind::Directory, "1555", &1u32).await.expect("put");
        drop(w);
        std::fs::remove_file(a.path().join(KEY_FILE)).expect("rm key");
        let w = WorldStore::open(a.path())
            .await
            .expect("reopen with a new key");
        assert!(matches!(
            w.all::<u32>(Kind::Directory).await,
            Err(WorldError::Corrupt(_))
        ));
    }
}
