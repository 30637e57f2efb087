//! The in-process simulated network and consumer devices.
//!
//! [`SimNetwork`] keeps the key directory and one queue per phone number, and records every
//! envelope it routes (so a test can prove it never carried plaintext). [`SimDevice`] is a
//! consumer's phone: its own Signal identity and sessions, decrypting what it receives,
//! answering `delivered` and optionally `read` receipts, sending messages, recognising
//! duplicates by id.

use super::integrity::{BusinessIntegrity, Report};
use super::world::{Kind, WorldError, WorldStore};
use super::{Address, Envelope, IntegritySink, Payload, Receipt, Transport, TransportError};
use crate::clock::{Clock, SystemClock};
use crate::signal::{Account, Bundle, DirectoryEntry, Peer, Session, SignalEngine, SignalError};
use async_trait::async_trait;
use sealpost_domain::aggregates::business::MessagingLimitTier;
use sealpost_domain::integrity::IntegrityEvent;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

/// How long a taken inbox envelope stays invisible to other takers before it is handed out
/// again unless acknowledged (the receiver crashed or failed before recording it).
pub const INBOX_LEASE: Duration = Duration::from_secs(30);
/// Envelopes a phone takes in one step.
pub const DEVICE_CHUNK: usize = 256;

/// An envelope waiting for its recipient; `leased_until` is set while a taker holds it.
#[derive(Debug)]
struct Queued {
    row: u64,
    envelope: Envelope,
    leased_until: Option<Instant>,
}

#[derive(Debug, Default)]
struct Net {
    directory: HashMap<String, DirectoryEntry>,
    inboxes: HashMap<String, VecDeque<Queued>>,
    routed: Vec<Envelope>,
    integrity: HashMap<String, BusinessIntegrity>,
    next_row: u64,
}

/// The simulated network. Cloning shares it. Opened with a [`WorldStore`] it keeps its
/// directory, queues and integrity state across restarts; otherwise it lives in memory.
#[derive(Debug, Clone)]
pub struct SimNetwork {
    net: Arc<Mutex<Net>>,
    clock: Arc<dyn Clock>,
    sink: Option<Arc<dyn IntegritySink>>,
    store: Option<Arc<WorldStore>>,
    /// Orders writes to the store as the state changed in memory.
    writes: Arc<tokio::sync::Mutex<()>>,
}

impl Default for SimNetwork {
    fn default() -> Self {
        Self {
            net: Arc::default(),
            clock: Arc::new(SystemClock),
            sink: None,
            store: None,
            writes: Arc::default(),
        }
    }
}

fn unavailable(e: WorldError) -> TransportError {
    TransportError::Unavailable(e.to_string())
}

impl SimNetwork {
    /// An empty network on the system clock, keeping its integrity signals to itself.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty network on `clock` that records its integrity signals in `sink`.
    pub fn with(clock: Arc<dyn Clock>, sink: Option<Arc<dyn IntegritySink>>) -> Self {
        Self {
            clock,
            sink,
            ..Self::default()
        }
    }

    /// The network kept in `store`: what it held when the process stopped (directory, queued
    /// envelopes, integrity state) is there again; every change is written before it counts.
    pub async fn open(
        clock: Arc<dyn Clock>,
        sink: Option<Arc<dyn IntegritySink>>,
        store: Arc<WorldStore>,
    ) -> Result<Self, WorldError> {
        let mut net = Net::default();
        for (handle, entry) in store
            .all::<(String, DirectoryEntry)>(Kind::Directory)
            .await?
        {
            net.directory.insert(handle, entry);
        }
        for (handle, state) in store
            .all::<(String, BusinessIntegrity)>(Kind::Integrity)
            .await?
        {
            net.integrity.insert(handle, state);
        }
        for (row, envelope) in store.queued::<Envelope>().await? {
            net.next_row = net.next_row.max(row + 1);
            net.inboxes
                .entry(envelope.to.handle.clone())
                .or_default()
                .push_back(Queued {
                    row,
                    envelope,
                    leased_until: None,
                });
        }
        Ok(Self {
            net: Arc::new(Mutex::new(net)),
            clock,
            sink,
            store: Some(store),
            writes: Arc::default(),
        })
    }

    /// The store the network keeps its state in, if any (devices keep theirs there too).
    pub fn world(&self) -> Option<&Arc<WorldStore>> {
        self.store.as_ref()
    }

    /// Writes `handle`'s directory entry as it is now.
    async fn save_entry(&self, handle: &str) -> Result<(), TransportError> {
        let Some(store) = &self.store else {
            return Ok(());
        };
        let _order = self.writes.lock().await;
        let entry = self.lock().directory.get(handle).cloned();
        if let Some(entry) = entry {
            store
                .put(Kind::Directory, handle, &(handle, entry))
                .await
                .map_err(unavailable)?;
        }
        Ok(())
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
        let fresh = {
            let mut net = self.lock();
            let fresh = !net.integrity.contains_key(handle);
            net.integrity
                .entry(handle.to_owned())
                .or_insert_with(|| BusinessIntegrity::new(tier));
            fresh
        };
        if let (Some(store), true) = (&self.store, fresh) {
            let _order = self.writes.lock().await;
            let state = self.lock().integrity.get(handle).cloned();
            store
                .put(Kind::Integrity, handle, &(handle, state))
                .await
                .map_err(unavailable)?;
        }
        Ok(())
    }

