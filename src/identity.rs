//! Access tokens: ≥ 32 random bytes, handed out once, stored only as a SHA-256 hash (in a
//! `TokenIssued` event), compared in constant time, revocable with immediate effect, never
//! logged. The index of live tokens is rebuilt from the log on start.

use crate::app::AppError;
use base64::Engine as _;
use rand::RngCore as _;
use sealpost_adapters::crypto;
use sealpost_adapters::ledger::{EventContext, EventStore, PlainEvent};
use sealpost_adapters::store::StreamId;
use sealpost_domain::identity::{TokenEvent, TOKEN_STREAM_TYPE};
use sealpost_domain::{Principal, Region, Timestamp};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

/// What a valid token stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// The token's id (safe to log).
    pub token_id: String,
    /// Whose it is.
    pub principal: Principal,
    /// What it may do.
    pub scopes: Vec<String>,
}

/// The live tokens.
#[derive(Debug)]
pub struct Tokens {
    store: Arc<EventStore>,
    by_hash: RwLock<HashMap<[u8; 32], Grant>>,
}

/// Where token events are recorded when the principal belongs to no business.
const NO_BUSINESS: &str = "0";

impl Tokens {
    /// Rebuilds the index from the log.
    pub async fn load(store: Arc<EventStore>) -> Result<Arc<Self>, AppError> {
        let mut issued: HashMap<String, ([u8; 32], Grant)> = HashMap::new();
        for e in store.scan(|h| h.stream.kind == TOKEN_STREAM_TYPE).await? {
            match e.decode::<TokenEvent>()? {
                TokenEvent::TokenIssued {
                    token_id,
                    hash,
                    principal,
                    scopes,
                    ..
                } => {
                    let bytes: [u8; 32] = hex::decode(&hash)
                        .ok()
                        .and_then(|b| b.try_into().ok())
                        .ok_or(AppError::Inconsistent("token hash"))?;
                    issued.insert(
                        token_id.clone(),
                        (
                            bytes,
                            Grant {
                                token_id,
                                principal,
                                scopes,
                            },
                        ),
                    );
                }
                TokenEvent::TokenRevoked { .. } => {
                    issued.remove(&e.header.stream.id);
                }
            }
        }
        let by_hash = issued.into_values().collect();
        Ok(Arc::new(Self {
            store,
            by_hash: RwLock::new(by_hash),
        }))
    }

    /// Issues a token; the returned string is the only copy.
    pub async fn issue(
        &self,
        principal: Principal,
        scopes: &[&str],
        region: Region,
        now: Timestamp,
    ) -> Result<String, AppError> {
        let mut secret = [0u8; 32];
        rand::rng().fill_bytes(&mut secret);
        let token = format!(
            "SP{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret)
        );
        let hash = crypto::sha256(token.as_bytes());
        let token_id = format!("tok_{}", uuid::Uuid::new_v4().simple());
        let scopes: Vec<String> = scopes.iter().map(|s| (*s).to_owned()).collect();
        let event = TokenEvent::TokenIssued {
            token_id: token_id.clone(),
            hash: hex::encode(hash),
            principal: principal.clone(),
            scopes: scopes.clone(),
            at: now,
        };
        self.record(&token_id, &principal, region, event).await?;
        self.by_hash
            .write()
            .expect("token index lock is never poisoned")
            .insert(
                hash,
                Grant {
                    token_id,
                    principal,
                    scopes,
                },
            );
        Ok(token)
    }

    /// Revokes a token: it stops working at once.
    pub async fn revoke(
        &self,
        token_id: &str,
        region: Region,
        now: Timestamp,
    ) -> Result<bool, AppError> {
        let found = {
            let index = self
                .by_hash
                .read()
                .expect("token index lock is never poisoned");
            index
                .iter()
                .find(|(_, g)| g.token_id == token_id)
                .map(|(h, g)| (*h, g.principal.clone()))
        };
        let Some((hash, principal)) = found else {
            return Ok(false);
        };
        self.by_hash
            .write()
            .expect("token index lock is never poisoned")
            .remove(&hash);
        self.record(
            token_id,
            &principal,
            region,
            TokenEvent::TokenRevoked { at: now },
        )
        .await?;
        Ok(true)
    }

    async fn record(
        &self,
        token_id: &str,
        principal: &Principal,
        region: Region,
        event: TokenEvent,
    ) -> Result<(), AppError> {
        let business = principal
            .business
            .as_ref()
            .map_or(NO_BUSINESS, |b| b.as_str())
            .to_owned();
        let metadata = sealpost_adapters::exec::CommandMeta::new(
            &business,
            region,
            &Principal::processor("business-manager"),
        )
        .to_map();
        let stream = StreamId::new(TOKEN_STREAM_TYPE, token_id);
        let ctx = EventContext {
            business_id: business,
            region,
            epoch: None,
        };
        self.store
            .append_at_end(&stream, &ctx, vec![PlainEvent::of(&event, metadata)?])
            .await?;
        Ok(())
    }

    /// The live tokens of a business (ids and scopes; the tokens themselves are never kept).
    pub fn of_business(&self, business: &sealpost_domain::BusinessId) -> Vec<Grant> {
        let index = self
            .by_hash
            .read()
            .expect("token index lock is never poisoned");
        let mut grants: Vec<Grant> = index
            .values()
            .filter(|g| g.principal.business.as_ref() == Some(business))
            .cloned()
            .collect();
        grants.sort_by(|a, b| a.token_id.cmp(&b.token_id));
        grants
    }

    /// The grant of a live token by its id.
    pub fn by_id(&self, token_id: &str) -> Option<Grant> {
        self.by_hash
            .read()
            .expect("token index lock is never poisoned")
            .values()
            .find(|g| g.token_id == token_id)
            .cloned()
    }

    /// The grant of a bearer token, if it is live. The final comparison is constant time.
    pub fn authenticate(&self, bearer: &str) -> Option<Grant> {
        let hash = crypto::sha256(bearer.as_bytes());
        let index = self
            .by_hash
            .read()
            .expect("token index lock is never poisoned");
        let (stored, grant) = index.get_key_value(&hash)?;
        crypto::ct_eq(stored, &hash).then(|| grant.clone())
    }
}
