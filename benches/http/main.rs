//! `sealpost serve` under load, on Postgres and on SQLite: a business sends text messages
//! through `POST /{version}/{phone-number-id}/messages` (HTTP → durable sealed event) while the
//! pipeline, the simulated network and its devices run in the same process, and a webhook
//! listener takes the statuses.
//!
//! Each store prints, from one run: a closed loop (64 clients, the number's throughput limit
//! out of the way), then, restarted with the number at the upgraded 1,000/s, open loops at 200, 500, 1,000
//! and 2,000 messages/s (beyond 1,000/s the answer is 130429), delivered/s and read/s through `serve` (webhook statuses of the 1,000/s load),
//! erasure latency idle and under the 1,000/s load, and the server's memory before, at peak
//! and after. Beside them, against the same database: a raw batched-insert ceiling with rows of
//! the size Sealpost stored, and a plain `cqrs-es` + `postgres-es` program of the same accept
//! command behind the same HTTP client.
//!
//! `cargo bench --bench http`; `SEALPOST_BENCH_SECONDS` (default 5) is the length of each load,
//! `SEALPOST_BENCH_STORES` (default `postgres,sqlite`) which stores run,
//! `SEALPOST_BENCH_CONSUMERS` (default 1,000) how many consumers share the load (the pair limit
//! lets each take 45 at once and one per 6 s), `SEALPOST_BENCH_BIN` another `sealpost` binary
//! to measure (an earlier tree's build, for a before/after pair); `SEALPOST_SOAK=1` adds a soak
//! at 1,000/s (`SEALPOST_SOAK_MINUTES`, default 10) with memory each minute. Figures:
//! docs/benchmarks.md.

mod load;
mod peer;
mod server;

use load::{ms, Target};
use serde_json::json;
use server::{consumer, Hook, Serve};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Consumers kept aside to be erased: the first `ERASED_IDLE` idle, the rest under load.
const ERASED: usize = 120;
const ERASED_IDLE: usize = 100;
const CLIENTS: usize = 64;
/// The longest wait for the server to catch up between loads (a webhook backlog may be longer).
const BETWEEN: Duration = Duration::from_secs(20);
/// The number's throughput limit while the closed loop measures capacity.
const CAPACITY: u32 = 100_000;
const RATES: [u64; 4] = [200, 500, 1_000, 2_000];

#[allow(clippy::print_stdout)] // a benchmark reports on stdout
fn main() {
    let length = Duration::from_secs(env("SEALPOST_BENCH_SECONDS", 5));
    let consumers = env("SEALPOST_BENCH_CONSUMERS", 1_000) as usize;
    let stores =
        std::env::var("SEALPOST_BENCH_STORES").unwrap_or_else(|_| "postgres,sqlite".into());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        for store in stores.split(',') {
            match store {
                "postgres" => {
                    let Some(pg) = sealpost_testkit::postgres_test_db("http bench").await else {
                        continue;
                    };
                    // Empty: the server under test migrates it itself (an earlier tree's
                    // binary, through SEALPOST_BENCH_BIN, knows only its own migrations).
                    for sql in [
                        format!("DROP SCHEMA \"{}\" CASCADE", pg.schema),
                        format!("CREATE SCHEMA \"{}\"", pg.schema),
                    ] {
                        sqlx::query(&sql).execute(&pg.pool).await.expect("empty schema");
                    }
                    let url = format!("{}?options=-csearch_path%3D{}", pg.url, pg.schema);
                    println!("== Postgres ({}) ==", pg.url);
                    run(Some(&url), consumers, length).await;
                    let row: (Option<f64>,) = sqlx::query_as(
                        "SELECT avg(length(payload))::float8 FROM sealpost_events WHERE event_type = 'OutboundMessageAccepted'",
                    )
                    .fetch_one(&pg.pool)
                    .await
                    .expect("row size");
                    let row_bytes = row.0.unwrap_or(600.0) as usize;
                    let raw = peer::raw_postgres(&pg.pool, row_bytes, length).await;
                    println!("raw batched insert ({row_bytes}-byte rows, {} per transaction, 4 clients): {raw:.0} rows/s", 100);
                    pg.drop_schema().await;
                    let Some(plain) = sealpost_testkit::postgres_test_db("http bench plain").await else {
                        continue;
                    };
                    let url = peer::plain_server(plain.pool.clone()).await;
                    let target = Target {
                        client: reqwest::Client::new(),
                        url,
                        token: Some("plain".into()),
                        body: Arc::new(move |n| text_to(&consumer(n as usize % consumers))),
                    };
                    let f = load::closed_loop(&target, CLIENTS, length).await;
                    println!("plain cqrs-es + postgres-es, closed loop {CLIENTS} clients: {}", f.line());
                    plain.drop_schema().await;
                }
                "sqlite" => {
                    println!("== SQLite ==");
                    run(None, consumers, length).await;
                    let raw = peer::raw_sqlite(600, length).await;
                    println!("raw batched insert (600-byte rows, 100 per transaction): {raw:.0} rows/s");
                }
                other => println!("unknown store {other:?} (postgres, sqlite)"),
            }
        }
    });
}

