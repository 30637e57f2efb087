//! What every request goes through before its route (`tower-http` and one middleware): an id
//! (answered as `x-request-id`, and the `fbtrace_id` of any error envelope of the request), a
//! time limit on reads (one that takes longer answers 503/131016 in the envelope), a panic caught
//! into the envelope (500/131000, the panic's message in no answer), and gzip for the evidence
//! answers a client accepts it for.

use super::ApiError;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::time::Duration;

/// How long a Cloud API read may take.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a read of Sealpost's own (`/sealpost/v1/`: evidence reports over a month of data
/// after a restart, downloads from a remote region) may take.
pub const LONG_TIMEOUT: Duration = Duration::from_secs(300);

/// The answer header naming the request.
pub const REQUEST_ID: &str = "x-request-id";

tokio::task_local! {
    /// The id of the request being answered (read by [`ApiError`]'s envelope).
    static CURRENT: String;
}

/// The id of the request this task answers, if it answers one.
pub(super) fn current_request_id() -> Option<String> {
    CURRENT.try_with(Clone::clone).ok()
}

/// `routes` with what every request goes through, outermost first: its span
/// ([`super::traces`]), its id and time limit, and a panic caught inside them (so its envelope
/// names the request too).
pub(super) fn guarded<S: Clone + Send + Sync + 'static>(
    routes: axum::Router<S>,
) -> axum::Router<S> {
    routes
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(panicked))
        .layer(axum::middleware::from_fn(identify_and_bound))
        .layer(super::traces::layer())
}

/// Gives the request an id, answers it as `x-request-id`, and bounds the time a read may take:
/// Sealpost's own [`LONG_TIMEOUT`], the Cloud API's [`REQUEST_TIMEOUT`]. Writes are bounded by
/// the store's own time limits (131016) and the sends in progress, never cut off.
async fn identify_and_bound(request: Request, next: Next) -> Response {
    let id = format!("A{}", uuid::Uuid::new_v4().simple());
    let route = super::traces::route_of(&request).to_owned();
    let method = super::traces::method_name(request.method()).to_owned();
    let started = std::time::Instant::now();
    // A write is never cut off: it may have been recorded just before, and the client's retry
    // would do it twice (a send, an erasure). Only reads are bounded.
    let limit = match (
        request.method() == axum::http::Method::GET,
        route.starts_with("/sealpost/v1/"),
    ) {
        (false, _) => None,
        (true, true) => Some(LONG_TIMEOUT),
        (true, false) => Some(REQUEST_TIMEOUT),
    };
    let answer = CURRENT.scope(id.clone(), async move {
        let Some(limit) = limit else {
            return next.run(request).await;
        };
        match tokio::time::timeout(limit, next.run(request)).await {
            Ok(answer) => answer,
            Err(_) => {
                tracing::warn!(seconds = limit.as_secs(), "a request ran out of time");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    131_016,
                    "The request took too long. Please retry.",
                )
                .into_response()
            }
        }
    });
    let mut answer = answer.await;
    crate::metrics::metrics().request(
        &route,
        &method,
        answer.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    if let Ok(v) = HeaderValue::from_str(&id) {
        answer.headers_mut().insert(REQUEST_ID, v);
    }
    answer
}

/// A handler's panic, answered as 131000/500 in the envelope; only the fact is logged (a
/// panic's message may hold anything).
fn panicked(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    tracing::error!("a request handler panicked");
    ApiError::unknown().into_response()
}
