//! Start-up time of `sealpost serve` against the size of the log: the time from spawning the
//! real binary to its `sealpost serving on …` line, and from then to the answer of the first
//! evidence query (`GET /sealpost/v1/statistics`), on a store of 1,000 events (the baseline)
//! and on one of 200,000 (the peer), in the same run. SQLite, the embedded default.
//!
//! `cargo bench --bench startup` (figures in docs/benchmarks.md). `SEALPOST_STARTUP_EVENTS`
//! sets the large store's size; `SEALPOST_STARTUP_KEEP=DIR` only fills a store of that size in
//! DIR (for a look with `RUST_LOG=sealpost=info sealpost serve --data-dir DIR`).

use sealpost::app::Sealpost;
use sealpost_adapters::clock::SystemClock;
use sealpost_adapters::ledger::{EventContext, PlainEvent};
use sealpost_adapters::store::StreamId;
use sealpost_domain::access::{AccessEvent, Category, Purpose, ACCESS_STREAM_TYPE};
use sealpost_domain::{Principal, Region, RetentionPolicy, Timestamp};
use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

const RUNS: usize = 5;
const PER_STREAM: usize = 100;

/// Starts serve on `dir`, returns (time to listen, time to the first evidence answer).
fn start_once(dir: &Path) -> (Duration, Duration) {
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_sealpost"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir)
        .env("RUST_LOG", "error")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn serve");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("serving line");
    let listening = started.elapsed();
    let base = line.trim().rsplit(' ').next().expect("url").to_owned();
    let boot: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("bootstrap.json")).expect("bootstrap"))
            .expect("json");
    let token = boot["auditor_token"].as_str().expect("token").to_owned();
    let asked = Instant::now();
    let status = std::process::Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-H"])
        .arg(format!("authorization: Bearer {token}"))
        .arg(format!("{base}/sealpost/v1/statistics"))
        .output()
        .expect("curl");
    let answered = asked.elapsed();
    assert_eq!(String::from_utf8_lossy(&status.stdout), "200");
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
    (listening, answered)
}

/// A store with the bootstrap tenant and `events` access-count events.
async fn fill(dir: &Path, events: usize) {
    start_once(dir); // bootstrap
    let app = Sealpost::open(
        dir,
        None,
        None,
        4,
        Arc::new(SystemClock),
        RetentionPolicy::default(),
    )
    .await
    .expect("open");
    let store = app.store().clone();
    let streams = events.div_ceil(PER_STREAM);
    let mut tasks = Vec::new();
    for worker in 0..32 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for s in (worker..streams).step_by(32) {
                let ctx = EventContext {
                    business_id: "0".into(),
                    region: Region::Eu,
                    epoch: None,
                };
                let batch = (0..PER_STREAM)
                    .map(|i| {
                        let e = AccessEvent::AccessCounted {
                            principal: Principal::processor("delivery"),
                            category: Category::Statistics,
                            purpose: Purpose::Delivery,
                            owner: None,
                            minute: Timestamp::from_millis((s * PER_STREAM + i) as i64 * 60_000),
                            allowed: 1,
                            denied: 0,
                        };
                        PlainEvent::of(&e, Default::default()).expect("event")
                    })
                    .collect();
                let stream =
                    StreamId::new(&ctx.business_id, ACCESS_STREAM_TYPE, format!("bench-{s}"));
                store.append(&stream, 0, &ctx, batch).await.expect("append");
            }
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[allow(clippy::print_stdout)] // a benchmark reports on stdout
fn measure(label: &str, dir: &Path) -> (Duration, Duration) {
    // The first start after the store grew catches up once (projections, audit leaves).
    let (first_listen, first_answer) = start_once(dir);
    println!(
        "{label}: first start after filling: listening in {first_listen:?}, first evidence answer {first_answer:?}"
    );
    let (listen, answer): (Vec<_>, Vec<_>) = (0..RUNS).map(|_| start_once(dir)).unzip();
    let (l, a) = (median(listen), median(answer));
    println!("{label}: median of {RUNS} starts: listening in {l:?}, first evidence answer {a:?}");
    (l, a)
}

#[allow(clippy::print_stdout)] // a benchmark reports on stdout
fn main() {
    let large: usize = std::env::var("SEALPOST_STARTUP_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    if let Ok(dir) = std::env::var("SEALPOST_STARTUP_KEEP") {
        // Only fill a store of the large size there and stop (to look at it by hand).
        rt.block_on(fill(Path::new(&dir), large));
        return;
    }
    let small_dir = tempfile::tempdir().expect("dir");
    let large_dir = tempfile::tempdir().expect("dir");
    let t = Instant::now();
    rt.block_on(fill(small_dir.path(), 1_000));
    rt.block_on(fill(large_dir.path(), large));
    println!("filled the stores in {:?}", t.elapsed());
    let (sl, sa) = measure("baseline, 1,000 events", small_dir.path());
    let (ll, la) = measure(&format!("peer, {large} events"), large_dir.path());
    println!(
        "ratio peer/baseline: listening {:.2}x, first evidence answer {:.2}x",
        ll.as_secs_f64() / sl.as_secs_f64(),
        la.as_secs_f64() / sa.as_secs_f64()
    );
}
