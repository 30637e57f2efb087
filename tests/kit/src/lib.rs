//! Sealpost's test kits: helpers for tests and benchmarks that run against the real stores, a
//! Postgres schema per test. A dev-only crate (`publish = false`): it is a `[dev-dependencies]`
//! entry of the crates whose tests use it and never a dependency of a production crate, so no
//! test helper ships in the product. Used by the adapters' conformance and outage suites, the
//! root crate's end-to-end tests and the benchmarks.

pub mod hsm;

use sealpost_adapters::store::{postgres, RegionLayout, StoreError};
use sqlx::PgPool;

/// Environment variable naming the Postgres server for tests.
pub const TEST_DATABASE_URL_ENV: &str = "SEALPOST_TEST_DATABASE_URL";
/// Environment variable that turns "Postgres unreachable" from a skip into a failure.
pub const REQUIRE_POSTGRES_ENV: &str = "SEALPOST_REQUIRE_POSTGRES";
/// The local server the machine runs.
pub const DEFAULT_TEST_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// A migrated Postgres schema of its own for one test.
#[derive(Debug)]
pub struct PgTestDb {
    /// A pool whose connections use only this schema.
    pub pool: PgPool,
    /// The schema's name.
    pub schema: String,
    /// The server URL.
    pub url: String,
}

/// The test database URL.
pub fn test_database_url() -> String {
    std::env::var(TEST_DATABASE_URL_ENV).unwrap_or_else(|_| DEFAULT_TEST_DATABASE_URL.to_owned())
}

/// Whether Postgres tests must run (CI sets `SEALPOST_REQUIRE_POSTGRES=1`).
pub fn postgres_required() -> bool {
    std::env::var(REQUIRE_POSTGRES_ENV).is_ok_and(|v| v == "1")
}

/// Creates and migrates a fresh schema, or returns `None` (after a loud message) when Postgres
/// cannot be reached and is not required. Panics when it is required and unreachable.
pub async fn postgres_test_db(label: &str) -> Option<PgTestDb> {
    let url = test_database_url();
    match try_create(&url, label).await {
        Ok(db) => Some(db),
        Err(e) if postgres_required() => {
            panic!(
                "{REQUIRE_POSTGRES_ENV}=1 but Postgres at {TEST_DATABASE_URL_ENV} is unusable: {e}"
            )
        }
        Err(e) => {
            // Straight to the process's stderr: the test harness captures `eprintln!` of
            // passing tests, and a skip must be seen.
            use std::io::Write as _;
            let _ = writeln!(
                std::io::stderr(),
                "\n!!! SKIPPING Postgres test '{label}': Postgres unreachable ({e}).\n!!! Set {REQUIRE_POSTGRES_ENV}=1 to make this a failure.\n"
            );
            None
        }
    }
}

async fn try_create(url: &str, label: &str) -> Result<PgTestDb, StoreError> {
    // One plain connection first: it fails at once when nothing listens (a pool would retry
    // until its acquire timeout).
    let mut admin = <sqlx::PgConnection as sqlx::Connection>::connect(url).await?;
    drop_abandoned_schemas(&mut admin).await?;
    let created = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let schema = format!(
        "t_{}_{created:010}_{}",
        label
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .take(24)
            .collect::<String>()
            .to_lowercase(),
        &uuid::Uuid::new_v4().simple().to_string()[..16]
    );
    sqlx::query(&format!("CREATE SCHEMA \"{schema}\""))
        .execute(&mut admin)
        .await?;
    sqlx::Connection::close(admin).await?;
    let pool = postgres::connect(url, Some(&schema), 24).await?;
    postgres::migrate(&pool).await?;
    Ok(PgTestDb {
        pool,
        schema,
        url: url.to_owned(),
    })
}

/// How old a test schema must be before another test run drops it: a test that was killed
/// (or failed, leaving its schema to look at) does not drop its own.
const ABANDONED_AFTER_SECS: u64 = 12 * 3600;

/// Drops the schemas of tests (and their regions' schemas) created more than
/// [`ABANDONED_AFTER_SECS`] ago, named by [`try_create`] with their creation time.
async fn drop_abandoned_schemas(admin: &mut sqlx::PgConnection) -> Result<(), StoreError> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let schemas: Vec<(String, String)> = sqlx::query_as(
        "SELECT nspname::text, substring(nspname from '^t_[a-z0-9]*_([0-9]{10})_[0-9a-f]{16}(_[a-z]{2})?$') \
         FROM pg_namespace WHERE nspname ~ '^t_[a-z0-9]*_[0-9]{10}_[0-9a-f]{16}(_[a-z]{2})?$'",
    )
    .fetch_all(&mut *admin)
    .await?;
    for (schema, created) in schemas {
        let created: u64 = created.parse().unwrap_or(u64::MAX);
        if now.saturating_sub(created) > ABANDONED_AFTER_SECS {
            // Another run may be dropping it too: whatever fails here is not this test's.
            let _ = sqlx::query(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
                .execute(&mut *admin)
                .await;
        }
    }
    Ok(())
}

