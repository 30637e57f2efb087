//! Process-wide telemetry set-up: structured logs and (optionally) OTLP traces.
//!
//! A binary calls [`init`] once, early in `main`, and keeps the returned
//! [`TelemetryGuard`] alive until it exits:
//!
//! ```text
//! let _telemetry = telemetry::init(&telemetry::TelemetryConfig::from_env("sealpost"))?;
//! ```
//!
//! What gets installed:
//!
//! * an [`EnvFilter`] built from [`TelemetryConfig::default_filter`] (normally
//!   `RUST_LOG`, `info` when unset),
//! * a `fmt` layer writing to **stderr**, human-readable or one JSON object per
//!   line ([`LogFormat`]),
//! * when [`TelemetryConfig::otlp_endpoint`] is set, an OpenTelemetry layer
//!   exporting spans over OTLP HTTP/protobuf from a background thread.
//!
//! Privacy: this module records nothing by itself except a single
//! `telemetry initialised` line carrying the log format and whether OTLP is
//! enabled (never the endpoint). Callers remain responsible for keeping
//! personal data out of their own events and span fields.
//!
//! `log`-crate records are not bridged into `tracing`.

use std::fmt;
use std::io::IsTerminal;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;
use tracing::Subscriber;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::{EnvFilter, Layer, Registry};

/// Environment variable selecting the log format (`pretty` or `json`).
pub const LOG_FORMAT_ENV: &str = "SEALPOST_LOG_FORMAT";
/// Environment variable holding the `EnvFilter` directives.
pub const LOG_FILTER_ENV: &str = "RUST_LOG";
/// Environment variable holding the OTLP collector base URL.
pub const OTLP_ENDPOINT_ENV: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";
/// Filter used when `RUST_LOG` is unset or empty.
pub const DEFAULT_FILTER: &str = "info";

/// Path appended to the OTLP base endpoint for traces (OTLP/HTTP spec).
const OTLP_TRACES_PATH: &str = "/v1/traces";
/// Upper bound on how long dropping a [`TelemetryGuard`] may block.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);
/// The target of spans that give log lines their context (a pipeline lane, for its whole
/// life) and are no trace: not exported.
pub const CONTEXT_TARGET: &str = "sealpost::context";

/// Targets whose spans/events must never reach the OTel layer: the exporter's
/// own HTTP stack and the OpenTelemetry SDK itself (avoids feedback loops), and
/// [`CONTEXT_TARGET`].
const OTEL_EXCLUDED_TARGETS: &[&str] = &[
    CONTEXT_TARGET,
    "opentelemetry",
    "reqwest",
    "hyper",
    "h2",
    "tower",
    "sqlx",
];

/// Set by the first call to [`init`]; never cleared once a subscriber is installed.
static INITIALISED: AtomicBool = AtomicBool::new(false);

/// Output format of the stderr log layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// Human-readable single-line output (ANSI colours only on a terminal).
    #[default]
    Pretty,
    /// One JSON object per line, for log shippers.
    Json,
}

impl LogFormat {
    /// The canonical lowercase name (`"pretty"` / `"json"`).
    pub fn as_str(self) -> &'static str {
        match self {
            LogFormat::Pretty => "pretty",
            LogFormat::Json => "json",
        }
    }
}

impl fmt::Display for LogFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Error returned when a string is neither `pretty` nor `json`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown log format {0:?} (expected \"pretty\" or \"json\")")]
pub struct ParseLogFormatError(String);

impl FromStr for LogFormat {
    type Err = ParseLogFormatError;

    /// Case-insensitive, surrounding whitespace ignored.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s.eq_ignore_ascii_case("pretty") {
            Ok(LogFormat::Pretty)
        } else if s.eq_ignore_ascii_case("json") {
            Ok(LogFormat::Json)
        } else {
            Err(ParseLogFormatError(s.to_owned()))
        }
    }
}

