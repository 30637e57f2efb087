//! Sealpost's test kits: helpers for tests and benchmarks that run against the real stores, a
//! Postgres schema per test. A dev-only crate (`publish = false`): it is a `[dev-dependencies]`
//! entry of the crates whose tests use it and never a dependency of a production crate, so no
//! test helper ships in the product. Used by the adapters' conformance and outage suites, the
//! root crate's end-to-end tests and the benchmarks.

use sealpost_adapters::store::{postgres, StoreError};
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
    let schema = format!(
        "t_{}_{}",
        label
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .take(24)
            .collect::<String>()
            .to_lowercase(),
        uuid::Uuid::new_v4().simple()
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

impl PgTestDb {
    /// Drops the schema (call at the end of a passing test).
    pub async fn drop_schema(self) {
        self.pool.close().await;
        if let Ok(admin) = postgres::connect(&self.url, None, 1).await {
            let _ = sqlx::query(&format!("DROP SCHEMA \"{}\" CASCADE", self.schema))
                .execute(&admin)
                .await;
            admin.close().await;
        }
    }
}
