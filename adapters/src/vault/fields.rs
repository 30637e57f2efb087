//! Personal fields: the key each [`FieldScope`] is sealed under (message key, subject key or
//! media field key), and `seal_field` / `open_field` (the latter only through the access gate).

use super::{media_key_id, subject_key_id, KeySpec, Vault, VaultError};
use crate::crypto::{self, SecretKey};
use crate::store::{KeyKind, KeyState};
use sealpost_domain::{FieldScope, Opened, Region, Sealed, Timestamp};

/// A field key from two keys that must both exist: HKDF(a ‖ b, salt = the object's id).
/// Destroying either shreds what it sealed.
fn combine(a: &SecretKey, b: &SecretKey, salt: &str, info: &[u8]) -> SecretKey {
    let mut ikm = zeroize::Zeroizing::new([0u8; 64]);
    ikm[..32].copy_from_slice(a.expose());
    ikm[32..].copy_from_slice(b.expose());
    crypto::derive(ikm.as_slice(), salt.as_bytes(), info)
}

fn field_aad(field: &str, scope: &FieldScope) -> Vec<u8> {
    match scope {
        FieldScope::Message { message, .. } => crypto::aad(&[
            b"sealpost/field/v1/message",
            field.as_bytes(),
            message.as_str().as_bytes(),
        ]),
        FieldScope::Subject { subject } => crypto::aad(&[
            b"sealpost/field/v1/subject",
            field.as_bytes(),
            subject.as_str().as_bytes(),
        ]),
        FieldScope::Media { media, .. } => crypto::aad(&[
            b"sealpost/field/v1/media",
            field.as_bytes(),
            media.as_str().as_bytes(),
        ]),
    }
}

impl Vault {
    /// The key a field is sealed under; `None` when shredded. `create_at` makes a missing
    /// epoch key (writing), never a subject key (subjects are made by [`Vault::create_subject_key`]).
    async fn field_key(
        &self,
        business: &str,
        region: Region,
        scope: &FieldScope,
        create_at: Option<Timestamp>,
    ) -> Result<Option<SecretKey>, VaultError> {
        match scope {
            FieldScope::Subject { subject } => Ok(self
                .subject_key(business, region, subject, None)
                .await?
                .map(|k| k.duplicate())),
            FieldScope::Message {
                epoch,
                subject,
                message,
            } => {
                let Some(sk) = self.subject_key(business, region, subject, None).await? else {
                    return Ok(None);
                };
                let Some(ek) = self.epoch_key(business, region, *epoch, create_at).await? else {
                    return Ok(None);
                };
                Ok(Some(combine(
                    &ek,
                    &sk,
                    message.as_str(),
                    b"sealpost/message-key/v1",
                )))
            }
            FieldScope::Media {
                epoch,
                media,
                subject,
            } => {
                let id = media_key_id(business, region, media);
                let spec = KeySpec {
                    kind: KeyKind::Media,
                    business,
                    region,
                    epoch: None,
                    subject: None,
                    version: 1,
                };
                let Some(mk) = self
                    .load(business, &id, create_at.map(|now| (spec, now)))
                    .await?
                else {
                    return Ok(None);
                };
                let Some(ek) = self.epoch_key(business, region, *epoch, create_at).await? else {
                    return Ok(None);
                };
                let key = combine(&ek, &mk, media.as_str(), b"sealpost/media-key/v1");
                match subject {
                    None => Ok(Some(key)),
                    // A consumer's attachment goes with the consumer's erasure too.
                    Some(s) => match self.subject_key(business, region, s, None).await? {
                        None => Ok(None),
                        Some(sk) => Ok(Some(combine(
                            &key,
                            &sk,
                            media.as_str(),
                            b"sealpost/media-key/consumer/v1",
                        ))),
                    },
                }
            }
        }
    }

    /// Seals a personal field. Fails with [`VaultError::KeyDestroyed`] if its keys were
    /// destroyed: nothing is ever written under a shredded key.
    pub async fn seal_field(
        &self,
        business: &str,
        region: Region,
        scope: &FieldScope,
        field: &str,
        plaintext: &[u8],
        now: Timestamp,
    ) -> Result<Sealed, VaultError> {
        let key = match self.field_key(business, region, scope, Some(now)).await? {
            Some(k) => k,
            None => {
                let subject = match scope {
                    FieldScope::Subject { subject } | FieldScope::Message { subject, .. } => {
                        subject
                    }
                    FieldScope::Media { .. } => return Err(VaultError::KeyDestroyed),
                };
                return Err(
                    match self
                        .keys
                        .get(business, &subject_key_id(business, region, subject))
                        .await?
                    {
                        KeyState::Missing => VaultError::KeyMissing,
                        _ => VaultError::KeyDestroyed,
                    },
                );
            }
        };
        Ok(Sealed::from_bytes(crypto::seal(
            &key,
            plaintext,
            &field_aad(field, scope),
        )))
    }

    /// Opens a personal field, or says it was shredded. Callers reach this only through the
    /// access gate.
    pub async fn open_field(
        &self,
        business: &str,
        region: Region,
        scope: &FieldScope,
        field: &str,
        sealed: &Sealed,
    ) -> Result<Opened<Vec<u8>>, VaultError> {
        match self.field_key(business, region, scope, None).await? {
            None => Ok(Opened::Shredded),
            Some(key) => Ok(Opened::Plain(crypto::open(
                &key,
                sealed.as_bytes(),
                &field_aad(field, scope),
            )?)),
        }
    }
}
