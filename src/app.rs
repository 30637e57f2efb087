//! The application service: commands and reads over the sealed store, with every personal
//! field sealed on the way in and opened only through the access gate on the way out.

use rand::RngCore;
use sealpost_adapters::exec::{CommandMeta, ExecError, Executor};
use sealpost_adapters::ledger::{EventStore, LedgerError};
use sealpost_adapters::store::{postgres, RegionLayout, StoreError, Stores, StreamId};
use sealpost_adapters::vault::{configured_roots, Roots, Vault, VaultError};
use sealpost_audit::log::{witness_path, AuditLog};
use sealpost_audit::{AccessGate, AccessRequest, FieldRef, GateError};
use sealpost_domain::aggregates::message::{InboundHeader, OutboundHeader, PricingCategory};
use sealpost_domain::ports::Clock;
use sealpost_domain::{
    Business, BusinessCommand, BusinessId, Category, DomainError, FieldScope, Message,
    MessageCommand, MessageEvent, MessageId, MessageKind, Opened, PhoneNumber, PhoneNumberCommand,
    PhoneNumberId, Principal, Purpose, Region, RetentionPolicy, Sealed, Subject, SubjectCommand,
    SubjectEvent, SubjectId, Timestamp, E164,
};
use sealpost_projections::retention::{erase_subject, RetentionError, RetentionProcess};
use std::path::{Path, PathBuf};

/// Declares a service (ADR 0011): a `Copy` view holding just the parts it uses, with `now()`
/// from its clock and, for each service it reaches, an accessor handing that service the
/// subset of these parts it needs.
macro_rules! service {
    (
        $(#[$doc:meta])*
        $name:ident<$lt:lifetime> { $($field:ident: $ty:ty),* $(,)? }
        $(reaches { $($other:ident: $Other:ident { $($part:ident),* }),* $(,)? })?
    ) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug)]
        pub struct $name<$lt> {
            $(pub(crate) $field: $ty,)*
        }

        impl<$lt> $name<$lt> {
            /// Now, from the service's clock.
            pub(crate) fn now(&self) -> Timestamp {
                self.clock.now()
            }
            $($(
                pub(crate) fn $other(&self) -> $Other<$lt> {
                    $Other { $($part: self.$part),* }
                }
            )*)?
        }
    };
}

mod catalog;
mod error;
pub mod evidence;
mod inbound;
mod key_rotations;
pub mod media;
mod messages;
pub mod region_audit;
mod root_keys;
mod subjects;
mod template_reviews;
mod tenants;
#[cfg(test)]
mod tests;
pub mod transit;

pub use catalog::{apps, mute, AppRow, Apps, Catalog, Subscription};
pub use error::AppError;
pub use evidence::{Evidence, TenantSummary};
pub use inbound::Inbound;
pub use media::Media;
pub use messages::Held;
pub use messages::Messaging;
pub(crate) use messages::{open_content, text};
pub use root_keys::RootKeyStatus;
pub(crate) use subjects::require_owner_or_dpo;
pub use subjects::{Origin, Subjects};
pub use template_reviews::Reviews;
pub(crate) use tenants::home_of;

/// The name of this deployment's tamper-evident log (the checkpoints' origin line).
pub const AUDIT_ORIGIN: &str = "sealpost/audit/v1";
use std::sync::Arc;

/// Field names bound into each sealed field's associated data.
pub mod fields {
    /// Message content (text, media reference, template parameters).
    pub const CONTENT: &str = "content";
    /// `biz_opaque_callback_data`.
    pub const CALLBACK_DATA: &str = "callback_data";
    /// The Signal ciphertext of an inbound message.
    pub const CIPHERTEXT: &str = "ciphertext";
    /// The transport's envelope id of an inbound message (read receipts go back under it).
    pub const ENVELOPE: &str = "envelope";
    /// The consumer's profile name.
    pub const PROFILE_NAME: &str = "profile_name";
    /// The subject's routing phone number.
    pub const PHONE: &str = "phone";
}

