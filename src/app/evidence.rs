//! Evidence for the auditor and the DPO: access-log queries, statistics, billing, the retention
//! report, erasure certificates and the record of processing. Every answer is read through the
//! access gate (recorded like any read) and names the signed checkpoint it is consistent with:
//! the log is checkpointed first, then the projections are folded up to exactly that size.

mod erasure;

pub use erasure::{ErasureOutcome, ErasureTarget, TargetError};

use super::{require_owner_or_dpo, AppError, Catalog, Subjects};
use sealpost_adapters::exec::Executor;
use sealpost_adapters::ledger::EventStore;
use sealpost_adapters::store::Stores;
use sealpost_adapters::store::StreamId;
use sealpost_adapters::vault::subject_key_id;
use sealpost_audit::certificate::{ErasureCertificate, CERTIFICATE_FORMAT, METHOD};
use sealpost_audit::log::AuditLog;
use sealpost_audit::log::Checkpoint;
use sealpost_audit::ropa::{Ropa, RopaInput, StoreRecord, TenantInput};
use sealpost_audit::verify::BundleRow;
use sealpost_audit::AccessGate;
use sealpost_audit::AccessRequest;
use sealpost_domain::access::{DenyReason, MATRIX};
use sealpost_domain::ports::Clock;
use sealpost_domain::{
    BusinessId, Category, PhoneNumberId, Principal, PrincipalKind, Purpose, Region, SubjectId, E164,
};
use sealpost_domain::{RetentionPolicy, Timestamp};
use sealpost_projections::evidence::{
    AccessPage, AccessQuery, BillingRow, EvidenceProjection, StatRow, DEFAULT_MIN_GROUP,
};
use sealpost_projections::report::RetentionReport;
use std::path::Path;
use std::sync::Arc;

/// How long billing lines are kept (tax records: ten years).
pub const BILLING_RETENTION_DAYS: u32 = 3_650;

/// The purpose a principal of this kind reads evidence for.
pub fn evidence_purpose(kind: PrincipalKind) -> Purpose {
    match kind {
        PrincipalKind::Processor => Purpose::Billing,
        PrincipalKind::Operator => Purpose::Analytics,
        PrincipalKind::Transport => Purpose::Integrity,
        PrincipalKind::Business => Purpose::BusinessApi,
        PrincipalKind::Auditor => Purpose::Audit,
        PrincipalKind::Dpo => Purpose::DataProtection,
    }
}

service! {
    /// Evidence for the auditor and the DPO, over the stores, the access gate, the
    /// tamper-evident log and the evidence projections.
    Evidence<'a> {
        exec: &'a Executor,
        stores: &'a Stores,
        store: &'a Arc<EventStore>,
        gate: &'a Arc<AccessGate>,
        clock: &'a dyn Clock,
        policy: RetentionPolicy,
        audit: &'a tokio::sync::OnceCell<Arc<AuditLog>>,
        region_audits: &'a super::region_audit::RegionAudits,
        witness: Option<&'a Path>,
        folding: &'a Arc<tokio::sync::Mutex<()>>,
    }
    reaches {
        catalog: Catalog { exec, store, clock },
        subjects: Subjects { exec, store, gate, clock },
    }
}

impl<'a> Evidence<'a> {
    /// The tamper-evident log (opened, with its signing key, on first use).
    pub async fn audit(&self) -> Result<&'a Arc<AuditLog>, AppError> {
        super::open_audit(
            self.audit,
            self.stores,
            self.store,
            self.witness,
            self.now(),
        )
        .await
    }
}

