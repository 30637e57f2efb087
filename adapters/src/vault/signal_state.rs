//! Signal state at rest: an account wrapped by its region root key, a session sealed under its
//! consumer's subject key (so erasure shreds it).

use super::{Vault, VaultError};
use crate::crypto;
use sealpost_domain::{Opened, Region, SubjectId, Timestamp};

fn signal_account_aad(owner: &str, region: Region) -> Vec<u8> {
    crypto::aad(&[
        b"sealpost/signal-account/v1",
        owner.as_bytes(),
        region.code().as_bytes(),
    ])
}

fn session_aad(business: &str, subject: &SubjectId, device: u8) -> Vec<u8> {
    crypto::aad(&[
        b"sealpost/signal-session/v1",
        business.as_bytes(),
        subject.as_str().as_bytes(),
        &[device],
    ])
}

impl Vault {
    /// Stores a Signal account (identity and prekeys of `owner`, a business phone number or a
    /// device), wrapped by the region root key.
    pub async fn save_signal_account(
        &self,
        owner: &str,
        business: &str,
        region: Region,
        account: &[u8],
        now: Timestamp,
    ) -> Result<(), VaultError> {
        let root = self.roots.get(region)?;
        let wrapped = crypto::seal(&root, account, &signal_account_aad(owner, region));
        self.keys
            .put_signal_account(owner, business, region.code(), &wrapped, now.millis())
            .await?;
        Ok(())
    }

    /// Loads a Signal account stored by [`Vault::save_signal_account`].
    pub async fn load_signal_account(
        &self,
        owner: &str,
        region: Region,
    ) -> Result<Option<zeroize::Zeroizing<Vec<u8>>>, VaultError> {
        let Some(wrapped) = self.keys.signal_account(owner).await? else {
            return Ok(None);
        };
        let root = self.roots.get(region)?;
        Ok(Some(zeroize::Zeroizing::new(crypto::open(
            &root,
            &wrapped,
            &signal_account_aad(owner, region),
        )?)))
    }

    /// Stores the Signal session with one device of a subject, sealed under the subject key.
    /// Fails with [`VaultError::KeyDestroyed`] once the subject is erased or expired.
    #[allow(clippy::too_many_arguments)]
    pub async fn save_session(
        &self,
        business: &str,
        region: Region,
        subject: &SubjectId,
        device: u8,
        session: &[u8],
        now: Timestamp,
    ) -> Result<(), VaultError> {
        let key = self
            .subject_key(business, region, subject, None)
            .await?
            .ok_or(VaultError::KeyDestroyed)?;
        let sealed = crypto::seal(&key, session, &session_aad(business, subject, device));
        self.keys
            .put_signal_session(
                business,
                region.code(),
                subject.as_str(),
                device,
                &sealed,
                now.millis(),
            )
            .await?;
        Ok(())
    }

    /// Loads the Signal session with one device of a subject: `Plain(None)` when there is none
    /// yet, `Shredded` once the subject key is gone.
    pub async fn load_session(
        &self,
        business: &str,
        region: Region,
        subject: &SubjectId,
        device: u8,
    ) -> Result<Opened<Option<zeroize::Zeroizing<Vec<u8>>>>, VaultError> {
        let Some(key) = self.subject_key(business, region, subject, None).await? else {
            return Ok(Opened::Shredded);
        };
        let Some(sealed) = self
            .keys
            .signal_session(business, subject.as_str(), device)
            .await?
        else {
            return Ok(Opened::Plain(None));
        };
        let plain = crypto::open(&key, &sealed, &session_aad(business, subject, device))?;
        Ok(Opened::Plain(Some(zeroize::Zeroizing::new(plain))))
    }
}