/// A running Sealpost over one set of stores.
#[derive(Debug, Clone)]
pub struct Sealpost {
    stores: Stores,
    store: Arc<EventStore>,
    exec: Executor,
    gate: Arc<AccessGate>,
    clock: Arc<dyn Clock>,
    policy: RetentionPolicy,
    /// The tamper-evident log, opened on first use (so `audit verify` can read a damaged store).
    audit: Arc<tokio::sync::OnceCell<Arc<AuditLog>>>,
    /// The Local Storage regions' own logs, opened on first use.
    region_audits: region_audit::RegionAudits,
    /// This process's holds on Local Storage regions' data.
    transit: Arc<transit::Transit>,
    /// Where checkpoints are also written, outside the database.
    witness: Option<PathBuf>,
    /// Held while this process folds the evidence projections (their rows are in the store).
    evidence: Arc<tokio::sync::Mutex<()>>,
}

fn random_u64() -> u64 {
    rand::rng().next_u64()
}

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    rand::rng().fill_bytes(&mut b);
    b
}

/// Days a ledger key version seals new events before the retention pass rotates it (0: never;
/// default 30, at most 3,650).
pub const LEDGER_ROTATION_ENV: &str = "SEALPOST_LEDGER_ROTATION_DAYS";

/// The ledger-key rotation period [`LEDGER_ROTATION_ENV`] sets, in ms (the default when unset
/// or not a number of days up to 3,650, which is said in the log).
pub fn ledger_rotation_ms() -> i64 {
    use sealpost_projections::retention::DEFAULT_LEDGER_ROTATION_MS;
    match std::env::var(LEDGER_ROTATION_ENV) {
        Err(_) => DEFAULT_LEDGER_ROTATION_MS,
        Ok(v) => match v.trim().parse::<i64>() {
            Ok(days) if (0..=3_650).contains(&days) => days * sealpost_domain::time::DAY_MS,
            _ => {
                tracing::warn!(
                    "{LEDGER_ROTATION_ENV} is not a number of days from 0 to 3650; rotating every 30 days"
                );
                DEFAULT_LEDGER_ROTATION_MS
            }
        },
    }
}

/// The directory (inside the data directory) holding the embedded default's root keys.
pub const ROOT_KEY_DIR: &str = "root-keys";

/// The root keys' custody the environment configures (`dir`: the embedded default's key
/// files), said in the log at start: a PKCS#11 token, or keys in this process's memory.
fn configured(dir: Option<&Path>) -> Result<Roots, AppError> {
    let roots = configured_roots(dir)?;
    match roots.describe() {
        // Said at start whatever the log level's default (`warn`): the operator sees which.
        custody if custody.starts_with("PKCS#11") => tracing::warn!(%custody, "root key custody"),
        custody => tracing::warn!(
            %custody,
            "root key custody: the embedded default; in production keep root keys in an HSM (SEALPOST_PKCS11_MODULE) or at least apart from the data"
        ),
    }
    Ok(roots)
}

impl Sealpost {
    /// The embedded default: SQLite files and root-key files in `data_dir`.
    pub async fn open_sqlite(
        data_dir: &Path,
        clock: Arc<dyn Clock>,
        policy: RetentionPolicy,
    ) -> Result<Self, AppError> {
        let stores = Stores::sqlite(data_dir).await?;
        let roots = configured(Some(&data_dir.join(ROOT_KEY_DIR)))?;
        Ok(Self::start(stores, roots, clock, policy)
            .await?
            .with_witness(witness_path(data_dir)))
    }

    /// Postgres: a migrated database, the Local Storage regions' stores where `regions`
    /// says; root keys from the environment (or `key_dir`).
    pub async fn open_postgres(
        pool: sqlx::PgPool,
        regions: RegionLayout,
        key_dir: Option<&Path>,
        clock: Arc<dyn Clock>,
        policy: RetentionPolicy,
    ) -> Result<Self, AppError> {
        postgres::migrate(&pool).await?;
        Self::start(
            Stores::postgres(pool, regions),
            configured(key_dir)?,
            clock,
            policy,
        )
        .await
    }