/// Everything [`init`] needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TelemetryConfig {
    /// Reported as the OpenTelemetry `service.name` resource attribute.
    pub service_name: String,
    /// Format of the stderr log output.
    pub format: LogFormat,
    /// `EnvFilter` directives, e.g. `info,sqlx=warn`. Invalid directives are
    /// ignored rather than failing start-up.
    pub default_filter: String,
    /// OTLP/HTTP collector base URL (e.g. `http://collector:4318`); `/v1/traces`
    /// is appended. `None` disables trace export entirely.
    pub otlp_endpoint: Option<String>,
}

impl TelemetryConfig {
    /// Builds a config from `SEALPOST_LOG_FORMAT`, `RUST_LOG` and
    /// `OTEL_EXPORTER_OTLP_ENDPOINT`.
    ///
    /// Unset or empty variables fall back to defaults (pretty, `info`, no
    /// OTLP). An unrecognised `SEALPOST_LOG_FORMAT` also falls back to pretty,
    /// since there is no logger yet to report it.
    pub fn from_env(service_name: &str) -> TelemetryConfig {
        Self::from_lookup(service_name, |key| std::env::var(key).ok())
    }

    fn from_lookup(service_name: &str, lookup: impl Fn(&str) -> Option<String>) -> TelemetryConfig {
        let non_empty = |key: &str| {
            lookup(key)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        TelemetryConfig {
            service_name: service_name.to_owned(),
            format: non_empty(LOG_FORMAT_ENV)
                .and_then(|v| v.parse().ok())
                .unwrap_or_default(),
            default_filter: non_empty(LOG_FILTER_ENV).unwrap_or_else(|| DEFAULT_FILTER.to_owned()),
            otlp_endpoint: non_empty(OTLP_ENDPOINT_ENV),
        }
    }
}

/// Why [`init`] failed.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// A global tracing subscriber is already installed (by an earlier [`init`]
    /// or by other code). Telemetry is already running; callers normally just
    /// continue without a guard (or treat it as a start-up bug).
    #[error("telemetry is already initialised")]
    AlreadyInitialised,
    /// The OTLP exporter could not be built (e.g. an invalid endpoint URL).
    /// Nothing was installed; callers should fix the configuration, or retry
    /// [`init`] with `otlp_endpoint: None` to run with logs only.
    #[error("failed to build the OTLP exporter: {0}")]
    Exporter(String),
}

/// Keeps telemetry alive; dropping it flushes and shuts down the tracer
/// provider (blocking for at most a few seconds, errors ignored).
///
/// The log subscriber itself stays installed for the rest of the process.
#[must_use = "dropping the guard immediately shuts down trace export"]
pub struct TelemetryGuard {
    provider: Option<SdkTracerProvider>,
    meters: Option<opentelemetry_sdk::metrics::SdkMeterProvider>,
}

impl TelemetryGuard {
    /// Whether spans are being exported over OTLP.
    pub fn otlp_enabled(&self) -> bool {
        self.provider.is_some()
    }
}

impl fmt::Debug for TelemetryGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TelemetryGuard")
            .field("otlp_enabled", &self.otlp_enabled())
            .finish()
    }
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some(meters) = self.meters.take() {
            let _ = meters.shutdown_with_timeout(SHUTDOWN_TIMEOUT);
        }
        if let Some(provider) = self.provider.take() {
            // Bounded wait; a failed or timed-out final export is not worth
            // panicking or hanging over at process exit.
            let _ = provider.shutdown_with_timeout(SHUTDOWN_TIMEOUT);
        }
    }
}

