//! One node against two (issue 13): `sealpost serve` nodes over one Postgres schema and one
//! `sealpost transport`, the consumers' phones clients of the transport in this process, and
//! `SEALPOST_BENCH_TENANTS` (default 16) businesses added with `sealpost tenant add` (the nodes share the pipeline's lanes,
//! which are partitions of the businesses, ADR 0017). A closed loop of sends spread over the
//! nodes and the businesses, then until every acknowledged send is displayed at its phone. Prints, from one run, accepted/s and delivered/s (displayed at the phones) for
//! one node and then two, each on a fresh schema, and their ratio.
//!
//! `cargo bench --bench nodes`; `SEALPOST_BENCH_SECONDS` (default 5) is the length of the
//! load, `SEALPOST_BENCH_PHONES` (default 200) how many consumers share it: each takes a burst
//! of 45 and then one message per 6 s (the pair limit), so phones × 45 must stay above what
//! the nodes accept in the load, or the limit is what is measured. Figures:
//! docs/benchmarks.md.

use base64::Engine as _;
use sealpost_adapters::signal::{Libsignal, SignalEngine};
use sealpost_adapters::transport::http::HttpTransport;
use sealpost_adapters::transport::sim::SimDevice;
use serde_json::{json, Value};
use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Concurrent senders of the closed loop.
const CLIENTS: usize = 32;

/// Businesses, each with one number (`SEALPOST_BENCH_TENANTS`); phone `k` is a consumer of
/// business `k % tenants`.
fn tenant_count() -> usize {
    env("SEALPOST_BENCH_TENANTS", 16).max(1) as usize
}

/// A child process, killed when dropped.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Spawns `sealpost` with `args` and returns it with the URL its first line names.
fn spawn(args: &[&str], env: &[(&str, &str)]) -> (Process, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_sealpost"));
    command
        .args(args)
        .env("RUST_LOG", "error")
        .env_remove("SEALPOST_DATABASE_URL")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    for (k, v) in env {
        command.env(k, v);
    }
    let mut child = command.spawn().expect("spawn sealpost");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("first line");
    let url = line
        .trim()
        .rsplit(' ')
        .next()
        .unwrap_or_default()
        .to_owned();
    assert!(url.starts_with("http://"), "did not start: {line:?}");
    (Process(child), url)
}

