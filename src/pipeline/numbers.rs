//! Business numbers on the network: their Signal accounts, registration, prekeys, and
//! re-establishing them after a restart.

use super::*;

#[derive(Debug)]
pub(super) struct Number {
    pub(super) id: PhoneNumberId,
    pub(super) business: BusinessId,
    pub(super) region: Region,
    pub(super) handle: String,
    pub(super) account: Account,
    pub(super) dirty: bool,
}

impl Number {
    /// Stores the account, wrapped by the region root key.
    pub(super) async fn save(&self, app: &Sealpost) -> Result<(), AppError> {
        let vault = app.store().vault();
        vault
            .save_signal_account(
                self.id.as_str(),
                self.business.as_str(),
                self.region,
                &self.account.to_bytes(),
                app.now(),
            )
            .await?;
        Ok(())
    }
}

impl Pipeline {
    /// Puts a business phone number on the network: loads its Signal account (or makes one,
    /// wrapped by the region root key) and publishes its prekeys to the key directory. A lane's
    /// pipeline attaches only the numbers of its businesses and passes over the others.
    pub async fn attach_number(
        &mut self,
        business: &BusinessId,
        id: &PhoneNumberId,
    ) -> Result<(), AppError> {
        let n = self.app.catalog().phone_number(business, id).await?;
        let (business, region) = crate::app::home_of(&n)?;
        if !self.serves(&business) {
            // Another lane's: that lane's pipeline attaches it.
            return Ok(());
        }
        let vault = self.app.store().vault().clone();
        // Where the account may be: the number's region; its home region (an election
        // `relocate` has not followed yet); a region it left (a move a restart cut short before
        // `relocate`): every region with a store of its own. Found elsewhere, it moves here
        // now, and no copy is left anywhere else.
        let mut places = vec![region];
        places.extend(n.home_region);
        places.extend(self.app.stores().regions.regions().await?);
        let mut seen = std::collections::BTreeSet::new();
        places.retain(|r| seen.insert(*r));
        let mut stored = None;
        for r in &places {
            if let Some(bytes) = vault
                .load_signal_account(id.as_str(), business.as_str(), *r)
                .await?
            {
                stored = Some((bytes, *r));
                break;
            }
        }
        let account = match stored {
            Some((bytes, found)) => {
                let mut account = Account::from_bytes(&bytes)
                    .map_err(|_| AppError::Corrupt("stored Signal account"))?;
                if found != region {
                    self.save_account(id, &business, region, &account).await?;
                    tracing::info!(
                        from = found.code(),
                        to = region.code(),
                        "number's Signal account moved to its region"
                    );
                }
                for other in places.iter().filter(|r| **r != region) {
                    vault
                        .delete_signal_account(id.as_str(), business.as_str(), *other)
                        .await?;
                }
                self.reestablish(id, &business, region, &n.display_number, &mut account)
                    .await?;
                account
            }
            None => {
                let account =
                    self.engine
                        .new_account(rand::rng().random(), PREKEY_TARGET, self.app.now())?;
                self.save_account(id, &business, region, &account).await?;
                let entry = self.engine.directory_entry(&account)?;
                self.transport.publish(&n.display_number, entry).await?;
                account
            }
        };
        let tier_state = self.app.catalog().business(&business).await?;
        let tier = tier_state
            .tier
            .unwrap_or(sealpost_domain::aggregates::business::MessagingLimitTier::Tier250);
        self.transport
            .register_business(&n.display_number, tier)
            .await?;
        if let Some(r) = &self.integrity {
            r.register(&n.display_number, business.clone(), region, id.clone());
        }
        let handle = n.display_number.clone();
        self.numbers.insert(
            handle.clone(),
            Number {
                id: id.clone(),
                business,
                region,
                handle,
                account,
                dirty: false,
            },
        );
        Ok(())
    }

    /// Stores a number's Signal account, wrapped by its region's root key.
    pub(super) async fn save_account(
        &self,
        id: &PhoneNumberId,
        business: &BusinessId,
        region: Region,
        account: &Account,
    ) -> Result<(), AppError> {
        self.app
            .store()
            .vault()
            .save_signal_account(
                id.as_str(),
                business.as_str(),
                region,
                &account.to_bytes(),
                self.app.now(),
            )
            .await?;
        Ok(())
    }

