//! This node among the others over one store (issue 13, ADR 0016): its id, and the leases it
//! wants for background work that must have one owner at a time: the pipeline's lanes
//! `pipeline:<lane>` (of which each node holds its share, ADR 0017), `housekeeping`,
//! `webhook:<app id>`, and its own presence `node:<id>`. One task ([`Node::run`]) takes and
//! renews them every [`LeaseTiming::renew_every`]; each worker reads its [`Claim`] before it
//! works and passes the lease's fence to the writes that need one.
//!
//! A lease is given up when the node stops, and counted as lost as soon as its expiry passes
//! without a renewal (the database is down, the process was paused): a worker stops before
//! another node may take the lease over. Every change is logged with the lease's name and
//! epoch only: names are roles and random ids, never personal.

use sealpost_adapters::store::{Fence, Lease, LeaseRow, Leases};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;

/// The lease on the housekeeping duties: audit sequencer and checkpoints, retention, the
/// scrub of destroyed keys, the persisted projections and the evidence fold.
pub const HOUSEKEEPING: &str = "housekeeping";

/// The lease on one app's webhook worker.
pub fn webhook(app_id: &str) -> String {
    format!("webhook:{app_id}")
}

/// The prefix of the lease each live node holds on itself.
pub const NODE_PREFIX: &str = "node:";

/// How long a lease lasts and how often it is renewed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseTiming {
    /// Time to live of a lease not renewed.
    pub ttl: Duration,
    /// How often held leases are renewed and wanted ones tried.
    pub renew_every: Duration,
}

impl Default for LeaseTiming {
    /// 10 s, renewed every 3 s: a dead node's work is taken over within 13 s (2 × the TTL at
    /// most), and a renewal may fail twice before the lease is lost.
    fn default() -> Self {
        Self {
            ttl: Duration::from_secs(10),
            renew_every: Duration::from_secs(3),
        }
    }
}

impl LeaseTiming {
    /// A timing from seconds, refused unless the renewal comes well within the TTL.
    pub fn new(ttl: Duration, renew_every: Duration) -> Result<Self, &'static str> {
        if renew_every.is_zero() || renew_every * 2 > ttl {
            return Err("the lease renewal interval must be above zero and at most half the TTL");
        }
        Ok(Self { ttl, renew_every })
    }
}

/// What a worker may do now under its lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// The lease's epoch (0 for a process that runs alone without leases).
    pub epoch: u64,
    /// The fence its writes carry (none for a process alone).
    pub fence: Option<Fence>,
}

/// A lease this node wants: the holding, while it has it.
#[derive(Debug, Clone)]
pub enum Claim {
    /// No leases: the process is alone over its store (tests, `demo`); always granted.
    Alone,
    /// Kept by the node's lease task.
    Leased(watch::Receiver<Option<Lease>>),
}

impl Claim {
    /// What may be done now: `None` while another node holds the lease (or nobody does yet).
    pub fn grant(&self) -> Option<Grant> {
        match self {
            Claim::Alone => Some(Grant {
                epoch: 0,
                fence: None,
            }),
            Claim::Leased(rx) => rx.borrow().as_ref().map(|l| Grant {
                epoch: l.epoch,
                fence: Some(l.fence()),
            }),
        }
    }

    /// Waits until the holding changes (taken, taken again at another epoch, lost); never
    /// returns for [`Claim::Alone`].
    pub async fn changed(&mut self) {
        if let Claim::Leased(rx) = self {
            if rx.changed().await.is_ok() {
                return;
            }
        }
        // Alone, or the node stopped: nothing will change any more.
        std::future::pending::<()>().await
    }
}

/// This node: its id and the leases it wants.
#[derive(Debug, Clone)]
pub struct Node {
    id: String,
    leases: Arc<dyn Leases>,
    timing: LeaseTiming,
    wanted: Arc<Mutex<BTreeMap<String, watch::Sender<Option<Lease>>>>>,
    /// Wakes the lease task when a new lease is wanted, so it is tried at once.
    wake: Arc<tokio::sync::Notify>,
    /// How many nodes were live at the last round (this one included).
    live: Arc<std::sync::atomic::AtomicUsize>,
    /// The wanted leases of which this node holds only its share (the pipeline's lanes).
    shared: Arc<Mutex<std::collections::BTreeSet<String>>>,
    /// Shared leases beyond this node's share, their workers told to stop at the last round:
    /// given up at the next (so no worker is cut off mid-step by the taker's fence).
    yielding: Arc<Mutex<BTreeMap<String, Lease>>>,
}