/// Installs the global tracing subscriber. Call once per process.
///
/// A second call (or a call after other code installed a global subscriber)
/// returns [`TelemetryError::AlreadyInitialised`].
pub fn init(config: &TelemetryConfig) -> Result<TelemetryGuard, TelemetryError> {
    if INITIALISED
        .compare_exchange(false, true, Ordering::SeqCst, Ordering::SeqCst)
        .is_err()
    {
        return Err(TelemetryError::AlreadyInitialised);
    }

    let provider = match config.otlp_endpoint.as_deref() {
        Some(endpoint) => match build_tracer_provider(&config.service_name, endpoint) {
            Ok(provider) => Some(provider),
            Err(err) => {
                // Nothing installed: allow a retry (e.g. without OTLP).
                INITIALISED.store(false, Ordering::SeqCst);
                return Err(err);
            }
        },
        None => None,
    };

    // Spans are exported at INFO whatever the log filter says: the log's level is not the
    // traces' (the log filter gates the stderr layer only).
    let otel_layer = provider.as_ref().map(|provider| {
        let excluded = OTEL_EXCLUDED_TARGETS.iter().fold(
            Targets::new().with_default(LevelFilter::INFO),
            |t, target| t.with_target(*target, LevelFilter::OFF),
        );
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer(env!("CARGO_PKG_NAME")))
            .with_filter(excluded)
    });

    let ansi = config.format == LogFormat::Pretty && std::io::stderr().is_terminal();
    let subscriber = Registry::default()
        .with(
            fmt_layer(config.format, ansi, std::io::stderr)
                .with_filter(env_filter(&config.default_filter)),
        )
        .with(otel_layer);

    // Metrics are not worth failing the start over: without them the scrape answers empty.
    let meters = build_meter_provider(&config.service_name, config.otlp_endpoint.as_deref()).ok();
    let guard = TelemetryGuard { provider, meters };
    if tracing::subscriber::set_global_default(subscriber).is_err() {
        // Other code already installed a global subscriber; `guard` drops
        // here and shuts the unused provider down.
        return Err(TelemetryError::AlreadyInitialised);
    }
    if let Some(meters) = &guard.meters {
        opentelemetry::global::set_meter_provider(meters.clone());
    }

    tracing::info!(
        format = config.format.as_str(),
        otlp = guard.otlp_enabled(),
        "telemetry initialised"
    );
    Ok(guard)
}

/// The W3C `traceparent` of the current span, when OpenTelemetry is recording it.
pub fn current_traceparent() -> Option<String> {
    use opentelemetry::trace::TraceContextExt as _;
    use tracing_opentelemetry::OpenTelemetrySpanExt as _;
    let cx = tracing::Span::current().context();
    let span = cx.span();
    let sc = span.span_context();
    sc.is_valid().then(|| {
        format!(
            "00-{}-{}-{:02x}",
            sc.trace_id(),
            sc.span_id(),
            sc.trace_flags().to_u8()
        )
    })
}

/// Makes `span` a child of the W3C trace context `traceparent` (an incoming request's header,
/// or the metadata of the event that caused the work); nothing when it does not parse.
pub fn continue_trace(span: &tracing::Span, traceparent: Option<&str>) {
    use opentelemetry::propagation::TextMapPropagator as _;
    use opentelemetry::trace::TraceContextExt as _;
    use tracing_opentelemetry::OpenTelemetrySpanExt as _;
    let Some(traceparent) = traceparent else {
        return;
    };
    let carrier: std::collections::HashMap<String, String> =
        [("traceparent".to_owned(), traceparent.to_owned())].into();
    let cx = opentelemetry_sdk::propagation::TraceContextPropagator::new().extract(&carrier);
    if cx.span().span_context().is_valid() {
        // Only fails when the span is not recorded by OpenTelemetry: nothing to continue.
        let _ = span.set_parent(cx);
    }
}

/// A JSON-logging subscriber (same filter and `fmt` layer as [`init`] in JSON
/// mode, without OTLP) writing to `make_writer`. Not installed globally: use
/// it with `tracing::subscriber::with_default`, e.g. to capture logs in tests.
pub fn json_subscriber<W>(filter: &str, make_writer: W) -> impl Subscriber + Send + Sync + 'static
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    Registry::default().with(env_filter(filter)).with(fmt_layer(
        LogFormat::Json,
        false,
        make_writer,
    ))
}

/// Lossy `EnvFilter`: invalid directives are skipped instead of failing.
fn env_filter(directives: &str) -> EnvFilter {
    EnvFilter::builder().parse_lossy(directives)
}

