//! What a load balancer asks (ADR 0016): `/healthz`, the process is up and serving; `/readyz`,
//! it can serve requests now: its store answers (migrations are run before the listener opens,
//! so a node that listens has a current schema). Neither needs a token or says anything about
//! the data.

use super::{ApiError, Shared};
use axum::extract::State;
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

/// What a probe answers.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct Health {
    /// `ok` (serving) or `ready` (its store answers).
    status: &'static str,
}

/// `GET /healthz`: 200 while the process serves.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, description = "Serving", body = Health)))]
pub(super) async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// `GET /readyz`: 200 when the store answers a read, else 503 with code 131016.
#[utoipa::path(get, path = "/readyz", tag = "operations", responses((status = 200, description = "Ready", body = Health)))]
pub(super) async fn readyz(State(s): State<Shared>) -> Result<Json<Health>, ApiError> {
    s.app
        .store()
        .log()
        .head()
        .await
        .map_err(crate::app::AppError::from)?;
    Ok(Json(Health { status: "ready" }))
}

/// `GET /metrics`: the metrics in the Prometheus text format, for the operator's token only
/// (counts by route, status, outcome and code; nothing personal).
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    responses((status = 200, description = "Prometheus text exposition format 0.0.4", content_type = "text/plain", body = String)),
    security(("bearer" = [])),
)]
pub(super) async fn metrics(
    auth: super::extract::Auth,
) -> Result<axum::response::Response, ApiError> {
    use axum::response::IntoResponse as _;
    super::keys::operator_only(&auth)?;
    Ok((
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        sealpost_adapters::telemetry::prometheus_text(),
    )
        .into_response())
}
