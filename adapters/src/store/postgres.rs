//! The production store: Postgres through sqlx, migrations embedded and checksummed.
//!
//! Gap safety: every append transaction locks the single row of `sealpost_sequencer`, takes
//! positions after `last_position`, and holds the lock until commit. Positions therefore become
//! visible strictly in order (a later position can only be taken after the earlier transaction
//! committed or rolled back, and a rollback gives its positions back), so a reader paging by
//! `position > checkpoint` can never skip a late commit. Group commit keeps the lock cheap: one
//! transaction carries many commands.

use super::{
    impl_event_log, impl_evidence_rows, impl_key_store, AppendTx, AuditLeaf, NewRow, StoreError,
    StreamId,
};
use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgPool, Postgres, Transaction};
use std::collections::HashMap;
use std::str::FromStr;
use std::time::Duration;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// How long to wait for the database, at start and for a pooled connection, unless configured
/// (`connect_timeout_seconds`, `--connect-timeout`, `SEALPOST_CONNECT_TIMEOUT`).
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a connection may sit inside a transaction without a word before the server ends
/// its session, unless configured (`serve` uses its lease TTL).
pub const DEFAULT_IDLE_IN_TRANSACTION: Duration = Duration::from_secs(10);

/// What a pool waits for, and how long it lets a transaction of its own sit idle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The wait for the database at start and for a pooled connection later.
    pub connect: Duration,
    /// Postgres `idle_in_transaction_session_timeout` of every connection. A node paused or cut
    /// off inside a transaction (SIGSTOP, a partition) holds the sequencer's row lock or a
    /// lease row that other nodes wait on; the server ends that session after this long, so
    /// its locks go and its transaction rolls back. Every transaction here is statements only,
    /// milliseconds apart: one idle for this long belongs to a node that has stopped.
    pub idle_in_transaction: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            connect: DEFAULT_CONNECT_TIMEOUT,
            idle_in_transaction: DEFAULT_IDLE_IN_TRANSACTION,
        }
    }
}

/// Connects a pool, optionally confined to one schema (tests use a schema each), with the
/// default [`Limits`].
pub async fn connect(
    url: &str,
    schema: Option<&str>,
    max_connections: u32,
) -> Result<PgPool, StoreError> {
    connect_within(url, schema, max_connections, Limits::default()).await
}

/// Where a connection goes, for messages: `host:port` or the socket directory. Never the user,
/// password or database.
pub fn target(options: &PgConnectOptions) -> String {
    match options.get_socket() {
        Some(dir) => format!("{} (port {})", dir.display(), options.get_port()),
        None => format!("{}:{}", options.get_host(), options.get_port()),
    }
}

/// How long a pooled connection may sit idle before it is checked again before use.
pub const CHECK_IDLE_AFTER: Duration = Duration::from_secs(1);

/// Connects a pool, waiting at most `limits.connect` for the first connection (a database that
/// is starting up is waited for; one that refuses the login fails at once). The error names the
/// host and port tried, never the URL's user information.
///
/// The same wait bounds every later wait for a pooled connection, so while the database
/// is down a request fails within it ([`StoreError::Unavailable`], HTTP 503) instead of
/// hanging. sqlx checks every connection as it goes back to the pool (a round trip); one that
/// sat idle for longer than [`CHECK_IDLE_AFTER`] is checked again before use: one the server
/// dropped meanwhile (a restart) is discarded and a new one opened, so the pool recovers by
/// itself once the database is back. (Checking every connection before every use as well cost
/// a third round trip per query: docs/benchmarks.md, issue 12.)
pub async fn connect_within(
    url: &str,
    schema: Option<&str>,
    max_connections: u32,
    limits: Limits,
) -> Result<PgPool, StoreError> {
    let timeout = limits.connect;
    // sqlx's parse errors may quote the URL: say only that it is not valid.
    let mut options = PgConnectOptions::from_str(url)
        .map_err(|_| StoreError::Invalid("the database URL is not a valid postgres:// URL"))?
        .options([(
            "idle_in_transaction_session_timeout",
            limits.idle_in_transaction.as_millis().max(1).to_string(),
        )]);
    if let Some(schema) = schema {
        options = options.options([("search_path", schema)]);
    }
    first_connection(&options, timeout).await?;
    let pool = PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(timeout)
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for > CHECK_IDLE_AFTER {
                    sqlx::Connection::ping(conn).await?;
                }
                Ok(true)
            })
        })
        .connect_lazy_with(options);
    Ok(pool)
}

