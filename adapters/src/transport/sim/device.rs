//! [`SimDevice`], a simulated consumer's phone: its own Signal identity and sessions, decrypting
//! what it receives, answering receipts, sending, and recognising duplicates by id.

use super::unavailable;
use crate::clock::{Clock as _, SystemClock};
use crate::signal::{Account, Peer, Session, SignalEngine, SignalError};
use crate::transport::world::{Kind, WorldError, WorldStore};
use crate::transport::{Address, Envelope, Payload, Receipt, Transport, TransportError};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;

/// Envelopes a phone takes in one step.
pub const DEVICE_CHUNK: usize = 256;

/// What a device received and decrypted itself.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Received {
    /// The message id.
    pub id: String,
    /// Who sent it (a business number's digits).
    pub from: String,
    /// The plaintext.
    pub plaintext: Vec<u8>,
}

impl std::fmt::Debug for Received {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Received({}, {} bytes)", self.id, self.plaintext.len())
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Link {
    session: Option<Session>,
    identity: Option<Vec<u8>>,
}

/// What a phone keeps (sealed in the world store when there is one).
#[derive(Debug, Serialize, Deserialize)]
struct DeviceState {
    account: Account,
    me: Address,
    links: BTreeMap<String, Link>,
    seen: HashSet<String>,
    inbox: Vec<Received>,
    /// What the device sent, by envelope id, so it can send it again on a resend request.
    sent: BTreeMap<String, Vec<u8>>,
    /// Envelope ids of the device's own messages the business marked read.
    read_by_business: BTreeSet<String>,
    reads: bool,
    offline: bool,
    decrypt_failures: u64,
}

/// A simulated consumer device.
#[derive(Debug)]
pub struct SimDevice {
    engine: Arc<dyn SignalEngine>,
    store: Option<Arc<WorldStore>>,
    state: DeviceState,
    /// Whether the device answers `read` after `delivered`.
    pub reads: bool,
    /// Whether the device is offline (its queue grows; it takes nothing).
    pub offline: bool,
}

impl SimDevice {
    /// A device for `handle` (a consumer number's digits), registered with the network; kept
    /// in the network's world store, if it has one.
    pub async fn join(
        engine: Arc<dyn SignalEngine>,
        network: &dyn Transport,
        handle: &str,
    ) -> Result<Self, SignalError> {
        let account = engine.new_account(rand::random::<u32>(), 20, SystemClock.now())?;
        let entry = engine.directory_entry(&account)?;
        network
            .publish(handle, entry)
            .await
            .map_err(|_| SignalError::InvalidBundle)?;
        Ok(Self {
            engine,
            store: None,
            state: DeviceState {
                account,
                me: Address {
                    handle: handle.to_owned(),
                    device: 1,
                },
                links: BTreeMap::new(),
                seen: HashSet::new(),
                inbox: Vec::new(),
                sent: BTreeMap::new(),
                read_by_business: BTreeSet::new(),
                reads: true,
                offline: false,
                decrypt_failures: 0,
            },
            reads: true,
            offline: false,
        })
    }

    /// Keeps the device in `store` from now on (and writes it there now).
    pub async fn kept_in(mut self, store: Arc<WorldStore>) -> Result<Self, WorldError> {
        self.store = Some(store);
        self.save().await?;
        Ok(self)
    }

    /// Every device kept in `store`, as it was last saved.
    pub async fn load_all(
        engine: Arc<dyn SignalEngine>,
        store: &Arc<WorldStore>,
    ) -> Result<Vec<Self>, WorldError> {
        Ok(store
            .all::<DeviceState>(Kind::Device)
            .await?
            .into_iter()
            .map(|state| Self {
                engine: engine.clone(),
                store: Some(store.clone()),
                reads: state.reads,
                offline: state.offline,
                state,
            })
            .collect())
    }

    /// Writes the device's state to its store (nothing without one).
    pub async fn save(&mut self) -> Result<(), WorldError> {
        self.state.reads = self.reads;
        self.state.offline = self.offline;
        if let Some(store) = &self.store {
            store
                .put(Kind::Device, &self.state.me.handle, &self.state)
                .await?;
        }
        Ok(())
    }

    /// The device's address.
    pub fn address(&self) -> &Address {
        &self.state.me
    }

    /// Everything the device decrypted, each message once.
    pub fn inbox(&self) -> &[Received] {
        &self.state.inbox
    }

    /// The device's own messages (by the id it sent them under) that the business read.
    pub fn read_by_business(&self) -> &BTreeSet<String> {
        &self.state.read_by_business
    }

    /// Messages that could not be decrypted.
    pub fn decrypt_failures(&self) -> u64 {
        self.state.decrypt_failures
    }

    /// Encrypts `plaintext` for a business number and sends it with id `id`.
    pub async fn send(
        &mut self,
        network: &dyn Transport,
        business: &str,
        id: &str,
        plaintext: &[u8],
    ) -> Result<(), TransportError> {
        let peer = Peer {
            name: business.to_owned(),
            device: 1,
        };
        self.state.sent.insert(id.to_owned(), plaintext.to_vec());
        let link = self.state.links.entry(business.to_owned()).or_default();
        let bundle = if link.session.is_none() {
            network.fetch_bundle(business, 1).await?
        } else {
            None
        };
        let out = self
            .engine
            .encrypt(
                &self.state.account,
                &peer,
                link.session.as_ref(),
                bundle.as_ref(),
                link.identity.as_deref(),
                plaintext,
                SystemClock.now(),
            )
            .map_err(|e| TransportError::Unavailable(e.to_string()))?;
        link.session = Some(out.session);
        link.identity = Some(out.peer_identity);
        // Kept before it leaves: a session that moved on is never rolled back by a crash.
        self.save().await.map_err(unavailable)?;
        let envelope = Envelope {
            id: id.to_owned(),
            from: self.state.me.clone(),
            to: Address {
                handle: business.to_owned(),
                device: 1,
            },
            payload: Payload::Message {
                ciphertext: out.ciphertext,
            },
        };
        network.send(envelope).await
    }

