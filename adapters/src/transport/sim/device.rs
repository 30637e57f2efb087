//! [`SimDevice`], a simulated consumer's phone: its own Signal identity and sessions, decrypting
//! what it receives, answering receipts, sending, and recognising duplicates by id.

use super::unavailable;
use crate::clock::{Clock as _, SystemClock};
use crate::signal::{Account, Peer, Session, SignalEngine, SignalError};
use crate::transport::world::{Item, Kind, WorldError, WorldStore};
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
///
/// Its history (what it showed, what it sent, which of its messages the business read) is held
/// here only by a phone without a store; a phone in a world store keeps it as rows there
/// ([`Item`]), so that neither its memory nor the record written at every step grows with
/// every message. A record an earlier version wrote with its history inside is moved to rows
/// when loaded.
#[derive(Debug, Serialize, Deserialize)]
struct DeviceState {
    account: Account,
    me: Address,
    links: BTreeMap<String, Link>,
    #[serde(default)]
    seen: HashSet<String>,
    #[serde(default)]
    inbox: Vec<Received>,
    /// What the device sent, by envelope id, so it can send it again on a resend request.
    #[serde(default)]
    sent: BTreeMap<String, Vec<u8>>,
    /// Envelope ids of the device's own messages the business marked read.
    #[serde(default)]
    read_by_business: BTreeSet<String>,
    reads: bool,
    offline: bool,
    decrypt_failures: u64,
}

/// History a phone in a world store keeps as rows, written with its next save.
#[derive(Debug)]
enum Remembered {
    Shown(Received),
    Sent(String, Vec<u8>),
    Read(String),
}

