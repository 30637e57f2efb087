//! Offered load: a closed loop (N clients, each sends its next request when the last was
//! answered) and an open loop (requests start on a fixed schedule whatever the answers), and
//! the figures of one run: accepted, refused by code, latency percentiles.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Where requests go: one URL, a bearer token, and the body of the `n`-th request.
#[derive(Clone)]
pub struct Target {
    pub client: reqwest::Client,
    pub url: String,
    pub token: Option<String>,
    pub body: Arc<dyn Fn(u64) -> String + Send + Sync>,
}

/// One answer: status, the Graph error code if any, the message id if accepted, the latency.
pub struct Answer {
    pub status: u16,
    pub code: Option<u64>,
    pub id: Option<String>,
    pub took: Duration,
}

impl Target {
    async fn send(&self, n: u64) -> Answer {
        let mut req = self
            .client
            .post(&self.url)
            .header("content-type", "application/json")
            .body((self.body)(n));
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        let t = Instant::now();
        let (status, body) = match req.send().await {
            Ok(r) => {
                let status = r.status().as_u16();
                (status, r.bytes().await.unwrap_or_default())
            }
            Err(_) => (0, Default::default()),
        };
        let took = t.elapsed();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        Answer {
            status,
            code: v["error"]["code"].as_u64(),
            id: v["messages"][0]["id"].as_str().map(str::to_owned),
            took,
        }
    }
}

/// The figures of one load.
pub struct Figures {
    pub offered: usize,
    pub elapsed: Duration,
    pub accepted: Vec<String>,
    /// Refusals by (status, code).
    pub refused: BTreeMap<(u16, u64), usize>,
    latencies: Vec<Duration>,
}

impl Figures {
    fn from(answers: Vec<Answer>, elapsed: Duration) -> Self {
        let mut f = Figures {
            offered: answers.len(),
            elapsed,
            accepted: Vec::new(),
            refused: BTreeMap::new(),
            latencies: answers.iter().map(|a| a.took).collect(),
        };
        f.latencies.sort();
        for a in answers {
            match (a.status, a.id) {
                (200, Some(id)) => f.accepted.push(id),
                (status, _) => *f.refused.entry((status, a.code.unwrap_or(0))).or_default() += 1,
            }
        }
        f
    }

    pub fn accepted_per_s(&self) -> f64 {
        self.accepted.len() as f64 / self.elapsed.as_secs_f64()
    }

    /// The `p`-th latency (0.0–1.0).
    pub fn pct(&self, p: f64) -> Duration {
        let i = ((self.latencies.len() as f64 * p) as usize).min(self.latencies.len().max(1) - 1);
        self.latencies.get(i).copied().unwrap_or_default()
    }

    /// One line: accepted (share and rate), latency p50/p99/max, refusals by code.
    pub fn line(&self) -> String {
        let refused: Vec<String> = self
            .refused
            .iter()
            .map(|((status, code), n)| format!("{n}×{status}/{code}"))
            .collect();
        format!(
            "accepted {} of {} ({:.2} %, {:.0}/s)  p50 {:.1} ms  p99 {:.1} ms  max {:.1} ms{}",
            self.accepted.len(),
            self.offered,
            100.0 * self.accepted.len() as f64 / self.offered.max(1) as f64,
            self.accepted_per_s(),
            ms(self.pct(0.50)),
            ms(self.pct(0.99)),
            ms(self.pct(1.0)),
            if refused.is_empty() {
                String::new()
            } else {
                format!("  refused {}", refused.join(" "))
            }
        )
    }
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1_000.0
}

/// `clients` clients, each sending its next request as soon as the last was answered, for
/// `length`.
pub async fn closed_loop(target: &Target, clients: usize, length: Duration) -> Figures {
    let start = Instant::now();
    let counter = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut tasks = Vec::with_capacity(clients);
    for _ in 0..clients {
        let (target, counter) = (target.clone(), counter.clone());
        tasks.push(tokio::spawn(async move {
            let mut answers = Vec::new();
            while start.elapsed() < length {
                let n = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                answers.push(target.send(n).await);
            }
            answers
        }));
    }
    let mut answers = Vec::new();
    for t in tasks {
        answers.extend(t.await.expect("client"));
    }
    Figures::from(answers, start.elapsed())
}

/// `rate` requests per second on a fixed schedule for `length`, each on its own task (a slow
/// answer does not delay the next request).
pub async fn open_loop(target: &Target, rate: u64, length: Duration, first: u64) -> Figures {
    let total = (rate as f64 * length.as_secs_f64()) as u64;
    let interval = Duration::from_secs_f64(1.0 / rate as f64);
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(total as usize);
    for n in 0..total {
        tokio::time::sleep_until((start + interval.mul_f64(n as f64)).into()).await;
        let target = target.clone();
        tasks.push(tokio::spawn(async move { target.send(first + n).await }));
    }
    let mut answers = Vec::with_capacity(tasks.len());
    for t in tasks {
        answers.push(t.await.expect("request"));
    }
    Figures::from(answers, start.elapsed())
}
