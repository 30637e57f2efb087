//! Routing without numbers: the blind index of a phone number, the business-scoped user id,
//! the subject either routes to, and inbound message ids keyed by the subject key.

use super::{Vault, VaultError};
use crate::crypto::{self, SecretKey};
use crate::store::StoreError;
use sealpost_domain::{Region, SubjectId, Timestamp, E164};

impl Vault {
    /// The blind index of a phone number for a business: HMAC under the business's index key.
    pub async fn blind_index(
        &self,
        business: &str,
        region: Region,
        phone: &E164,
        now: Timestamp,
    ) -> Result<[u8; 32], VaultError> {
        let key = self.index_key(business, region, now).await?;
        Ok(crypto::mac(&key, phone.expose_digits().as_bytes()))
    }

    /// A subject as the evidence rows know it: a tag under the business's index key, so the
    /// rows link a consumer's messages to each other only for who holds that key, and never to
    /// the subject's stream id.
    pub async fn evidence_tag(
        &self,
        business: &str,
        region: Region,
        subject: &SubjectId,
        now: Timestamp,
    ) -> Result<[u8; 16], VaultError> {
        let key = self.index_key(business, region, now).await?;
        let tag = crypto::mac(
            &key,
            &crypto::aad(&[b"sealpost/evidence-subject/v1", subject.as_str().as_bytes()]),
        );
        Ok(tag[..16].try_into().expect("16 bytes"))
    }

    /// The business-scoped user id of a consumer (`CC.<20 digits>`): stable per business and
    /// consumer, not derivable from the number without the business's index key.
    pub async fn user_id(
        &self,
        business: &str,
        region: Region,
        phone: &E164,
        now: Timestamp,
    ) -> Result<String, VaultError> {
        let key = self.index_key(business, region, now).await?;
        let tag = crypto::mac(
            &key,
            &crypto::aad(&[b"sealpost/user-id/v1", phone.expose_digits().as_bytes()]),
        );
        let a = u64::from_be_bytes(tag[..8].try_into().expect("8 bytes")) % 10_000_000_000;
        let b = u64::from_be_bytes(tag[8..16].try_into().expect("8 bytes")) % 10_000_000_000;
        Ok(format!("{}.{a:010}{b:010}", phone.country()))
    }

    fn user_index(key: &SecretKey, user_id: &str) -> [u8; 32] {
        crypto::mac(
            key,
            &crypto::aad(&[b"sealpost/user-index/v1", user_id.as_bytes()]),
        )
    }

    /// Routes the business-scoped user id of `phone` to `subject` (deleted with the subject's
    /// other routing entries).
    pub async fn route_user_id(
        &self,
        business: &str,
        region: Region,
        phone: &E164,
        subject: &SubjectId,
        now: Timestamp,
    ) -> Result<(), VaultError> {
        let user_id = self.user_id(business, region, phone, now).await?;
        let key = self.index_key(business, region, now).await?;
        self.keys
            .index_put(
                business,
                region.code(),
                &Self::user_index(&key, &user_id),
                subject.as_str(),
            )
            .await?;
        Ok(())
    }

    /// The subject a business-scoped user id routes to, if it is live.
    pub async fn find_user(
        &self,
        business: &str,
        region: Region,
        user_id: &str,
        now: Timestamp,
    ) -> Result<Option<SubjectId>, VaultError> {
        let key = self.index_key(business, region, now).await?;
        self.indexed_subject(business, region, &Self::user_index(&key, user_id))
            .await
    }

    /// Finds the subject a phone number routes to, if one is live.
    pub async fn find_subject(
        &self,
        business: &str,
        region: Region,
        phone: &E164,
        now: Timestamp,
    ) -> Result<Option<SubjectId>, VaultError> {
        let blind = self.blind_index(business, region, phone, now).await?;
        self.indexed_subject(business, region, &blind).await
    }

    /// The subject an index entry (blind phone index or user index) routes to, if any.
    async fn indexed_subject(
        &self,
        business: &str,
        region: Region,
        index: &[u8],
    ) -> Result<Option<SubjectId>, VaultError> {
        match self.keys.index_get(business, region.code(), index).await? {
            None => Ok(None),
            Some(s) => Ok(Some(subject_of(&s)?)),
        }
    }

    /// Routes a phone number to `subject` unless it already routes somewhere; returns the
    /// subject it routes to (the first writer wins).
    pub async fn route_subject(
        &self,
        business: &str,
        region: Region,
        phone: &E164,
        subject: &SubjectId,
        now: Timestamp,
    ) -> Result<SubjectId, VaultError> {
        let blind = self.blind_index(business, region, phone, now).await?;
        let s = self
            .keys
            .index_put(business, region.code(), &blind, subject.as_str())
            .await?;
        Ok(subject_of(&s)?)
    }

    /// The message id of an inbound message: keyed by the subject key over the transport's
    /// envelope id, so a redelivered envelope maps to the same message (recognised as a
    /// duplicate) while the id says nothing about the person. `None` once the subject is gone.
    pub async fn inbound_message_id(
        &self,
        business: &str,
        region: Region,
        subject: &SubjectId,
        envelope_id: &str,
    ) -> Result<Option<sealpost_domain::MessageId>, VaultError> {
        let Some(key) = self.subject_key(business, region, subject, None).await? else {
            return Ok(None);
        };
        let tag = crypto::mac(
            &key,
            &crypto::aad(&[b"sealpost/inbound-id/v1", envelope_id.as_bytes()]),
        );
        let mut id = [0u8; 18];
        id.copy_from_slice(&tag[..18]);
        Ok(Some(sealpost_domain::MessageId::from_random(id)))
    }
}

/// A subject id as an index entry holds it.
fn subject_of(s: &str) -> Result<SubjectId, StoreError> {
    SubjectId::parse(s).map_err(|_| StoreError::Corrupt("subject id in index"))
}