    async fn publish(&self, handle: &str, entry: DirectoryEntry) -> Result<(), TransportError> {
        self.lock().directory.insert(handle.to_owned(), entry);
        self.save_entry(handle).await
    }

    async fn add_prekeys(
        &self,
        handle: &str,
        prekeys: Vec<(u32, Vec<u8>)>,
    ) -> Result<(), TransportError> {
        self.lock()
            .directory
            .get_mut(handle)
            .ok_or(TransportError::UnknownRecipient)?
            .one_time
            .extend(prekeys);
        self.save_entry(handle).await
    }

    async fn update_signed_prekey(
        &self,
        handle: &str,
        signed: (u32, Vec<u8>, Vec<u8>),
    ) -> Result<(), TransportError> {
        self.lock()
            .directory
            .get_mut(handle)
            .ok_or(TransportError::UnknownRecipient)?
            .signed_prekey = signed;
        self.save_entry(handle).await
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
        let bundle = self
            .lock()
            .directory
            .get_mut(handle)
            .map(|e| e.take_bundle(device));
        if bundle.as_ref().is_some_and(|b| b.one_time.is_some()) {
            // A one-time prekey is handed out at most once, restarts included.
            self.save_entry(handle).await?;
        }
        Ok(bundle)
    }

    async fn send(&self, envelope: Envelope) -> Result<(), TransportError> {
        let now = self.clock.now();
        // Decided in memory, written before it counts, queued only once written: an envelope
        // the transport accepted survives a crash, and none is handed out before it is kept.
        let _order = self.writes.lock().await;
        let (result, business, events, deliver, row, integrity) = {
            let mut net = self.lock();
            if !net.directory.contains_key(&envelope.to.handle) {
                return Err(TransportError::UnknownRecipient);
            }
            let (from, to) = (envelope.from.handle.clone(), envelope.to.handle.clone());
            let mut events = Vec::new();
            let mut result = Ok(());
            let mut business = None;
            let mut deliver = true;
            if let Some(b) = net.integrity.get_mut(&to) {
                business = Some(to.clone());
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
                    _ => business = None,
                }
            } else if let (Some(b), Payload::Message { .. }) =
                (net.integrity.get_mut(&from), &envelope.payload)
            {
                business = Some(from.clone());
                let (r, e) = b.on_outbound(&to, now);
                events = e;
                if r.is_err() {
                    result = Err(TransportError::Throttled);
                    deliver = false;
                }
            }
            net.routed.push(envelope.clone());
            let row = net.next_row;
            if deliver {
                net.next_row += 1;
            }
            let integrity = business
                .as_ref()
                .and_then(|b| net.integrity.get(b).cloned().map(|s| (b.clone(), s)));
            (result, business, events, deliver, row, integrity)
        };
        if let Some(store) = &self.store {
            if let Some((handle, state)) = &integrity {
                store
                    .put(Kind::Integrity, handle, &(handle, state))
                    .await
                    .map_err(unavailable)?;
            }
            if deliver {
                store.enqueue(row, &envelope).await.map_err(unavailable)?;
            }
        }
        if deliver {
            self.lock()
                .inboxes
                .entry(envelope.to.handle.clone())
                .or_default()
                .push_back(Queued {
                    row,
                    envelope,
                    leased_until: None,
                });
        }
        if let Some(business) = business {
            self.emit(&business, events).await;
        }
        result
    }

    async fn take_inbox(&self, handle: &str, max: usize) -> Result<Vec<Envelope>, TransportError> {
        let mut net = self.lock();
        let Some(q) = net.inboxes.get_mut(handle) else {
            return Ok(vec![]);
        };
        let now = Instant::now();
        let mut out = Vec::new();
        for item in q.iter_mut() {
            if out.len() >= max {
                break;
            }
            if item.leased_until.is_some_and(|until| until > now) {
                continue;
            }
            item.leased_until = Some(now + INBOX_LEASE);
            out.push(item.envelope.clone());
        }
        Ok(out)
    }

    async fn ack(&self, handle: &str, ids: &[String]) -> Result<(), TransportError> {
        if ids.is_empty() {
            return Ok(());
        }
        let _order = self.writes.lock().await;
        let rows: Vec<u64> = {
            let mut net = self.lock();
            let Some(q) = net.inboxes.get_mut(handle) else {
                return Ok(());
            };
            let ids: HashSet<&str> = ids.iter().map(String::as_str).collect();
            let mut rows = Vec::new();
            q.retain(|item| {
                let done = item.leased_until.is_some() && ids.contains(item.envelope.id.as_str());
                if done {
                    rows.push(item.row);
                }
                !done
            });
            rows
        };
        if let Some(store) = &self.store {
            store.dequeue(&rows).await.map_err(unavailable)?;
        }
        Ok(())
    }
}

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
        let account = engine.new_account(rand::random::<u32>(), 20, SystemTime::now())?;
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
                SystemTime::now(),
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
                .new_account(rand::random::<u32>(), 20, SystemTime::now())?;
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