impl Evidence<'_> {
    /// Sequences the log and signs a checkpoint (or returns the newest, if it covers every row).
    pub async fn checkpoint(&self) -> Result<Checkpoint, AppError> {
        Ok(self.audit().await?.checkpoint(self.now()).await?)
    }

    /// A C2SP `tlog-tiles` tile of the tree of the newest checkpoint signed (one is signed only
    /// if there is none: fetching tiles signs nothing, `/tlog/checkpoint` does); `None` when
    /// that tree does not hold the tile.
    pub async fn tile(
        &self,
        address: sealpost_audit::tiles::TileAddress,
    ) -> Result<Option<Vec<u8>>, AppError> {
        let audit = self.audit().await?;
        let size = match audit.latest().await {
            Some(latest) => latest.size,
            None => audit.checkpoint(self.now()).await?.size,
        };
        Ok(sealpost_audit::tiles::tile(self.store.log().as_ref(), size, address).await?)
    }

    async fn authorize_evidence(
        &self,
        principal: &Principal,
        category: Category,
        object: &str,
        owner: Option<&BusinessId>,
    ) -> Result<(), AppError> {
        let region = match owner {
            Some(b) => self.catalog().business_region(b).await?,
            None => Region::Eu,
        };
        self.gate
            .authorize(&AccessRequest {
                principal,
                category,
                purpose: evidence_purpose(principal.kind),
                object,
                owner,
                region,
            })
            .await?;
        Ok(())
    }

    /// Checkpoints, then folds the projections up to that checkpoint.
    async fn consistent(&self) -> Result<(Checkpoint, EvidenceProjection<'_>), AppError> {
        self.consistent_showing(&mut |_, _| {}).await
    }

    /// [`Self::consistent`], telling `progress` how far the fold is (position, head).
    async fn consistent_showing(
        &self,
        progress: &mut (dyn FnMut(u64, u64) + Send),
    ) -> Result<(Checkpoint, EvidenceProjection<'_>), AppError> {
        self.gate.flush().await?;
        let projection = self.projection();
        for _ in 0..3 {
            let checkpoint = self.checkpoint().await?;
            let _folding = self.folding.lock().await;
            // Another node may have folded past this checkpoint meanwhile: take a newer one.
            if projection.catch_up(checkpoint.size, progress).await? == checkpoint.size {
                return Ok((checkpoint, projection));
            }
        }
        Err(AppError::Ledger(
            sealpost_adapters::store::StoreError::Unavailable(
                "the evidence projections are ahead of every checkpoint".into(),
            )
            .into(),
        ))
    }

    fn projection(&self) -> EvidenceProjection<'_> {
        EvidenceProjection::new(self.store, self.stores.evidence.as_ref())
    }

    /// Folds the evidence projections up to `checkpoint` (called by `serve` after each signed
    /// checkpoint, so a query folds only what came since).
    pub async fn fold_evidence(&self, checkpoint: &Checkpoint) -> Result<u64, AppError> {
        let _folding = self.folding.lock().await;
        Ok(self
            .projection()
            .catch_up(checkpoint.size, &mut |_, _| {})
            .await?)
    }

    /// [`Self::fold_evidence`] unless a fold is already running in this process (then `None`:
    /// the next checkpoint's fold takes what this one would have).
    pub async fn fold_evidence_unless_busy(
        &self,
        checkpoint: &Checkpoint,
    ) -> Result<Option<u64>, AppError> {
        let Ok(_folding) = self.folding.try_lock() else {
            return Ok(None);
        };
        Ok(Some(
            self.projection()
                .catch_up(checkpoint.size, &mut |_, _| {})
                .await?,
        ))
    }

    /// Empties the evidence projections and folds them again up to a fresh checkpoint
    /// (`sealpost projections rebuild evidence`); returns the position reached.
    pub async fn rebuild_evidence(
        &self,
        progress: &mut (dyn FnMut(u64, u64) + Send),
    ) -> Result<u64, AppError> {
        let checkpoint = self.checkpoint().await?;
        let _folding = self.folding.lock().await;
        Ok(self.projection().rebuild(checkpoint.size, progress).await?)
    }

    /// The access log, as the auditor, the DPO or a business (its own entries only) may read it.
    pub async fn access_log(
        &self,
        principal: &Principal,
        mut query: AccessQuery,
    ) -> Result<(AccessPage, Checkpoint), AppError> {
        let own = (principal.kind == PrincipalKind::Business)
            .then(|| principal.business.clone())
            .flatten();
        self.authorize_evidence(principal, Category::AccessLog, "access-log", own.as_ref())
            .await?;
        if let Some(b) = &own {
            query.business_id = Some(b.as_str().to_owned());
        }
        let (checkpoint, view) = self.consistent().await?;
        Ok((view.access(&query).await?, checkpoint))
    }

    /// Non-identifiable statistics (of the principal's own business, for a business).
    pub async fn statistics(
        &self,
        principal: &Principal,
        business: Option<&BusinessId>,
    ) -> Result<(Vec<StatRow>, Checkpoint), AppError> {
        let scope = scope_of(principal, business)?;
        self.authorize_evidence(
            principal,
            Category::Statistics,
            "statistics",
            scope.as_ref(),
        )
        .await?;
        let (checkpoint, view) = self.consistent().await?;
        Ok((
            view.statistics(scope.as_ref(), DEFAULT_MIN_GROUP).await?,
            checkpoint,
        ))
    }

    /// Billing lines (of the principal's own business, for a business).
    pub async fn billing(
        &self,
        principal: &Principal,
        business: Option<&BusinessId>,
    ) -> Result<(Vec<BillingRow>, Checkpoint), AppError> {
        let scope = scope_of(principal, business)?;
        self.authorize_evidence(principal, Category::Billing, "billing", scope.as_ref())
            .await?;
        let (checkpoint, view) = self.consistent().await?;
        Ok((view.billing(scope.as_ref()).await?, checkpoint))
    }

    /// The DPO's retention report (a business gets its own).
    pub async fn retention_report(
        &self,
        principal: &Principal,
        business: Option<&BusinessId>,
    ) -> Result<RetentionReport, AppError> {
        self.retention_report_showing(principal, business, &mut |_, _| {})
            .await
    }

    /// [`Self::retention_report`], telling `progress` how far the evidence projections' fold
    /// of the log is (position, head): a store opened cold folds the whole log first.
    pub async fn retention_report_showing(
        &self,
        principal: &Principal,
        business: Option<&BusinessId>,
        progress: &mut (dyn FnMut(u64, u64) + Send),
    ) -> Result<RetentionReport, AppError> {
        let scope = scope_of(principal, business)?;
        self.authorize_evidence(
            principal,
            Category::Statistics,
            "retention-report",
            scope.as_ref(),
        )
        .await?;
        let (checkpoint, view) = self.consistent_showing(progress).await?;
        let mut report = view
            .retention_report(
                self.stores.keys.as_ref(),
                self.policy,
                self.now(),
                self.stores.backend,
                scope.as_ref(),
            )
            .await?;
        if !matches!(
            principal.kind,
            PrincipalKind::Dpo | PrincipalKind::Auditor | PrincipalKind::Business
        ) {
            // Which subjects were erased is the DPO's business, not the operator's or the
            // transport's: they get the counts only.
            report.erasure_list.clear();
        }
        if let Some(b) = scope.as_ref() {
            // A business that never registered (a scope typed by hand) has no name: zeros.
            report.business_name = match self.catalog().business(b).await {
                Ok(business) => Some(business.name),
                Err(AppError::Domain(sealpost_domain::DomainError::NotFound)) => None,
                Err(e) => return Err(e),
            };
        }
        report.checkpoint = Some(super::region_audit::checkpoint_ref(&checkpoint));
        report.stores = self.store_rows().await?;
        report.data_in_use = self.data_in_use().await?;
        report.key_rotations = self.key_rotations(scope.as_ref(), checkpoint.size).await?;
        Ok(report)
    }

    /// The physical stores as the deployment has them (the home store first), each with the
    /// checkpoint of its log.
    async fn store_layout(&self) -> Result<Vec<StoreRecord>, AppError> {
        let home = self.audit().await?.checkpoint(self.now()).await?;
        Ok(self
            .checkpointed_layout()
            .await?
            .into_iter()
            .map(|(s, own)| StoreRecord {
                checkpoint: match s.region {
                    None => Some(home.clone()),
                    Some(_) => own,
                },
                region: s.region.map(|r| r.code().to_owned()),
                location: s.location,
                holds: s.holds.to_owned(),
            })
            .collect())
    }

    /// The record of processing (GDPR Art. 30) from the matrix, the configuration and the
    /// tenants in the store.
    pub async fn record_of_processing(
        &self,
        processor_name: &str,
        root_key_source: &str,
    ) -> Result<Ropa, AppError> {
        let tenants = tenants(self.store).await?;
        let policy = self.policy;
        let input = RopaInput {
            generated_at: self.now().millis(),
            processor_name: processor_name.to_owned(),
            retention_days: (policy.retention_ms / sealpost_domain::time::DAY_MS) as u32,
            epoch_hours: (policy.epoch_len_ms / sealpost_domain::time::HOUR_MS).max(1) as u32,
            billing_retention_days: BILLING_RETENTION_DAYS,
            statistics_min_group: DEFAULT_MIN_GROUP,
            store: match self.stores.backend {
                "postgres" => "postgres".to_owned(),
                other => format!("{other} (embedded)"),
            },
            root_key_source: root_key_source.to_owned(),
            stores: self.store_layout().await?,
            tenants: tenants
                .into_iter()
                .map(|t| TenantInput {
                    business_id: t.business_id,
                    name: t.name,
                    phone_number_ids: t.phone_number_ids,
                    regions: t.regions,
                    webhook_hosts: t.webhook_hosts,
                })
                .collect(),
        };
        Ok(sealpost_audit::ropa::build(&input))
    }
}

