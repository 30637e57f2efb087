//! The application service: commands and reads over the sealed store, with every personal
//! field sealed on the way in and opened only through the access gate on the way out.

use rand::RngCore;
use sealpost_adapters::clock::Clock;
use sealpost_adapters::exec::{CommandMeta, ExecError, Executor};
use sealpost_adapters::ledger::{EventStore, LedgerError};
use sealpost_adapters::store::{postgres, StoreError, Stores, StreamId};
use sealpost_adapters::vault::{RootKeys, Vault, VaultError};
use sealpost_audit::log::{witness_path, AuditLog};
use sealpost_audit::{AccessGate, AccessRequest, FieldRef, GateError};
use sealpost_domain::aggregates::message::{InboundHeader, OutboundHeader, PricingCategory};
use sealpost_domain::{
    Business, BusinessCommand, BusinessId, Category, DomainError, FieldScope, Message,
    MessageCommand, MessageEvent, MessageId, MessageKind, Opened, PhoneNumber, PhoneNumberCommand,
    PhoneNumberId, Principal, Purpose, Region, RetentionPolicy, Sealed, Subject, SubjectCommand,
    SubjectEvent, SubjectId, Timestamp, E164,
};
use sealpost_projections::evidence::EvidenceView;
use sealpost_projections::retention::{erase_subject, RetentionError, RetentionProcess};
use std::path::{Path, PathBuf};

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