fn text_to(to: &str) -> String {
    json!({"messaging_product": "whatsapp", "to": to, "type": "text",
           "text": {"body": "your order has shipped"}})
    .to_string()
}

/// One store: the server, its consumers, every load, the lifecycle and erasure figures.
#[allow(clippy::print_stdout)]
async fn run(database_url: Option<&str>, consumers: usize, length: Duration) {
    // Capacity first: the number's throughput limit out of the way.
    let s = Serve::start(database_url, CAPACITY);
    let client = reqwest::Client::new();
    let hook = Hook::default();
    let callback = hook.listen().await;
    let setup = Instant::now();
    server::prepare(&s, &client, &hook, &callback, 0..consumers + ERASED).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    println!(
        "{consumers} consumers ready in {:.1} s",
        setup.elapsed().as_secs_f64()
    );
    let target = |s: &Serve| Target {
        client: client.clone(),
        url: format!("{}/v21.0/{}/messages", s.base, s.s("phone_number_id")),
        token: Some(s.s("access_token")),
        body: Arc::new(move |n| text_to(&consumer(n as usize % consumers))),
    };
    let mut idle = Vec::new();
    for i in 0..ERASED_IDLE {
        idle.push(erase(&client, &s, consumer(consumers + i)).await);
    }
    println!("erasure idle: {}", spread(&mut idle));
    let closed = load::closed_loop(&target(&s), CLIENTS, length).await;
    println!(
        "closed loop, {CLIENTS} clients (throughput limit {CAPACITY}/s): {}",
        closed.line()
    );
    settle(&hook, Duration::from_secs(2), BETWEEN).await;
    // Then as a business number is: upgraded, 1,000/s; beyond it 130429.
    let s = s.restart(1_000);
    settle(&hook, Duration::from_secs(2), BETWEEN).await;
    let idle_rss = s.rss_mib();
    println!("restarted at 1,000/s; server RSS idle {idle_rss:.1} MiB");
    let target = target(&s);
    // Peak memory, sampled while the loads run.
    let peak = Arc::new(std::sync::Mutex::new(idle_rss));
    let sampler = {
        let (peak, pid_rss) = (peak.clone(), s.rss_probe());
        tokio::spawn(async move {
            loop {
                let now = pid_rss();
                {
                    let mut p = peak.lock().expect("peak");
                    *p = p.max(now);
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    let erase_one = |i: usize| erase(&client, &s, consumer(consumers + i));
    let mut first = 1_000_000;
    for rate in RATES {
        settle(&hook, Duration::from_secs(2), BETWEEN).await;
        let started = Instant::now();
        let (f, busy) = if rate == 1_000 {
            // The erasures run while this load does.
            let erasures = async {
                let mut busy = Vec::new();
                tokio::time::sleep(length / 4).await;
                for i in ERASED_IDLE..ERASED {
                    busy.push(erase_one(i).await);
                    tokio::time::sleep(length / (2 * (ERASED - ERASED_IDLE) as u32)).await;
                }
                busy
            };
            tokio::join!(load::open_loop(&target, rate, length, first), erasures)
        } else {
            (
                load::open_loop(&target, rate, length, first).await,
                Vec::new(),
            )
        };
        first += 1_000_000;
        println!("open loop {rate}/s: {}", f.line());
        if rate == 1_000 {
            let mut busy = busy;
            println!("erasure under 1,000/s: {}", spread(&mut busy));
            lifecycle(&hook, &f.accepted, started).await;
        }
    }
    settle(&hook, Duration::from_secs(5), Duration::from_secs(60)).await;
    let after = s.rss_mib();
    sampler.abort();
    let peak = *peak.lock().expect("peak");
    println!("server RSS: idle {idle_rss:.1} MiB, peak {peak:.1} MiB, after the loads {after:.1} MiB ({:+.1} %)", 100.0 * (after - idle_rss) / idle_rss);
    if std::env::var("SEALPOST_SOAK").is_ok_and(|v| v == "1") {
        soak(&s, &target, first).await;
    }
    s.stop();
}

/// `SEALPOST_SOAK=1`: 1,000 messages/s for `SEALPOST_SOAK_MINUTES` (default 10), a line a
/// minute with what was accepted, its latency and the server's memory; memory is flat when the
/// last minute's RSS is within 10 % of the first's. Give it at least 6,000 consumers
/// (`SEALPOST_BENCH_CONSUMERS`): the pair limit lets a consumer take one message per 6 s, so
/// fewer would be refused 131056 rather than soaked.
#[allow(clippy::print_stdout)]
async fn soak(s: &Serve, target: &Target, mut first: u64) {
    let minutes = env("SEALPOST_SOAK_MINUTES", 10);
    println!("soak: 1,000/s for {minutes} minutes");
    let mut rss = Vec::new();
    for minute in 1..=minutes {
        first += 100_000_000;
        let f = load::open_loop(target, 1_000, Duration::from_secs(60), first).await;
        rss.push(s.rss_mib());
        println!(
            "soak minute {minute}: {}  RSS {:.1} MiB",
            f.line(),
            rss[rss.len() - 1]
        );
    }
    if let (Some(head), Some(tail)) = (rss.first(), rss.last()) {
        println!(
            "soak RSS: first minute {head:.1} MiB, last {tail:.1} MiB ({:+.1} %, {})",
            100.0 * (tail - head) / head,
            if (tail - head).abs() <= 0.1 * head {
                "flat"
            } else {
                "NOT flat"
            }
        );
    }
}

/// Waits until the webhook has been quiet for `quiet` (the server caught up), at most `cap`.
async fn settle(hook: &Hook, quiet: Duration, cap: Duration) {
    let count = || hook.with(|h| h.delivered.len() + h.read.len());
    let mut last = (count(), Instant::now());
    let start = Instant::now();
    while last.1.elapsed() < quiet && start.elapsed() < cap {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = count();
        if now != last.0 {
            last = (now, Instant::now());
        }
    }
}

/// Delivered/s and read/s through `serve`: the accepted messages of one load, from the load's
/// start to the last of their statuses at the webhook.
#[allow(clippy::print_stdout)]
async fn lifecycle(hook: &Hook, accepted: &[String], started: Instant) {
    // Until every accepted message of the load was read (or 3 minutes).
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(180)
        && hook.with(|h| accepted.iter().any(|id| !h.read.contains_key(id)))
    {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (delivered, read) = hook.with(|h| {
        let of = |m: &std::collections::HashMap<String, Instant>| {
            let times: Vec<Instant> = accepted
                .iter()
                .filter_map(|id| m.get(id).copied())
                .collect();
            let last = times.iter().max().copied().unwrap_or(started);
            (times.len(), last.duration_since(started))
        };
        (of(&h.delivered), of(&h.read))
    });
    let rate = |(n, took): (usize, Duration)| n as f64 / took.as_secs_f64().max(1e-9);
    println!(
        "through serve, the 1,000/s load: delivered {} of {} ({:.0}/s, last after {:.1} s), read {} ({:.0}/s, last after {:.1} s)",
        delivered.0,
        accepted.len(),
        rate(delivered),
        delivered.1.as_secs_f64(),
        read.0,
        rate(read),
        read.1.as_secs_f64()
    );
}

/// `POST /sealpost/v1/dpo/erasures` of one consumer: the latency of the erasure certificate.
async fn erase(client: &reqwest::Client, s: &Serve, wa_id: String) -> Duration {
    let t = Instant::now();
    let r = client
        .post(format!("{}/sealpost/v1/dpo/erasures", s.base))
        .bearer_auth(s.s("dpo_token"))
        .header("content-type", "application/json")
        .body(json!({"phone_number_id": s.s("phone_number_id"), "wa_id": wa_id}).to_string())
        .send()
        .await
        .expect("erase");
    let took = t.elapsed();
    assert_eq!(r.status().as_u16(), 201, "erasure");
    took
}

fn spread(v: &mut [Duration]) -> String {
    v.sort();
    let at = |p: f64| v[((v.len() as f64 * p) as usize).min(v.len() - 1)];
    format!(
        "{} erasures, p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        v.len(),
        ms(at(0.5)),
        ms(at(0.99)),
        ms(at(1.0))
    )
}