    /// What `serve` and `tenant add` open: Postgres at `database_url` (root keys from the
    /// environment or `data_dir`; each Local Storage region's store at `region_database_url`,
    /// a template with `{region}`, by default beside the home database), else the embedded
    /// default in `data_dir`.
    pub async fn open(
        data_dir: &Path,
        database_url: Option<&str>,
        region_database_url: Option<&str>,
        pool_size: u32,
        clock: Arc<dyn Clock>,
        policy: RetentionPolicy,
    ) -> Result<Self, AppError> {
        Self::open_within(
            data_dir,
            database_url,
            region_database_url,
            pool_size,
            postgres::Limits::default(),
            clock,
            policy,
        )
        .await
    }

    /// [`Sealpost::open`] with Postgres [`postgres::Limits`]: the wait for Postgres at start and
    /// for a pooled connection later (a request then fails as unavailable instead of hanging),
    /// and how long a transaction may sit idle before the server ends it.
    pub async fn open_within(
        data_dir: &Path,
        database_url: Option<&str>,
        region_database_url: Option<&str>,
        pool_size: u32,
        limits: postgres::Limits,
        clock: Arc<dyn Clock>,
        policy: RetentionPolicy,
    ) -> Result<Self, AppError> {
        match database_url {
            None => Self::open_sqlite(data_dir, clock, policy).await,
            Some(url) => {
                let pool = postgres::connect_within(url, None, pool_size, limits).await?;
                let regions = RegionLayout::postgres_beside(
                    url,
                    region_database_url,
                    pool_size / 4 + 1,
                    limits,
                )?;
                Ok(Self::open_postgres(
                    pool,
                    regions,
                    Some(&data_dir.join(ROOT_KEY_DIR)),
                    clock,
                    policy,
                )
                .await?
                .with_witness(witness_path(data_dir)))
            }
        }
    }

    /// Starts over given stores and root keys.
    pub async fn start(
        stores: Stores,
        roots: impl Into<Roots>,
        clock: Arc<dyn Clock>,
        policy: RetentionPolicy,
    ) -> Result<Self, AppError> {
        let roots: Roots = roots.into();
        sealpost_adapters::vault::hold_custody(stores.events.as_ref(), roots.as_ref()).await?;
        let vault = Arc::new(Vault::new(stores.keys.clone(), roots));
        let store = EventStore::start_with_regions(
            stores.events.clone(),
            stores.regions.clone(),
            vault,
            clock.clone(),
        )
        .await?;
        let gate = AccessGate::new(store.clone());
        let transit = transit::Transit::new(clock.clone());
        Ok(Self {
            exec: Executor::new(store.clone()),
            stores,
            store,
            gate,
            clock,
            policy,
            audit: Arc::new(tokio::sync::OnceCell::new()),
            region_audits: Default::default(),
            transit,
            witness: None,
            evidence: Arc::new(tokio::sync::Mutex::new(())),
        })
    }

    /// Also appends every signed checkpoint to `path` (the witness outside the database).
    pub fn with_witness(mut self, path: PathBuf) -> Self {
        self.witness = Some(path);
        self
    }

    /// The witness file, if any.
    pub fn witness(&self) -> Option<&Path> {
        self.witness.as_deref()
    }

    /// The tamper-evident log (opened, with its signing key, on first use).
    pub async fn audit(&self) -> Result<&Arc<AuditLog>, AppError> {
        open_audit(
            &self.audit,
            &self.stores,
            &self.store,
            self.witness.as_deref(),
            self.now(),
        )
        .await
    }

