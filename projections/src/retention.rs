//! The crypto-shredding retention process.
//!
//! It follows the event log to know, per subject, the newest epoch that holds one of its
//! messages, and on every run at `now`:
//! 1. destroys every retention-epoch key whose epoch start + retention has passed, recording
//!    `EpochKeyShredded` first (so a crash in between is finished by the next run) — the cost
//!    is one key per business, region and hour, independent of the number of messages;
//! 2. expires subjects whose newest message epoch has expired: `SubjectExpired`, then the
//!    subject key and blind-index entry go, so the phone number is gone with the messages;
//! 3. completes erasures: every `SubjectErased` subject whose key still exists loses it.

use sealpost_adapters::exec::{CommandMeta, ExecError, Executor};
use sealpost_adapters::ledger::{LedgerError, OpenedEvent, Subscription};
use sealpost_adapters::store::{OfBusiness, StoreError};
use sealpost_adapters::vault::{epoch_key_id, VaultError};
use sealpost_domain::{
    BusinessId, EpochId, MessageEvent, Principal, Region, RetentionCommand, RetentionLedger,
    RetentionPolicy, Subject, SubjectCommand, SubjectEvent, SubjectId, Timestamp,
};
use std::collections::BTreeMap;

mod root_keys;
mod rotation;

pub use root_keys::{retire_root_key, rewrap_root_keys, rotate_root_key};
pub use rotation::{rotate_ledger_key, DEFAULT_LEDGER_ROTATION_MS};

/// The stream of `business`'s retention ledger of `region`.
pub fn ledger_stream(business: &str, region: Region) -> String {
    format!("{business}-{}", region.code())
}

/// Records `command` on `business`'s retention ledger of `region`, acting as `principal`.
pub async fn record_on_ledger(
    exec: &Executor,
    principal: &Principal,
    (business, region): (&str, Region),
    command: RetentionCommand,
    now: Timestamp,
) -> Result<(), RetentionError> {
    let meta = CommandMeta::new(business, region, principal);
    exec.execute::<RetentionLedger>(&ledger_stream(business, region), command, &meta, now)
        .await?;
    Ok(())
}

/// The principal the retention process acts as.
pub const RETENTION_PRINCIPAL: &str = "retention";