impl Node {
    /// A node with a fresh id (`<host>-<pid>-<random>`: no two processes share one, and a
    /// restarted process is a new owner, so its leases get a new epoch).
    pub fn new(leases: Arc<dyn Leases>, timing: LeaseTiming) -> Self {
        let host = std::env::var("HOSTNAME")
            .ok()
            .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
            .map(|h| {
                h.trim()
                    .chars()
                    .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '.')
                    .take(64)
                    .collect::<String>()
            })
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "node".to_owned());
        let random: u32 = rand::random();
        let id = format!("{host}-{}-{random:08x}", std::process::id());
        let node = Self {
            id,
            leases,
            timing,
            wanted: Arc::default(),
            wake: Arc::default(),
            live: Arc::new(std::sync::atomic::AtomicUsize::new(1)),
            shared: Arc::default(),
            yielding: Arc::default(),
        };
        let _ = node.want(&format!("{NODE_PREFIX}{}", node.id));
        node
    }

    /// The node's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// How many nodes serve the store (this one included), as of the last round.
    pub fn live_nodes(&self) -> usize {
        self.live.load(std::sync::atomic::Ordering::Relaxed).max(1)
    }

    /// Asks for the lease `name` from the next round on (the same [`Claim`] for a name already
    /// wanted).
    pub fn want(&self, name: &str) -> Claim {
        let mut wanted = self.wanted.lock().unwrap_or_else(|p| p.into_inner());
        let sender = wanted.entry(name.to_owned()).or_insert_with(|| {
            self.wake.notify_one();
            watch::channel(None).0
        });
        Claim::Leased(sender.subscribe())
    }

    /// Asks for a share of the leases `names` (the pipeline's lanes): about `names.len()` ÷ the
    /// live nodes of them, the free ones with the lowest names first; beyond its share (a node
    /// joined) it gives up the highest, so the nodes end up holding about as many each.
    pub fn want_share(&self, names: impl IntoIterator<Item = String>) -> Vec<Claim> {
        let names: Vec<String> = names.into_iter().collect();
        self.shared
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend(names.iter().cloned());
        names.iter().map(|n| self.want(n)).collect()
    }

    /// Takes and renews the wanted leases every `renew_every` until `stop` (then
    /// [`Node::release_all`] once the work has stopped).
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        while !*stop.borrow() {
            tokio::select! {
                _ = stop.changed() => {}
                () = tokio::time::sleep(self.timing.renew_every) => self.round().await,
                () = self.wake.notified() => self.round().await,
            }
        }
    }

    /// One round: every wanted lease taken or renewed (of the shared ones, this node's share);
    /// one that could not be renewed is counted lost once its expiry has passed.
    pub async fn round(&self) {
        // Unknown while the store is down: keep the last count.
        if let Ok(rows) = self.leases.leases().await {
            let now = wall_clock_ms();
            let me = format!("{NODE_PREFIX}{}", self.id);
            let others = rows
                .iter()
                .filter(|r| r.name.starts_with(NODE_PREFIX) && r.expires_at > now && r.name != me)
                .count();
            self.live
                .store(others + 1, std::sync::atomic::Ordering::Relaxed);
        }
        self.give_up_yielded().await;
        let wanted: Vec<(String, watch::Sender<Option<Lease>>)> = self
            .wanted
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(name, tx)| (name.clone(), tx.clone()))
            .collect();
        let shared = self
            .shared
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let is_shared = |name: &str| shared.contains(name);
        // What is held is renewed first (and what was lost is known), then the shared leases
        // beyond the share are handed on, then free ones taken up to it.
        for (name, tx) in &wanted {
            if !is_shared(name) || tx.borrow().is_some() {
                self.take(name, tx).await;
            }
        }
        let share = shared.len().div_ceil(self.live_nodes());
        let mut holding = wanted
            .iter()
            .filter(|(name, tx)| is_shared(name) && tx.borrow().is_some())
            .count();
        // The highest names go, their workers stopped now and the leases released next round.
        for (name, tx) in wanted.iter().rev().filter(|(name, _)| is_shared(name)) {
            if holding <= share {
                break;
            }
            if let Some(lease) = tx.send_replace(None) {
                tracing::info!(lease = %name, epoch = lease.epoch, "lease handed on: more nodes share the work");
                self.yielding
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(name.clone(), lease);
                holding -= 1;
            }
        }
        for (name, tx) in wanted.iter().filter(|(name, _)| is_shared(name)) {
            if holding >= share {
                break;
            }
            if tx.borrow().is_some() || self.is_yielding(name) {
                continue;
            }
            if self.take(name, tx).await {
                holding += 1;
            }
        }
        let held = wanted
            .iter()
            .filter(|(_, tx)| tx.borrow().is_some())
            .count();
        crate::metrics::metrics().leases(u64::try_from(held).unwrap_or(u64::MAX));
    }

    /// Takes or renews one lease; whether it is held afterwards.
    async fn take(&self, name: &str, tx: &watch::Sender<Option<Lease>>) -> bool {
        let ttl = i64::try_from(self.timing.ttl.as_millis()).unwrap_or(i64::MAX);
        let before = tx.borrow().clone();
        let after = match self
            .leases
            .acquire(name, &self.id, wall_clock_ms(), ttl)
            .await
        {
            Ok(lease) => lease,
            Err(e) => {
                // Keep working until the lease would have expired; then stop, because another
                // node may take it over from then on.
                let still = before.clone().filter(|l| l.expires_at > wall_clock_ms());
                if still.is_none() && before.is_some() {
                    tracing::warn!(lease = %name, error = %e, "lease not renewed in time: given up");
                }
                still
            }
        };
        log_change(name, before.as_ref(), after.as_ref());
        let held = after.is_some();
        tx.send_if_modified(|current| {
            let changed = current.as_ref().map(|l| l.epoch) != after.as_ref().map(|l| l.epoch);
            *current = after;
            changed
        });
        held
    }

    fn is_yielding(&self, name: &str) -> bool {
        self.yielding
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(name)
    }

    /// Releases the leases handed on at the last round (their workers have had a round's time
    /// to finish the step they were in).
    async fn give_up_yielded(&self) {
        let yielded = std::mem::take(&mut *self.yielding.lock().unwrap_or_else(|p| p.into_inner()));
        for lease in yielded.into_values() {
            release(self.leases.as_ref(), &lease).await;
        }
    }

    /// Gives up every lease held (on shutdown, once the work has stopped), so the others take
    /// over at once.
    pub async fn release_all(&self) {
        let held: Vec<Lease> = self
            .wanted
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .filter_map(|tx| tx.send_replace(None))
            .collect();
        for lease in held {
            release(self.leases.as_ref(), &lease).await;
        }
        self.give_up_yielded().await;
    }
}

