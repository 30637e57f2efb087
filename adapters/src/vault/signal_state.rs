//! Signal state at rest: an account wrapped by its region root key, a session sealed under its
//! consumer's subject key (so erasure shreds it).

use super::{Vault, VaultError};
use crate::crypto;
use crate::store::{Fence, SessionRow};
use sealpost_domain::{Opened, Region, SubjectId, Timestamp};

pub(super) fn signal_account_aad(owner: &str, region: Region) -> Vec<u8> {
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

/// One session to store: the subject's session with one device, in plaintext until sealed.
#[derive(Clone, Copy)]
pub struct SessionSave<'a> {
    /// The business.
    pub business: &'a str,
    /// Its region.
    pub region: Region,
    /// The consumer.
    pub subject: &'a SubjectId,
    /// The consumer's device.
    pub device: u8,
    /// The serialized session (secret).
    pub session: &'a [u8],
}

impl std::fmt::Debug for SessionSave<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "SessionSave(device {}, {} bytes)",
            self.device,
            self.session.len()
        )
    }
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
        let root = self.root_generation(region).await?;
        let wrapped = self
            .roots
            .seal(region, root, account, &signal_account_aad(owner, region))?;
        self.keys
            .put_signal_account(
                owner,
                business,
                region.code(),
                (root, &wrapped),
                now.millis(),
            )
            .await?;
        Ok(())
    }

    /// Deletes the Signal account of `owner` stored for `region`: what a number that moved to
    /// another region leaves behind once the account is saved there.
    pub async fn delete_signal_account(
        &self,
        owner: &str,
        business: &str,
        region: Region,
    ) -> Result<(), VaultError> {
        self.keys
            .delete_signal_account(business, region.code(), owner)
            .await?;
        Ok(())
    }

    /// Loads a Signal account stored by [`Vault::save_signal_account`].
    pub async fn load_signal_account(
        &self,
        owner: &str,
        business: &str,
        region: Region,
    ) -> Result<Option<zeroize::Zeroizing<Vec<u8>>>, VaultError> {
        let Some((root, wrapped)) = self
            .keys
            .signal_account(business, region.code(), owner)
            .await?
        else {
            return Ok(None);
        };
        Ok(Some(self.roots.open(
            region,
            root,
            &wrapped,
            &signal_account_aad(owner, region),
        )?))
    }

    /// Stores the Signal session with one device of a subject, sealed under the subject key.
    /// Fails with [`VaultError::KeyDestroyed`] once the subject is erased or expired. Not
    /// fenced: the pipeline saves through [`Vault::save_sessions`] with its lease's fence.
    pub async fn save_session(
        &self,
        business: &str,
        region: Region,
        subject: &SubjectId,
        device: u8,
        session: &[u8],
        now: Timestamp,
    ) -> Result<(), VaultError> {
        let save = SessionSave {
            business,
            region,
            subject,
            device,
            session,
        };
        self.save_sessions(&[save], now, None).await
    }

    /// Stores several sessions in one key-store transaction (a pipeline batch's). Fails with
    /// [`VaultError::KeyDestroyed`], writing none, if any of their subjects is gone, and with
    /// `StoreError::Fenced`, writing none, if `fence`'s lease was taken over.
    pub async fn save_sessions(
        &self,
        sessions: &[SessionSave<'_>],
        now: Timestamp,
        fence: Option<&Fence>,
    ) -> Result<(), VaultError> {
        let mut rows = Vec::with_capacity(sessions.len());
        for s in sessions {
            let key = self
                .subject_key(s.business, s.region, s.subject, None)
                .await?
                .ok_or(VaultError::KeyDestroyed)?;
            rows.push(SessionRow {
                business_id: s.business.to_owned(),
                region: s.region.code().to_owned(),
                subject_id: s.subject.as_str().to_owned(),
                device: s.device,
                sealed: crypto::seal(
                    &key,
                    s.session,
                    &session_aad(s.business, s.subject, s.device),
                ),
                at: now.millis(),
            });
        }
        self.keys.put_signal_sessions(&rows, fence).await?;
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
            .signal_session(business, region.code(), subject.as_str(), device)
            .await?
        else {
            return Ok(Opened::Plain(None));
        };
        let plain = crypto::open(&key, &sealed, &session_aad(business, subject, device))?;
        Ok(Opened::Plain(Some(zeroize::Zeroizing::new(plain))))
    }
}
