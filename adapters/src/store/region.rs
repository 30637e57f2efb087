//! The stores of Local Storage regions (issue 14, ADR 0019): where each lives
//! ([`RegionLayout`]), which exist ([`RegionRegistry`], recorded in the home store), and opening
//! them on first use ([`RegionStores`]). NA and EU, the default regions, are the home store's.

use super::{postgres, sqlite, EventLog, EvidenceRows, KeyStore, LeaseRow, Leases, StoreError};
use async_trait::async_trait;
use sealpost_domain::Region;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

/// What a Local Storage region's own store holds: what [`super::RegionalKeys`] and the event
/// store's region bodies route there. (The record of processing quotes it; change it with the
/// routing.)
pub const HELD_IN_REGION: &str = "the sealed bodies of the region's events (message content, \
     media, template parameters, consumer numbers) in a log of its own with its own \
     tamper-evident tree, its aggregates' snapshots, the region's wrapped keys (ledger, \
     retention-epoch, subject and media keys) with their tombstones, the blind index of its \
     consumers' numbers, its Signal accounts and sessions, and the evidence rows that link \
     its messages to their consumers (keyed tags, for distinct counts and shredding)";

/// What the home store holds.
pub const HELD_AT_HOME: &str = "business information, tokens, statistics, billing, integrity \
     signals and the access log; the one ordered log of every event's plaintext header (type, \
     time, business, region; no content), which for a Local Storage region's event holds a \
     reference to its body in the region (position and hash) instead of the body; the \
     evidence projection's rows (for a region's messages: id, number, type, epoch and times, \
     never the consumer); the events, keys, blind index and Signal state of the \
     default regions (NA, EU); and what a Local Storage region stored before it had a store \
     of its own, until it expires";

/// The directory under the data directory that holds a folder per region (`regions/DE/`).
pub const REGIONS_DIR: &str = "regions";

/// Which Local Storage regions have a store, and where: a row per region in the home store,
/// written when the region's store is created, so that every node finds every region's store.
#[async_trait]
pub trait RegionRegistry: Send + Sync + std::fmt::Debug {
    /// The regions whose store exists, in code order, each with where its store is (empty
    /// when recorded by a version that did not say).
    async fn region_stores(&self) -> Result<Vec<(String, String)>, StoreError>;

    /// Records that `region`'s store exists at `location` (idempotent: the first record stays;
    /// one without a location gets it).
    async fn record_region_store(
        &self,
        region: &str,
        location: &str,
        at: i64,
    ) -> Result<(), StoreError>;
}

/// The registry's statements (both backends).
pub(crate) const REGION_STORES: &str =
    "SELECT region, location FROM sealpost_region_stores ORDER BY region";
pub(crate) const REGION_STORE_RECORD: &str =
    "INSERT INTO sealpost_region_stores (region, location, created_at) VALUES ($1, $2, $3) \
     ON CONFLICT (region) DO UPDATE SET location = excluded.location WHERE sealpost_region_stores.location = ''";

/// Implements [`RegionRegistry`] for a backend type with `reader` and `writer` pools.
macro_rules! impl_region_registry {
    ($ty:ty) => {
        #[async_trait::async_trait]
        impl $crate::store::RegionRegistry for $ty {
            async fn region_stores(
                &self,
            ) -> Result<Vec<(String, String)>, $crate::store::StoreError> {
                Ok(sqlx::query_as($crate::store::region::REGION_STORES)
                    .fetch_all(&self.reader)
                    .await?)
            }

            async fn record_region_store(
                &self,
                region: &str,
                location: &str,
                at: i64,
            ) -> Result<(), $crate::store::StoreError> {
                sqlx::query($crate::store::region::REGION_STORE_RECORD)
                    .bind(region)
                    .bind(location)
                    .bind(at)
                    .execute(&self.writer)
                    .await?;
                Ok(())
            }
        }
    };
}
pub(crate) use impl_region_registry;

/// Where the store of each Local Storage region lives.
#[derive(Clone)]
pub enum RegionLayout {
    /// Embedded: `regions/<CODE>/keys.db` under the data directory.
    Sqlite {
        /// The data directory.
        data_dir: PathBuf,
    },
    /// Postgres: a database per region (or a schema per region, when the URL names a
    /// `search_path`), created and migrated on first use.
    Postgres {
        /// The region's URL with `{region}` for the lower-case region code.
        template: String,
        /// Connections per region's pool.
        pool_size: u32,
        /// The pool's limits.
        limits: postgres::Limits,
    },
}