/// Opens and closes one connection, retrying with backoff while the failure is transient,
/// until `timeout` has passed.
async fn first_connection(options: &PgConnectOptions, timeout: Duration) -> Result<(), StoreError> {
    use sqlx::Connection as _;
    let deadline = tokio::time::Instant::now() + timeout;
    let secs = timeout.as_secs_f64();
    let mut backoff = Duration::from_millis(50);
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let attempt = tokio::time::timeout(left, sqlx::PgConnection::connect_with(options)).await;
        let error = match attempt {
            Ok(Ok(conn)) => {
                let _ = conn.close().await;
                return Ok(());
            }
            Err(_) => {
                return Err(StoreError::Unavailable(format!(
                    "cannot connect to Postgres at {}: no answer within {secs} s",
                    target(options)
                )))
            }
            Ok(Err(e)) => StoreError::from(e),
        };
        let now = tokio::time::Instant::now();
        match error {
            StoreError::Unavailable(_) if now + backoff < deadline => {
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
            }
            StoreError::Unavailable(why) => {
                return Err(StoreError::Unavailable(format!(
                    "cannot connect to Postgres at {} within {secs} s: {why}",
                    target(options)
                )))
            }
            other => {
                return Err(StoreError::Database(format!(
                    "Postgres at {} refused the connection: {other}",
                    target(options)
                )))
            }
        }
    }
}

/// Runs the embedded migrations.
pub async fn migrate(pool: &PgPool) -> Result<(), StoreError> {
    MIGRATOR.run(pool).await?;
    Ok(())
}

/// Opens the store of a Local Storage region at `url`: the database (or, when the URL sets a
/// `search_path`, the schema) is created if it does not exist yet, then migrated.
pub async fn open_region(
    url: &str,
    max_connections: u32,
    limits: Limits,
) -> Result<PgPool, StoreError> {
    let invalid = || StoreError::Invalid("the region database URL is not a valid postgres:// URL");
    let parsed = url::Url::parse(url).map_err(|_| invalid())?;
    let schema = super::region::search_path(&parsed);
    if schema.is_none() {
        create_database(&parsed, limits).await?;
    }
    let pool = connect_within(url, None, max_connections, limits).await?;
    if let Some(schema) = schema {
        let name = identifier(&schema)?;
        // Two nodes may create it at once: the loser's unique violation means it exists.
        match sqlx::query(&format!("CREATE SCHEMA IF NOT EXISTS \"{name}\""))
            .execute(&pool)
            .await
        {
            Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("23505") => {}
            other => {
                other?;
            }
        }
    }
    migrate(&pool).await?;
    Ok(pool)
}

/// Creates the database `url` names unless it exists, through the server's `postgres` database.
async fn create_database(url: &url::Url, limits: Limits) -> Result<(), StoreError> {
    let name = super::region::database(url);
    let name = identifier(&name)?;
    let mut admin = url.clone();
    admin.set_path("/postgres");
    let pool = connect_within(admin.as_str(), None, 1, limits).await?;
    let exists: Option<(i32,)> = sqlx::query_as("SELECT 1 FROM pg_database WHERE datname = $1")
        .bind(name)
        .fetch_optional(&pool)
        .await?;
    if exists.is_none() {
        match sqlx::query(&format!("CREATE DATABASE \"{name}\""))
            .execute(&pool)
            .await
        {
            // 42P04: created meanwhile by another node; 23505: the same race, seen earlier.
            Err(sqlx::Error::Database(e))
                if matches!(e.code().as_deref(), Some("42P04" | "23505")) => {}
            other => {
                other?;
            }
        }
    }
    pool.close().await;
    Ok(())
}

/// A database or schema name safe to quote: letters, digits and underscores only.
fn identifier(name: &str) -> Result<&str, StoreError> {
    if !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        Ok(name)
    } else {
        Err(StoreError::Invalid(
            "a region's database or schema name may hold only letters, digits and underscores",
        ))
    }
}

