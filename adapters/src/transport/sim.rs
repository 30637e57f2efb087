//! The in-process simulated network and consumer devices.
//!
//! [`SimNetwork`] keeps the key directory and one queue per phone number, and records every
//! envelope it routes (so a test can prove it never carried plaintext). [`SimDevice`] is a
//! consumer's phone: its own Signal identity and sessions, decrypting what it receives,
//! answering `delivered` and optionally `read` receipts, sending messages, recognising
//! duplicates by id.

use super::integrity::{BusinessIntegrity, Report};
use super::{Address, Envelope, IntegritySink, Payload, Receipt, Transport, TransportError};
use crate::clock::{Clock, SystemClock};
use crate::signal::{Account, Bundle, DirectoryEntry, Peer, Session, SignalEngine, SignalError};
use async_trait::async_trait;
use sealpost_domain::aggregates::business::MessagingLimitTier;
use sealpost_domain::integrity::IntegrityEvent;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

#[derive(Debug, Default)]
struct Net {
    directory: HashMap<String, DirectoryEntry>,
    inboxes: HashMap<String, VecDeque<Envelope>>,
    routed: Vec<Envelope>,
    integrity: HashMap<String, BusinessIntegrity>,
}

/// The simulated network. Cloning shares it.
#[derive(Debug, Clone)]
pub struct SimNetwork {
    net: Arc<Mutex<Net>>,
    clock: Arc<dyn Clock>,
    sink: Option<Arc<dyn IntegritySink>>,
}

impl Default for SimNetwork {
    fn default() -> Self {
        Self {
            net: Arc::default(),
            clock: Arc::new(SystemClock),
            sink: None,
        }
    }
}

impl SimNetwork {
    /// An empty network on the system clock, keeping its integrity signals to itself.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty network on `clock` that records its integrity signals in `sink`.
    pub fn with(clock: Arc<dyn Clock>, sink: Option<Arc<dyn IntegritySink>>) -> Self {
        Self {
            net: Arc::default(),
            clock,
            sink,
        }
    }

    /// The id of the signed prekey the directory hands out for `handle`.
    pub fn signed_prekey_id(&self, handle: &str) -> Option<u32> {
        self.lock().directory.get(handle).map(|e| e.signed_prekey.0)
    }

    /// The integrity state of a business number, if it is one.
    pub fn integrity(&self, business: &str) -> Option<BusinessIntegrity> {
        self.lock().integrity.get(business).cloned()
    }

