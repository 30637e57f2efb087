//! Crash: the real `sealpost serve` is killed with SIGKILL at a random moment while several
//! clients send through the Cloud API and several phones write to the business, then started
//! again on the same data, N times (3 here; `SEALPOST_SOAK=1` for 50); and the same with the
//! database stopped (`pg_ctl stop -m immediate` on a cluster of the test's own) while `serve`
//! runs on. Afterwards every send the
//! API acknowledged is shown exactly once at its phone, and every message a phone had accepted
//! by the transport reaches the webhook, under one message id. On SQLite and on Postgres.

mod common;

use common::cluster::PgCluster;
use common::hook::Hook;
use common::server::{eventually, start_with, Data, Node};
use rand::Rng as _;
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const PHONES: usize = 12;

fn phone(i: usize) -> String {
    format!("49151700{i:05}")
}

/// Fault cycles: 3, or with `SEALPOST_SOAK=1` 50 kills / 20 database stops
/// (`SEALPOST_SOAK_CYCLES=N` sets another number).
fn cycles(fault: &Fault) -> usize {
    if let Some(n) = std::env::var("SEALPOST_SOAK_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        return n;
    }
    match (
        std::env::var("SEALPOST_SOAK").is_ok_and(|v| v == "1"),
        fault,
    ) {
        (false, _) => 3,
        (true, Fault::KillServe) => 50,
        (true, Fault::StopDatabase(_)) => 20,
    }
}

/// How long the checks wait for the backlog to drain: a liveness bound that grows with what
/// was acknowledged (not a speed target: speed is measured in benches/).
fn drain_bound(acknowledged: usize) -> Duration {
    Duration::from_secs(120) + Duration::from_millis(300 * acknowledged as u64)
}

/// A client that gives up on a request to a dying server after 5 s.
fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client")
}

/// What the clients saw acknowledged: outbound (message id → phone), inbound (text → phone).
#[derive(Default)]
struct Acked {
    outbound: BTreeMap<String, String>,
    inbound: BTreeMap<String, String>,
}