/// Gives a lease up, saying so (a lease not released expires on its own).
async fn release(leases: &dyn Leases, lease: &Lease) {
    match leases.release(lease).await {
        Ok(()) => tracing::info!(lease = %lease.name, epoch = lease.epoch, "lease released"),
        Err(e) => tracing::warn!(lease = %lease.name, error = %e, "lease not released; it expires"),
    }
}

/// Logs and traces a change of holding (never a renewal): a span of its own per change, so an
/// exporter sees every takeover and loss and nothing while leases are merely renewed.
fn log_change(name: &str, before: Option<&Lease>, after: Option<&Lease>) {
    let (epoch, what) = match (before, after) {
        (None, Some(l)) => (l.epoch, "lease taken"),
        (Some(b), Some(a)) if b.epoch != a.epoch => (a.epoch, "lease taken again after a takeover"),
        (Some(b), None) => (b.epoch, "lease lost"),
        _ => return,
    };
    let span = tracing::info_span!("lease change", lease = %name, epoch);
    let _entered = span.enter();
    if after.is_some() {
        tracing::info!(lease = %name, epoch, "{what}");
    } else {
        tracing::warn!(lease = %name, epoch, "{what}");
    }
}

/// Milliseconds since the Unix epoch by this machine's clock (leases never follow a
/// `--sim-clock`).
pub fn wall_clock_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// What `sealpost nodes` prints: a table of the live nodes with the leases each holds, then
/// one of every lease (held, or free with its last holder), columns split by whitespace. `now` is the wall clock in ms.
pub fn describe(rows: &[LeaseRow], now: i64) -> String {
    use crate::tables::{drawn, table};
    let live = |r: &LeaseRow| r.expires_at > now;
    let mut out = String::from("nodes (live):\n");
    let nodes: Vec<&LeaseRow> = rows
        .iter()
        .filter(|r| r.name.starts_with(NODE_PREFIX) && live(r))
        .collect();
    if nodes.is_empty() {
        out.push_str("  none\n");
    } else {
        let mut t = table(&["NODE", "UP", "HOLDS"]);
        for node in &nodes {
            let holds: Vec<String> = rows
                .iter()
                .filter(|r| !r.name.starts_with(NODE_PREFIX) && live(r) && r.owner == node.owner)
                .map(|r| format!("{} (epoch {})", r.name, r.epoch))
                .collect();
            t.add_row(vec![
                node.owner.clone(),
                format!("{}s", (now - node.acquired_at).max(0) / 1000),
                if holds.is_empty() {
                    "nothing".to_owned()
                } else {
                    holds.join(", ")
                },
            ]);
        }
        out.push_str(&drawn(&t));
        out.push('\n');
    }
    out.push_str("\nleases:\n");
    let mut t = table(&["LEASE", "EPOCH", "STATE", "HOLDER", "EXPIRES"]);
    for r in rows.iter().filter(|r| !r.name.starts_with(NODE_PREFIX)) {
        let (state, expires) = if live(r) {
            ("held", format!("{}ms", r.expires_at - now))
        } else {
            ("free", "-".to_owned())
        };
        t.add_row(vec![
            r.name.clone(),
            r.epoch.to_string(),
            state.to_owned(),
            r.owner.clone(),
            expires,
        ]);
    }
    out.push_str(&drawn(&t));
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(name: &str, owner: &str, epoch: u64, expires_at: i64) -> LeaseRow {
        LeaseRow {
            name: name.to_owned(),
            owner: owner.to_owned(),
            epoch,
            acquired_at: 1_000,
            expires_at,
        }
    }

    #[test]
    fn the_listing_is_two_tables_split_by_whitespace() {
        let rows = [
            lease("node:n1", "n1", 1, 20_000),
            lease("node:gone", "gone", 1, 5_000),
            lease("delivery:lane-03", "n1", 7, 12_500),
            lease("retention", "gone", 2, 0),
        ];
        let text = describe(&rows, 10_000);
        let lines: Vec<Vec<&str>> = text
            .lines()
            .map(|l| l.split_whitespace().collect())
            .collect();
        assert_eq!(lines[0], ["nodes", "(live):"], "{text}");
        assert_eq!(lines[1], ["NODE", "UP", "HOLDS"], "{text}");
        assert_eq!(
            lines[2],
            ["n1", "9s", "delivery:lane-03", "(epoch", "7)"],
            "{text}"
        );
        assert!(lines[3].is_empty() && lines[4] == ["leases:"], "{text}");
        assert_eq!(lines[5], ["LEASE", "EPOCH", "STATE", "HOLDER", "EXPIRES"]);
        assert_eq!(lines[6], ["delivery:lane-03", "7", "held", "n1", "2500ms"]);
        assert_eq!(lines[7], ["retention", "2", "free", "gone", "-"], "{text}");
        assert_eq!(
            lines.len(),
            8,
            "the node whose lease ran out is not listed: {text}"
        );
        assert!(describe(&[], 0).starts_with("nodes (live):\n  none\n"));
    }
}