/// The Postgres event log and key store (one pool; `reader` and `writer` are the same pool).
#[derive(Debug, Clone)]
pub struct PostgresStore {
    writer: PgPool,
    reader: PgPool,
}

impl PostgresStore {
    /// Wraps a migrated pool.
    pub fn new(pool: PgPool) -> Self {
        Self {
            writer: pool.clone(),
            reader: pool,
        }
    }

    /// The pool.
    pub fn pool(&self) -> &PgPool {
        &self.writer
    }
}

struct PgAppendTx {
    tx: Transaction<'static, Postgres>,
}

#[async_trait]
impl AppendTx for PgAppendTx {
    async fn lock_head(&mut self) -> Result<u64, StoreError> {
        let (h,): (i64,) =
            sqlx::query_as("SELECT last_position FROM sealpost_sequencer WHERE id = 1 FOR UPDATE")
                .fetch_one(&mut *self.tx)
                .await?;
        Ok(h as u64)
    }

    async fn stream_versions(
        &mut self,
        streams: &[&StreamId],
    ) -> Result<HashMap<StreamId, u64>, StoreError> {
        let businesses: Vec<&str> = streams.iter().map(|s| s.business.as_str()).collect();
        let kinds: Vec<&str> = streams.iter().map(|s| s.kind.as_str()).collect();
        let ids: Vec<&str> = streams.iter().map(|s| s.id.as_str()).collect();
        // One index probe per stream (the newest row of its key), whatever the table's
        // statistics say: a join let the planner scan the whole table while a young table (a
        // Local Storage region's, under load) was not analyzed yet (measured: 13.8 M rows read
        // in a 10 s benchmark, and a tenth of the throughput).
        let rows: Vec<(String, String, String, Option<i64>)> = sqlx::query_as(
            "SELECT s.b, s.k, s.i, (SELECT e.sequence FROM sealpost_events e \
               WHERE e.stream_type = s.k AND e.stream_id = s.i AND e.business_id = s.b \
               ORDER BY e.sequence DESC LIMIT 1) \
             FROM (SELECT DISTINCT * FROM UNNEST($1::text[], $2::text[], $3::text[])) AS s(b, k, i)",
        )
        .bind(&businesses)
        .bind(&kinds)
        .bind(&ids)
        .fetch_all(&mut *self.tx)
        .await?;
        Ok(rows
            .into_iter()
            .filter_map(|(business, kind, id, v)| {
                Some((StreamId::new(business, kind, id), v? as u64))
            })
            .collect())
    }

    async fn insert(&mut self, rows: &[(u64, &NewRow)]) -> Result<(), StoreError> {
        let n = rows.len();
        let mut position = Vec::with_capacity(n);
        let mut stream_type = Vec::with_capacity(n);
        let mut stream_id = Vec::with_capacity(n);
        let mut sequence = Vec::with_capacity(n);
        let mut event_type = Vec::with_capacity(n);
        let mut event_version = Vec::with_capacity(n);
        let mut business_id = Vec::with_capacity(n);
        let mut region = Vec::with_capacity(n);
        let mut epoch = Vec::with_capacity(n);
        let mut recorded_at = Vec::with_capacity(n);
        let mut payload = Vec::with_capacity(n);
        for (p, row) in rows {
            let h = &row.header;
            position.push(*p as i64);
            stream_type.push(h.stream.kind.as_str());
            stream_id.push(h.stream.id.as_str());
            sequence.push(h.sequence as i64);
            event_type.push(h.event_type.as_str());
            event_version.push(h.event_version as i32);
            business_id.push(h.business_id.as_str());
            region.push(h.region.as_str());
            epoch.push(h.epoch);
            recorded_at.push(h.recorded_at);
            payload.push(row.payload.as_slice());
        }
        sqlx::query(
            "INSERT INTO sealpost_events (position, stream_type, stream_id, sequence, event_type, event_version, \
             business_id, region, epoch, recorded_at, payload) \
             SELECT * FROM UNNEST($1::bigint[], $2::text[], $3::text[], $4::bigint[], $5::text[], $6::int[], \
                                  $7::text[], $8::text[], $9::bigint[], $10::bigint[], $11::bytea[])",
        )
        .bind(&position)
        .bind(&stream_type)
        .bind(&stream_id)
        .bind(&sequence)
        .bind(&event_type)
        .bind(&event_version)
        .bind(&business_id)
        .bind(&region)
        .bind(&epoch)
        .bind(&recorded_at)
        .bind(&payload)
        .execute(&mut *self.tx)
        .await
        .map_err(super::unique_to_conflict)?;
        Ok(())
    }