    /// Templates, numbers and businesses: what a business offers and how it is set up.
    pub fn catalog(&self) -> Catalog<'_> {
        self.messaging().catalog()
    }

    /// Consumers as subjects: routing, their numbers through the gate, erasure.
    pub fn subjects(&self) -> Subjects<'_> {
        self.messaging().subjects()
    }

    /// Messages, outbound and inbound.
    pub fn messaging(&self) -> Messaging<'_> {
        Messaging {
            exec: &self.exec,
            store: &self.store,
            gate: &self.gate,
            clock: &*self.clock,
            policy: self.policy,
            transit: &self.transit,
        }
    }

    /// Media objects.
    pub fn media(&self) -> Media<'_> {
        self.messaging().media()
    }

    /// Evidence for the auditor and the DPO.
    pub fn evidence(&self) -> Evidence<'_> {
        Evidence {
            exec: &self.exec,
            stores: &self.stores,
            store: &self.store,
            gate: &self.gate,
            clock: &*self.clock,
            policy: self.policy,
            audit: &self.audit,
            region_audits: &self.region_audits,
            witness: self.witness.as_deref(),
            folding: &self.evidence,
        }
    }

    /// The stores.
    pub fn stores(&self) -> &Stores {
        &self.stores
    }

    /// The sealed event store.
    pub fn store(&self) -> &Arc<EventStore> {
        &self.store
    }

    /// The access gate.
    pub fn gate(&self) -> &Arc<AccessGate> {
        &self.gate
    }

    /// The retention policy.
    pub fn policy(&self) -> RetentionPolicy {
        self.policy
    }

    /// Now, from the clock port.
    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// A retention process over this store (rebuilds its view from position 0).
    pub fn retention(&self) -> RetentionProcess {
        RetentionProcess::new(self.exec.clone(), self.policy)
            .with_ledger_rotation(ledger_rotation_ms())
    }

    /// The retention process resumed from its persisted fold (what `serve` runs, so a start
    /// does not fold the whole log).
    pub async fn retention_resumed(&self) -> Result<RetentionProcess, AppError> {
        Ok(RetentionProcess::resume(self.exec.clone(), self.policy)
            .await?
            .with_ledger_rotation(ledger_rotation_ms()))
    }

    /// Rotates `business`'s ledger key in `region` now, on an operator's demand (ADR 0024);
    /// the new version, or `None` when nothing was ever sealed there.
    pub async fn rotate_ledger_key(
        &self,
        principal: &Principal,
        business: &BusinessId,
        region: Region,
    ) -> Result<Option<u32>, AppError> {
        Ok(sealpost_projections::retention::rotate_ledger_key(
            &self.exec,
            principal,
            (business, region),
            (sealpost_domain::RotationReason::OnDemand, None),
            self.now(),
        )
        .await?)
    }
}

/// Opens the tamper-evident log into `cell` on first use.
pub(super) async fn open_audit<'c>(
    cell: &'c tokio::sync::OnceCell<Arc<AuditLog>>,
    stores: &Stores,
    store: &EventStore,
    witness: Option<&Path>,
    now: Timestamp,
) -> Result<&'c Arc<AuditLog>, AppError> {
    cell.get_or_try_init(|| {
        AuditLog::open(
            stores.events.clone(),
            store.vault(),
            AUDIT_ORIGIN,
            witness.map(Path::to_path_buf),
            now,
        )
    })
    .await
    .map_err(AppError::from)
}

/// The business the aggregate `id` of type `A` belongs to, found across businesses: only for a
/// caller that holds an id and no business by nature (ADR 0018). `NotFound` if it has no events.
pub(crate) async fn owner_of<A: sealpost_adapters::exec::Stream>(
    exec: &Executor,
    id: &str,
) -> Result<BusinessId, AppError> {
    let found = exec
        .business_of::<A>(id)
        .await?
        .ok_or(DomainError::NotFound)?;
    BusinessId::parse(&found).map_err(|_| AppError::Corrupt("business id"))
}

/// The business of the aggregate `id` of type `A` as `principal` may address it: its own, or
/// found across businesses ([`owner_of`]) for a principal that has none (a DPO, the operator).
pub(crate) async fn business_for<A: sealpost_adapters::exec::Stream>(
    exec: &Executor,
    principal: &Principal,
    id: &str,
) -> Result<BusinessId, AppError> {
    match &principal.business {
        Some(business) => Ok(business.clone()),
        None => owner_of::<A>(exec, id).await,
    }
}

pub(crate) fn region_of(e: &sealpost_adapters::ledger::OpenedEvent) -> Result<Region, AppError> {
    e.header
        .region
        .parse()
        .map_err(|_| AppError::Corrupt("region"))
}