impl PgTestDb {
    /// The server URL confined to this schema (what a node started on it is given).
    pub fn url_with_schema(&self) -> String {
        format!("{}?options=-csearch_path%3D{}", self.url, self.schema)
    }

    /// Where the Local Storage regions' stores go: a schema each beside this one
    /// (`<schema>_de`, …), created on first use.
    pub fn regions(&self) -> RegionLayout {
        RegionLayout::postgres_beside(
            &self.url_with_schema(),
            None,
            4,
            postgres::Limits::default(),
        )
        .expect("the test URL is a valid postgres:// URL")
    }

    /// The schemas of the Local Storage regions' stores beside this one (`<schema>_de`, …).
    pub async fn region_schemas(&self) -> Vec<String> {
        let admin = postgres::connect(&self.url, None, 1)
            .await
            .expect("connect");
        let schemas = self.region_schemas_on(&admin).await.expect("schemas");
        admin.close().await;
        schemas
    }

    async fn region_schemas_on(&self, admin: &PgPool) -> Result<Vec<String>, sqlx::Error> {
        let rows: Vec<(String,)> = sqlx::query_as(
            "SELECT nspname::text FROM pg_namespace WHERE nspname ~ ('^' || $1 || '_[a-z]{2}$') ORDER BY 1",
        )
        .bind(&self.schema)
        .fetch_all(admin)
        .await?;
        Ok(rows.into_iter().map(|(n,)| n).collect())
    }

    /// This schema and its regions' schemas: every store of the test.
    async fn store_schemas_on(&self, admin: &PgPool) -> Vec<String> {
        let mut schemas = vec![self.schema.clone()];
        schemas.extend(self.region_schemas_on(admin).await.expect("schemas"));
        schemas
    }

    /// The store a schema of the test is: `home`, or a region's code.
    fn store_of_schema(&self, schema: &str) -> String {
        schema
            .strip_prefix(&format!("{}_", self.schema))
            .map_or("home".to_owned(), str::to_ascii_uppercase)
    }

    /// Drops the schema and its regions' schemas (call at the end of a passing test).
    pub async fn drop_schema(self) {
        self.pool.close().await;
        if let Ok(admin) = postgres::connect(&self.url, None, 1).await {
            let regions = self.region_schemas_on(&admin).await.unwrap_or_default();
            for schema in regions.into_iter().chain([self.schema.clone()]) {
                let _ = sqlx::query(&format!("DROP SCHEMA \"{schema}\" CASCADE"))
                    .execute(&admin)
                    .await;
            }
            admin.close().await;
        }
    }
}

/// Which stores hold `needle` (in plain bytes, or as the hex Postgres shows `bytea` in):
/// `home`, or a region's code (`DE`).
pub type Holders = std::collections::BTreeSet<String>;

/// The store a file under a data directory belongs to: `regions/<CODE>/…` is that region's,
/// every other file the home store's.
fn store_of_file(relative: &std::path::Path) -> String {
    let mut parts = relative
        .components()
        .map(|c| c.as_os_str().to_string_lossy());
    match (parts.next(), parts.next(), parts.next()) {
        (Some(dir), Some(code), Some(_)) if dir == "regions" => code.into_owned(),
        _ => "home".to_owned(),
    }
}

/// Which stores of the embedded data directory `dir` hold `needle`: every file read, the
/// SQLite databases with their `-wal` and `-shm` files included.
pub fn files_holding(dir: &std::path::Path, needle: &[u8]) -> Holders {
    fn walk(root: &std::path::Path, at: &std::path::Path, needle: &[u8], found: &mut Holders) {
        let Ok(entries) = std::fs::read_dir(at) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(root, &path, needle, found);
            } else if let Ok(bytes) = std::fs::read(&path) {
                if bytes.windows(needle.len()).any(|w| w == needle) {
                    let relative = path.strip_prefix(root).unwrap_or(&path);
                    found.insert(store_of_file(relative));
                }
            }
        }
    }
    let mut found = Holders::new();
    walk(dir, dir, needle, &mut found);
    found
}

