//! The access gate: the one place a classified datum is read.
//!
//! Every request is decided by the data-availability matrix
//! ([`sealpost_domain::access::decide`]) and recorded as an event, allowed or denied:
//! one `AccessDecided` per read for people and foreign systems; for Sealpost's own pipelines
//! (`Processor` principals, which read every message they deliver) one `AccessCounted` per
//! minute, purpose, category and business. Only after an allowed decision is recorded does the
//! gate ask the vault to open the field. An architecture test checks that no other code calls
//! the vault's `open_field`.

use sealpost_adapters::exec::CommandMeta;
use sealpost_adapters::ledger::{EventContext, EventStore, LedgerError, PlainEvent};
use sealpost_adapters::store::StreamId;
use sealpost_adapters::vault::VaultError;
use sealpost_domain::access::{self, AccessEvent, DenyReason, ACCESS_STREAM_TYPE};
use sealpost_domain::{
    BusinessId, Category, Decision, FieldScope, Opened, Principal, PrincipalKind, Purpose, Region,
    Sealed, Timestamp,
};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// The business id used on access-log rows about data that belongs to no business.
pub const NO_BUSINESS: &str = sealpost_domain::DEPLOYMENT;

/// Why a read through the gate failed.
#[derive(Debug, thiserror::Error)]
pub enum GateError {
    /// The matrix refused it (recorded). HTTP 403, Cloud API code 200.
    #[error("access denied: {0}")]
    Denied(DenyReason),
    /// The decision could not be recorded, so the read did not happen. Retry later (HTTP 503).
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    /// The field could not be opened: corruption or tampering. Alert (HTTP 500). Unless the
    /// key store was unavailable ([`VaultError::is_unavailable`]): retry later (HTTP 503).
    #[error(transparent)]
    Vault(#[from] VaultError),
}

impl GateError {
    /// Whether the failure is transient (the database is down or busy): answer 503, code
    /// 131016, and let the client retry. A denial never is.
    pub fn is_unavailable(&self) -> bool {
        match self {
            GateError::Denied(_) => false,
            GateError::Ledger(e) => e.is_unavailable(),
            GateError::Vault(e) => e.is_unavailable(),
        }
    }
}

/// One read to decide.
#[derive(Debug, Clone)]
pub struct AccessRequest<'a> {
    /// Who.
    pub principal: &'a Principal,
    /// Which class of data.
    pub category: Category,
    /// Why.
    pub purpose: Purpose,
    /// The object (a message id, subject id, report name: random ids only).
    pub object: &'a str,
    /// The business the object belongs to.
    pub owner: Option<&'a BusinessId>,
    /// The region the object is stored in.
    pub region: Region,
}

/// A sealed field to open through the gate.
#[derive(Debug, Clone)]
pub struct FieldRef<'a> {
    /// Which key it is under.
    pub scope: FieldScope,
    /// The field's name (bound into its associated data).
    pub field: &'a str,
    /// The sealed bytes.
    pub sealed: &'a Sealed,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct CounterKey {
    minute: i64,
    principal: String,
    category: Category,
    purpose: Purpose,
    owner: Option<BusinessId>,
    region: Region,
}

/// The access gate.
#[derive(Debug)]
pub struct AccessGate {
    store: Arc<EventStore>,
    counters: Mutex<BTreeMap<CounterKey, (u64, u64)>>,
}

const MINUTE_MS: i64 = 60_000;

impl AccessGate {
    /// A gate recording into `store`.
    pub fn new(store: Arc<EventStore>) -> Arc<Self> {
        Arc::new(Self {
            store,
            counters: Mutex::new(BTreeMap::new()),
        })
    }

    /// Decides and records a read. `Ok` means allowed and recorded.
    pub async fn authorize(&self, req: &AccessRequest<'_>) -> Result<(), GateError> {
        let decision = access::decide(req.principal, req.category, req.purpose, req.owner);
        let now = self.store.clock().now();
        if req.principal.kind == PrincipalKind::Processor {
            self.count(req, decision, now).await?;
        } else {
            let event = AccessEvent::AccessDecided {
                principal: req.principal.clone(),
                category: req.category,
                purpose: req.purpose,
                object: req.object.to_owned(),
                owner: req.owner.cloned(),
                decision,
                at: now,
            };
            self.record(event, req.owner, req.region).await?;
        }
        match decision {
            Decision::Allowed => Ok(()),
            Decision::Denied(reason) => {
                tracing::info!(principal_kind = ?req.principal.kind, category = ?req.category, purpose = ?req.purpose, %reason, "access denied");
                Err(GateError::Denied(reason))
            }
        }
    }