/// The single place where the log output layer is configured.
fn fmt_layer<S, W>(format: LogFormat, ansi: bool, make_writer: W) -> Box<dyn Layer<S> + Send + Sync>
where
    S: Subscriber + for<'span> LookupSpan<'span>,
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let layer = tracing_subscriber::fmt::layer().with_writer(make_writer);
    match format {
        LogFormat::Pretty => layer.with_ansi(ansi).boxed(),
        LogFormat::Json => layer
            .json()
            .with_ansi(false)
            .with_current_span(true)
            .with_span_list(true)
            .boxed(),
    }
}

/// `n` keys of `kind` (`epoch`, `subject`, `media`) destroyed: `sealpost_keys_destroyed_total`.
pub fn keys_destroyed(kind: &'static str, n: u64) {
    static COUNTER: std::sync::OnceLock<opentelemetry::metrics::Counter<u64>> =
        std::sync::OnceLock::new();
    if n > 0 {
        COUNTER
            .get_or_init(|| {
                opentelemetry::global::meter("sealpost")
                    .u64_counter("sealpost.keys.destroyed")
                    .with_description("Keys destroyed (crypto-shredding), by kind")
                    .build()
            })
            .add(n, &[opentelemetry::KeyValue::new("kind", kind)]);
    }
}

/// The registry the Prometheus scrape (`/metrics`) reads.
fn registry() -> &'static prometheus::Registry {
    static REGISTRY: std::sync::OnceLock<prometheus::Registry> = std::sync::OnceLock::new();
    REGISTRY.get_or_init(prometheus::Registry::new)
}

/// The metrics as Prometheus text (exposition format 0.0.4): what `/metrics` answers.
pub fn prometheus_text() -> String {
    use prometheus::Encoder as _;
    let mut out = Vec::new();
    let _ = prometheus::TextEncoder::new().encode(&registry().gather(), &mut out);
    String::from_utf8(out).unwrap_or_default()
}

/// Metrics: read by the Prometheus scrape, and pushed over OTLP/HTTP to `endpoint` (every
/// `OTEL_METRIC_EXPORT_INTERVAL` ms, 60 s by default) when there is one.
fn build_meter_provider(
    service_name: &str,
    endpoint: Option<&str>,
) -> Result<opentelemetry_sdk::metrics::SdkMeterProvider, TelemetryError> {
    let scrape = opentelemetry_prometheus::exporter()
        .with_registry(registry().clone())
        .without_scope_info()
        .without_target_info()
        .build()
        .map_err(|e| TelemetryError::Exporter(e.to_string()))?;
    let resource = Resource::builder()
        .with_service_name(service_name.to_owned())
        .build();
    let mut builder = opentelemetry_sdk::metrics::SdkMeterProvider::builder()
        .with_reader(scrape)
        .with_resource(resource);
    if let Some(endpoint) = endpoint {
        let url = format!("{}/v1/metrics", endpoint.trim_end_matches('/'));
        let exporter = opentelemetry_otlp::MetricExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(url)
            .build()
            .map_err(|e| TelemetryError::Exporter(e.to_string()))?;
        builder = builder
            .with_reader(opentelemetry_sdk::metrics::PeriodicReader::builder(exporter).build());
    }
    Ok(builder.build())
}

