//! Durable state of the simulated outside world: the transport (key directory, queued
//! envelopes, integrity signals) and the consumers' phones. Real phones and the real network do
//! not restart when the business's processor does, so the in-process simulation keeps its state
//! across restarts of `sealpost serve` in a folder of its own beside the store (`world/`).
//!
//! It is not Sealpost's data and never uses Sealpost's keys: the world has its own key
//! (`world.key`, 0600), as a phone has its own storage key. Every row is sealed under it
//! (AES-256-GCM-SIV, bound to its kind and row), and a phone number or message id appears on
//! disk only as an HMAC under a key derived from it. A phone's inbox holds plaintext, so it is
//! never on disk in clear. A phone's history is a row per message ([`Item`]), not part of the
//! record rewritten at every step. Commits use WAL with `synchronous=NORMAL`: they survive a
//! crash of the process (the failure the simulation stands in for), not a power cut. Every write
//! goes through one writer task that commits whatever waits in one transaction
//! ([`writer`]), in the order submitted.

use crate::crypto::{self, SecretKey};
use serde::de::DeserializeOwned;
use serde::Serialize;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Connection as _, Row as _, SqliteConnection, SqlitePool};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::sync::mpsc;

mod writer;

use writer::{item_aad, write_loop, Job};
pub use writer::{Batch, Item, Pending};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite_world");

/// The first byte of a row in the binary encoding (postcard); rows of earlier versions are JSON.
/// A phone's keys and sessions are mostly bytes, which JSON writes as lists of numbers.
const BINARY: u8 = b'P';

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

/// The sealed SQLite file of the simulated world. Reads go through a pool; every write goes
/// to one writer task, which commits whatever waits in one transaction (group commit), in the
/// order the writes were submitted.
pub struct WorldStore {
    pool: SqlitePool,
    writer: mpsc::UnboundedSender<Job>,
    key: SecretKey,
    index: SecretKey,
}