/// Application errors. `Display` never contains personal data.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// A domain rule refused the command: answer with its Cloud API code.
    #[error(transparent)]
    Domain(#[from] DomainError),
    /// The access gate refused the read (recorded), or could not record its decision.
    #[error(transparent)]
    Gate(#[from] GateError),
    /// Storage failed: retry later when [`AppError::is_unavailable`] (HTTP 503), else alert.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    /// Keys failed (destroyed keys on write map to [`DomainError::SubjectErased`] first).
    #[error(transparent)]
    Vault(#[from] VaultError),
    /// The retention process failed: it resumes on its next pass.
    #[error(transparent)]
    Retention(#[from] RetentionError),
    /// The tamper-evident log failed.
    #[error(transparent)]
    Audit(#[from] sealpost_audit::log::AuditError),
    /// Stored content is not what it should be (corruption): alert.
    #[error("stored data is inconsistent: {0}")]
    Inconsistent(&'static str),
}

impl AppError {
    /// Whether the failure is transient: the database (event or key store) is down,
    /// unreachable or busy, or the store is shutting down. HTTP answers 503 with the Cloud API's
    /// retryable code 131016; the client retries and the server reconnects by itself.
    pub fn is_unavailable(&self) -> bool {
        match self {
            AppError::Domain(_) | AppError::Inconsistent(_) => false,
            AppError::Gate(e) => e.is_unavailable(),
            AppError::Ledger(e) => e.is_unavailable(),
            AppError::Vault(e) => e.is_unavailable(),
            AppError::Retention(e) => e.is_unavailable(),
            AppError::Audit(e) => e.is_unavailable(),
        }
    }
}

impl From<ExecError> for AppError {
    fn from(e: ExecError) -> Self {
        match e {
            ExecError::Domain(d) => AppError::Domain(d),
            ExecError::Ledger(l) => AppError::Ledger(l),
        }
    }
}

impl From<StoreError> for AppError {
    fn from(e: StoreError) -> Self {
        AppError::Ledger(LedgerError::Store(e))
    }
}

/// The content of a message as the business sees it.
#[derive(Clone, PartialEq, Eq)]
pub struct Content {
    /// Its type.
    pub kind: MessageKind,
    /// The body (text, or the JSON of a non-text message).
    pub body: String,
}

impl std::fmt::Debug for Content {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Content({:?}, <redacted>)", self.kind)
    }
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
    /// Where checkpoints are also written, outside the database.
    witness: Option<PathBuf>,
    /// The evidence projections (access, statistics, billing, retention facts).
    evidence: Arc<tokio::sync::Mutex<EvidenceView>>,
}

fn random_u64() -> u64 {
    rand::rng().next_u64()
}

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    rand::rng().fill_bytes(&mut b);
    b
}

/// The directory (inside the data directory) holding the embedded default's root keys.
pub const ROOT_KEY_DIR: &str = "root-keys";

impl Sealpost {
    /// The embedded default: SQLite files and root-key files in `data_dir`.
    pub async fn open_sqlite(
        data_dir: &Path,
        clock: Arc<dyn Clock>,
        policy: RetentionPolicy,
    ) -> Result<Self, AppError> {
        let stores = Stores::sqlite(data_dir).await?;
        tracing::warn!(
            "embedded default: region root keys are read from SEALPOST_ROOT_KEY_<REGION> or kept in files under the data directory ({ROOT_KEY_DIR}/); in production keep them apart from the data"
        );
        let roots = RootKeys::from_dir_or_env(Some(&data_dir.join(ROOT_KEY_DIR)));
        Ok(Self::start(stores, roots, clock, policy)
            .await?
            .with_witness(witness_path(data_dir)))
    }

    /// Postgres: a migrated database; root keys from the environment (or `key_dir`).
    pub async fn open_postgres(
        pool: sqlx::PgPool,
        key_dir: Option<&Path>,
        clock: Arc<dyn Clock>,
        policy: RetentionPolicy,
    ) -> Result<Self, AppError> {
        postgres::migrate(&pool).await?;
        Self::start(
            Stores::postgres(pool),
            RootKeys::from_dir_or_env(key_dir),
            clock,
            policy,
        )
        .await
    }

    /// What `serve` and `tenant add` open: Postgres at `database_url` (root keys from the
    /// environment or `data_dir`), else the embedded default in `data_dir`.
    pub async fn open(
        data_dir: &Path,
        database_url: Option<&str>,
        pool_size: u32,
        clock: Arc<dyn Clock>,
        policy: RetentionPolicy,
    ) -> Result<Self, AppError> {
        Self::open_within(
            data_dir,
            database_url,
            pool_size,
            postgres::DEFAULT_CONNECT_TIMEOUT,
            clock,
            policy,
        )
        .await
    }

    /// [`Sealpost::open`], waiting at most `connect_timeout` for Postgres at start and for a
    /// pooled connection later (a request then fails as unavailable instead of hanging).
    pub async fn open_within(
        data_dir: &Path,
        database_url: Option<&str>,
        pool_size: u32,
        connect_timeout: std::time::Duration,
        clock: Arc<dyn Clock>,
        policy: RetentionPolicy,
    ) -> Result<Self, AppError> {
        match database_url {
            None => Self::open_sqlite(data_dir, clock, policy).await,
            Some(url) => {
                let pool = postgres::connect_within(url, None, pool_size, connect_timeout).await?;
                Ok(
                    Self::open_postgres(pool, Some(&data_dir.join(ROOT_KEY_DIR)), clock, policy)
                        .await?
                        .with_witness(witness_path(data_dir)),
                )
            }
        }
    }

    /// Starts over given stores and root keys.
    pub async fn start(
        stores: Stores,
        roots: RootKeys,
        clock: Arc<dyn Clock>,
        policy: RetentionPolicy,
    ) -> Result<Self, AppError> {
        let vault = Arc::new(Vault::new(stores.keys.clone(), roots));
        let store = EventStore::start(stores.events.clone(), vault, clock.clone()).await?;
        let gate = AccessGate::new(store.clone());
        Ok(Self {
            exec: Executor::new(store.clone()),
            stores,
            store,
            gate,
            clock,
            policy,
            audit: Arc::new(tokio::sync::OnceCell::new()),
            witness: None,
            evidence: Arc::new(tokio::sync::Mutex::new(EvidenceView::new())),
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
        self.audit
            .get_or_try_init(|| {
                AuditLog::open(
                    self.stores.events.clone(),
                    self.store.vault(),
                    AUDIT_ORIGIN,
                    self.witness.clone(),
                    self.now(),
                )
            })
            .await
            .map_err(AppError::from)
    }

    /// The evidence projections.
    pub(crate) fn evidence(&self) -> &Arc<tokio::sync::Mutex<EvidenceView>> {
        &self.evidence
    }

    /// The stores.
    pub fn stores(&self) -> &Stores {
        &self.stores
    }

    /// The sealed event store.
    pub fn store(&self) -> &Arc<EventStore> {
        &self.store
    }

    /// The command executor.
    pub fn executor(&self) -> &Executor {
        &self.exec
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
    }

    /// The retention process resumed from its persisted fold (what `serve` runs, so a start
    /// does not fold the whole log).
    pub async fn retention_resumed(&self) -> Result<RetentionProcess, AppError> {
        Ok(RetentionProcess::resume(self.exec.clone(), self.policy).await?)
    }

    /// Registers a business.
    pub async fn register_business(
        &self,
        name: &str,
        home_region: Region,
    ) -> Result<BusinessId, AppError> {
        let id = BusinessId::from_random(random_u64());
        let meta = CommandMeta::new(
            id.as_str(),
            home_region,
            &Principal::processor("business-manager"),
        );
        let cmd = BusinessCommand::Register {
            business_id: id.clone(),
            name: name.to_owned(),
        };
        self.exec
            .execute::<Business>(id.as_str(), cmd, &meta, self.now())
            .await?;
        Ok(id)
    }

    /// A business's home region (where its own records, tokens among them, are kept).
    pub async fn business_region(&self, id: &BusinessId) -> Result<Region, AppError> {
        let events = self
            .store
            .read_stream(&StreamId::new("business", id.as_str()), 0)
            .await?;
        let first = events.first().ok_or(DomainError::NotFound)?;
        region_of(first)
    }

    /// Adds a phone number to a business.
    pub async fn add_phone_number(
        &self,
        business: &BusinessId,
        display_number: &str,
        home_region: Region,
    ) -> Result<PhoneNumberId, AppError> {
        let id = PhoneNumberId::from_random(random_u64());
        let meta = CommandMeta::new(
            business.as_str(),
            home_region,
            &Principal::processor("business-manager"),
        );
        let cmd = PhoneNumberCommand::Add {
            phone_number_id: id.clone(),
            business_id: business.clone(),
            display_number: display_number.to_owned(),
            home_region,
        };
        self.exec
            .execute::<PhoneNumber>(id.as_str(), cmd, &meta, self.now())
            .await?;
        Ok(id)
    }

    /// A phone number's state.
    pub async fn phone_number(&self, id: &PhoneNumberId) -> Result<PhoneNumber, AppError> {
        let (state, _) = self.exec.load::<PhoneNumber>(id.as_str()).await?;
        state.id.as_ref().ok_or(DomainError::NotFound)?;
        Ok(state)
    }

    /// What the transport reported about a business number (rating, lowered tier, throttle),
    /// folded from the number's integrity stream. The caller authorizes the read.
    pub async fn integrity(
        &self,
        id: &PhoneNumberId,
    ) -> Result<sealpost_domain::integrity::IntegrityView, AppError> {
        let stream = sealpost_adapters::store::StreamId::new(
            sealpost_domain::integrity::INTEGRITY_STREAM_TYPE,
            id.as_str(),
        );
        let mut view = sealpost_domain::integrity::IntegrityView::default();
        for e in self.store().read_stream(&stream, 0).await? {
            view.apply(&e.decode::<sealpost_domain::integrity::IntegrityEvent>()?);
        }
        Ok(view)
    }

    /// Where a phone number's data lives, and its business.
    pub(crate) async fn number_home(
        &self,
        id: &PhoneNumberId,
    ) -> Result<(BusinessId, Region), AppError> {
        let n = self.phone_number(id).await?;
        let business = n
            .business_id
            .clone()
            .ok_or(AppError::Inconsistent("phone number without business"))?;
        let region = n
            .storage_region()
            .ok_or(AppError::Inconsistent("phone number without region"))?;
        Ok((business, region))
    }

    /// The live subject a consumer's number routes to for a business, created (key, sealed
    /// number, blind-index entry) if there is none.
    pub async fn subject_for(
        &self,
        business: &BusinessId,
        region: Region,
        phone: &E164,
    ) -> Result<SubjectId, AppError> {
        let vault = self.store.vault();
        let now = self.now();
        if let Some(existing) = vault
            .find_subject(business.as_str(), region, phone, now)
            .await?
        {
            let (s, _) = self.exec.load::<Subject>(existing.as_str()).await?;
            if s.lifecycle == sealpost_domain::aggregates::subject::SubjectLifecycle::Active {
                return Ok(existing);
            }
        }
        let subject = SubjectId::from_random(random_bytes());
        vault
            .create_subject_key(business.as_str(), region, &subject, now)
            .await?;
        let sealed_phone = vault
            .seal_field(
                business.as_str(),
                region,
                &FieldScope::Subject {
                    subject: subject.clone(),
                },
                fields::PHONE,
                phone.expose_digits().as_bytes(),
                now,
            )
            .await?;
        let meta = CommandMeta::new(business.as_str(), region, &Principal::processor("routing"));
        let cmd = SubjectCommand::Create {
            subject_id: subject.clone(),
            business_id: business.clone(),
            phone: sealed_phone,
        };
        self.exec
            .execute::<Subject>(subject.as_str(), cmd, &meta, now)
            .await?;
        // The first route wins if two requests raced to create a subject for the same number.
        let routed = vault
            .route_subject(business.as_str(), region, phone, &subject, now)
            .await?;
        // The business-scoped user id routes to the subject too (and goes with it).
        vault
            .route_user_id(business.as_str(), region, phone, &routed, now)
            .await?;
        Ok(routed)
    }

    /// The live subject a business-scoped user id routes to, and its phone number read through
    /// the gate as the business itself (so answering by user id needs no number from the caller).
    pub async fn subject_by_user_id(
        &self,
        actor: &Principal,
        phone_number_id: &PhoneNumberId,
        user_id: &str,
    ) -> Result<E164, AppError> {
        let (business, region) = self.number_home(phone_number_id).await?;
        let subject = self
            .store
            .vault()
            .find_user(business.as_str(), region, user_id, self.now())
            .await?
            .ok_or(DomainError::InvalidParameter("recipient"))?;
        match self
            .read_phone(actor, Purpose::BusinessApi, &subject)
            .await?
        {
            Opened::Plain(p) => {
                Ok(E164::parse(&p).map_err(|_| AppError::Inconsistent("stored number"))?)
            }
            Opened::Shredded => Err(DomainError::SubjectErased.into()),
        }
    }

    async fn seal_message_field(
        &self,
        business: &BusinessId,
        region: Region,
        scope: &FieldScope,
        field: &str,
        value: &[u8],
    ) -> Result<Sealed, AppError> {
        self.store
            .vault()
            .seal_field(business.as_str(), region, scope, field, value, self.now())
            .await
            .map_err(|e| match e {
                VaultError::KeyDestroyed => AppError::Domain(DomainError::SubjectErased),
                other => AppError::Vault(other),
            })
    }

    /// Accepts an outbound message from a business (the business's own principal) to a
    /// consumer number. The content is sealed under the message key before the event exists.
    pub async fn send(
        &self,
        actor: &Principal,
        phone_number_id: &PhoneNumberId,
        to: &E164,
        kind: MessageKind,
        body: &str,
        callback_data: Option<&str>,
    ) -> Result<MessageId, AppError> {
        let (business, region) = self.number_home(phone_number_id).await?;
        if actor.business.as_ref() != Some(&business) {
            return Err(GateError::Denied(sealpost_domain::access::DenyReason::NotOwner).into());
        }
        let subject = self.subject_for(&business, region, to).await?;
        let (subject_state, _) = self.exec.load::<Subject>(subject.as_str()).await?;
        let now = self.now();
        let message_id = MessageId::from_random(random_bytes());
        let epoch = self.policy.epoch_of(now);
        let scope = FieldScope::Message {
            epoch,
            subject: subject.clone(),
            message: message_id.clone(),
        };
        let content = self
            .seal_message_field(&business, region, &scope, fields::CONTENT, body.as_bytes())
            .await?;
        let callback_data = match callback_data {
            Some(c) => Some(
                self.seal_message_field(
                    &business,
                    region,
                    &scope,
                    fields::CALLBACK_DATA,
                    c.as_bytes(),
                )
                .await?,
            ),
            None => None,
        };
        let header = OutboundHeader {
            message_id: message_id.clone(),
            business_id: business.clone(),
            phone_number_id: phone_number_id.clone(),
            subject_id: subject,
            epoch,
            kind,
            category: if kind == MessageKind::Template {
                PricingCategory::Utility
            } else {
                PricingCategory::Service
            },
        };
        let cmd = MessageCommand::AcceptOutbound {
            header,
            content,
            callback_data,
            service_window_open: subject_state.service_window_open(now),
        };
        let meta = CommandMeta::new(business.as_str(), region, actor).with_epoch(epoch);
        self.exec
            .execute::<Message>(message_id.as_str(), cmd, &meta, now)
            .await?;
        Ok(message_id)
    }

    /// Records an inbound message from a consumer whose content is already known (a test or a
    /// caller without Signal): the ciphertext, what decrypting it produced, the hand-over to the
    /// business; opens the service window.
    #[allow(clippy::too_many_arguments)]
    pub async fn receive(
        &self,
        phone_number_id: &PhoneNumberId,
        from: &E164,
        ciphertext: &[u8],
        kind: MessageKind,
        body: &str,
        profile_name: Option<&str>,
    ) -> Result<MessageId, AppError> {
        let (business, region) = self.number_home(phone_number_id).await?;
        let subject = self.subject_for(&business, region, from).await?;
        let message_id = MessageId::from_random(random_bytes());
        self.receive_ciphertext(phone_number_id, &subject, &message_id, ciphertext, None)
            .await?;
        self.record_decrypted(&message_id, kind, body, profile_name)
            .await?;
        Ok(message_id)
    }

    /// Records the ciphertext of an inbound message (sealed under the message key). Returns
    /// `false` when the message id is already known: a duplicate from the transport.
    pub async fn receive_ciphertext(
        &self,
        phone_number_id: &PhoneNumberId,
        subject: &SubjectId,
        message_id: &MessageId,
        ciphertext: &[u8],
        envelope_id: Option<&str>,
    ) -> Result<bool, AppError> {
        let (business, region) = self.number_home(phone_number_id).await?;
        let now = self.now();
        let epoch = self.policy.epoch_of(now);
        let scope = FieldScope::Message {
            epoch,
            subject: subject.clone(),
            message: message_id.clone(),
        };
        let meta = CommandMeta::new(business.as_str(), region, &Principal::processor("inbound"))
            .with_epoch(epoch);
        let sealed_ct = self
            .seal_message_field(&business, region, &scope, fields::CIPHERTEXT, ciphertext)
            .await?;
        let envelope = match envelope_id {
            Some(e) => Some(
                self.seal_message_field(&business, region, &scope, fields::ENVELOPE, e.as_bytes())
                    .await?,
            ),
            None => None,
        };
        let header = InboundHeader {
            message_id: message_id.clone(),
            business_id: business.clone(),
            phone_number_id: phone_number_id.clone(),
            subject_id: subject.clone(),
            epoch,
        };
        let events = self
            .exec
            .execute::<Message>(
                message_id.as_str(),
                MessageCommand::ReceiveInbound {
                    header,
                    ciphertext: sealed_ct,
                    envelope,
                },
                &meta,
                now,
            )
            .await?;
        Ok(!events.is_empty())
    }

    /// Records what decrypting an inbound message produced (sealed under the message key),
    /// queues it for the business, and opens or extends the subject's service window.
    pub async fn record_decrypted(
        &self,
        message_id: &MessageId,
        kind: MessageKind,
        body: &str,
        profile_name: Option<&str>,
    ) -> Result<(), AppError> {
        let (state, _) = self.exec.load::<Message>(message_id.as_str()).await?;
        let (Some(business), Some(number), Some(subject), Some(epoch)) = (
            state.business_id,
            state.phone_number_id,
            state.subject_id,
            state.epoch,
        ) else {
            return Err(DomainError::NotFound.into());
        };
        let (_, region) = self.number_home(&number).await?;
        let body = self.ingest_inbound_media(&number, &subject, body).await?;
        let body = body.as_str();
        let now = self.now();
        let scope = FieldScope::Message {
            epoch,
            subject: subject.clone(),
            message: message_id.clone(),
        };
        let pipeline = Principal::processor("inbound");
        let meta = CommandMeta::new(business.as_str(), region, &pipeline).with_epoch(epoch);
        let content = self
            .seal_message_field(&business, region, &scope, fields::CONTENT, body.as_bytes())
            .await?;
        let profile_name = match profile_name {
            Some(p) => Some(
                self.seal_message_field(
                    &business,
                    region,
                    &scope,
                    fields::PROFILE_NAME,
                    p.as_bytes(),
                )
                .await?,
            ),
            None => None,
        };
        self.exec
            .execute::<Message>(
                message_id.as_str(),
                MessageCommand::RecordDecrypted {
                    kind,
                    content,
                    profile_name,
                },
                &meta,
                now,
            )
            .await?;
        self.forward_inbound(message_id).await
    }

    /// Queues a decrypted inbound message for the business and opens or extends the subject's
    /// service window. Also what finishes a message a crash left decrypted but not forwarded.
    pub async fn forward_inbound(&self, message_id: &MessageId) -> Result<(), AppError> {
        let (state, _) = self.exec.load::<Message>(message_id.as_str()).await?;
        let (Some(business), Some(number), Some(subject), Some(epoch)) = (
            state.business_id,
            state.phone_number_id,
            state.subject_id,
            state.epoch,
        ) else {
            return Err(DomainError::NotFound.into());
        };
        let (_, region) = self.number_home(&number).await?;
        let pipeline = Principal::processor("inbound");
        let meta = CommandMeta::new(business.as_str(), region, &pipeline).with_epoch(epoch);
        let now = self.now();
        self.exec
            .execute::<Message>(
                message_id.as_str(),
                MessageCommand::RecordForwarded,
                &meta,
                now,
            )
            .await?;
        let subject_meta = CommandMeta::new(business.as_str(), region, &pipeline);
        self.exec
            .execute::<Subject>(
                subject.as_str(),
                SubjectCommand::RecordInboundActivity,
                &subject_meta,
                now,
            )
            .await?;
        Ok(())
    }

    /// Records a lifecycle step of a message (sent, delivered, read, failed …).
    pub async fn record(
        &self,
        message_id: &MessageId,
        command: MessageCommand,
    ) -> Result<Vec<MessageEvent>, AppError> {
        let (state, _) = self.exec.load::<Message>(message_id.as_str()).await?;
        let business = state.business_id.clone().ok_or(DomainError::NotFound)?;
        let number = state
            .phone_number_id
            .clone()
            .ok_or(AppError::Inconsistent("message without number"))?;
        let (_, region) = self.number_home(&number).await?;
        let mut meta =
            CommandMeta::new(business.as_str(), region, &Principal::processor("delivery"));
        if let Some(e) = state.epoch {
            meta = meta.with_epoch(e);
        }
        Ok(self
            .exec
            .execute::<Message>(message_id.as_str(), command, &meta, self.now())
            .await?)
    }

    /// A message's non-personal state (status, type, epoch): readable after shredding.
    pub async fn message(&self, id: &MessageId) -> Result<Message, AppError> {
        let (state, _) = self.exec.load::<Message>(id.as_str()).await?;
        state.id.as_ref().ok_or(DomainError::NotFound)?;
        Ok(state)
    }

    /// A subject's state.
    pub async fn subject(&self, id: &SubjectId) -> Result<Subject, AppError> {
        let (state, _) = self.exec.load::<Subject>(id.as_str()).await?;
        state.id.as_ref().ok_or(DomainError::NotFound)?;
        Ok(state)
    }

    /// The consumer and the transport's envelope id of an inbound message, read through the
    /// gate (recorded): where the business's read receipt goes. `None` for messages recorded
    /// without one, or once the message's keys are gone.
    pub async fn inbound_envelope(
        &self,
        principal: &Principal,
        purpose: Purpose,
        id: &MessageId,
    ) -> Result<Option<(SubjectId, String)>, AppError> {
        let events = self
            .store
            .read_stream(&StreamId::new("message", id.as_str()), 0)
            .await?;
        for e in events {
            let region = region_of(&e)?;
            if let MessageEvent::InboundMessageReceived {
                header,
                envelope: Some(envelope),
                ..
            } = e.decode::<MessageEvent>()?
            {
                let scope = FieldScope::Message {
                    epoch: header.epoch,
                    subject: header.subject_id.clone(),
                    message: id.clone(),
                };
                let field = FieldRef {
                    scope,
                    field: fields::ENVELOPE,
                    sealed: &envelope,
                };
                let opened = self
                    .open_content(
                        principal,
                        purpose,
                        &header.business_id,
                        region,
                        id.as_str(),
                        field,
                    )
                    .await?;
                return Ok(text(opened, "envelope id is not UTF-8")?
                    .plain()
                    .map(|env| (header.subject_id, env)));
            }
        }
        Ok(None)
    }

    /// Opens a sealed field of message content (a message's or a media object's) through the
    /// gate: decided and recorded as `principal` reading `object` of `owner` for `purpose`.
    pub(crate) async fn open_content(
        &self,
        principal: &Principal,
        purpose: Purpose,
        owner: &BusinessId,
        region: Region,
        object: &str,
        field: FieldRef<'_>,
    ) -> Result<Opened<Vec<u8>>, AppError> {
        let req = AccessRequest {
            principal,
            category: Category::MessageContent,
            purpose,
            object,
            owner: Some(owner),
            region,
        };
        Ok(self.gate.open(&req, field).await?)
    }

    /// Reads a message's content through the access gate: the plaintext, `Shredded` once its
    /// keys are gone, or a recorded denial.
    pub async fn read_content(
        &self,
        principal: &Principal,
        purpose: Purpose,
        id: &MessageId,
    ) -> Result<Opened<Content>, AppError> {
        let events = self
            .store
            .read_stream(&StreamId::new("message", id.as_str()), 0)
            .await?;
        let mut found = None;
        for e in events {
            let region = region_of(&e)?;
            match e.decode::<MessageEvent>()? {
                MessageEvent::OutboundMessageAccepted {
                    header, content, ..
                } => {
                    found = Some((
                        header.business_id,
                        region,
                        header.epoch,
                        header.subject_id,
                        header.kind,
                        content,
                    ))
                }
                MessageEvent::InboundMessageReceived { header, .. } => {
                    found = Some((
                        header.business_id,
                        region,
                        header.epoch,
                        header.subject_id,
                        MessageKind::Unknown,
                        Sealed::from_bytes(vec![]),
                    ))
                }
                MessageEvent::InboundMessageDecrypted { kind, content, .. } => {
                    if let Some(f) = found.as_mut() {
                        f.4 = kind;
                        f.5 = content;
                    }
                }
                _ => {}
            }
        }
        let (business, region, epoch, subject, kind, content) =
            found.ok_or(DomainError::NotFound)?;
        let req = AccessRequest {
            principal,
            category: Category::MessageContent,
            purpose,
            object: id.as_str(),
            owner: Some(&business),
            region,
        };
        if content.as_bytes().is_empty() {
            // Not decrypted (yet): nothing to open, but the request is still decided and recorded.
            self.gate.authorize(&req).await?;
            return Err(AppError::Domain(DomainError::NotFound));
        }
        let scope = FieldScope::Message {
            epoch,
            subject,
            message: id.clone(),
        };
        let opened = self
            .gate
            .open(
                &req,
                FieldRef {
                    scope,
                    field: fields::CONTENT,
                    sealed: &content,
                },
            )
            .await?;
        Ok(text(opened, "content is not UTF-8")?.map(|body| Content { kind, body }))
    }

    /// Where a subject belongs and its sealed routing number, from its first event.
    async fn subject_origin(
        &self,
        id: &SubjectId,
    ) -> Result<(BusinessId, Region, Sealed), AppError> {
        let events = self
            .store
            .read_stream(&StreamId::new("subject", id.as_str()), 0)
            .await?;
        let first = events.into_iter().next().ok_or(DomainError::NotFound)?;
        let region = region_of(&first)?;
        match first.decode::<SubjectEvent>()? {
            SubjectEvent::SubjectCreated {
                business_id, phone, ..
            } => Ok((business_id, region, phone)),
            _ => Err(AppError::Inconsistent(
                "subject stream does not start with SubjectCreated",
            )),
        }
    }

    /// Reads a subject's phone number through the access gate.
    pub async fn read_phone(
        &self,
        principal: &Principal,
        purpose: Purpose,
        id: &SubjectId,
    ) -> Result<Opened<String>, AppError> {
        let (business_id, region, phone) = self.subject_origin(id).await?;
        let req = AccessRequest {
            principal,
            category: Category::ConsumerPhoneNumber,
            purpose,
            object: id.as_str(),
            owner: Some(&business_id),
            region,
        };
        let opened = self
            .gate
            .open(
                &req,
                FieldRef {
                    scope: FieldScope::Subject {
                        subject: id.clone(),
                    },
                    field: fields::PHONE,
                    sealed: &phone,
                },
            )
            .await?;
        text(opened, "phone is not UTF-8")
    }

    /// Erases a subject (GDPR Art. 17) on behalf of `requested_by` (the business or the DPO).
    pub async fn erase(
        &self,
        requested_by: &Principal,
        subject: &SubjectId,
    ) -> Result<(), AppError> {
        let (business, region, _) = self.subject_origin(subject).await?;
        require_owner_or_dpo(requested_by, &business)?;
        erase_subject(
            &self.exec,
            requested_by,
            &business,
            region,
            subject,
            self.now(),
        )
        .await?;
        Ok(())
    }
}

/// Only the DPO, or the business for its own consumers, may ask for an erasure.
pub(crate) fn require_owner_or_dpo(
    principal: &Principal,
    business: &BusinessId,
) -> Result<(), AppError> {
    let allowed = match principal.kind {
        sealpost_domain::PrincipalKind::Dpo => true,
        sealpost_domain::PrincipalKind::Business => principal.business.as_ref() == Some(business),
        _ => false,
    };
    if allowed {
        Ok(())
    } else {
        Err(GateError::Denied(sealpost_domain::access::DenyReason::NotOwner).into())
    }
}

pub(crate) fn region_of(e: &sealpost_adapters::ledger::OpenedEvent) -> Result<Region, AppError> {
    e.header
        .region
        .parse()
        .map_err(|_| AppError::Inconsistent("region"))
}

fn text(opened: Opened<Vec<u8>>, what: &'static str) -> Result<Opened<String>, AppError> {
    Ok(match opened {
        Opened::Shredded => Opened::Shredded,
        Opened::Plain(b) => {
            Opened::Plain(String::from_utf8(b).map_err(|_| AppError::Inconsistent(what))?)
        }
    })
}