/// Accepted/s and delivered/s with `nodes` nodes.
async fn run(nodes: usize, seconds: u64, phones: usize) -> (f64, f64) {
    let pg = sealpost_testkit::postgres_test_db(&format!("bench_nodes_{nodes}"))
        .await
        .expect("Postgres (SEALPOST_TEST_DATABASE_URL)");
    let db = format!("{}?options=-csearch_path%3D{}", pg.url, pg.schema);
    let dir = tempfile::tempdir().expect("dir");
    let world = dir.path().join("world");
    let (_transport, transport_url) = spawn(
        &[
            "transport",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            &world.to_string_lossy(),
        ],
        &[],
    );
    let config = dir.path().join("sealpost.toml");
    std::fs::write(&config, "throughput_per_second = 100000\n").expect("config");
    let root_key = base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 32]>());
    let node_dir = |n: usize| dir.path().join(format!("node{n}"));
    let count = tenant_count();
    let tenants: Vec<Value> = (0..count)
        .map(|k| {
            let out = Command::new(env!("CARGO_BIN_EXE_sealpost"))
                .args(["tenant", "add", "--name", &format!("Bench {k}")])
                .args(["--display-number", &format!("1555020{k:04}")])
                .arg("--data-dir")
                .arg(node_dir(0))
                .args(["--database-url", &db])
                .env("SEALPOST_ROOT_KEY_EU", &root_key)
                .env("RUST_LOG", "error")
                .output()
                .expect("sealpost tenant add");
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let path = String::from_utf8_lossy(&out.stdout).trim().to_owned();
            serde_json::from_slice(&std::fs::read(path).expect("tenant file")).expect("json")
        })
        .collect();
    let mut servers = Vec::new();
    let mut bases = Vec::new();
    for n in 0..nodes {
        let data = node_dir(n);
        std::fs::create_dir_all(&data).expect("data dir");
        let (server, base) = spawn(
            &[
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--data-dir",
                &data.to_string_lossy(),
                "--database-url",
                &db,
                "--transport-url",
                &transport_url,
                "--config",
                &config.to_string_lossy(),
            ],
            &[("SEALPOST_ROOT_KEY_EU", &root_key)],
        );
        servers.push(server);
        bases.push(base);
    }
    // Each business: its token, number id and display number.
    let of = |k: usize| {
        let s = |f: &str| {
            tenants[k % count][f]
                .as_str()
                .expect("tenant field")
                .to_owned()
        };
        (
            s("access_token"),
            s("phone_number_id"),
            s("display_phone_number"),
        )
    };
    let tenants: Vec<(String, String, String)> = (0..count).map(of).collect();
    // Until the nodes share the lanes out (a node hands lanes on at its next lease round).
    let deadline = Instant::now() + Duration::from_secs(60);
    while !lanes_shared(&db, nodes) {
        assert!(
            Instant::now() < deadline,
            "the nodes did not share the lanes out"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // The phones join, write first (the service window) and step on their own.
    let engine: Arc<dyn SignalEngine> = Arc::new(Libsignal);
    let transport = HttpTransport::new(&transport_url);
    let numbers: Vec<String> = (0..phones).map(|k| format!("4915200{k:06}")).collect();
    let mut devices = Vec::new();
    for (k, n) in numbers.iter().enumerate() {
        let mut d = SimDevice::join(engine.clone(), &transport, n)
            .await
            .expect("join");
        d.send(
            &transport,
            &tenants[k % count].2,
            &format!("hello-{n}"),
            br#"{"type":"text","text":{"body":"hi"}}"#,
        )
        .await
        .expect("hello");
        devices.push(Arc::new(tokio::sync::Mutex::new(d)));
    }
    let stepping = {
        let (devices, transport) = (devices.clone(), transport.clone());
        tokio::spawn(async move {
            loop {
                let mut worked = 0;
                for d in &devices {
                    worked += d.lock().await.step(&transport).await.unwrap_or(0);
                }
                if worked == 0 {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        })
    };
    let client = reqwest::Client::new();
    let send = |n: usize| {
        // A phone's messages alternate between the nodes (its pair limit is shared out).
        let (token, number, _) = &tenants[(n % phones) % count];
        let url = format!("{}/v21.0/{number}/messages", bases[(n / phones) % nodes]);
        let body = json!({"messaging_product": "whatsapp", "to": numbers[n % phones], "type": "text", "text": {"body": format!("m{n}")}});
        client
            .post(url)
            .bearer_auth(token)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
    };
    // Every window open: a send to each phone is accepted.
    for k in 0..phones {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !send(k).await.is_ok_and(|r| r.status().is_success()) {
            assert!(Instant::now() < deadline, "the window did not open");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let opened = phones as u64;

    // The closed loop.
    let accepted = Arc::new(AtomicU64::new(0));
    let next = Arc::new(AtomicU64::new(phones as u64));
    let started = Instant::now();
    let end = started + Duration::from_secs(seconds);
    let clients = (0..CLIENTS).map(|_| {
        let (accepted, next, send) = (accepted.clone(), next.clone(), &send);
        async move {
            while Instant::now() < end {
                let n = next.fetch_add(1, Ordering::Relaxed) as usize;
                if send(n).await.is_ok_and(|r| r.status().is_success()) {
                    accepted.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    });
    futures::future::join_all(clients).await;
    let load = started.elapsed().as_secs_f64();
    let accepted = accepted.load(Ordering::Relaxed);

    // Until every acknowledged send is displayed.
    let want = (accepted + opened) as usize;
    let deadline = Instant::now() + Duration::from_secs(300);
    let delivered_at = loop {
        let mut shown = 0;
        for d in &devices {
            shown += d.lock().await.inbox().await.expect("inbox").len();
        }
        if shown >= want {
            break started.elapsed().as_secs_f64();
        }
        assert!(Instant::now() < deadline, "{shown} of {want} displayed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    stepping.abort();
    drop(servers);
    pg.drop_schema().await;
    (accepted as f64 / load, accepted as f64 / delivered_at)
}

/// Whether `nodes` nodes hold every lane of the pipeline between them, each some.
fn lanes_shared(db: &str, nodes: usize) -> bool {
    let out = Command::new(env!("CARGO_BIN_EXE_sealpost"))
        .args(["nodes", "--database-url", db])
        .output()
        .expect("sealpost nodes");
    let listing = String::from_utf8_lossy(&out.stdout);
    // A lease row: name, epoch, state, holder, expiry.
    let holders: Vec<&str> = listing
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .filter_map(|cols| match cols.as_slice() {
            [name, _, "held", owner, ..]
                if name.starts_with(sealpost::pipeline::LANE_LEASE_PREFIX) =>
            {
                Some(*owner)
            }
            _ => None,
        })
        .collect();
    let mut distinct = holders.clone();
    distinct.sort_unstable();
    distinct.dedup();
    holders.len() == usize::from(sealpost::pipeline::LANE_COUNT) && distinct.len() == nodes
}

#[allow(clippy::print_stdout)] // a benchmark reports on stdout
fn main() {
    let seconds = env("SEALPOST_BENCH_SECONDS", 5);
    let phones = env("SEALPOST_BENCH_PHONES", 200) as usize;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let mut figures = Vec::new();
        for nodes in [1, 2] {
            let (accepted, delivered) = run(nodes, seconds, phones).await;
            println!(
                "{nodes} node(s), {CLIENTS} clients, {phones} phones, {seconds} s: accepted {accepted:.0}/s (the pair limit allows {:.0}/s), delivered {delivered:.0}/s (acknowledged sends displayed at the phones)",
                (phones * 45) as f64 / seconds as f64
            );
            figures.push((accepted, delivered));
        }
        println!(
            "two nodes / one: accepted {:.2}x, delivered {:.2}x",
            figures[1].0 / figures[0].0,
            figures[1].1 / figures[0].1
        );
    });
}