impl std::fmt::Debug for WorldStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorldStore").finish_non_exhaustive()
    }
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
            .connect_with(options.clone())
            .await?;
        MIGRATOR
            .run(&pool)
            .await
            .map_err(|e| WorldError::Io(e.to_string()))?;
        let (writer, jobs) = mpsc::unbounded_channel();
        tokio::spawn(write_loop(
            SqliteConnection::connect_with(&options).await?,
            jobs,
        ));
        let index = crypto::derive(key.expose(), b"sealpost-world", b"phone number index");
        Ok(Self {
            pool,
            writer,
            key,
            index,
        })
    }

    /// Writes to be committed together.
    pub fn batch(&self) -> Batch<'_> {
        Batch::new(self)
    }

    fn blind(&self, handle: &str) -> Vec<u8> {
        crypto::mac(&self.index, handle.as_bytes()).to_vec()
    }

    fn seal<T: Serialize>(&self, aad: &[u8], value: &T) -> Result<Vec<u8>, WorldError> {
        let plain = postcard::to_extend(value, vec![BINARY])
            .map_err(|_| WorldError::Corrupt("serialize"))?;
        Ok(crypto::seal(&self.key, &plain, aad))
    }

    fn open_sealed<T: DeserializeOwned>(&self, aad: &[u8], sealed: &[u8]) -> Result<T, WorldError> {
        let plain = crypto::open(&self.key, sealed, aad)
            .map_err(|_| WorldError::Corrupt("a row does not open under the world key"))?;
        let value = match plain.split_first() {
            Some((&BINARY, body)) => postcard::from_bytes(body).ok(),
            // An earlier version's row, in JSON (which never starts with the binary mark).
            _ => serde_json::from_slice(&plain).ok(),
        };
        value.ok_or(WorldError::Corrupt("a row is not what it was"))
    }

    /// The sealed size of `handle`'s record of `kind`, if it has one.
    #[cfg(test)]
    pub(crate) async fn record_len(&self, kind: Kind, handle: &str) -> Result<usize, WorldError> {
        let sealed: Vec<u8> =
            sqlx::query_scalar("SELECT sealed FROM world_records WHERE kind = ? AND k = ?")
                .bind(kind.as_str())
                .bind(self.blind(handle))
                .fetch_one(&self.pool)
                .await?;
        Ok(sealed.len())
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

    /// `handle`'s items of kind `item`, in the order they were kept.
    pub async fn items<T: DeserializeOwned>(
        &self,
        handle: &str,
        item: Item,
    ) -> Result<Vec<T>, WorldError> {
        let k = self.blind(handle);
        let rows =
            sqlx::query("SELECT id, sealed FROM world_items WHERE k = ? AND item = ? ORDER BY row")
                .bind(&k)
                .bind(item.as_str())
                .fetch_all(&self.pool)
                .await?;
        rows.iter()
            .map(|r| {
                let id: Vec<u8> = r.get(0);
                let sealed: Vec<u8> = r.get(1);
                self.open_sealed(&item_aad(item, &k, &id), &sealed)
            })
            .collect()
    }

    /// `handle`'s item of kind `item` and id `id`, if it kept one.
    pub async fn item<T: DeserializeOwned>(
        &self,
        handle: &str,
        item: Item,
        id: &str,
    ) -> Result<Option<T>, WorldError> {
        let (k, id) = (self.blind(handle), self.blind(id));
        let sealed: Option<Vec<u8>> = sqlx::query_scalar(
            "SELECT sealed FROM world_items WHERE k = ? AND item = ? AND id = ?",
        )
        .bind(&k)
        .bind(item.as_str())
        .bind(&id)
        .fetch_optional(&self.pool)
        .await?;
        sealed
            .map(|s| self.open_sealed(&item_aad(item, &k, &id), &s))
            .transpose()
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
            let mut b = w.batch();
            b.put(Kind::Device, "4915112345678", &"hello canary-plaintext")
                .expect("put");
            b.enqueue(7, &"queued canary-plaintext").expect("enqueue");
            b.enqueue(8, &"second").expect("enqueue");
            b.submit().done().await.expect("written");
            let mut b = w.batch();
            b.dequeue(&[8]);
            b.submit().done().await.expect("dequeued");
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
    async fn a_row_an_earlier_version_wrote_in_json_still_opens() {
        let dir = tempfile::tempdir().expect("temp dir");
        let w = WorldStore::open(dir.path()).await.expect("open");
        let k = w.blind("1555");
        let aad = crypto::aad(&[Kind::Directory.as_str().as_bytes(), &k]);
        sqlx::query("INSERT INTO world_records (kind, k, sealed) VALUES (?, ?, ?)")
            .bind(Kind::Directory.as_str())
            .bind(&k)
            .bind(crypto::seal(&w.key, b"[1,2,3]", &aad))
            .execute(&w.pool)
            .await
            .expect("an earlier row");
        let rows: Vec<Vec<u32>> = w.all(Kind::Directory).await.expect("all");
        assert_eq!(rows, vec![vec![1, 2, 3]]);
        let mut b = w.batch();
        b.put(Kind::Directory, "1555", &vec![4u32]).expect("put");
        b.submit().done().await.expect("written");
        let rows: Vec<Vec<u32>> = w.all(Kind::Directory).await.expect("all");
        assert_eq!(rows, vec![vec![4]]);
    }

    #[tokio::test]
    async fn batches_submitted_at_once_commit_in_order_and_items_are_kept_once() {
        let dir = tempfile::tempdir().expect("temp dir");
        let w = WorldStore::open(dir.path()).await.expect("open");
        let pending: Vec<Pending> = (0..50u64)
            .map(|i| {
                let mut b = w.batch();
                b.enqueue(i, &i).expect("enqueue");
                b.put(Kind::Device, "4915112345678", &i).expect("put");
                b.remember("4915112345678", Item::Shown, &format!("m-{}", i % 10), &i)
                    .expect("remember");
                b.submit()
            })
            .collect();
        let mut new = 0;
        for p in pending {
            let changed = p.done().await.expect("committed");
            assert_eq!(changed.len(), 3);
            new += usize::from(changed[2]);
        }
        assert_eq!(new, 10, "each item id is kept once");
        let last: Vec<u64> = w.all(Kind::Device).await.expect("all");
        assert_eq!(last, vec![49], "the last write of a record wins");
        let queued: Vec<(u64, u64)> = w.queued().await.expect("queued");
        assert_eq!(queued.len(), 50);
        let shown: Vec<u64> = w.items("4915112345678", Item::Shown).await.expect("items");
        assert_eq!(shown, (0..10).collect::<Vec<_>>(), "in the order kept");
    }

    #[tokio::test]
    async fn a_row_sealed_under_another_world_key_is_refused() {
        let a = tempfile::tempdir().expect("temp dir");
        let w = WorldStore::open(a.path()).await.expect("open");
        let mut b = w.batch();
        b.put(Kind::Directory, "1555", &1u32).expect("put");
        b.submit().done().await.expect("written");
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