impl std::fmt::Debug for RegionLayout {
    /// Never prints a URL (it may hold a password).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RegionLayout::Sqlite { data_dir } => f
                .debug_struct("Sqlite")
                .field("data_dir", data_dir)
                .finish(),
            RegionLayout::Postgres { .. } => f.write_str("Postgres { .. }"),
        }
    }
}

impl RegionLayout {
    /// Postgres regions beside the home database at `home_url`: `template` (with `{region}`)
    /// when configured, else the home database's name (or, when the URL sets a `search_path`,
    /// its schema) with `_<region>` appended, on the same server.
    pub fn postgres_beside(
        home_url: &str,
        template: Option<&str>,
        pool_size: u32,
        limits: postgres::Limits,
    ) -> Result<Self, StoreError> {
        let template = match template {
            Some(t) if t.contains("{region}") => t.to_owned(),
            Some(_) => {
                return Err(StoreError::Invalid(
                    "the region database URL must contain {region}",
                ))
            }
            None => derived_template(home_url)?,
        };
        Ok(RegionLayout::Postgres {
            template,
            pool_size,
            limits,
        })
    }

    /// Where `region`'s store is, for the record of processing: a path, or a Postgres database
    /// (or schema) name with its host, never credentials.
    pub fn location(&self, region: Region) -> String {
        match self {
            RegionLayout::Sqlite { data_dir } => sqlite_dir(data_dir, region).display().to_string(),
            RegionLayout::Postgres { template, .. } => {
                match url::Url::parse(&region_url(template, region)) {
                    Ok(u) => match search_path(&u) {
                        Some(schema) => format!(
                            "Postgres schema {schema} of database {} on {}",
                            database(&u),
                            u.host_str().unwrap_or("localhost")
                        ),
                        None => format!(
                            "Postgres database {} on {}",
                            database(&u),
                            u.host_str().unwrap_or("localhost")
                        ),
                    },
                    Err(_) => "Postgres (unparsable URL)".to_owned(),
                }
            }
        }
    }

    /// Opens (creating and migrating) `region`'s store.
    async fn open(&self, region: Region) -> Result<Regional, StoreError> {
        match self {
            RegionLayout::Sqlite { data_dir } => {
                let dir = sqlite_dir(data_dir, region);
                crate::files::create_private_dir_all(&dir)
                    .map_err(|e| StoreError::Database(format!("region directory: {}", e.kind())))?;
                let events = Arc::new(sqlite::SqliteEventLog::open(&dir).await?);
                Ok(Regional {
                    events: events.clone(),
                    evidence: events,
                    keys: Arc::new(sqlite::SqliteKeyStore::open(&dir).await?),
                    leases: None,
                })
            }
            RegionLayout::Postgres {
                template,
                pool_size,
                limits,
            } => {
                let pool =
                    postgres::open_region(&region_url(template, region), *pool_size, *limits)
                        .await?;
                let store = Arc::new(postgres::PostgresStore::new(pool));
                Ok(Regional {
                    events: store.clone(),
                    evidence: store.clone(),
                    keys: store.clone(),
                    leases: Some(store),
                })
            }
        }
    }
}

fn sqlite_dir(data_dir: &std::path::Path, region: Region) -> PathBuf {
    data_dir.join(REGIONS_DIR).join(region.code())
}

/// The URL of `region`'s store from a template.
pub(crate) fn region_url(template: &str, region: Region) -> String {
    template.replace("{region}", &region.code().to_ascii_lowercase())
}

/// The schema a URL's `options=-csearch_path=…` names, if any.
pub(crate) fn search_path(u: &url::Url) -> Option<String> {
    u.query_pairs()
        .filter(|(k, _)| k == "options")
        .flat_map(|(_, v)| {
            v.split_whitespace()
                .filter_map(|o| o.strip_prefix("-csearch_path=").map(str::to_owned))
                .collect::<Vec<_>>()
        })
        .next()
}

/// The database a URL names (`postgres` when it names none).
pub(crate) fn database(u: &url::Url) -> String {
    let path = u.path().trim_start_matches('/');
    if path.is_empty() {
        "postgres".to_owned()
    } else {
        path.to_owned()
    }
}

/// Stands for the region code while the template is built (no URL holds it by chance).
const PLACEHOLDER: &str = "sealpostregionplaceholder7f3a";

