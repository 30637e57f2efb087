//! Businesses and their phone numbers: registration, home region, integrity state.

use super::*;

impl Catalog<'_> {
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
            .read_stream(&StreamId::new(id.as_str(), "business", id.as_str()), 0)
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

    /// A phone number of `business` (`NotFound` if it is no number of `business`'s).
    pub async fn phone_number(
        &self,
        business: &BusinessId,
        id: &PhoneNumberId,
    ) -> Result<PhoneNumber, AppError> {
        let (state, _) = self
            .exec
            .load::<PhoneNumber>(business.as_str(), id.as_str())
            .await?;
        state.id.as_ref().ok_or(DomainError::NotFound)?;
        Ok(state)
    }

    /// A phone number of whichever business it belongs to: a lookup across businesses, for a
    /// caller that has no business of its own (a DPO, the operator, a node at start).
    pub async fn find_phone_number(&self, id: &PhoneNumberId) -> Result<PhoneNumber, AppError> {
        let business = super::owner_of::<PhoneNumber>(self.exec, id.as_str()).await?;
        self.phone_number(&business, id).await
    }

    /// A phone number as `principal` may address it: under its own business, or found across
    /// businesses for a principal that has none.
    pub async fn number_for(
        &self,
        principal: &Principal,
        id: &PhoneNumberId,
    ) -> Result<PhoneNumber, AppError> {
        let business =
            super::business_for::<PhoneNumber>(self.exec, principal, id.as_str()).await?;
        self.phone_number(&business, id).await
    }

    /// What the transport reported about a business number (rating, lowered tier, throttle),
    /// folded from the number's integrity stream. The caller authorizes the read.
    pub async fn integrity(
        &self,
        business: &BusinessId,
        id: &PhoneNumberId,
    ) -> Result<sealpost_domain::integrity::IntegrityView, AppError> {
        self.integrity_at(business, id, u64::MAX).await
    }

    /// The same as it stood once the number's integrity stream had `sequence` events (what a
    /// notification of that event tells, however late it is built).
    pub async fn integrity_at(
        &self,
        business: &BusinessId,
        id: &PhoneNumberId,
        sequence: u64,
    ) -> Result<sealpost_domain::integrity::IntegrityView, AppError> {
        let stream = sealpost_adapters::store::StreamId::new(
            business.as_str(),
            sealpost_domain::integrity::INTEGRITY_STREAM_TYPE,
            id.as_str(),
        );
        let mut view = sealpost_domain::integrity::IntegrityView::default();
        for e in self.store.read_stream(&stream, 0).await? {
            if e.header.sequence <= sequence {
                view.apply(&e.decode::<sealpost_domain::integrity::IntegrityEvent>()?);
            }
        }
        Ok(view)
    }

    /// Where a phone number's data lives, and its business, as `principal` may address it
    /// ([`Catalog::number_for`]).
    pub(crate) async fn number_home(
        &self,
        principal: &Principal,
        id: &PhoneNumberId,
    ) -> Result<(BusinessId, Region), AppError> {
        home_of(&self.number_for(principal, id).await?)
    }
}

/// A loaded phone number's business, and the region where its data lives.
pub(crate) fn home_of(n: &PhoneNumber) -> Result<(BusinessId, Region), AppError> {
    let business = n
        .business_id
        .clone()
        .ok_or(AppError::Incomplete("phone number without business"))?;
    let region = n
        .storage_region()
        .ok_or(AppError::Incomplete("phone number without region"))?;
    Ok((business, region))
}
