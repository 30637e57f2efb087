//! The metrics an operator alerts on, through OpenTelemetry (scraped at `/metrics`, pushed over
//! OTLP when an endpoint is set; `sealpost_adapters::telemetry`). Labels are route templates,
//! methods, statuses, Cloud API codes and outcomes: never an id, a number or content.

use opentelemetry::metrics::{Counter, Histogram};
use opentelemetry::KeyValue;
use std::sync::OnceLock;

/// The instruments, made once per process on the global meter provider.
#[derive(Debug)]
pub struct Metrics {
    requests: Histogram<f64>,
    messages: Counter<u64>,
    webhook_attempts: Counter<u64>,
    webhook_duration: Histogram<f64>,
    erasures: Counter<u64>,
    leases: opentelemetry::metrics::Gauge<u64>,
    _lag: opentelemetry::metrics::ObservableGauge<u64>,
    _checkpoint_age: opentelemetry::metrics::ObservableGauge<f64>,
}

/// When this node last had the log's newest rows under a signed checkpoint: milliseconds since
/// [`since_start`]'s origin, plus one (0: not yet).
static LAST_CHECKPOINT_MS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// How far each lane this node holds is behind the log: observed at each collection, so a
/// lane handed to another node is no longer reported here (a gauge would repeat its last value).
static LANE_LAG: std::sync::Mutex<std::collections::BTreeMap<String, u64>> =
    std::sync::Mutex::new(std::collections::BTreeMap::new());

fn lane_lag() -> std::sync::MutexGuard<'static, std::collections::BTreeMap<String, u64>> {
    LANE_LAG
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Milliseconds since this process first asked (a monotonic clock: an age, never a date).
fn since_start() -> u64 {
    static ORIGIN: OnceLock<std::time::Instant> = OnceLock::new();
    let origin = ORIGIN.get_or_init(std::time::Instant::now);
    u64::try_from(origin.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// This node's checkpoint turn succeeded now: the newest rows are under a signed checkpoint (a
/// new one, or the last when nothing is newer).
pub fn checkpoint_signed() {
    LAST_CHECKPOINT_MS.store(since_start() + 1, std::sync::atomic::Ordering::Relaxed);
}

/// This node holds the sequencer's lease: its checkpoint age counts from now if it was not
/// counting, so a node that takes over and never signs is seen growing old.
pub fn checkpoint_duty_on() {
    let _ = LAST_CHECKPOINT_MS.compare_exchange(
        0,
        since_start() + 1,
        std::sync::atomic::Ordering::Relaxed,
        std::sync::atomic::Ordering::Relaxed,
    );
}

/// This node no longer signs the checkpoints (another holds the sequencer's lease): it reports
/// no checkpoint age until it signs again, so only the signing node's age can alert.
pub fn checkpoint_duty_off() {
    LAST_CHECKPOINT_MS.store(0, std::sync::atomic::Ordering::Relaxed);
}

/// The process's instruments.
pub fn metrics() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(|| {
        let meter = opentelemetry::global::meter("sealpost");
        Metrics {
            requests: meter
                .f64_histogram("http.server.request.duration")
                .with_unit("s")
                .with_description("HTTP requests answered, by route template, method and status")
                .build(),
            messages: meter
                .u64_counter("sealpost.messages")
                .with_description(
                    "Messages by what became of them: accepted, sent, delivered, read, failed (with its code)",
                )
                .build(),
            webhook_attempts: meter
                .u64_counter("sealpost.webhook.attempts")
                .with_description("Webhook posts by outcome: delivered, refused (not 200), error")
                .build(),
            webhook_duration: meter
                .f64_histogram("sealpost.webhook.duration")
                .with_unit("s")
                .with_description("How long a webhook post took")
                .build(),
            erasures: meter
                .u64_counter("sealpost.erasures")
                .with_description("Erasure requests carried out (keys destroyed)")
                .build(),
            leases: meter
                .u64_gauge("sealpost.leases.held")
                .with_description("Leases (pipeline lanes, housekeeping duties) this node holds")
                .build(),
            _lag: meter
                .u64_observable_gauge("sealpost.pipeline.lag")
                .with_description("Events of the log a lane has yet to follow (log head minus its checkpoint)")
                .with_callback(|gauge| {
                    for (lane, events) in lane_lag().iter() {
                        gauge.observe(*events, &[KeyValue::new("lane", lane.clone())]);
                    }
                })
                .build(),
            _checkpoint_age: meter
                .f64_observable_gauge("sealpost.audit.checkpoint.age")
                .with_unit("s")
                .with_description("Seconds since this node last had the log's newest rows under a signed checkpoint")
                .with_callback(|gauge| {
                    let last = LAST_CHECKPOINT_MS.load(std::sync::atomic::Ordering::Relaxed);
                    if last > 0 {
                        let age = (since_start() + 1).saturating_sub(last);
                        // Milliseconds to seconds, as a float (precision loss is harmless).
                        #[allow(clippy::cast_precision_loss)]
                        gauge.observe(age as f64 / 1000.0, &[]);
                    }
                })
                .build(),
        }
    })
}

impl Metrics {
    /// One HTTP request answered.
    pub fn request(&self, route: &str, method: &str, status: u16, seconds: f64) {
        self.requests.record(
            seconds,
            &[
                KeyValue::new("http.route", route.to_owned()),
                KeyValue::new("http.request.method", method.to_owned()),
                KeyValue::new("http.response.status_code", i64::from(status)),
            ],
        );
    }

    /// `n` messages reached `status` (`accepted`, `sent`, `delivered`, `read`).
    pub fn messages(&self, status: &'static str, n: u64) {
        if n > 0 {
            self.messages.add(n, &[KeyValue::new("status", status)]);
        }
    }

    /// A message failed for good with Cloud API `code`.
    pub fn failed(&self, code: u32) {
        self.messages.add(
            1,
            &[
                KeyValue::new("status", "failed"),
                KeyValue::new("code", i64::from(code)),
            ],
        );
    }

    /// One webhook post: `delivered` (200), `refused` (another status) or `error` (no answer).
    pub fn webhook(&self, outcome: &'static str, seconds: f64) {
        let outcome = [KeyValue::new("outcome", outcome)];
        self.webhook_attempts.add(1, &outcome);
        self.webhook_duration.record(seconds, &outcome);
    }

    /// This node holds `n` leases after its last round.
    pub fn leases(&self, n: u64) {
        self.leases.record(n, &[]);
    }

    /// How far lane `lane` (`all` for a node that serves every lane) is behind the log.
    pub fn lag(&self, lane: String, events: u64) {
        lane_lag().insert(lane, events);
    }

    /// Lane `lane` is no longer this node's: its lag is another node's to report.
    pub fn lane_let_go(&self, lane: &str) {
        lane_lag().remove(lane);
    }

    /// An erasure carried out.
    pub fn erased(&self) {
        self.erasures.add(1, &[]);
    }
}