/// A simulated consumer device.
#[derive(Debug)]
pub struct SimDevice {
    engine: Arc<dyn SignalEngine>,
    store: Option<Arc<WorldStore>>,
    state: DeviceState,
    /// History not yet written (a phone in a world store only).
    pending: Vec<Remembered>,
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
            pending: Vec::new(),
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
        let mut devices = Vec::new();
        for mut state in store.all::<DeviceState>(Kind::Device).await? {
            // An earlier version's record holds the history itself: moved to rows.
            let mut pending: Vec<Remembered> = std::mem::take(&mut state.inbox)
                .into_iter()
                .map(Remembered::Shown)
                .collect();
            pending.extend(
                std::mem::take(&mut state.sent)
                    .into_iter()
                    .map(|(id, p)| Remembered::Sent(id, p)),
            );
            pending.extend(
                std::mem::take(&mut state.read_by_business)
                    .into_iter()
                    .map(Remembered::Read),
            );
            state.seen.clear();
            let mut device = Self {
                engine: engine.clone(),
                store: Some(store.clone()),
                reads: state.reads,
                offline: state.offline,
                state,
                pending,
            };
            if !device.pending.is_empty() {
                device.save().await?;
            }
            devices.push(device);
        }
        Ok(devices)
    }

    /// Writes the device's state to its store, with the history not yet written (nothing
    /// without a store). Returns how many of the messages it showed were new (not kept before).
    pub async fn save(&mut self) -> Result<usize, WorldError> {
        self.state.reads = self.reads;
        self.state.offline = self.offline;
        let Some(store) = &self.store else {
            return Ok(0);
        };
        let handle = &self.state.me.handle;
        let mut batch = store.batch();
        batch.put(Kind::Device, handle, &self.state)?;
        for r in &self.pending {
            match r {
                Remembered::Shown(m) => batch.remember(handle, Item::Shown, &m.id, m)?,
                Remembered::Sent(id, p) => batch.remember(handle, Item::Sent, id, p)?,
                Remembered::Read(id) => batch.remember(handle, Item::ReadByBusiness, id, id)?,
            }
        }
        // Kept until committed: a failed save writes them with the next one.
        let changed = batch.submit().done().await?;
        let pending = std::mem::take(&mut self.pending);
        Ok(pending
            .iter()
            .zip(changed.iter().skip(1))
            .filter(|(r, new)| matches!(r, Remembered::Shown(_)) && **new)
            .count())
    }

    /// Keeps a message the device showed, each id once; whether it is new (a phone in a world
    /// store learns that when it saves).
    fn show(&mut self, m: Received) -> bool {
        if self.store.is_some() {
            self.pending.push(Remembered::Shown(m));
            false
        } else if self.state.seen.insert(m.id.clone()) {
            self.state.inbox.push(m);
            true
        } else {
            false
        }
    }

    /// What the device sent under `id`, if it did.
    async fn sent(&self, id: &str) -> Result<Option<Vec<u8>>, WorldError> {
        match &self.store {
            Some(store) => store.item(&self.state.me.handle, Item::Sent, id).await,
            None => Ok(self.state.sent.get(id).cloned()),
        }
    }

    /// The device's address.
    pub fn address(&self) -> &Address {
        &self.state.me
    }

    /// Everything the device decrypted, each message once, in the order it showed them.
    pub async fn inbox(&self) -> Result<Vec<Received>, WorldError> {
        match &self.store {
            Some(store) => store.items(&self.state.me.handle, Item::Shown).await,
            None => Ok(self.state.inbox.clone()),
        }
    }

    /// The device's own messages (by the id it sent them under) that the business read.
    pub async fn read_by_business(&self) -> Result<BTreeSet<String>, WorldError> {
        match &self.store {
            Some(store) => Ok(store
                .items::<String>(&self.state.me.handle, Item::ReadByBusiness)
                .await?
                .into_iter()
                .collect()),
            None => Ok(self.state.read_by_business.clone()),
        }
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
        if self.store.is_some() {
            self.pending
                .push(Remembered::Sent(id.to_owned(), plaintext.to_vec()));
        } else {
            self.state.sent.insert(id.to_owned(), plaintext.to_vec());
        }
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
                    if let Some(plaintext) = self.sent(of).await.map_err(unavailable)? {
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
                } => {
                    // Only the device's own messages are marked read.
                    let mine = self.sent(of).await.map_err(unavailable)?.is_some();
                    match (mine, self.store.is_some()) {
                        (true, true) => self.pending.push(Remembered::Read(of.clone())),
                        (true, false) => {
                            self.state.read_by_business.insert(of.clone());
                        }
                        (false, _) => {}
                    }
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
        new += self.save().await.map_err(unavailable)?;
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
                let shown = Received {
                    id: envelope.id.clone(),
                    from: envelope.from.handle.clone(),
                    plaintext: d.plaintext,
                };
                if self.show(shown) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signal::Libsignal;
    use crate::transport::sim::SimNetwork;

    async fn world(dir: &std::path::Path) -> (Arc<WorldStore>, SimNetwork) {
        let store = Arc::new(WorldStore::open(dir).await.expect("world"));
        let net = SimNetwork::open(Arc::new(SystemClock), None, store.clone())
            .await
            .expect("network");
        (store, net)
    }

    async fn kept_phone(
        engine: &Arc<dyn SignalEngine>,
        net: &SimNetwork,
        store: &Arc<WorldStore>,
        handle: &str,
    ) -> SimDevice {
        SimDevice::join(engine.clone(), net, handle)
            .await
            .expect("phone")
            .kept_in(store.clone())
            .await
            .expect("kept")
    }

    #[tokio::test]
    async fn a_kept_phones_history_is_rows_that_outlive_a_restart_and_its_record_does_not_grow() {
        let dir = tempfile::tempdir().expect("dir");
        let engine: Arc<dyn SignalEngine> = Arc::new(Libsignal);
        let (a, b) = ("4915112345678", "447700900123");
        let (store, net) = world(dir.path()).await;
        let mut alice = kept_phone(&engine, &net, &store, a).await;
        let mut bob = kept_phone(&engine, &net, &store, b).await;
        alice.send(&net, b, "m-0", b"hello 0").await.expect("send");
        assert_eq!(bob.step(&net).await.expect("step"), 1);
        let first = store.record_len(Kind::Device, b).await.expect("record");
        for i in 1..100 {
            let text = format!("hello {i}");
            alice
                .send(&net, b, &format!("m-{i}"), text.as_bytes())
                .await
                .expect("send");
        }
        // The same id again (as a retransmission is): shown once.
        alice.send(&net, b, "m-7", b"hello 7").await.expect("send");
        assert_eq!(bob.step(&net).await.expect("step"), 99, "m-7 is not new");
        let last = store.record_len(Kind::Device, b).await.expect("record");
        assert!(
            last < first + 1_024,
            "the record grew with the history: {first} → {last} bytes"
        );
        assert!(bob.state.inbox.is_empty() && bob.state.seen.is_empty());
        drop((alice, bob, net, store));

        // A restart: the history is read back from rows, in the order shown.
        let (store, net) = world(dir.path()).await;
        let devices = SimDevice::load_all(engine.clone(), &store)
            .await
            .expect("load");
        let bob = devices
            .iter()
            .find(|d| d.address().handle == b)
            .expect("bob kept");
        let shown: Vec<String> = bob
            .inbox()
            .await
            .expect("inbox")
            .into_iter()
            .map(|r| String::from_utf8(r.plaintext).expect("text"))
            .collect();
        let want: Vec<String> = (0..100).map(|i| format!("hello {i}")).collect();
        assert_eq!(shown, want);
        drop(net);
    }

    #[tokio::test]
    async fn a_record_an_earlier_version_wrote_with_its_history_inside_is_moved_to_rows() {
        let dir = tempfile::tempdir().expect("dir");
        let engine: Arc<dyn SignalEngine> = Arc::new(Libsignal);
        let (store, net) = world(dir.path()).await;
        let mut phone = SimDevice::join(engine.clone(), &net, "4915112345678")
            .await
            .expect("phone");
        // As an earlier version kept it: the history inside the record.
        phone.state.inbox.push(Received {
            id: "old-1".into(),
            from: "15550783881".into(),
            plaintext: b"from before".to_vec(),
        });
        phone.state.seen.insert("old-1".into());
        phone.state.sent.insert("mine-1".into(), b"mine".to_vec());
        phone.state.read_by_business.insert("mine-1".into());
        let mut b = store.batch();
        b.put(Kind::Device, "4915112345678", &phone.state)
            .expect("put");
        b.submit().done().await.expect("written");
        let loaded = SimDevice::load_all(engine, &store).await.expect("load");
        let [phone] = &loaded[..] else {
            panic!("one phone")
        };
        assert!(phone.state.inbox.is_empty() && phone.state.sent.is_empty());
        let inbox = phone.inbox().await.expect("inbox");
        assert_eq!(inbox.len(), 1);
        assert_eq!(inbox[0].plaintext, b"from before");
        assert_eq!(
            phone.sent("mine-1").await.expect("sent"),
            Some(b"mine".to_vec())
        );
        assert!(phone
            .read_by_business()
            .await
            .expect("read")
            .contains("mine-1"));
        drop(net);
    }
}