    /// Puts a number with a stored Signal account back on the network, idempotently: a
    /// transport that still knows it keeps its entry (its handed-out one-time prekeys must not be
    /// handed out twice) and gets the current signed prekey; one that lost it, or ran dry, gets
    /// the entry again with fresh one-time prekeys only.
    pub(super) async fn reestablish(
        &self,
        id: &PhoneNumberId,
        business: &BusinessId,
        region: Region,
        handle: &str,
        account: &mut Account,
    ) -> Result<(), AppError> {
        let left = self.transport.prekeys_left(handle).await?;
        if left > 0 {
            let entry = self.engine.directory_entry(account)?;
            return self
                .transport
                .update_signed_prekey(handle, entry.signed_prekey)
                .await
                .map_err(AppError::from);
        }
        let target = account.one_time_prekeys() as u32 + PREKEY_TARGET;
        let fresh = self.engine.replenish(account, target)?;
        self.save_account(id, business, region, account).await?;
        let mut entry = self.engine.directory_entry(account)?;
        entry.one_time = fresh;
        self.transport.publish(handle, entry).await?;
        tracing::info!("business number re-established with the transport");
        Ok(())
    }

    /// The transport handle of an attached business number.
    pub(super) fn handle_of(&self, number: Option<&PhoneNumberId>) -> Result<String, AppError> {
        self.numbers
            .values()
            .find(|n| Some(&n.id) == number)
            .map(|n| n.handle.clone())
            .ok_or(AppError::NotAttached)
    }

    /// Follows a number's Local Storage election: from now on its consumers, messages and Signal
    /// account live (and are wrapped) in the elected region.
    pub(super) async fn relocate(
        &mut self,
        business: &BusinessId,
        id: &PhoneNumberId,
    ) -> Result<(), AppError> {
        let Some(region) = self
            .app
            .catalog()
            .phone_number(business, id)
            .await?
            .storage_region()
        else {
            return Ok(());
        };
        let Some(number) = self.numbers.values_mut().find(|n| &n.id == id) else {
            return Ok(());
        };
        if number.region == region {
            return Ok(());
        }
        let vault = self.app.store().vault();
        vault
            .save_signal_account(
                id.as_str(),
                number.business.as_str(),
                region,
                &number.account.to_bytes(),
                self.app.now(),
            )
            .await?;
        // Saved in the new region first: a crash between the two leaves a copy, never none;
        // the region changes once the old copy is gone, so a failed deletion is tried again.
        vault
            .delete_signal_account(id.as_str(), number.business.as_str(), number.region)
            .await?;
        number.region = region;
        if let Some(r) = &self.integrity {
            r.register(&number.handle, number.business.clone(), region, id.clone());
        }
        tracing::info!(
            region = region.code(),
            "number relocated to its elected region"
        );
        Ok(())
    }

    /// Rotates the signed prekey once it is older than [`SIGNED_PREKEY_ROTATION_MS`] (the
    /// previous one keeps serving messages in flight) and publishes the new one.
    pub(super) async fn rotate_signed_prekey(&mut self, handle: &str) -> Result<(), AppError> {
        let now = self.app.now();
        let number = self.numbers.get_mut(handle).ok_or(AppError::NotAttached)?;
        let made = number.account.signed_prekey_made_at();
        if now.millis().saturating_sub(made.millis()) < SIGNED_PREKEY_ROTATION_MS {
            return Ok(());
        }
        self.engine.rotate_signed_prekey(&mut number.account, now)?;
        let entry = self.engine.directory_entry(&number.account)?;
        number.save(&self.app).await?;
        self.transport
            .update_signed_prekey(handle, entry.signed_prekey)
            .await?;
        tracing::info!("signed prekey rotated");
        Ok(())
    }

    /// Publishes new one-time prekeys when the directory runs low.
    pub(super) async fn keep_prekeys(&mut self, handle: &str) -> Result<(), AppError> {
        let left = self.transport.prekeys_left(handle).await?;
        if left >= PREKEY_LOW {
            return Ok(());
        }
        let number = self.numbers.get_mut(handle).ok_or(AppError::NotAttached)?;
        // Add what the directory lacks; handed-out keys stay in the account until used.
        let target = (number.account.one_time_prekeys()
            + (PREKEY_TARGET as usize).saturating_sub(left)) as u32;
        let fresh = self.engine.replenish(&mut number.account, target)?;
        number.save(&self.app).await?;
        self.transport.add_prekeys(handle, fresh).await?;
        Ok(())
    }
}