    /// Asks a business for message `of` again.
    pub async fn request_retransmission(
        &self,
        network: &dyn Transport,
        business: &str,
        of: &str,
    ) -> Result<(), TransportError> {
        let envelope = Envelope {
            id: format!("rtx-{}", uuid::Uuid::new_v4()),
            from: self.state.me.clone(),
            to: Address {
                handle: business.to_owned(),
                device: 1,
            },
            payload: Payload::Retransmit { of: of.to_owned() },
        };
        network.send(envelope).await
    }

    /// Reports a business as spam (`block: false`) or blocks it.
    pub async fn report(
        &self,
        network: &dyn Transport,
        business: &str,
        block: bool,
    ) -> Result<(), TransportError> {
        let envelope = Envelope {
            id: format!("rpt-{}", uuid::Uuid::new_v4()),
            from: self.state.me.clone(),
            to: Address {
                handle: business.to_owned(),
                device: 1,
            },
            payload: if block {
                Payload::Block
            } else {
                Payload::SpamReport
            },
        };
        network.send(envelope).await
    }

    /// Takes a new identity and forgets every session, as a re-installed app would (same
    /// number, new keys); what it already showed stays in its inbox.
    pub async fn reinstall(&mut self, network: &dyn Transport) -> Result<(), SignalError> {
        self.state.account =
            self.engine
                .new_account(rand::random::<u32>(), 20, SystemClock.now())?;
        let entry = self.engine.directory_entry(&self.state.account)?;
        network
            .publish(&self.state.me.handle, entry)
            .await
            .map_err(|_| SignalError::InvalidBundle)?;
        self.state.links.clear();
        self.save().await.map_err(|_| SignalError::CorruptState)?;
        Ok(())
    }

    /// Processes what waits for the device: decrypts messages (each id once), answers receipts.
    /// Returns how many new messages it decrypted.
    pub async fn step(&mut self, network: &dyn Transport) -> Result<usize, TransportError> {
        if self.offline {
            return Ok(0);
        }
        let handle = self.state.me.handle.clone();
        let envelopes = network.take_inbox(&handle, DEVICE_CHUNK).await?;
        if envelopes.is_empty() {
            return Ok(0);
        }
        let mut new = 0;
        let mut taken = Vec::with_capacity(envelopes.len());
        let mut receipts = Vec::new();
        let mut resends = Vec::new();
        for envelope in envelopes {
            taken.push(envelope.id.clone());
            match &envelope.payload {
                Payload::Resend { of } => {
                    // Start over with a fresh session and send the message again under a new id.
                    if let Some(plaintext) = self.state.sent.get(of).cloned() {
                        resends.push((
                            envelope.from.handle.clone(),
                            format!("{of}-resent"),
                            plaintext,
                        ));
                    }
                }
                Payload::Receipt {
                    receipt: Receipt::Read,
                    of,
                } if self.state.sent.contains_key(of) => {
                    self.state.read_by_business.insert(of.clone());
                }
                Payload::Message { ciphertext } if self.open(&envelope, ciphertext, &mut new) => {
                    let kinds: &[Receipt] = if self.reads {
                        &[Receipt::Delivered, Receipt::Read]
                    } else {
                        &[Receipt::Delivered]
                    };
                    receipts.extend(kinds.iter().map(|receipt| Envelope {
                        id: format!("rcpt-{}", uuid::Uuid::new_v4()),
                        from: self.state.me.clone(),
                        to: envelope.from.clone(),
                        payload: Payload::Receipt {
                            receipt: *receipt,
                            of: envelope.id.clone(),
                        },
                    }));
                }
                _ => {}
            }
        }
        // What the phone showed is kept before anything leaves it or is acknowledged: a crash
        // from here on redelivers, and a redelivered message is recognised by its id.
        self.save().await.map_err(unavailable)?;
        for receipt in receipts {
            network.send(receipt).await?;
        }
        for (to, id, plaintext) in resends {
            self.state.links.remove(&to);
            self.send(network, &to, &id, &plaintext).await?;
        }
        network.ack(&handle, &taken).await?;
        Ok(new)
    }

    /// Decrypts one message; whether it is to be answered with receipts (new or a duplicate).
    fn open(&mut self, envelope: &Envelope, ciphertext: &[u8], new: &mut usize) -> bool {
        let peer = Peer {
            name: envelope.from.handle.clone(),
            device: envelope.from.device,
        };
        let link = self
            .state
            .links
            .entry(envelope.from.handle.clone())
            .or_default();
        match self.engine.decrypt(
            &mut self.state.account,
            &peer,
            link.session.as_ref(),
            link.identity.as_deref(),
            ciphertext,
        ) {
            Ok(d) => {
                link.session = Some(d.session);
                link.identity = Some(d.peer_identity);
                if self.state.seen.insert(envelope.id.clone()) {
                    self.state.inbox.push(Received {
                        id: envelope.id.clone(),
                        from: envelope.from.handle.clone(),
                        plaintext: d.plaintext,
                    });
                    *new += 1;
                }
                true
            }
            Err(SignalError::Duplicate) => true,
            Err(_) => {
                self.state.decrypt_failures += 1;
                false
            }
        }
    }
}
