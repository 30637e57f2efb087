//! The in-process simulated network and consumer devices.
//!
//! [`SimNetwork`] keeps the key directory and one queue per phone number, and records every
//! envelope it routes (so a test can prove it never carried plaintext). [`SimDevice`] is a
//! consumer's phone: its own Signal identity and sessions, decrypting what it receives,
//! answering `delivered` and optionally `read` receipts, sending messages, recognising
//! duplicates by id.

mod device;

pub use device::{Received, SimDevice, DEVICE_CHUNK};

use super::integrity::{BusinessIntegrity, Report};
use super::world::{Kind, WorldError, WorldStore};
use super::{Envelope, IntegritySink, Payload, Transport, TransportError};
use crate::clock::{Clock, SystemClock};
use crate::signal::{Bundle, DirectoryEntry};
use async_trait::async_trait;
use sealpost_domain::aggregates::business::MessagingLimitTier;
use sealpost_domain::integrity::IntegrityEvent;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a taken inbox envelope stays invisible to other takers before it is handed out
/// again unless acknowledged (the receiver crashed or failed before recording it).
pub const INBOX_LEASE: Duration = Duration::from_secs(30);

/// An envelope waiting for its recipient; `leased_until` is set while a taker holds it. One not
/// yet `kept` (its write not yet committed) holds its place in the queue but is not handed out.
#[derive(Debug)]
struct Queued {
    row: u64,
    envelope: Envelope,
    leased_until: Option<Instant>,
    kept: bool,
}

#[derive(Debug, Default)]
struct Net {
    directory: HashMap<String, DirectoryEntry>,
    inboxes: HashMap<String, VecDeque<Queued>>,
    /// Every envelope routed, in order, for a network that lives in memory (tests, the demo);
    /// `None` for one kept in a world store, which runs for as long as `serve` does.
    routed: Option<Vec<Envelope>>,
    integrity: HashMap<String, BusinessIntegrity>,
    next_row: u64,
}

impl Net {
    /// Queues `envelope` (stored as `row`, or to be) for its recipient, not leased.
    fn enqueue(&mut self, row: u64, envelope: Envelope, kept: bool) {
        let queued = Queued {
            row,
            envelope,
            leased_until: None,
            kept,
        };
        let inbox = self.inboxes.entry(queued.envelope.to.handle.clone());
        inbox.or_default().push_back(queued);
    }

    /// Marks `handle`'s envelope of `row` kept (its write committed), or drops it (it failed).
    fn settle(&mut self, handle: &str, row: u64, kept: bool) {
        let Some(q) = self.inboxes.get_mut(handle) else {
            return;
        };
        if let Some(at) = q.iter().rposition(|item| item.row == row) {
            if kept {
                q[at].kept = true;
            } else {
                q.remove(at);
            }
        }
    }
}

/// The simulated network. Cloning shares it. Opened with a [`WorldStore`] it keeps its
/// directory, queues and integrity state across restarts; otherwise it lives in memory.
#[derive(Debug, Clone)]
pub struct SimNetwork {
    net: Arc<Mutex<Net>>,
    clock: Arc<dyn Clock>,
    sink: Option<Arc<dyn IntegritySink>>,
    /// Writes are submitted to it under the network's lock, so they reach the file in the order
    /// the state changed in memory.
    store: Option<Arc<WorldStore>>,
}

impl Default for SimNetwork {
    fn default() -> Self {
        let net = Net {
            routed: Some(Vec::new()),
            ..Net::default()
        };
        Self {
            net: Arc::new(Mutex::new(net)),
            clock: Arc::new(SystemClock),
            sink: None,
            store: None,
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
            net.enqueue(row, envelope, true);
        }
        Ok(Self {
            net: Arc::new(Mutex::new(net)),
            clock,
            sink,
            store: Some(store),
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
        let pending = {
            let net = self.lock();
            let Some(entry) = net.directory.get(handle) else {
                return Ok(());
            };
            let mut batch = store.batch();
            batch
                .put(Kind::Directory, handle, &(handle, entry))
                .map_err(unavailable)?;
            batch.submit()
        };
        pending.done().await.map(drop).map_err(unavailable)
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

    /// Every envelope routed so far, in order (none for a network kept in a world store).
    pub fn routed(&self) -> Vec<Envelope> {
        self.lock().routed.clone().unwrap_or_default()
    }

    /// Whether the integrity state of `business` refuses a send to `user` now (read-only; the
    /// transport decides on send).
    pub fn refuses(&self, business: &str, user: &str) -> bool {
        self.lock()
            .integrity
            .get(business)
            .is_some_and(|i| i.refuses(user))
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
        let pending = {
            let mut net = self.lock();
            let fresh = !net.integrity.contains_key(handle);
            let state = net
                .integrity
                .entry(handle.to_owned())
                .or_insert_with(|| BusinessIntegrity::new(tier));
            match (&self.store, fresh) {
                (Some(store), true) => {
                    let mut batch = store.batch();
                    batch
                        .put(Kind::Integrity, handle, &(handle, &*state))
                        .map_err(unavailable)?;
                    Some(batch.submit())
                }
                _ => None,
            }
        };
        if let Some(pending) = pending {
            pending.done().await.map_err(unavailable)?;
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
        // Decided in memory, written before it counts, handed out only once written: an
        // envelope the transport accepted survives a crash, and none is handed out before it is
        // kept. Its place in the queue is taken at once, so the queue keeps the order of sends.
        let (result, business, events, pending, to) = {
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
            if let Some(routed) = &mut net.routed {
                routed.push(envelope.clone());
            }
            let row = net.next_row;
            if deliver {
                net.next_row += 1;
            }
            // The state is written only when it changed in a way that must be kept.
            let mut pending = None;
            if let Some(store) = &self.store {
                let mut batch = store.batch();
                if let Some(b) = &business {
                    if let Some(state) = net.integrity.get_mut(b) {
                        if state.take_dirty() {
                            batch
                                .put(Kind::Integrity, b, &(b, &*state))
                                .map_err(unavailable)?;
                        }
                    }
                }
                if deliver {
                    batch.enqueue(row, &envelope).map_err(unavailable)?;
                }
                pending = Some((batch.submit(), deliver.then_some(row)));
            }
            if deliver {
                net.enqueue(row, envelope, self.store.is_none());
            }
            (result, business, events, pending, to)
        };
        if let Some((pending, row)) = pending {
            let written = pending.done().await;
            if let Some(row) = row {
                self.lock().settle(&to, row, written.is_ok());
            }
            written.map_err(unavailable)?;
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
            if !item.kept || item.leased_until.is_some_and(|until| until > now) {
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
        let pending = {
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
            self.store.as_ref().map(|store| {
                let mut batch = store.batch();
                batch.dequeue(&rows);
                batch.submit()
            })
        };
        if let Some(pending) = pending {
            pending.done().await.map_err(unavailable)?;
        }
        Ok(())
    }
}