/// Why a retention run stopped. Nothing is lost: the next run picks up where this one stopped.
#[derive(Debug, thiserror::Error)]
pub enum RetentionError {
    /// Recording a destruction failed.
    #[error(transparent)]
    Exec(#[from] ExecError),
    /// Reading the log failed.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    /// Destroying a key failed.
    #[error(transparent)]
    Vault(#[from] VaultError),
}

impl RetentionError {
    /// Whether the failure is transient (the database is down or busy): the next pass resumes.
    pub fn is_unavailable(&self) -> bool {
        match self {
            RetentionError::Exec(e) => e.is_unavailable(),
            RetentionError::Ledger(e) => e.is_unavailable(),
            RetentionError::Vault(e) => e.is_unavailable(),
        }
    }
}

/// What one run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetentionReport {
    /// Retention-epoch keys destroyed.
    pub epoch_keys_destroyed: u64,
    /// Subjects whose last message expired, keys and routing destroyed.
    pub subjects_expired: u64,
    /// Erasures whose keys were destroyed by this run (normally done at once by [`erase_subject`]).
    pub erasures_completed: u64,
    /// Ledger keys rotated because their period was over.
    pub ledger_keys_rotated: u64,
    /// Keys and accounts rewrapped under a rotated root key that a rotation had left.
    pub root_rows_rewrapped: u64,
    /// Sealed chunks of media objects past their expiry deleted (their keys are gone or going
    /// with their epoch; an interrupted upload's never had a stored key).
    pub media_chunks_deleted: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
enum Life {
    Active,
    /// Erased; `keys_gone` once this process has seen its keys destroyed.
    Erased {
        keys_gone: bool,
    },
    /// Expired; `keys_gone` likewise (a crash between the event and the destruction leaves it false).
    Expired {
        keys_gone: bool,
    },
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Track {
    business: BusinessId,
    region: Region,
    last_epoch: EpochId,
    life: Life,
}

/// The retention process.
#[derive(Debug)]
pub struct RetentionProcess {
    exec: Executor,
    policy: RetentionPolicy,
    subscription: Subscription,
    subjects: BTreeMap<SubjectId, Track>,
    /// The position of the fold last persisted.
    saved: u64,
    /// How long a ledger key version seals new events (0: never rotated).
    ledger_rotation_ms: i64,
    /// When this process last looked for ledger keys due (once an hour is enough).
    rotation_checked: Option<Timestamp>,
    /// When the last pass looked for root-key rewraps left to do.
    rewrap_checked: Option<Timestamp>,
}

/// The persisted form of the retention process's fold (`projection/retention`).
#[derive(serde::Serialize, serde::Deserialize)]
struct Saved {
    subjects: BTreeMap<SubjectId, Track>,
}

/// The shape of [`Saved`]; a snapshot of another version is ignored and the fold rebuilt.
const SAVED_VERSION: u64 = 1;

/// The persisted retention fold's name.
const SAVED: &str = "retention";

fn principal() -> Principal {
    Principal::processor(RETENTION_PRINCIPAL)
}

impl RetentionProcess {
    /// A retention process that rebuilds its view from position 0.
    pub fn new(exec: Executor, policy: RetentionPolicy) -> Self {
        let subscription = exec.store().subscribe(0);
        Self {
            exec,
            policy,
            subscription,
            subjects: BTreeMap::new(),
            saved: 0,
            ledger_rotation_ms: DEFAULT_LEDGER_ROTATION_MS,
            rotation_checked: None,
            rewrap_checked: None,
        }
    }

    /// Rotates ledger keys every `period_ms` instead of [`DEFAULT_LEDGER_ROTATION_MS`] (0: never).
    pub fn with_ledger_rotation(mut self, period_ms: i64) -> Self {
        self.ledger_rotation_ms = period_ms;
        self
    }

    /// A retention process that resumes from its persisted fold (and folds only what came
    /// after), or from position 0 when there is none.
    pub async fn resume(exec: Executor, policy: RetentionPolicy) -> Result<Self, RetentionError> {
        let saved =
            sealpost_adapters::projection::load_state::<Saved>(exec.store(), SAVED, SAVED_VERSION)
                .await?;
        let mut process = Self::new(exec, policy);
        if let Some((saved, position)) = saved {
            process.subjects = saved.subjects;
            process.subscription.seek(position);
            process.saved = position;
        }
        Ok(process)
    }

    /// Persists the fold with its position, if it moved since the last save.
    async fn save(&mut self) -> Result<(), RetentionError> {
        let position = self.subscription.position();
        if position == self.saved {
            return Ok(());
        }
        let saved = Saved {
            subjects: self.subjects.clone(),
        };
        sealpost_adapters::projection::save_state(
            self.exec.store(),
            SAVED,
            SAVED_VERSION,
            &saved,
            position,
        )
        .await?;
        self.saved = position;
        Ok(())
    }

    /// The policy.
    pub fn policy(&self) -> RetentionPolicy {
        self.policy
    }

    fn observe(&mut self, e: OpenedEvent) {
        let kind = e.header.stream.kind.as_str();
        if kind == <Subject as cqrs_es::Aggregate>::TYPE {
            let Ok(event) = e.decode::<SubjectEvent>() else {
                return;
            };
            let Ok(id) = SubjectId::parse(&e.header.stream.id) else {
                return;
            };
            match event {
                SubjectEvent::SubjectCreated { business_id, .. } => {
                    let Ok(region) = e.header.region.parse() else {
                        return;
                    };
                    let epoch = self
                        .policy
                        .epoch_of(Timestamp::from_millis(e.header.recorded_at));
                    self.subjects.insert(
                        id,
                        Track {
                            business: business_id,
                            region,
                            last_epoch: epoch,
                            life: Life::Active,
                        },
                    );
                }
                SubjectEvent::SubjectErased { .. } => {
                    if let Some(t) = self.subjects.get_mut(&id) {
                        if !matches!(t.life, Life::Erased { .. }) {
                            t.life = Life::Erased { keys_gone: false };
                        }
                    }
                }
                SubjectEvent::SubjectExpired { .. } => {
                    if let Some(t) = self.subjects.get_mut(&id) {
                        if !matches!(t.life, Life::Expired { .. }) {
                            t.life = Life::Expired { keys_gone: false };
                        }
                    }
                }
                SubjectEvent::ServiceWindowOpened { .. }
                | SubjectEvent::ConsumerIdentityChanged { .. } => {}
            }
        } else if kind == <sealpost_domain::Message as cqrs_es::Aggregate>::TYPE {
            let Ok(event) = e.decode::<MessageEvent>() else {
                return;
            };
            let (subject, epoch) = match event {
                MessageEvent::OutboundMessageAccepted { header, .. } => {
                    (header.subject_id, header.epoch)
                }
                MessageEvent::InboundMessageReceived { header, .. } => {
                    (header.subject_id, header.epoch)
                }
                _ => return,
            };
            if let Some(t) = self.subjects.get_mut(&subject) {
                t.last_epoch = t.last_epoch.max(epoch);
            }
        }
    }

    async fn catch_up(&mut self) -> Result<(), RetentionError> {
        loop {
            let batch = self.subscription.try_next_batch().await?;
            if batch.is_empty() {
                return Ok(());
            }
            for e in batch {
                self.observe(e);
            }
        }
    }

    /// One pass at `now`.
    #[tracing::instrument(level = "debug", skip_all, fields(now = now.millis()))]
    pub async fn run_once(&mut self, now: Timestamp) -> Result<RetentionReport, RetentionError> {
        self.catch_up().await?;
        let mut report = RetentionReport {
            epoch_keys_destroyed: self.shred_epochs(now).await?,
            subjects_expired: self.expire_subjects(now).await?,
            erasures_completed: self.complete_erasures(now).await?,
            ledger_keys_rotated: self.rotate_due(now).await?,
            root_rows_rewrapped: self.rewrap_due(now).await?,
            media_chunks_deleted: 0,
        };
        // The destroyed keys' bytes leave the key store's files before the pass reports done.
        self.exec.store().vault().scrub().await?;
        // Expired media chunks: unreadable already (their keys went or go with their epoch), so
        // a store that cannot take the deletion now is swept at the next pass.
        report.media_chunks_deleted = match self.sweep_media(now).await {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(error = %e, "media chunks are swept at the next pass");
                0
            }
        };
        self.catch_up().await?;
        self.save().await?;
        tracing::info!(
            epoch_keys = report.epoch_keys_destroyed,
            subjects_expired = report.subjects_expired,
            erasures = report.erasures_completed,
            ledger_keys = report.ledger_keys_rotated,
            root_rows = report.root_rows_rewrapped,
            media_chunks = report.media_chunks_deleted,
            "retention pass done"
        );
        Ok(report)
    }

    /// Deletes the chunks of media objects whose ids no longer answer, a batch at a time.
    async fn sweep_media(&self, now: Timestamp) -> Result<u64, RetentionError> {
        // A batch is one transaction on the key store's writer: 16 chunks (16 MiB) at most,
        // so the session saves between batches do not wait long.
        const BATCH: u32 = 16;
        let vault = self.exec.store().vault();
        let mut deleted = 0;
        loop {
            let n = vault.drop_expired_media_chunks(now, BATCH).await?;
            deleted += n;
            if n < u64::from(BATCH) {
                return Ok(deleted);
            }
        }
    }

    /// Rotates the ledger keys that are due, looking at most once an hour (of `now`).
    async fn rotate_due(&mut self, now: Timestamp) -> Result<u64, RetentionError> {
        let hour = sealpost_domain::time::HOUR_MS;
        if self
            .rotation_checked
            .is_some_and(|at| now.millis() - at.millis() < hour)
        {
            return Ok(0);
        }
        let rotated =
            rotation::rotate_due(&self.exec, &principal(), self.ledger_rotation_ms, now).await?;
        self.rotation_checked = Some(now);
        Ok(rotated)
    }

    /// Finishes root-key rewraps a rotation left, looking at most once an hour (of `now`),
    /// and not in a process's first pass (the one `serve` runs before it serves: a long rewrap
    /// must not hold the start up). A failure is logged, not the pass's: both generations open
    /// meanwhile, and the retention that follows must not wait on it.
    async fn rewrap_due(&mut self, now: Timestamp) -> Result<u64, RetentionError> {
        let hour = sealpost_domain::time::HOUR_MS;
        let Some(checked) = self.rewrap_checked else {
            self.rewrap_checked = Some(now);
            return Ok(0);
        };
        if now.millis() - checked.millis() < hour {
            return Ok(0);
        }
        self.rewrap_checked = Some(now);
        match root_keys::rewrap_pending(&self.exec, &principal(), now).await {
            Ok(rows) => Ok(rows),
            Err(e) if e.is_unavailable() => Err(e),
            Err(e) => {
                tracing::error!(error = %e, "a root-key rewrap stopped; it is tried again in an hour");
                Ok(0)
            }
        }
    }

    async fn shred_epochs(&self, now: Timestamp) -> Result<u64, RetentionError> {
        let vault = self.exec.store().vault().clone();
        let up_to = self.policy.last_expired_epoch(now);
        let mut destroyed = 0;
        loop {
            let due = vault
                .key_store()
                .expired_epochs(up_to.index(), 500)
                .await
                .map_err(VaultError::from)?;
            if due.is_empty() {
                return Ok(destroyed);
            }
            let mut ids = Vec::with_capacity(due.len());
            for key in due {
                let (Some(epoch), Ok(region), Ok(business)) = (
                    key.epoch.map(EpochId::new),
                    key.region.parse::<Region>(),
                    BusinessId::parse(&key.business_id),
                ) else {
                    return Err(VaultError::Store(StoreError::Corrupt("epoch key row")).into());
                };
                let meta =
                    CommandMeta::new(business.as_str(), region, &principal()).with_epoch(epoch);
                let command = RetentionCommand::ShredEpoch {
                    business_id: business.clone(),
                    region,
                    epoch,
                    expired_at: self.policy.expiry_of(epoch),
                };
                self.exec
                    .execute::<RetentionLedger>(
                        &ledger_stream(business.as_str(), region),
                        command,
                        &meta,
                        now,
                    )
                    .await?;
                ids.push(OfBusiness::new(
                    business.as_str(),
                    epoch_key_id(business.as_str(), region, epoch),
                ));
            }
            destroyed += vault.destroy_epoch_keys(ids, now).await?;
        }
    }

    async fn expire_subjects(&mut self, now: Timestamp) -> Result<u64, RetentionError> {
        let due: Vec<(SubjectId, Track)> = self
            .subjects
            .iter()
            .filter(|(_, t)| t.life == Life::Active && self.policy.is_expired(t.last_epoch, now))
            .map(|(s, t)| (s.clone(), t.clone()))
            .collect();
        let vault = self.exec.store().vault().clone();
        for (subject, t) in &due {
            let meta = CommandMeta::new(t.business.as_str(), t.region, &principal());
            self.exec
                .execute::<Subject>(subject.as_str(), SubjectCommand::Expire, &meta, now)
                .await?;
            vault
                .destroy_subject(t.business.as_str(), t.region, subject, now)
                .await?;
            if let Some(track) = self.subjects.get_mut(subject) {
                track.life = Life::Expired { keys_gone: true };
            }
        }
        Ok(due.len() as u64)
    }

    /// Destroys the keys of subjects recorded as erased or expired whose destruction this
    /// process has not seen (a crash between the event and the destruction, or a restart).
    /// Destroying an already destroyed key is a no-op, so this is idempotent. Returns how many
    /// erased subjects still had a key.
    async fn complete_erasures(&mut self, now: Timestamp) -> Result<u64, RetentionError> {
        let vault = self.exec.store().vault().clone();
        let mut erasures = 0;
        for (subject, t) in self.subjects.iter_mut() {
            match t.life {
                Life::Erased { keys_gone: false } => {
                    erasures += vault
                        .destroy_subject(t.business.as_str(), t.region, subject, now)
                        .await?;
                    t.life = Life::Erased { keys_gone: true };
                }
                Life::Expired { keys_gone: false } => {
                    vault
                        .destroy_subject(t.business.as_str(), t.region, subject, now)
                        .await?;
                    t.life = Life::Expired { keys_gone: true };
                }
                Life::Active
                | Life::Erased { keys_gone: true }
                | Life::Expired { keys_gone: true } => {}
            }
        }
        Ok(erasures)
    }
}

/// Erases a subject (GDPR Art. 17): records `SubjectErased` first (the erasure fence: nothing
/// may recreate the subject), then destroys its key, its blind-index entry and with the key its
/// sealed Signal session, in one key-store transaction. If the process dies between the two
/// steps, the next retention pass finishes the destruction. Repeating an erasure is safe.
pub async fn erase_subject(
    exec: &Executor,
    requested_by: &Principal,
    business: &BusinessId,
    region: Region,
    subject: &SubjectId,
    now: Timestamp,
) -> Result<(), RetentionError> {
    let meta = CommandMeta::new(business.as_str(), region, requested_by);
    let command = SubjectCommand::Erase {
        requested_by: requested_by.id.clone(),
    };
    exec.execute::<Subject>(subject.as_str(), command, &meta, now)
        .await?;
    exec.store()
        .vault()
        .destroy_subject(business.as_str(), region, subject, now)
        .await?;
    Ok(())
}
