//! HTTP server spans, by the OpenTelemetry HTTP semantic conventions: named `METHOD route`
//! with the route's template (never a path with its ids), the method and the status; a
//! request's incoming `traceparent` is continued. No header, query or body is recorded.

use axum::extract::MatchedPath;
use axum::http::{Request, Response};
use std::time::Duration;
use tower_http::classify::{ServerErrorsAsFailures, SharedClassifier};
use tower_http::trace::TraceLayer;
use tracing::Span;

/// The tracing layer's type: spans made by [`request_span`], closed by [`response`].
type Layer = TraceLayer<
    SharedClassifier<ServerErrorsAsFailures>,
    fn(&Request<axum::body::Body>) -> Span,
    (),
    fn(&Response<axum::body::Body>, Duration, &Span),
    tower_http::trace::DefaultOnBodyChunk,
    tower_http::trace::DefaultOnEos,
    (),
>;

/// The router's tracing layer.
pub(super) fn layer() -> Layer {
    TraceLayer::new_for_http()
        .make_span_with(request_span as fn(&Request<axum::body::Body>) -> Span)
        .on_request(())
        .on_response(response as fn(&Response<axum::body::Body>, Duration, &Span))
        .on_failure(())
}

/// A request's route template (`unmatched` when no route answers it), as spans and metrics
/// name it: never the path, which holds ids.
pub(super) fn route_of<B>(request: &Request<B>) -> &str {
    request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str)
}

/// The span of one request, named by its route template.
fn request_span(request: &Request<axum::body::Body>) -> Span {
    let route = route_of(request);
    let method = method_name(request.method());
    let span = tracing::info_span!(
        "HTTP request",
        otel.name = format!("{method} {route}"),
        otel.kind = "server",
        http.request.method = method,
        http.route = route,
        url.scheme = "http",
        http.response.status_code = tracing::field::Empty,
        otel.status_code = tracing::field::Empty,
    );
    let incoming = request
        .headers()
        .get("traceparent")
        .and_then(|v| v.to_str().ok());
    sealpost_adapters::telemetry::continue_trace(&span, incoming);
    span
}

/// A request's method as spans and metrics name it: the standard ones, and `_OTHER` for any
/// other token a client sends (so a client cannot make new series).
pub(super) fn method_name(method: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::PATCH => "PATCH",
        Method::TRACE => "TRACE",
        Method::CONNECT => "CONNECT",
        _ => "_OTHER",
    }
}

/// Records the status on the request's span (a 5xx marks it failed).
fn response(response: &Response<axum::body::Body>, _: Duration, span: &Span) {
    let status = response.status().as_u16();
    span.record("http.response.status_code", status);
    if status >= 500 {
        span.record("otel.status_code", "ERROR");
    }
}