/// `home_url` with `_{region}` appended to its schema (when it sets one) or its database.
fn derived_template(home_url: &str) -> Result<String, StoreError> {
    let invalid = || StoreError::Invalid("the database URL is not a valid postgres:// URL");
    let mut u = url::Url::parse(home_url).map_err(|_| invalid())?;
    match search_path(&u) {
        Some(schema) => {
            let pairs: Vec<(String, String)> = u
                .query_pairs()
                .map(|(k, v)| {
                    let v = if k == "options" {
                        v.replace(
                            &format!("-csearch_path={schema}"),
                            &format!("-csearch_path={schema}_{PLACEHOLDER}"),
                        )
                    } else {
                        v.into_owned()
                    };
                    (k.into_owned(), v)
                })
                .collect();
            u.query_pairs_mut().clear().extend_pairs(pairs);
        }
        None => {
            let db = database(&u);
            u.set_path(&format!("/{db}_{PLACEHOLDER}"));
        }
    }
    // `{` would be escaped inside a URL: the placeholder goes in after serialising.
    Ok(u.to_string().replace(PLACEHOLDER, "{region}"))
}

/// One region's opened store.
#[derive(Debug, Clone)]
struct Regional {
    /// The sealed bodies of its events, in a log of its own (ADR 0020).
    events: Arc<dyn EventLog>,
    /// The evidence rows of its messages' consumers (ADR 0021).
    evidence: Arc<dyn EvidenceRows>,
    keys: Arc<dyn KeyStore>,
    /// Where its fenced writes find the leases (Postgres; the embedded store serves one
    /// process and fences nothing).
    leases: Option<Arc<dyn Leases>>,
}

/// The stores of the Local Storage regions, opened on first use: a write creates (and records)
/// its region's store, a read finds one only if it exists.
#[derive(Debug)]
pub struct RegionStores {
    layout: RegionLayout,
    registry: Arc<dyn RegionRegistry>,
    /// The home store's leases, copied into each region's store as it opens.
    home_leases: Arc<dyn Leases>,
    /// Each region's store, opened once: a region's first use waits only for its own store.
    open: std::sync::Mutex<BTreeMap<Region, Arc<tokio::sync::OnceCell<Regional>>>>,
}

impl RegionStores {
    /// The regions of `layout`, recorded in `registry` (the home store's); each region's store
    /// is given `home_leases` as it opens, and every change of owner after ([`Self::mirror`]).
    pub fn new(
        layout: RegionLayout,
        registry: Arc<dyn RegionRegistry>,
        home_leases: Arc<dyn Leases>,
    ) -> Self {
        Self {
            layout,
            registry,
            home_leases,
            open: std::sync::Mutex::new(BTreeMap::new()),
        }
    }

    /// Where the stores live.
    pub fn layout(&self) -> &RegionLayout {
        &self.layout
    }

    /// The regions whose store exists, in [`Region::ALL`] order.
    pub async fn regions(&self) -> Result<Vec<Region>, StoreError> {
        Ok(self.recorded().await?.into_keys().collect())
    }

    /// Each existing region's store with where it was created (this node's layout's place when
    /// the record does not say).
    pub async fn recorded(&self) -> Result<BTreeMap<Region, String>, StoreError> {
        Ok(self
            .registry
            .region_stores()
            .await?
            .into_iter()
            .filter_map(|(code, location)| {
                let region: Region = code.parse().ok()?;
                let location = if location.is_empty() {
                    self.layout.location(region)
                } else {
                    location
                };
                Some((region, location))
            })
            .collect())
    }

    /// Records `lease` (a change of owner in the home store) in every region's store before its
    /// new holder acts: from then on a write there under an older epoch is refused in its own
    /// transaction.
    pub async fn mirror(&self, lease: &LeaseRow) -> Result<(), StoreError> {
        for region in self.regions().await? {
            if let Some(leases) = self.opened(region).await?.leases {
                leases.mirror(lease).await?;
            }
        }
        Ok(())
    }

    /// `region`'s key store for a write: created, migrated and recorded on first use.
    pub async fn keys_for_write(&self, region: Region) -> Result<Arc<dyn KeyStore>, StoreError> {
        Ok(self.opened(region).await?.keys)
    }

    /// `region`'s key store for a read: `None` while it has no store (nothing was written there).
    pub async fn keys_for_read(
        &self,
        region: Region,
    ) -> Result<Option<Arc<dyn KeyStore>>, StoreError> {
        Ok(self.for_read(region).await?.map(|s| s.keys))
    }

    /// `region`'s event log for a write: created, migrated and recorded on first use.
    pub async fn events_for_write(&self, region: Region) -> Result<Arc<dyn EventLog>, StoreError> {
        Ok(self.opened(region).await?.events)
    }

