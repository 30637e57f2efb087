//! Consumers as subjects: found by blind index, named by business-scoped user id, their
//! number read through the gate, erased (GDPR Art. 17).

use super::*;
use sealpost_adapters::exec::Loaded;
use sealpost_adapters::ledger::OpenedEvent;

service! {
    /// Consumers as subjects, over the executor, the sealed store (its vault) and the clock.
    Subjects<'a> {
        exec: &'a Executor,
        store: &'a Arc<EventStore>,
        gate: &'a Arc<AccessGate>,
        clock: &'a dyn Clock,
    }
    reaches {
        catalog: Catalog { exec, store, clock },
    }
}

/// Where a subject belongs and its sealed routing number (from its `SubjectCreated`).
pub type Origin = (BusinessId, Region, Sealed);

fn origin_of(first: OpenedEvent) -> Result<Origin, AppError> {
    let region = region_of(&first)?;
    match first.decode::<SubjectEvent>()? {
        SubjectEvent::SubjectCreated {
            business_id, phone, ..
        } => Ok((business_id, region, phone)),
        _ => Err(AppError::Incomplete(
            "subject stream does not start with SubjectCreated",
        )),
    }
}

impl Subjects<'_> {
    /// The live subject a consumer's number routes to for a business, created (key, sealed
    /// number, blind-index entry) if there is none.
    pub async fn subject_for(
        &self,
        business: &BusinessId,
        region: Region,
        phone: &E164,
    ) -> Result<SubjectId, AppError> {
        Ok(self.subject_loaded(business, region, phone).await?.0)
    }

    /// [`Sealpost::subject_for`], with the subject's stream as loaded, for the commands that
    /// follow in the same operation.
    pub async fn subject_loaded(
        &self,
        business: &BusinessId,
        region: Region,
        phone: &E164,
    ) -> Result<(SubjectId, Loaded<Subject>), AppError> {
        let vault = self.store.vault();
        let now = self.now();
        if let Some(existing) = vault
            .find_subject(business.as_str(), region, phone, now)
            .await?
        {
            let loaded = self
                .exec
                .loaded::<Subject>(business.as_str(), existing.as_str())
                .await?;
            if loaded.state.lifecycle
                == sealpost_domain::aggregates::subject::SubjectLifecycle::Active
            {
                return Ok((existing, loaded));
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
        let mut loaded = Loaded::<Subject>::default();
        self.exec
            .execute_on(subject.as_str(), &mut loaded, cmd, &meta, now)
            .await?;
        // The first route wins if two requests raced to create a subject for the same number.
        let routed = vault
            .route_subject(business.as_str(), region, phone, &subject, now)
            .await?;
        // The business-scoped user id routes to the subject too (and goes with it).
        vault
            .route_user_id(business.as_str(), region, phone, &routed, now)
            .await?;
        if routed != subject {
            loaded = self
                .exec
                .loaded::<Subject>(business.as_str(), routed.as_str())
                .await?;
        }
        Ok((routed, loaded))
    }

    /// The live subject a business-scoped user id routes to, and its phone number read through
    /// the gate as the business itself (so answering by user id needs no number from the caller).
    pub async fn subject_by_user_id(
        &self,
        actor: &Principal,
        phone_number_id: &PhoneNumberId,
        user_id: &str,
    ) -> Result<E164, AppError> {
        let (business, region) = self.catalog().number_home(actor, phone_number_id).await?;
        let subject = self
            .store
            .vault()
            .find_user(business.as_str(), region, user_id, self.now())
            .await?
            .ok_or(DomainError::InvalidParameter("recipient"))?;
        match self
            .read_phone(actor, Purpose::BusinessApi, &business, &subject)
            .await?
        {
            Opened::Plain(p) => {
                Ok(E164::parse(&p).map_err(|_| AppError::Corrupt("stored number"))?)
            }
            Opened::Shredded => Err(DomainError::SubjectErased.into()),
        }
    }

    /// A subject of `business`'s state.
    pub async fn subject(
        &self,
        business: &BusinessId,
        id: &SubjectId,
    ) -> Result<Subject, AppError> {
        let (state, _) = self
            .exec
            .load::<Subject>(business.as_str(), id.as_str())
            .await?;
        state.id.as_ref().ok_or(DomainError::NotFound)?;
        Ok(state)
    }

    /// Where a subject of `business` belongs and its sealed routing number, from its first
    /// event.
    pub(super) async fn subject_origin(
        &self,
        business: &BusinessId,
        id: &SubjectId,
    ) -> Result<Origin, AppError> {
        let stream = StreamId::new(business.as_str(), "subject", id.as_str());
        let events = self.store.read_stream(&stream, 0).await?;
        origin_of(events.into_iter().next().ok_or(DomainError::NotFound)?)
    }

    /// [`Subjects::subject_origin`] of every subject of `ids` of `business`, in one read of the
    /// log (a subject without events is left out).
    pub async fn origins(
        &self,
        business: &BusinessId,
        ids: &[SubjectId],
    ) -> Result<std::collections::HashMap<SubjectId, Origin>, AppError> {
        let names: Vec<String> = ids.iter().map(|id| id.as_str().to_owned()).collect();
        let mut out = std::collections::HashMap::new();
        for (name, events) in self
            .store
            .read_streams(business.as_str(), "subject", &names)
            .await?
        {
            if let Some(first) = events.into_iter().next() {
                let id = SubjectId::parse(&name).map_err(|_| AppError::Corrupt("subject id"))?;
                out.insert(id, origin_of(first)?);
            }
        }
        Ok(out)
    }

    /// Reads the phone number of a subject of `business` through the access gate.
    pub async fn read_phone(
        &self,
        principal: &Principal,
        purpose: Purpose,
        business: &BusinessId,
        id: &SubjectId,
    ) -> Result<Opened<String>, AppError> {
        let origin = self.subject_origin(business, id).await?;
        self.open_phone(principal, purpose, id, &origin).await
    }

    /// Reads a subject's phone number through the access gate, from its origin as already read.
    pub async fn open_phone(
        &self,
        principal: &Principal,
        purpose: Purpose,
        id: &SubjectId,
        (business_id, region, phone): &Origin,
    ) -> Result<Opened<String>, AppError> {
        let req = AccessRequest {
            principal,
            category: Category::ConsumerPhoneNumber,
            purpose,
            object: id.as_str(),
            owner: Some(business_id),
            region: *region,
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
                    sealed: phone,
                },
            )
            .await?;
        text(opened, "phone is not UTF-8")
    }

    /// Erases a subject (GDPR Art. 17) on behalf of `requested_by` (the business or the DPO);
    /// the subject's business.
    pub async fn erase(
        &self,
        requested_by: &Principal,
        subject: &SubjectId,
    ) -> Result<BusinessId, AppError> {
        let business =
            super::business_for::<Subject>(self.exec, requested_by, subject.as_str()).await?;
        let (business, region, _) = self.subject_origin(&business, subject).await?;
        require_owner_or_dpo(requested_by, &business)?;
        erase_subject(
            self.exec,
            requested_by,
            &business,
            region,
            subject,
            self.now(),
        )
        .await?;
        Ok(business)
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
