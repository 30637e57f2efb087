//! `sealpost serve` under a fixed offered load: a business sends text messages through the
//! Cloud API at a steady rate (below the standard 80 messages/s throughput limit of one number,
//! as a Cloud API client must), and we measure the accepted rate and the p50/p99 latency of
//! `POST /{version}/{phone-number-id}/messages` (HTTP → durable sealed event), with the
//! pipeline, the simulated transport and devices running in the same process.
//!
//! `cargo bench --bench http` (`SEALPOST_BENCH_RATE` and `SEALPOST_BENCH_SECONDS` override the
//! offered load and its length). Figures: docs/benchmarks.md.

use serde_json::{json, Value};
use std::time::{Duration, Instant};

const CONSUMERS: usize = 20;

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

async fn post(client: &reqwest::Client, url: String, token: Option<&str>, body: Value) -> u16 {
    let mut req = client
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_string());
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    req.send().await.map(|r| r.status().as_u16()).unwrap_or(0)
}

#[allow(clippy::print_stdout)] // a benchmark reports on stdout
fn main() {
    let rate = env("SEALPOST_BENCH_RATE", 60);
    let seconds = env("SEALPOST_BENCH_SECONDS", 10);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let dir = tempfile::tempdir().expect("dir");
        let data = dir.path().join("data");
        let (addr_tx, addr_rx) = tokio::sync::oneshot::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let config = sealpost::http::ServeConfig { listen: "127.0.0.1:0".parse().expect("addr"), data_dir: data.clone(), database_url: None, connect_timeout: sealpost_adapters::store::postgres::DEFAULT_CONNECT_TIMEOUT, sim_clock: true, throughput: (sealpost::http::THROUGHPUT_STANDARD, sealpost::http::THROUGHPUT_HIGH) };
        let server = tokio::spawn(sealpost::http::serve(config, async { let _ = stop_rx.await; }, move |a| {
            let _ = addr_tx.send(a);
        }));
        let base = format!("http://{}", addr_rx.await.expect("server ready"));
        let boot: Value = serde_json::from_slice(&std::fs::read(data.join("bootstrap.json")).expect("bootstrap")).expect("json");
        let (token, number, display) = (boot["access_token"].as_str().expect("t").to_owned(), boot["phone_number_id"].as_str().expect("p").to_owned(), boot["display_phone_number"].as_str().expect("d").to_owned());
        let client = reqwest::Client::new();
        let consumer = |i: usize| format!("49151{:08}", 2000 + i);
        for i in 0..CONSUMERS {
            post(&client, format!("{base}/sim/v1/devices/{}/messages", consumer(i)), None, json!({"to": display, "type": "text", "text": {"body": "hi"}})).await;
        }
        // Wait until every consumer's window is open (the pipeline has taken their messages).
        let url = format!("{base}/v21.0/{number}/messages");
        for i in 0..CONSUMERS {
            while post(&client, url.clone(), Some(&token), json!({"messaging_product": "whatsapp", "to": consumer(i), "type": "text", "text": {"body": "welcome"}})).await != 200 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        // The simulated clock moves with wall time, so the throughput bucket refills as it would.
        let clock = {
            let client = client.clone();
            let base = base.clone();
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    post(&client, format!("{base}/sim/v1/clock/advance"), None, json!({"seconds": 1})).await;
                }
            })
        };
        tokio::time::sleep(Duration::from_secs(2)).await;
        let total = (rate * seconds) as usize;
        let interval = Duration::from_secs_f64(1.0 / rate as f64);
        let start = Instant::now();
        let mut tasks = Vec::with_capacity(total);
        for n in 0..total {
            let due = start + interval * n as u32;
            tokio::time::sleep_until(due.into()).await;
            let (client, url, token) = (client.clone(), url.clone(), token.clone());
            let to = consumer(n % CONSUMERS);
            tasks.push(tokio::spawn(async move {
                let t = Instant::now();
                let status = post(&client, url, Some(&token), json!({"messaging_product": "whatsapp", "to": to, "type": "text", "text": {"body": "your order has shipped"}})).await;
                (status, t.elapsed())
            }));
        }
        let mut latencies = Vec::with_capacity(total);
        let mut ok = 0usize;
        for t in tasks {
            let (status, took) = t.await.expect("task");
            if status == 200 {
                ok += 1;
            }
            latencies.push(took);
        }
        let elapsed = start.elapsed();
        clock.abort();
        latencies.sort();
        let pct = |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)];
        println!("http send, offered {rate}/s for {seconds} s (durable, SQLite, pipeline running):");
        println!("  accepted {ok} of {total} ({:.1} messages/s)", ok as f64 / elapsed.as_secs_f64());
        println!("  latency p50 {:?}  p99 {:?}  max {:?}", pct(0.50), pct(0.99), latencies[latencies.len() - 1]);
        let _ = stop_tx.send(());
        let _ = server.await;
    });
}