    async fn insert_leaves(&mut self, leaves: &[AuditLeaf]) -> Result<(), StoreError> {
        let positions: Vec<i64> = leaves.iter().map(|l| l.position as i64).collect();
        let hashes: Vec<&[u8]> = leaves.iter().map(|l| &l.hash[..]).collect();
        sqlx::query(
            "INSERT INTO sealpost_audit_leaves (position, leaf_hash) \
             SELECT * FROM UNNEST($1::bigint[], $2::bytea[]) ON CONFLICT (position) DO NOTHING",
        )
        .bind(&positions)
        .bind(&hashes)
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    async fn finish(mut self: Box<Self>, new_head: u64, commit: bool) -> Result<(), StoreError> {
        if !commit {
            self.tx.rollback().await?;
            return Ok(());
        }
        sqlx::query("UPDATE sealpost_sequencer SET last_position = $1 WHERE id = 1")
            .bind(new_head as i64)
            .execute(&mut *self.tx)
            .await?;
        self.tx.commit().await?;
        Ok(())
    }
}

impl PostgresStore {
    const BEGIN_WRITE: &'static str = "BEGIN";
    /// Several streams of one business and type: `$3` is a JSON array of their ids.
    const READ_STREAMS: &'static str = "SELECT position, stream_type, stream_id, sequence, event_type, event_version, business_id, region, epoch, recorded_at, payload \
     FROM sealpost_events WHERE business_id = $1 AND stream_type = $2 AND stream_id IN (SELECT jsonb_array_elements_text($3::jsonb)) \
     ORDER BY stream_id, sequence";
    const READ_TYPES: &'static str = "SELECT position, stream_type, stream_id, sequence, event_type, event_version, business_id, region, epoch, recorded_at, payload \
     FROM sealpost_events WHERE position > $1 AND event_type IN (SELECT jsonb_array_elements_text($2::jsonb)) \
     ORDER BY position LIMIT $3";
    /// Rows at the positions of a JSON array.
    const READ_POSITIONS: &'static str = "SELECT position, stream_type, stream_id, sequence, event_type, event_version, business_id, region, epoch, recorded_at, payload \
     FROM sealpost_events WHERE position IN (SELECT (jsonb_array_elements_text($1::jsonb))::bigint) \
     ORDER BY position";
    /// The evidence fold's position, locked until the page's transaction ends.
    const EV_POSITION_FOR_UPDATE: &'static str =
        "SELECT position FROM sealpost_checkpoints WHERE name = $1 FOR UPDATE";
    /// Evidence messages of business `$1` whose id is in the JSON array `$2`.
    const EV_MESSAGES_IN: &'static str = "SELECT message_id, business_id, region, epoch, subject_tag, phone_number_id, kind, category, created_at \
     FROM sealpost_ev_messages WHERE business_id = $1 AND message_id IN (SELECT jsonb_array_elements_text($2::jsonb))";

    /// A lease's owner and epoch, the row locked against a takeover until the transaction ends.
    const LEASE_FOR_SHARE: &'static str =
        "SELECT owner, epoch FROM sealpost_leases WHERE name = $1 FOR SHARE";

    fn append_tx(tx: Transaction<'static, Postgres>) -> Box<dyn AppendTx> {
        Box::new(PgAppendTx { tx })
    }

    /// Rewrites the key and index tables so the deleted tuples' bytes leave the table files.
    /// (Session rows are sealed under the subject key they are destroyed with.)
    async fn scrub_storage(&self) -> Result<(), StoreError> {
        sqlx::query("VACUUM FULL sealpost_keys, sealpost_subject_index")
            .execute(&self.writer)
            .await?;
        Ok(())
    }
}

impl_event_log!(PostgresStore);
impl_evidence_rows!(PostgresStore, Postgres);
impl_key_store!(PostgresStore);
super::impl_media_chunks!(PostgresStore);
super::impl_leases!(PostgresStore, Postgres);
super::region::impl_region_registry!(PostgresStore);