impl PgTestDb {
    /// Which stores hold `needle` in any row of any table: this schema (`home`) and each
    /// region's schema beside it (its code).
    pub async fn stores_holding(&self, needle: &[u8]) -> Holders {
        let admin = postgres::connect(&self.url, None, 1)
            .await
            .expect("connect");
        let tables: Vec<(String, String)> = sqlx::query_as(
            "SELECT table_schema::text, table_name::text FROM information_schema.tables \
             WHERE table_schema = ANY($1)",
        )
        .bind(self.store_schemas_on(&admin).await)
        .fetch_all(&admin)
        .await
        .expect("tables");
        let hex: String = needle.iter().map(|b| format!("{b:02x}")).collect();
        // Binary needles (sealed bytes) are looked for only as Postgres shows them: in hex.
        let text = std::str::from_utf8(needle)
            .ok()
            .filter(|t| !t.contains('\0'))
            .map_or_else(|| hex.clone(), str::to_owned);
        let mut found = Holders::new();
        for (schema, table) in tables {
            let (hits,): (i64,) = sqlx::query_as(&format!(
                "SELECT COUNT(*) FROM \"{schema}\".\"{table}\" t \
                 WHERE strpos(t::text, $1) > 0 OR strpos(t::text, $2) > 0"
            ))
            .bind(&text)
            .bind(&hex)
            .fetch_one(&admin)
            .await
            .expect("scan");
            if hits > 0 {
                found.insert(self.store_of_schema(&schema));
            }
        }
        admin.close().await;
        found
    }
}

/// The pseudo-table [`RowsByRegion`] counts the event rows that hold a sealed body under (the
/// others hold a reference to a body in a region's store).
pub const SEALED_BODIES: &str = "sealpost_events (sealed bodies)";

/// The first bytes of a reference to a body in a region's store (never a key version).
const REFERENCE_MARK: &str = "ffffffff";

/// Rows per store, table and region code: every table with a `region` column in every
/// physical store (`home`, or a region's code).
pub type RowsByRegion = std::collections::BTreeMap<(String, String, String), i64>;

/// [`RowsByRegion`] of the embedded store in `dir`: each SQLite database of the home store and
/// of `regions/<CODE>/` (the simulated world's files, the outside world, are not the store's).
pub async fn sqlite_rows_by_region(dir: &std::path::Path) -> RowsByRegion {
    use sqlx::sqlite::SqliteConnectOptions;
    let mut files: Vec<(String, std::path::PathBuf)> = ["events.db", "keys.db"]
        .iter()
        .map(|f| ("home".to_owned(), dir.join(f)))
        .collect();
    if let Ok(regions) = std::fs::read_dir(dir.join("regions")) {
        for region in regions.flatten() {
            let code = region.file_name().to_string_lossy().into_owned();
            for f in ["events.db", "keys.db"] {
                files.push((code.clone(), region.path().join(f)));
            }
        }
    }
    let mut rows = RowsByRegion::new();
    for (store, file) in files.into_iter().filter(|(_, f)| f.exists()) {
        let options = SqliteConnectOptions::new().filename(&file).read_only(true);
        let mut conn = <sqlx::SqliteConnection as sqlx::Connection>::connect_with(&options)
            .await
            .expect("open a store file");
        let tables: Vec<(String,)> = sqlx::query_as(
            "SELECT m.name FROM sqlite_master m WHERE m.type = 'table' \
             AND EXISTS (SELECT 1 FROM pragma_table_info(m.name) c WHERE c.name = 'region')",
        )
        .fetch_all(&mut conn)
        .await
        .expect("tables");
        for (table,) in tables {
            let mut queries = vec![(
                table.clone(),
                format!("SELECT region, COUNT(*) FROM \"{table}\" GROUP BY region"),
            )];
            if table == "sealpost_events" {
                queries.push((
                    SEALED_BODIES.to_owned(),
                    format!(
                        "SELECT region, COUNT(*) FROM sealpost_events \
                         WHERE substr(payload, 1, 4) <> x'{REFERENCE_MARK}' GROUP BY region"
                    ),
                ));
            }
            for (name, query) in queries {
                let counts: Vec<(String, i64)> = sqlx::query_as(&query)
                    .fetch_all(&mut conn)
                    .await
                    .expect("count");
                for (region, n) in counts {
                    *rows
                        .entry((store.clone(), name.clone(), region))
                        .or_default() += n;
                }
            }
        }
    }
    rows
}