    /// Decides, records, and (if allowed) opens a sealed field of `req.owner` in `req.region`.
    pub async fn open(
        &self,
        req: &AccessRequest<'_>,
        field: FieldRef<'_>,
    ) -> Result<Opened<Vec<u8>>, GateError> {
        self.authorize(req).await?;
        let business = req.owner.map_or(NO_BUSINESS, BusinessId::as_str);
        Ok(self
            .store
            .vault()
            .open_field(
                business,
                req.region,
                &field.scope,
                field.field,
                field.sealed,
            )
            .await?)
    }

    async fn record(
        &self,
        event: AccessEvent,
        owner: Option<&BusinessId>,
        region: Region,
    ) -> Result<(), GateError> {
        let ctx = EventContext {
            business_id: owner.map_or(NO_BUSINESS, BusinessId::as_str).to_owned(),
            region,
            epoch: None,
        };
        let metadata = CommandMeta::new(
            &ctx.business_id,
            region,
            &Principal::processor("access-gate"),
        )
        .to_map();
        let plain = PlainEvent::of(&event, metadata).map_err(LedgerError::Store)?;
        let stream = StreamId::new(
            &ctx.business_id,
            ACCESS_STREAM_TYPE,
            uuid::Uuid::new_v4().to_string(),
        );
        self.store.append(&stream, 0, &ctx, vec![plain]).await?;
        Ok(())
    }

    async fn count(
        &self,
        req: &AccessRequest<'_>,
        decision: Decision,
        now: Timestamp,
    ) -> Result<(), GateError> {
        let minute = now.millis().div_euclid(MINUTE_MS) * MINUTE_MS;
        let due = {
            let mut counters = self
                .counters
                .lock()
                .expect("counter lock is never poisoned");
            let key = CounterKey {
                minute,
                principal: req.principal.id.clone(),
                category: req.category,
                purpose: req.purpose,
                owner: req.owner.cloned(),
                region: req.region,
            };
            let c = counters.entry(key).or_insert((0, 0));
            if decision.is_allowed() {
                c.0 += 1;
            } else {
                c.1 += 1;
            }
            // Minutes that are over are written out now.
            take_before(&mut counters, minute)
        };
        self.write_counts(due).await
    }

    /// Writes the counters of every minute that is over by `now`: called at least once a
    /// minute, so no count waits in memory past its minute for the next decision to come.
    pub async fn flush_due(&self, now: Timestamp) -> Result<(), GateError> {
        let minute = now.millis().div_euclid(MINUTE_MS) * MINUTE_MS;
        let due = take_before(
            &mut self
                .counters
                .lock()
                .expect("counter lock is never poisoned"),
            minute,
        );
        self.write_counts(due).await
    }

    /// Writes every pending pipeline counter (call on shutdown and before reporting).
    pub async fn flush(&self) -> Result<(), GateError> {
        let all = std::mem::take(
            &mut *self
                .counters
                .lock()
                .expect("counter lock is never poisoned"),
        );
        self.write_counts(all).await
    }

    async fn write_counts(
        &self,
        mut counts: BTreeMap<CounterKey, (u64, u64)>,
    ) -> Result<(), GateError> {
        while let Some((k, (allowed, denied))) = counts.pop_first() {
            let event = AccessEvent::AccessCounted {
                principal: Principal::processor(&k.principal),
                category: k.category,
                purpose: k.purpose,
                owner: k.owner.clone(),
                minute: Timestamp::from_millis(k.minute),
                allowed,
                denied,
            };
            if let Err(e) = self.record(event, k.owner.as_ref(), k.region).await {
                let mut pending = self
                    .counters
                    .lock()
                    .expect("counter lock is never poisoned");
                let c = pending.entry(k).or_insert((0, 0));
                c.0 += allowed;
                c.1 += denied;
                for (k, (a, d)) in counts {
                    let c = pending.entry(k).or_insert((0, 0));
                    c.0 += a;
                    c.1 += d;
                }
                return Err(e);
            }
        }
        Ok(())
    }
}

/// Takes the counters of minutes before `minute` out of `counters`.
fn take_before(
    counters: &mut BTreeMap<CounterKey, (u64, u64)>,
    minute: i64,
) -> BTreeMap<CounterKey, (u64, u64)> {
    let rest = counters.split_off(&CounterKey {
        minute,
        principal: String::new(),
        category: Category::MessageContent,
        purpose: Purpose::Delivery,
        owner: None,
        region: Region::Na,
    });
    std::mem::replace(counters, rest)
}