fn build_tracer_provider(
    service_name: &str,
    endpoint: &str,
) -> Result<SdkTracerProvider, TelemetryError> {
    let traces_url = format!("{}{OTLP_TRACES_PATH}", endpoint.trim_end_matches('/'));
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(traces_url)
        .build()
        .map_err(|e| TelemetryError::Exporter(e.to_string()))?;
    let resource = Resource::builder()
        .with_service_name(service_name.to_owned())
        .build();
    // Batch processor: exports on its own background thread, so span
    // emission never blocks on the network and no async runtime is required.
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource)
        .build())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::io;
    use std::sync::{Arc, Mutex};
    use std::time::Instant;

    /// In-memory writer shared between the subscriber and the test.
    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl Buffer {
        fn contents(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    impl io::Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Buffer {
        type Writer = Buffer;
        fn make_writer(&'a self) -> Self::Writer {
            self.clone()
        }
    }

    #[test]
    fn log_format_parses() {
        assert_eq!("pretty".parse::<LogFormat>(), Ok(LogFormat::Pretty));
        assert_eq!("json".parse::<LogFormat>(), Ok(LogFormat::Json));
        assert_eq!(" JSON ".parse::<LogFormat>(), Ok(LogFormat::Json));
        assert!("yaml".parse::<LogFormat>().is_err());
        assert!("".parse::<LogFormat>().is_err());
        assert_eq!(LogFormat::default(), LogFormat::Pretty);
        assert_eq!(LogFormat::Json.to_string(), "json");
    }

    #[test]
    fn config_from_lookup_defaults_and_overrides() {
        let empty = TelemetryConfig::from_lookup("svc", |_| None);
        assert_eq!(empty.service_name, "svc");
        assert_eq!(empty.format, LogFormat::Pretty);
        assert_eq!(empty.default_filter, "info");
        assert_eq!(empty.otlp_endpoint, None);

        let set = TelemetryConfig::from_lookup("svc", |key| {
            Some(
                match key {
                    LOG_FORMAT_ENV => "json",
                    LOG_FILTER_ENV => "debug,hyper=warn",
                    OTLP_ENDPOINT_ENV => "http://collector:4318",
                    _ => return None,
                }
                .to_owned(),
            )
        });
        assert_eq!(set.format, LogFormat::Json);
        assert_eq!(set.default_filter, "debug,hyper=warn");
        assert_eq!(set.otlp_endpoint.as_deref(), Some("http://collector:4318"));

        let blank_or_bad = TelemetryConfig::from_lookup("svc", |key| {
            Some(if key == LOG_FORMAT_ENV { "xml" } else { "  " }.to_owned())
        });
        assert_eq!(blank_or_bad.format, LogFormat::Pretty);
        assert_eq!(blank_or_bad.default_filter, "info");
        assert_eq!(blank_or_bad.otlp_endpoint, None);
    }

    #[test]
    fn json_subscriber_captures_event_fields() {
        let buffer = Buffer::default();
        let subscriber = json_subscriber("info", buffer.clone());
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("handle_request", route = "submit");
            let _entered = span.enter();
            tracing::debug!("filtered out");
            tracing::info!(order_count = 3_u64, accepted = true, "batch accepted");
        });

        let output = buffer.contents();
        let lines: Vec<&str> = output.lines().collect();
        assert_eq!(lines.len(), 1, "unexpected output: {output}");
        let line: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
        assert_eq!(line["level"], "INFO");
        assert_eq!(line["fields"]["message"], "batch accepted");
        assert_eq!(line["fields"]["order_count"], 3);
        assert_eq!(line["fields"]["accepted"], true);
        assert_eq!(line["span"]["name"], "handle_request");
        assert_eq!(line["span"]["route"], "submit");
        assert!(line["target"]
            .as_str()
            .unwrap()
            .ends_with("telemetry::tests"));
    }

    /// The only test that calls `init` (it installs a process-global subscriber).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn init_once_with_unreachable_otlp_and_bounded_drop() {
        let config = TelemetryConfig {
            service_name: "telemetry-test".to_owned(),
            format: LogFormat::Json,
            default_filter: "info".to_owned(),
            otlp_endpoint: Some("http://127.0.0.1:1".to_owned()),
        };
        let guard = init(&config).unwrap();
        assert!(guard.otlp_enabled());
        assert!(format!("{guard:?}").contains("otlp_enabled: true"));

        assert!(matches!(
            init(&config),
            Err(TelemetryError::AlreadyInitialised)
        ));
        let logs_only = TelemetryConfig {
            otlp_endpoint: None,
            ..config
        };
        assert!(matches!(
            init(&logs_only),
            Err(TelemetryError::AlreadyInitialised)
        ));

        // Produce a span so shutdown has something to (fail to) export.
        tracing::info_span!("unit_of_work").in_scope(|| tracing::info!("inside span"));

        let started = Instant::now();
        drop(guard);
        assert!(
            started.elapsed() < Duration::from_secs(8),
            "guard drop took {:?}",
            started.elapsed()
        );
    }
}
