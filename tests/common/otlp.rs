//! An OTLP/HTTP trace receiver: what a collector would get from the server, decoded with the
//! `opentelemetry-proto` types.

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use prost::Message as _;
use std::sync::{Arc, Mutex};

/// One exported span: its trace id (hex), name, kind and attributes (as text).
#[derive(Clone, Debug)]
pub struct Span {
    pub trace_id: String,
    pub name: String,
    pub attributes: Vec<(String, String)>,
}

/// The receiver: every span exported to it, in arrival order.
#[derive(Clone, Default)]
pub struct Receiver(Arc<Mutex<Vec<Span>>>);

impl Receiver {
    /// Listens on a free loopback port; the endpoint to give as `OTEL_EXPORTER_OTLP_ENDPOINT`.
    pub async fn listen(&self) -> String {
        let spans = self.0.clone();
        let app = axum::Router::new().route(
            "/v1/traces",
            axum::routing::post(move |body: axum::body::Bytes| {
                let spans = spans.clone();
                async move {
                    let request = ExportTraceServiceRequest::decode(body).expect("OTLP protobuf");
                    let mut got = spans.lock().expect("spans");
                    for s in request
                        .resource_spans
                        .iter()
                        .flat_map(|r| &r.scope_spans)
                        .flat_map(|s| &s.spans)
                    {
                        got.push(Span {
                            trace_id: hex::encode(&s.trace_id),
                            name: s.name.clone(),
                            // The span's attributes, then its events' (as `event.<key>`).
                            attributes: s
                                .attributes
                                .iter()
                                .map(|kv| (kv.key.clone(), kv))
                                .chain(s.events.iter().flat_map(|e| {
                                    e.attributes
                                        .iter()
                                        .map(|kv| (format!("event.{}", kv.key), kv))
                                }))
                                .map(|(k, kv)| {
                                    (k, text(kv.value.as_ref().and_then(|v| v.value.as_ref())))
                                })
                                .collect(),
                        });
                    }
                    axum::http::StatusCode::OK
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        format!("http://{addr}")
    }

    /// Every span so far.
    pub fn spans(&self) -> Vec<Span> {
        self.0.lock().expect("spans").clone()
    }

    /// Waits until no span has arrived for `quiet` (at most a minute); how many there are.
    pub async fn settle(&self, quiet: std::time::Duration) -> usize {
        let mut seen = self.spans().len();
        for _ in 0..60 {
            tokio::time::sleep(quiet).await;
            let now = self.spans().len();
            if now == seen {
                return now;
            }
            seen = now;
        }
        seen
    }
}

/// An attribute's value as text.
fn text(v: Option<&AnyValue>) -> String {
    match v {
        Some(AnyValue::StringValue(s)) => s.clone(),
        Some(AnyValue::IntValue(i)) => i.to_string(),
        Some(AnyValue::BoolValue(b)) => b.to_string(),
        Some(AnyValue::DoubleValue(d)) => d.to_string(),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    }
}