/// Sends from `clients` business clients and the phones until `stop`; records what was acked.
fn load(
    node: &Node,
    cycle: usize,
    stop: &Arc<AtomicBool>,
    acked: &Arc<Mutex<Acked>>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let mut tasks = Vec::new();
    for client in 0..3 {
        let (base, id, token) = (
            node.base.clone(),
            node.s("phone_number_id"),
            node.s("access_token"),
        );
        let (stop, acked) = (stop.clone(), acked.clone());
        tasks.push(tokio::spawn(async move {
            let http = http_client();
            let mut k = 0usize;
            while !stop.load(Ordering::Relaxed) {
                k += 1;
                let to = phone((client * 7 + k) % PHONES);
                let body = json!({"messaging_product": "whatsapp", "to": to, "type": "text",
                    "text": {"body": format!("out-{cycle}-{client}-{k}")}});
                let Ok(resp) = http
                    .post(format!("{base}/v21.0/{id}/messages"))
                    .bearer_auth(&token)
                    .header("content-type", "application/json")
                    .body(body.to_string())
                    .send()
                    .await
                else {
                    continue;
                };
                if resp.status().as_u16() != 200 {
                    continue;
                }
                let Ok(bytes) = resp.bytes().await else {
                    continue;
                };
                let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
                if let Some(m) = v["messages"][0]["id"].as_str() {
                    acked
                        .lock()
                        .expect("lock")
                        .outbound
                        .insert(m.to_owned(), to);
                }
            }
        }));
    }
    let (base, display) = (node.base.clone(), node.s("display_phone_number"));
    let (stop, acked) = (stop.clone(), acked.clone());
    tasks.push(tokio::spawn(async move {
        let http = http_client();
        let mut k = 0usize;
        while !stop.load(Ordering::Relaxed) {
            k += 1;
            let from = phone(k % PHONES);
            let text = format!("in-{cycle}-{k}");
            let ok = http
                .post(format!("{base}/sim/v1/devices/{from}/messages"))
                .header("content-type", "application/json")
                .body(json!({"to": display, "type": "text", "text": {"body": text}}).to_string())
                .send()
                .await
                .is_ok_and(|r| r.status().as_u16() == 200);
            if ok {
                acked.lock().expect("lock").inbound.insert(text, from);
            }
            // Phones are people: a dozen of them write a few messages a second, not thousands
            // (while the database is down, the transport keeps what they send).
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }));
    tasks
}

/// What goes wrong in each cycle.
enum Fault {
    /// `serve` is killed with SIGKILL and started again.
    KillServe,
    /// The database is stopped (`pg_ctl stop -m immediate`) for a while and started again;
    /// `serve` keeps running.
    StopDatabase(PgCluster),
}

async fn crash_under_load(data: Data, mut fault: Fault) {
    let hook = Hook::default();
    let callback = hook.listen().await;
    let env = [("SEALPOST_CONNECT_TIMEOUT", "2")];
    let mut node = start_with(&data, &env);
    node.subscribe(&callback).await;
    let display = node.s("display_phone_number");
    // Every phone opens its service window first.
    for i in 0..PHONES {
        let (st, v) = node
            .device_send(
                &phone(i),
                json!({"to": display, "type": "text", "text": {"body": format!("open-{i}")}}),
            )
            .await;
        assert_eq!(st, 200, "{v}");
    }
    eventually(60, "every phone's first message at the webhook", || async {
        (hook.messages().len() >= PHONES).then_some(())
    })
    .await;
    let acked = Arc::new(Mutex::new(Acked::default()));
    let cycles = cycles(&fault);
    for cycle in 0..cycles {
        node = fault_under_load(node, &data, &env, &mut fault, cycle, &acked).await;
    }
    let (outbound, inbound) = {
        let a = acked.lock().expect("lock");
        (a.outbound.clone(), a.inbound.clone())
    };
    assert!(
        !outbound.is_empty() && !inbound.is_empty(),
        "the load was acknowledged at all"
    );
    every_acknowledged_send_is_shown_once(&node, &hook, &outbound, inbound.len()).await;
    every_inbound_message_arrives_under_one_id(&node, &hook, &inbound).await;
    let what = match fault {
        Fault::KillServe => "kill -9",
        Fault::StopDatabase(_) => "database stop",
    };
    eprintln!(
        "crash test ({what}): {} cycles, {} sends and {} inbound messages acknowledged, none lost, none shown twice",
        cycles,
        outbound.len(),
        inbound.len()
    );
    node.stop().expect("a clean stop at the end");
}

/// One cycle: load for a random while, then the fault; the node that runs afterwards.
async fn fault_under_load(
    mut node: Node,
    data: &Data,
    env: &[(&str, &str)],
    fault: &mut Fault,
    cycle: usize,
    acked: &Arc<Mutex<Acked>>,
) -> Node {
    let stop = Arc::new(AtomicBool::new(false));
    let tasks = load(&node, cycle, &stop, acked);
    let ms = rand::rng().random_range(300..1_500);
    tokio::time::sleep(Duration::from_millis(ms)).await;
    match fault {
        Fault::KillServe => {
            node.kill();
            stop.store(true, Ordering::Relaxed);
            for t in tasks {
                let _ = t.await;
            }
            node = start_with(data, env);
        }
        Fault::StopDatabase(pg) => {
            pg.stop_immediate();
            let ms = rand::rng().random_range(500..2_000);
            tokio::time::sleep(Duration::from_millis(ms)).await;
            pg.start_again();
            tokio::time::sleep(Duration::from_millis(300)).await;
            stop.store(true, Ordering::Relaxed);
            for t in tasks {
                let _ = t.await;
            }
        }
    }
    node
}

/// Every acknowledged send (message id → phone) is shown at its phone, exactly once.
async fn every_acknowledged_send_is_shown_once(
    node: &Node,
    hook: &Hook,
    outbound: &BTreeMap<String, String>,
    inbound: usize,
) {
    let by_phone: BTreeMap<String, BTreeSet<String>> =
        outbound.iter().fold(BTreeMap::new(), |mut m, (id, to)| {
            m.entry(to.clone()).or_default().insert(id.clone());
            m
        });
    let deadline = std::time::Instant::now() + drain_bound(outbound.len() + inbound);
    loop {
        let mut missing = Vec::new();
        for (to, ids) in &by_phone {
            let (messages, _) = node.inbox(to).await;
            let shown: Vec<String> = messages
                .iter()
                .filter_map(|m| m["id"].as_str().map(str::to_owned))
                .collect();
            let unique: BTreeSet<&String> = shown.iter().collect();
            assert_eq!(unique.len(), shown.len(), "a phone shows a message twice");
            missing.extend(ids.iter().filter(|id| !shown.contains(id)).cloned());
        }
        if missing.is_empty() {
            break;
        }
        if std::time::Instant::now() > deadline {
            let sample: Vec<(String, Vec<String>)> = missing
                .iter()
                .take(5)
                .map(|id| (id.clone(), hook.statuses(id)))
                .collect();
            panic!(
                "{} of {} acknowledged sends never reached their phone; statuses of some: {sample:?}; log tail: {}",
                missing.len(),
                outbound.len(),
                common::server::tail(&node.log)
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Every message the transport accepted from a phone (text → phone) reaches the webhook, under
/// one id.
async fn every_inbound_message_arrives_under_one_id(
    node: &Node,
    hook: &Hook,
    inbound: &BTreeMap<String, String>,
) {
    let deadline = std::time::Instant::now() + drain_bound(inbound.len());
    let seen = loop {
        let got = hook.messages();
        let missing: Vec<&String> = inbound
            .keys()
            .filter(|text| !got.iter().any(|(_, body)| body == *text))
            .collect();
        if missing.is_empty() {
            break got;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{} of {} accepted inbound messages never reached the webhook (e.g. {:?}); log tail: {}",
            missing.len(),
            inbound.len(),
            missing.iter().take(5).collect::<Vec<_>>(),
            common::server::tail(&node.log)
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let mut ids_of: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for (id, body) in &seen {
        ids_of.entry(body).or_default().insert(id);
    }
    for text in inbound.keys() {
        assert_eq!(
            ids_of.get(text.as_str()).map(BTreeSet::len),
            Some(1),
            "an inbound message got two message ids"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_kill_9_under_load_loses_nothing() {
    let root = tempfile::tempdir().expect("dir");
    crash_under_load(Data::new(root.path(), None), Fault::KillServe).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_kill_9_under_load_loses_nothing() {
    let Some(pg) = sealpost_testkit::postgres_test_db("crash under load").await else {
        return;
    };
    let root = tempfile::tempdir().expect("dir");
    crash_under_load(Data::new(root.path(), Some(&pg)), Fault::KillServe).await;
    pg.drop_schema().await;
}

/// The database (a private cluster) is stopped with `-m immediate` mid-load and started again,
/// while `serve` runs on: no acknowledged send is lost or shown twice, none is left without a
/// status, and what the phones wrote in the meantime reaches the webhook.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_stopped_under_load_loses_nothing() {
    let Some(pg) = PgCluster::start("database stopped under load") else {
        return;
    };
    let root = tempfile::tempdir().expect("dir");
    let data = Data::new(root.path(), None).with_database_url(pg.url());
    crash_under_load(data, Fault::StopDatabase(pg)).await;
}