    /// `region`'s event log for a read: `None` while it has no store.
    pub async fn events_for_read(
        &self,
        region: Region,
    ) -> Result<Option<Arc<dyn EventLog>>, StoreError> {
        Ok(self.for_read(region).await?.map(|s| s.events))
    }

    /// `region`'s evidence rows for a write: created, migrated and recorded on first use.
    pub async fn evidence_for_write(
        &self,
        region: Region,
    ) -> Result<Arc<dyn EvidenceRows>, StoreError> {
        Ok(self.opened(region).await?.evidence)
    }

    /// `region`'s evidence rows: `None` while it has no store.
    pub async fn evidence_for_read(
        &self,
        region: Region,
    ) -> Result<Option<Arc<dyn EvidenceRows>>, StoreError> {
        Ok(self.for_read(region).await?.map(|s| s.evidence))
    }

    /// `region`'s store if it exists (opened in this process, or recorded by any node).
    async fn for_read(&self, region: Region) -> Result<Option<Regional>, StoreError> {
        if let Some(store) = self.cell(region).get() {
            return Ok(Some(store.clone()));
        }
        if !self.regions().await?.contains(&region) {
            return Ok(None);
        }
        self.opened(region).await.map(Some)
    }

    /// The once-cell of `region`'s store.
    fn cell(&self, region: Region) -> Arc<tokio::sync::OnceCell<Regional>> {
        self.open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(region)
            .or_default()
            .clone()
    }

    /// `region`'s store, opened on first use (callers at once wait for the one opening; a
    /// failed opening is tried again by the next caller).
    async fn opened(&self, region: Region) -> Result<Regional, StoreError> {
        self.cell(region)
            .get_or_try_init(|| self.open_region(region))
            .await
            .cloned()
    }

    /// Opens `region`'s store: checked against the place recorded for it, created, migrated,
    /// given the home store's leases, then recorded.
    async fn open_region(&self, region: Region) -> Result<Regional, StoreError> {
        let here = self.layout.location(region);
        if let Some(there) = self.recorded().await?.get(&region) {
            if *there != here {
                tracing::error!(
                    region = region.code(),
                    recorded = %there,
                    configured = %here,
                    "a Local Storage region's store is recorded elsewhere than this node is configured to keep it"
                );
                return Err(StoreError::Invalid(
                    "a Local Storage region's store is recorded at another place than this node is configured for (region_database_url)",
                ));
            }
        }
        let store = self.layout.open(region).await?;
        if let Some(leases) = &store.leases {
            for lease in self.home_leases.leases().await? {
                leases.mirror(&lease).await?;
            }
        }
        // Recorded after it exists: a recorded region always has its store.
        self.registry
            .record_region_store(region.code(), &here, now_ms())
            .await?;
        if let Some(leases) = &store.leases {
            // A takeover between the copy above and the record did not see this region: copy
            // again (a copy never lowers an epoch, so repeating it is safe).
            for lease in self.home_leases.leases().await? {
                leases.mirror(&lease).await?;
            }
        }
        tracing::info!(
            region = region.code(),
            "opened the store of a Local Storage region"
        );
        Ok(store)
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_region_gets_its_own_database_beside_the_home_one() {
        let t = derived_template("postgres://u:pw@db.example:5432/sealpost").expect("template");
        assert_eq!(
            region_url(&t, Region::De),
            "postgres://u:pw@db.example:5432/sealpost_de"
        );
        let layout = RegionLayout::postgres_beside(
            "postgres://u:pw@db.example:5432/sealpost",
            None,
            4,
            postgres::Limits::default(),
        )
        .expect("layout");
        let shown = layout.location(Region::In);
        assert_eq!(shown, "Postgres database sealpost_in on db.example");
        assert!(!format!("{layout:?}").contains("pw"));
    }

    #[test]
    fn a_home_schema_gives_each_region_a_schema_beside_it() {
        let t = derived_template(
            "postgres://postgres@127.0.0.1:5432/postgres?options=-csearch_path%3Dt_1",
        )
        .expect("template");
        let u = url::Url::parse(&region_url(&t, Region::De)).expect("url");
        assert_eq!(search_path(&u).as_deref(), Some("t_1_de"));
        assert_eq!(database(&u), "postgres");
    }

    #[test]
    fn a_configured_template_must_name_the_region() {
        let refused = RegionLayout::postgres_beside(
            "postgres://h/db",
            Some("postgres://h/fixed"),
            4,
            postgres::Limits::default(),
        );
        assert!(matches!(refused, Err(StoreError::Invalid(_))));
    }
}