    async fn emit(&self, business: &str, events: Vec<IntegrityEvent>) {
        if let (Some(sink), false) = (&self.sink, events.is_empty()) {
            sink.record(business, events).await;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Net> {
        self.net
            .lock()
            .expect("network lock is never poisoned: no panics inside")
    }

    /// Every envelope routed so far, in order.
    pub fn routed(&self) -> Vec<Envelope> {
        self.lock().routed.clone()
    }

    /// Envelopes waiting for `handle`.
    pub fn queued(&self, handle: &str) -> usize {
        self.lock().inboxes.get(handle).map_or(0, VecDeque::len)
    }
}

#[async_trait]
impl Transport for SimNetwork {
    async fn register_business(
        &self,
        handle: &str,
        tier: MessagingLimitTier,
    ) -> Result<(), TransportError> {
        self.lock()
            .integrity
            .entry(handle.to_owned())
            .or_insert_with(|| BusinessIntegrity::new(tier));
        Ok(())
    }

    async fn publish(&self, handle: &str, entry: DirectoryEntry) -> Result<(), TransportError> {
        self.lock().directory.insert(handle.to_owned(), entry);
        Ok(())
    }

    async fn add_prekeys(
        &self,
        handle: &str,
        prekeys: Vec<(u32, Vec<u8>)>,
    ) -> Result<(), TransportError> {
        let mut net = self.lock();
        let entry = net
            .directory
            .get_mut(handle)
            .ok_or(TransportError::UnknownRecipient)?;
        entry.one_time.extend(prekeys);
        Ok(())
    }

    async fn update_signed_prekey(
        &self,
        handle: &str,
        signed: (u32, Vec<u8>, Vec<u8>),
    ) -> Result<(), TransportError> {
        let mut net = self.lock();
        let entry = net
            .directory
            .get_mut(handle)
            .ok_or(TransportError::UnknownRecipient)?;
        entry.signed_prekey = signed;
        Ok(())
    }

    async fn prekeys_left(&self, handle: &str) -> Result<usize, TransportError> {
        Ok(self
            .lock()
            .directory
            .get(handle)
            .map_or(0, |e| e.one_time.len()))
    }

    async fn fetch_bundle(
        &self,
        handle: &str,
        device: u8,
    ) -> Result<Option<Bundle>, TransportError> {
        Ok(self
            .lock()
            .directory
            .get_mut(handle)
            .map(|e| e.take_bundle(device)))
    }

    async fn send(&self, envelope: Envelope) -> Result<(), TransportError> {
        let now = self.clock.now();
        let (result, business, events) = {
            let mut net = self.lock();
            if !net.directory.contains_key(&envelope.to.handle) {
                return Err(TransportError::UnknownRecipient);
            }
            let (from, to) = (envelope.from.handle.clone(), envelope.to.handle.clone());
            let mut events = Vec::new();
            let mut result = Ok(());
            let mut business = to.clone();
            let mut deliver = true;
            if let Some(b) = net.integrity.get_mut(&to) {
                match envelope.payload {
                    Payload::Message { .. } => b.on_inbound(&from, now),
                    Payload::SpamReport => {
                        events = b.on_report(Report::Spam, now);
                        deliver = false;
                    }
                    Payload::Block => {
                        events = b.on_report(Report::Block, now);
                        deliver = false;
                    }
                    _ => {}
                }
            } else if let (Some(b), Payload::Message { .. }) =
                (net.integrity.get_mut(&from), &envelope.payload)
            {
                business = from.clone();
                let (r, e) = b.on_outbound(&to, now);
                events = e;
                if r.is_err() {
                    result = Err(TransportError::Throttled);
                    deliver = false;
                }
            }
            net.routed.push(envelope.clone());
            if deliver {
                net.inboxes.entry(to).or_default().push_back(envelope);
            }
            (result, business, events)
        };
        self.emit(&business, events).await;
        result
    }

    async fn take_inbox(&self, handle: &str, max: usize) -> Result<Vec<Envelope>, TransportError> {
        let mut net = self.lock();
        let Some(q) = net.inboxes.get_mut(handle) else {
            return Ok(vec![]);
        };
        let n = max.min(q.len());
        Ok(q.drain(..n).collect())
    }
}

/// What a device received and decrypted itself.
#[derive(Clone, PartialEq, Eq)]
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

#[derive(Debug, Default)]
struct Link {
    session: Option<Session>,
    identity: Option<Vec<u8>>,
}

/// A simulated consumer device.
#[derive(Debug)]
pub struct SimDevice {
    engine: Arc<dyn SignalEngine>,
    account: Account,
    me: Address,
    links: BTreeMap<String, Link>,
    seen: HashSet<String>,
    inbox: Vec<Received>,
    /// What the device sent, by envelope id, so it can send it again on a resend request.
    sent: BTreeMap<String, Vec<u8>>,
    /// Envelope ids of the device's own messages the business marked read.
    read_by_business: BTreeSet<String>,
    /// Whether the device answers `read` after `delivered`.
    pub reads: bool,
    /// Whether the device is offline (its queue grows; it takes nothing).
    pub offline: bool,
    decrypt_failures: u64,
}

impl SimDevice {
    /// A device for `handle` (a consumer number's digits), registered with the network.
    pub async fn join(
        engine: Arc<dyn SignalEngine>,
        network: &dyn Transport,
        handle: &str,
    ) -> Result<Self, SignalError> {
        let account = engine.new_account(rand::random::<u32>(), 20, SystemTime::now())?;
        let entry = engine.directory_entry(&account)?;
        network
            .publish(handle, entry)
            .await
            .map_err(|_| SignalError::InvalidBundle)?;
        Ok(Self {
            engine,
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
        })
    }

    /// The device's address.
    pub fn address(&self) -> &Address {
        &self.me
    }

    /// Everything the device decrypted, each message once.
    pub fn inbox(&self) -> &[Received] {
        &self.inbox
    }

    /// The device's own messages (by the id it sent them under) that the business read.
    pub fn read_by_business(&self) -> &BTreeSet<String> {
        &self.read_by_business
    }

    /// Messages that could not be decrypted.
    pub fn decrypt_failures(&self) -> u64 {
        self.decrypt_failures
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
        self.sent.insert(id.to_owned(), plaintext.to_vec());
        let link = self.links.entry(business.to_owned()).or_default();
        let bundle = if link.session.is_none() {
            network.fetch_bundle(business, 1).await?
        } else {
            None
        };
        let out = self
            .engine
            .encrypt(
                &self.account,
                &peer,
                link.session.as_ref(),
                bundle.as_ref(),
                link.identity.as_deref(),
                plaintext,
                SystemTime::now(),
            )
            .map_err(|e| TransportError::Unavailable(e.to_string()))?;
        link.session = Some(out.session);
        link.identity = Some(out.peer_identity);
        let envelope = Envelope {
            id: id.to_owned(),
            from: self.me.clone(),
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
            from: self.me.clone(),
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
            from: self.me.clone(),
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
        self.account = self
            .engine
            .new_account(rand::random::<u32>(), 20, SystemTime::now())?;
        let entry = self.engine.directory_entry(&self.account)?;
        network
            .publish(&self.me.handle, entry)
            .await
            .map_err(|_| SignalError::InvalidBundle)?;
        self.links.clear();
        Ok(())
    }

    /// Processes what waits for the device: decrypts messages (each id once), answers receipts.
    /// Returns how many new messages it decrypted.
    pub async fn step(&mut self, network: &dyn Transport) -> Result<usize, TransportError> {
        if self.offline {
            return Ok(0);
        }
        let mut new = 0;
        for envelope in network.take_inbox(&self.me.handle, usize::MAX).await? {
            if let Payload::Resend { of } = &envelope.payload {
                // Start over with a fresh session and send the message again under a new id.
                if let Some(plaintext) = self.sent.get(of).cloned() {
                    self.links.remove(&envelope.from.handle);
                    self.send(
                        network,
                        &envelope.from.handle,
                        &format!("{of}-resent"),
                        &plaintext,
                    )
                    .await?;
                }
                continue;
            }
            if let Payload::Receipt {
                receipt: Receipt::Read,
                of,
            } = &envelope.payload
            {
                if self.sent.contains_key(of) {
                    self.read_by_business.insert(of.clone());
                }
                continue;
            }
            let Payload::Message { ciphertext } = &envelope.payload else {
                continue;
            };
            let peer = Peer {
                name: envelope.from.handle.clone(),
                device: envelope.from.device,
            };
            let link = self.links.entry(envelope.from.handle.clone()).or_default();
            match self.engine.decrypt(
                &mut self.account,
                &peer,
                link.session.as_ref(),
                link.identity.as_deref(),
                ciphertext,
            ) {
                Ok(d) => {
                    link.session = Some(d.session);
                    link.identity = Some(d.peer_identity);
                    if self.seen.insert(envelope.id.clone()) {
                        self.inbox.push(Received {
                            id: envelope.id.clone(),
                            from: envelope.from.handle.clone(),
                            plaintext: d.plaintext,
                        });
                        new += 1;
                    }
                }
                Err(SignalError::Duplicate) => {}
                Err(_) => {
                    self.decrypt_failures += 1;
                    continue;
                }
            }
            let mut receipts = vec![Receipt::Delivered];
            if self.reads {
                receipts.push(Receipt::Read);
            }
            for receipt in receipts {
                network
                    .send(Envelope {
                        id: format!("rcpt-{}", uuid::Uuid::new_v4()),
                        from: self.me.clone(),
                        to: envelope.from.clone(),
                        payload: Payload::Receipt {
                            receipt,
                            of: envelope.id.clone(),
                        },
                    })
                    .await?;
            }
        }
        Ok(new)
    }
}