impl PgTestDb {
    /// [`RowsByRegion`] of this schema (`home`) and each region's schema beside it.
    pub async fn rows_by_region(&self) -> RowsByRegion {
        let admin = postgres::connect(&self.url, None, 1)
            .await
            .expect("connect");
        let tables: Vec<(String, String)> = sqlx::query_as(
            "SELECT table_schema::text, table_name::text FROM information_schema.columns \
             WHERE column_name = 'region' AND table_schema = ANY($1)",
        )
        .bind(self.store_schemas_on(&admin).await)
        .fetch_all(&admin)
        .await
        .expect("tables");
        let mut rows = RowsByRegion::new();
        for (schema, table) in tables {
            let mut queries = vec![(
                table.clone(),
                format!("SELECT region, COUNT(*) FROM \"{schema}\".\"{table}\" GROUP BY region"),
            )];
            if table == "sealpost_events" {
                queries.push((
                    SEALED_BODIES.to_owned(),
                    format!(
                        "SELECT region, COUNT(*) FROM \"{schema}\".sealpost_events \
                         WHERE substring(payload from 1 for 4) <> '\\x{REFERENCE_MARK}'::bytea \
                         GROUP BY region"
                    ),
                ));
            }
            let store = self.store_of_schema(&schema);
            for (name, query) in queries {
                let counts: Vec<(String, i64)> = sqlx::query_as(&query)
                    .fetch_all(&admin)
                    .await
                    .expect("count");
                for (region, n) in counts {
                    rows.insert((store.clone(), name.clone(), region), n);
                }
            }
        }
        admin.close().await;
        rows
    }
}

/// A slice out of each of up to `n` sealed event bodies in the store of `region` (its code)
/// of the embedded data directory `dir`: bytes only that store may hold.
pub async fn sqlite_region_bodies(dir: &std::path::Path, region: &str, n: i64) -> Vec<Vec<u8>> {
    use sqlx::sqlite::SqliteConnectOptions;
    let file = dir.join("regions").join(region).join("events.db");
    let options = SqliteConnectOptions::new().filename(&file).read_only(true);
    let mut conn = <sqlx::SqliteConnection as sqlx::Connection>::connect_with(&options)
        .await
        .expect("open a region's events");
    let bodies: Vec<(Vec<u8>,)> =
        sqlx::query_as("SELECT payload FROM sealpost_events ORDER BY position LIMIT $1")
            .bind(n)
            .fetch_all(&mut conn)
            .await
            .expect("bodies");
    bodies.into_iter().map(|(b,)| body_slice(b)).collect()
}

/// 24 bytes from inside a sealed body (past its key version and nonce).
fn body_slice(body: Vec<u8>) -> Vec<u8> {
    assert!(
        body.len() >= 64,
        "a sealed body is longer than {}",
        body.len()
    );
    body[32..56].to_vec()
}

impl PgTestDb {
    /// [`sqlite_region_bodies`] on Postgres: from the schema of `region` beside this one.
    pub async fn region_bodies(&self, region: &str, n: i64) -> Vec<Vec<u8>> {
        let admin = postgres::connect(&self.url, None, 1)
            .await
            .expect("connect");
        let schema = format!("{}_{}", self.schema, region.to_ascii_lowercase());
        let bodies: Vec<(Vec<u8>,)> = sqlx::query_as(&format!(
            "SELECT payload FROM \"{schema}\".sealpost_events ORDER BY position LIMIT $1"
        ))
        .bind(n)
        .fetch_all(&admin)
        .await
        .expect("bodies");
        admin.close().await;
        bodies.into_iter().map(|(b,)| body_slice(b)).collect()
    }
}

/// Flips a byte of the first sealed body in the store of `region` of the embedded data
/// directory `dir`, as someone with write access to its file could: its position there.
pub async fn sqlite_tamper_region_body(dir: &std::path::Path, region: &str) -> i64 {
    use sqlx::sqlite::SqliteConnectOptions;
    let file = dir.join("regions").join(region).join("events.db");
    let options = SqliteConnectOptions::new().filename(&file);
    let mut conn = <sqlx::SqliteConnection as sqlx::Connection>::connect_with(&options)
        .await
        .expect("open a region's events");
    let (position, mut body): (i64, Vec<u8>) =
        sqlx::query_as("SELECT position, payload FROM sealpost_events ORDER BY position LIMIT 1")
            .fetch_one(&mut conn)
            .await
            .expect("a body");
    let last = body.len() - 1;
    body[last] ^= 0x01;
    sqlx::query("UPDATE sealpost_events SET payload = $1 WHERE position = $2")
        .bind(&body)
        .bind(position)
        .execute(&mut conn)
        .await
        .expect("tamper");
    position
}