/// The business an evidence read is about: a business principal always reads its own.
fn scope_of(
    principal: &Principal,
    asked: Option<&BusinessId>,
) -> Result<Option<BusinessId>, AppError> {
    match (principal.kind, &principal.business) {
        (PrincipalKind::Business, Some(own)) => match asked {
            Some(b) if b != own => {
                Err(sealpost_audit::GateError::Denied(DenyReason::NotOwner).into())
            }
            _ => Ok(Some(own.clone())),
        },
        _ => Ok(asked.cloned()),
    }
}

/// One tenant as the record of processing lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantSummary {
    /// The business id.
    pub business_id: String,
    /// Its name.
    pub name: String,
    /// Its phone number ids.
    pub phone_number_ids: Vec<String>,
    /// Regions its data is stored in.
    pub regions: Vec<String>,
    /// Hosts of its webhook endpoints.
    pub webhook_hosts: Vec<String>,
}

/// Every tenant in the store, from the business, phone-number and app streams.
pub async fn tenants(store: &EventStore) -> Result<Vec<TenantSummary>, AppError> {
    use sealpost_domain::{BusinessEvent, PhoneNumberEvent};
    use std::collections::BTreeMap;
    let mut out: BTreeMap<String, TenantSummary> = BTreeMap::new();
    for e in store
        .scan(|h| h.stream.kind == "business" || h.stream.kind == "phone_number")
        .await?
    {
        let business = &e.header.business_id;
        let t = out
            .entry(business.clone())
            .or_insert_with(|| TenantSummary {
                business_id: business.clone(),
                name: String::new(),
                phone_number_ids: Vec::new(),
                regions: Vec::new(),
                webhook_hosts: Vec::new(),
            });
        if e.header.stream.kind == "business" {
            if let Ok(BusinessEvent::BusinessRegistered { name, .. }) = e.decode::<BusinessEvent>()
            {
                t.name = name;
            }
        } else if let Ok(PhoneNumberEvent::PhoneNumberAdded {
            phone_number_id, ..
        }) = e.decode::<PhoneNumberEvent>()
        {
            t.phone_number_ids.push(phone_number_id.as_str().to_owned());
        }
        if !t.regions.contains(&e.header.region) {
            t.regions.push(e.header.region.clone());
        }
    }
    for app in super::apps(store).await?.into_values() {
        let business = app.business;
        let url = app.subscription.map(|s| s.callback_url);
        let host = url.as_deref().and_then(|u| {
            let rest = u.split_once("://")?.1;
            Some(rest.split(['/', '?']).next()?.to_owned())
        });
        if let (Some(t), Some(h)) = (out.get_mut(business.as_str()), host) {
            if !t.webhook_hosts.contains(&h) {
                t.webhook_hosts.push(h);
            }
        }
    }
    Ok(out.into_values().filter(|t| !t.name.is_empty()).collect())
}
