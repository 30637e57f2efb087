//! Access tokens: ≥ 32 random bytes, handed out once, stored only as a SHA-256 hash (in a
//! `TokenIssued` event), compared in constant time, revocable with immediate effect, never
//! logged. The index of live tokens is rebuilt from the log on start and follows the token
//! events other nodes record ([`Tokens::follow`]), so a token issued or revoked on one node
//! works or stops working on every node within the follow interval (ADR 0016).

use crate::app::AppError;
use base64::Engine as _;
use rand::RngCore as _;
use sealpost_adapters::crypto;
use sealpost_adapters::ledger::{EventContext, EventStore, OpenedEvent, PlainEvent};
use sealpost_adapters::projection::{Fold, Persisted};
use sealpost_adapters::store::StreamId;
use sealpost_domain::identity::{TokenEvent, TOKEN_STREAM_TYPE};
use sealpost_domain::{Principal, Region, Timestamp};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};

/// What a valid token stands for.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
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
    /// The log position the index has folded up to (token events only).
    followed: tokio::sync::Mutex<u64>,
}

/// Where token events are recorded when the principal belongs to no business.
const NO_BUSINESS: &str = sealpost_domain::DEPLOYMENT;

impl Tokens {
    /// The index as the persisted `tokens` projection has it, caught up with the log (O(new
    /// events), not O(log)).
    pub async fn load(store: Arc<EventStore>) -> Result<Arc<Self>, AppError> {
        let persisted = Persisted::<TokenIndex>::refresh(&store).await?;
        let followed = persisted.position();
        let by_hash = persisted
            .state
            .0
            .into_values()
            .map(|(hash, grant)| Ok((parse_hash(&hash)?, grant)))
            .collect::<Result<_, AppError>>()?;
        Ok(Arc::new(Self {
            store,
            by_hash: RwLock::new(by_hash),
            followed: tokio::sync::Mutex::new(followed),
        }))
    }

    /// Folds the token events recorded since the last call (by any node) into the index: a
    /// token issued elsewhere starts working here, one revoked elsewhere stops. Returns how
    /// many events it folded. Events this node recorded itself fold to what it already has.
    pub async fn follow(&self) -> Result<usize, AppError> {
        let mut followed = self.followed.lock().await;
        let events = self
            .store
            .read_kind_since(TOKEN_STREAM_TYPE, *followed)
            .await?;
        for e in &events {
            match Change::of(e)? {
                Change::Issued(hash, grant) => {
                    self.write().insert(parse_hash(&hash)?, grant);
                }
                Change::Revoked(id) => self.write().retain(|_, g| g.token_id != id),
            }
            *followed = e.position;
        }
        Ok(events.len())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<[u8; 32], Grant>> {
        self.by_hash
            .write()
            .expect("token index lock is never poisoned")
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
        let stream = StreamId::new(&business, TOKEN_STREAM_TYPE, token_id);
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

/// A stored token hash (hex of 32 bytes).
fn parse_hash(hex_hash: &str) -> Result<[u8; 32], AppError> {
    hex::decode(hex_hash)
        .ok()
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .ok_or(AppError::Corrupt("token hash"))
}

/// The live tokens by id: (SHA-256 of the token in hex, grant). Hashes only: a token is never
/// stored. Persisted as the `tokens` projection.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct TokenIndex(pub BTreeMap<String, (String, Grant)>);

impl Fold for TokenIndex {
    const NAME: &'static str = "tokens";
    const VERSION: u64 = 1;

    fn wants(header: &sealpost_adapters::store::RowHeader) -> bool {
        header.stream.kind == TOKEN_STREAM_TYPE
    }

    fn apply(&mut self, e: &OpenedEvent) -> Result<(), sealpost_adapters::store::StoreError> {
        match Change::of(e)? {
            Change::Issued(hash, grant) => {
                self.0.insert(grant.token_id.clone(), (hash, grant));
            }
            Change::Revoked(id) => {
                self.0.remove(&id);
            }
        }
        Ok(())
    }
}

/// What a token event changes in an index of live tokens.
enum Change {
    /// A token (its hash in hex) now stands for a grant.
    Issued(String, Grant),
    /// The token with this id stopped working.
    Revoked(String),
}

impl Change {
    fn of(e: &OpenedEvent) -> Result<Self, sealpost_adapters::store::StoreError> {
        Ok(match e.decode::<TokenEvent>()? {
            TokenEvent::TokenIssued {
                token_id,
                hash,
                principal,
                scopes,
                ..
            } => Change::Issued(
                hash,
                Grant {
                    token_id,
                    principal,
                    scopes,
                },
            ),
            TokenEvent::TokenRevoked { .. } => Change::Revoked(e.header.stream.id.clone()),
        })
    }
}
