//! Erasure requests (GDPR Art. 17) with their certificates: who a request may name, carrying
//! it out for the business or the DPO, and the certificate that names the checkpoint it is
//! consistent with.

use super::*;

/// Who a business's erasure request may name.
#[derive(Debug, Clone)]
pub enum ErasureTarget {
    /// A subject id (from an earlier certificate or the access log).
    Subject(SubjectId),
    /// The consumer's phone number on one of the business's numbers.
    Phone(PhoneNumberId, E164),
    /// A business-scoped user id on one of the business's numbers.
    UserId(PhoneNumberId, String),
}

/// Why an erasure request's fields do not name a subject.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetError {
    /// This field is needed and absent.
    Missing(&'static str),
    /// This field is not valid.
    Invalid(&'static str),
    /// Not exactly one of subject id, phone number or user id.
    NotExactlyOne,
}

impl ErasureTarget {
    /// The target named by a request's fields (HTTP body or command-line flags): exactly one of
    /// `subject_id`, `wa_id` or `user_id`, the latter two with `phone_number_id`.
    pub fn from_fields(
        subject_id: Option<&str>,
        phone_number_id: Option<&str>,
        wa_id: Option<&str>,
        user_id: Option<&str>,
    ) -> Result<Self, TargetError> {
        let number = || {
            let id = phone_number_id.ok_or(TargetError::Missing("phone_number_id"))?;
            PhoneNumberId::parse(id).map_err(|_| TargetError::Invalid("phone_number_id"))
        };
        match (subject_id, wa_id, user_id) {
            (Some(subject), None, None) => Ok(ErasureTarget::Subject(
                SubjectId::parse(subject).map_err(|_| TargetError::Invalid("subject_id"))?,
            )),
            (None, Some(wa), None) => Ok(ErasureTarget::Phone(
                number()?,
                E164::parse(wa).map_err(|_| TargetError::Invalid("wa_id"))?,
            )),
            (None, None, Some(user)) => Ok(ErasureTarget::UserId(number()?, user.to_owned())),
            _ => Err(TargetError::NotExactlyOne),
        }
    }
}

/// What an erasure request produced.
#[derive(Debug, Clone)]
pub enum ErasureOutcome {
    /// Erased (now or before): the certificate.
    Erased(Box<ErasureCertificate>),
    /// Nothing is held for that number or user id (never known, expired or already erased).
    NothingHeld,
}

impl Evidence<'_> {
    /// Erases a data subject (GDPR Art. 17) for the business or the DPO and returns the
    /// certificate. Repeating it is safe: by subject id it returns the same erasure (same log
    /// position) under the newest checkpoint; by number or user id, once erased, nothing is held.
    pub async fn erase_with_certificate(
        &self,
        principal: &Principal,
        target: ErasureTarget,
    ) -> Result<ErasureOutcome, AppError> {
        let vault = self.store.vault();
        let (found, phone_number_id) = match target {
            ErasureTarget::Subject(s) => (Some(s), None),
            ErasureTarget::Phone(number, phone) => {
                let (business, region) = self.erasure_home(principal, &number).await?;
                let found = vault
                    .find_subject(business.as_str(), region, &phone, self.now())
                    .await?;
                (found, Some(number))
            }
            ErasureTarget::UserId(number, user) => {
                let (business, region) = self.erasure_home(principal, &number).await?;
                let found = vault
                    .find_user(business.as_str(), region, &user, self.now())
                    .await?;
                (found, Some(number))
            }
        };
        let Some(subject) = found else {
            return Ok(ErasureOutcome::NothingHeld);
        };
        let business = self.subjects().erase(principal, &subject).await?;
        let certificate = self
            .certificate(&business, &subject, phone_number_id)
            .await?;
        tracing::info!(position = certificate.event.position, "erasure certified");
        crate::metrics::metrics().erased();
        Ok(ErasureOutcome::Erased(Box::new(certificate)))
    }

    /// Where a number named by an erasure request lives, if the principal may erase there.
    async fn erasure_home(
        &self,
        principal: &Principal,
        number: &PhoneNumberId,
    ) -> Result<(BusinessId, Region), AppError> {
        let (business, region) = self.catalog().number_home(principal, number).await?;
        require_owner_or_dpo(principal, &business)?;
        Ok((business, region))
    }

    /// The certificate of an erased subject, proven under a fresh checkpoint.
    async fn certificate(
        &self,
        business: &BusinessId,
        subject: &SubjectId,
        phone_number_id: Option<PhoneNumberId>,
    ) -> Result<ErasureCertificate, AppError> {
        let stream = StreamId::new(business.as_str(), "subject", subject.as_str());
        let rows = self.stores.events.read_stream(&stream, 0).await?;
        let row = rows
            .iter()
            .find(|r| r.header.event_type == "SubjectErased")
            .ok_or(AppError::Incomplete("erased subject without SubjectErased"))?;
        let opened = self.store.open_row(row.clone()).await?;
        let (requested_by, requested_kind) =
            match opened.decode::<sealpost_domain::SubjectEvent>()? {
                sealpost_domain::SubjectEvent::SubjectErased { requested_by, .. } => {
                    let kind = opened
                        .metadata
                        .get(sealpost_adapters::ledger::meta::ACTOR)
                        .and_then(|a| a.split(':').next())
                        .unwrap_or("unknown")
                        .to_owned();
                    (requested_by, kind)
                }
                _ => return Err(AppError::Corrupt("SubjectErased row")),
            };
        let business = BusinessId::parse(&row.header.business_id)
            .map_err(|_| AppError::Corrupt("business id"))?;
        let region: Region = row
            .header
            .region
            .parse()
            .map_err(|_| AppError::Corrupt("region"))?;
        let completed_at = self
            .stores
            .keys
            .destroyed_at(
                business.as_str(),
                &subject_key_id(business.as_str(), region, subject),
            )
            .await?;
        let audit = self.audit().await?;
        let checkpoint = audit.checkpoint(self.now()).await?;
        let proof = audit.inclusion(row.position, checkpoint.size).await?;
        Ok(ErasureCertificate {
            format: CERTIFICATE_FORMAT.to_owned(),
            business_id: business.as_str().to_owned(),
            phone_number_id: phone_number_id.map(|p| p.as_str().to_owned()),
            subject_id: subject.as_str().to_owned(),
            requested_by_kind: requested_kind,
            requested_by,
            categories: MATRIX
                .iter()
                .filter(|r| {
                    matches!(
                        r.category,
                        Category::MessageContent | Category::ConsumerPhoneNumber
                    )
                })
                .map(|r| r.category.label().to_owned())
                .chain(["Signal session with the consumer's device".to_owned()])
                .collect(),
            method: METHOD.to_owned(),
            requested_at: row.header.recorded_at,
            completed_at,
            event: BundleRow::of(row, None),
            inclusion_proof: proof,
            checkpoint,
            region: self.region_proof(row).await?,
        })
    }
}
