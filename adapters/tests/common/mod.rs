//! What the adapters' store suites share: a store under test on each backend (Postgres: a
//! schema of its own on `SEALPOST_TEST_DATABASE_URL`).

// Each suite compiles this module on its own and uses only some of it.
#![allow(dead_code)]

use sealpost_adapters::store::Stores;

/// A store under test plus what to do when the test is over.
pub struct Fixture {
    pub stores: Stores,
    _dir: Option<tempfile::TempDir>,
    pg: Option<sealpost_testkit::PgTestDb>,
    /// The root keys' custody when the suite runs on a PKCS#11 token (else keys in memory),
    /// and its turn: token fixtures run one at a time (SoftHSM2 and several sessions of one
    /// process, see `adapters/tests/token.rs`).
    token: Option<(
        sealpost_adapters::vault::Roots,
        tokio::sync::MutexGuard<'static, ()>,
    )>,
}

impl Fixture {
    /// The Postgres schema and its pool, on Postgres.
    pub fn pg(&self) -> Option<&sealpost_testkit::PgTestDb> {
        self.pg.as_ref()
    }

    /// The root keys' custody: the token's, or keys of every region in memory.
    pub fn roots(&self) -> sealpost_adapters::vault::Roots {
        match &self.token {
            Some((roots, _)) => roots.clone(),
            None => sealpost_adapters::vault::RootKeys::fixed(
                sealpost_domain::Region::ALL
                    .map(|r| (r, sealpost_adapters::crypto::SecretKey::random())),
            )
            .into(),
        }
    }

    /// The data directory, on SQLite.
    pub fn dir(&self) -> Option<&std::path::Path> {
        self._dir.as_ref().map(|d| d.path())
    }

    pub async fn finish(self) {
        if let Some(pg) = self.pg {
            pg.drop_schema().await;
        }
    }
}

pub async fn sqlite_fixture(_label: &str) -> Option<Fixture> {
    let dir = tempfile::tempdir().expect("temp dir");
    let stores = Stores::sqlite(dir.path()).await.expect("open sqlite");
    Some(Fixture {
        stores,
        _dir: Some(dir),
        pg: None,
        token: None,
    })
}

/// The embedded store with its root keys in the PKCS#11 test token; `None` without a token
/// (a loud skip, a failure under `SEALPOST_REQUIRE_HSM=1`).
pub async fn token_fixture(label: &str) -> Option<Fixture> {
    static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let config = sealpost_testkit::hsm::test_token(label)?;
    let turn = TURN.lock().await;
    let roots = sealpost_adapters::vault::TokenRoots::open(config)
        .expect("the test token")
        .into();
    let mut fixture = sqlite_fixture(label).await?;
    fixture.token = Some((roots, turn));
    Some(fixture)
}

pub async fn postgres_fixture(label: &str) -> Option<Fixture> {
    let pg = sealpost_testkit::postgres_test_db(label).await?;
    let stores = Stores::postgres(pg.pool.clone(), pg.regions());
    Some(Fixture {
        stores,
        _dir: None,
        pg: Some(pg),
        token: None,
    })
}

/// For each suite function named (`async fn name(f: &Fixture)`), one test on each store:
/// `sqlite::name` and `postgres::name` (skipped without a test database, unless
/// `SEALPOST_REQUIRE_POSTGRES=1`).
macro_rules! on_every_store {
    // The same, and once more on SQLite with the root keys in the PKCS#11 test token
    // (`token::name`).
    (and_the_token; $($name:ident),* $(,)?) => {
        on_every_store!($($name),*);
        mod token {
            on_every_store!(@backend token_fixture; $($name),*);
        }
    };
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            on_every_store!(@backend sqlite_fixture; $($name),*);
        }
        mod postgres {
            on_every_store!(@backend postgres_fixture; $($name),*);
        }
    };
    (@backend $fixture:ident; $($name:ident),*) => {
        use super::*;
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() {
                let Some(f) = $fixture(stringify!($name)).await else {
                    return;
                };
                super::$name(&f).await;
                f.finish().await;
            }
        )*
    };
}
