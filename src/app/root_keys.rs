//! The operator's root-key rotation (ADR 0025): a region's root key gets its next generation,
//! what was wrapped under the older ones is rewrapped online, and an old generation is
//! destroyed once nothing is left under it; and the audit signing key's hand-over (ADR 0026).
//! Each step is recorded on the deployment's retention ledger of the region and listed in the
//! DPO's retention report.

use super::{AppError, Sealpost};
use sealpost_adapters::vault::Retirement;
use sealpost_domain::{Principal, Region, RotationReason};
use sealpost_projections::retention;

/// A region's root key as the operator's status shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RootKeyStatus {
    /// Region code.
    pub region: String,
    /// The generation keys are wrapped under now.
    pub generation: u32,
    /// Since when (ms; 0 for generation 1).
    pub since: i64,
    /// Keys and accounts still wrapped under an older generation.
    pub rewrap_pending: u64,
}

impl Sealpost {
    /// Gives `region`'s root key its next generation now, on an operator's demand; the new
    /// generation. Call [`Sealpost::rewrap_root_keys`] next.
    pub async fn rotate_root_key(
        &self,
        principal: &Principal,
        region: Region,
    ) -> Result<u32, AppError> {
        Ok(retention::rotate_root_key(
            &self.exec,
            principal,
            region,
            RotationReason::OnDemand,
            self.now(),
        )
        .await?)
    }

    /// Rewraps what is left under an older generation of `region`'s root key; how many rows.
    pub async fn rewrap_root_keys(
        &self,
        principal: &Principal,
        region: Region,
        progress: &mut (dyn FnMut(u64) + Send),
    ) -> Result<u64, AppError> {
        Ok(
            retention::rewrap_root_keys(&self.exec, principal, region, progress, self.now())
                .await?,
        )
    }

    /// Destroys generation `generation` of `region`'s root key once the rotation away from it
    /// has settled, finishing first any rewrap left under it.
    pub async fn retire_root_key(
        &self,
        principal: &Principal,
        region: Region,
        generation: u32,
    ) -> Result<Retirement, AppError> {
        Ok(
            retention::retire_root_key(&self.exec, principal, (region, generation), self.now())
                .await?,
        )
    }

    /// Hands a tamper-evident log over to a new signing key now: the home log (`region` not
    /// a Local Storage region) or that region's own (ADR 0020). The key is made and the
    /// hand-over checkpoint signed by the new key and the one it takes over from, then the
    /// rotation is recorded on the deployment's ledger of the key's region (the chain stands
    /// without the record: a crash in between loses only the report's line). Returns the new
    /// generation and the hand-over; `None` for a Local Storage region without a store.
    pub async fn rotate_audit_key(
        &self,
        principal: &Principal,
        region: Option<Region>,
    ) -> Result<Option<(u32, sealpost_audit::log::Checkpoint)>, AppError> {
        use sealpost_domain::{RetentionCommand, DEPLOYMENT};
        let (region, audit) = match region.filter(|r| r.is_local_storage()) {
            None => (
                sealpost_audit::log::SIGNING_KEY_REGION,
                self.audit().await?.clone(),
            ),
            Some(region) => match self.region_audit(region).await? {
                Some(audit) => (region, audit),
                None => return Ok(None),
            },
        };
        let now = self.now();
        let (generation, key, checkpoint) = audit.rotate_key(now).await?;
        let command = RetentionCommand::RotateAuditKey {
            region,
            generation,
            verifier_key: sealpost_audit::note::verifier_key(audit.origin(), &key),
            reason: RotationReason::OnDemand,
        };
        retention::record_on_ledger(&self.exec, principal, (DEPLOYMENT, region), command, now)
            .await?;
        Ok(Some((generation, checkpoint)))
    }

    /// Every region's root-key generation and what is left to rewrap.
    pub async fn root_key_status(&self) -> Result<Vec<RootKeyStatus>, AppError> {
        let vault = self.store().vault();
        let mut all = Vec::with_capacity(Region::ALL.len());
        for region in Region::ALL {
            let state = vault.root_state(region).await?;
            all.push(RootKeyStatus {
                region: region.code().to_owned(),
                generation: state.generation,
                since: state.since,
                rewrap_pending: state.pending,
            });
        }
        Ok(all)
    }
}
