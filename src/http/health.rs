//! What a load balancer asks (ADR 0016): `/healthz`, the process is up and serving; `/readyz`,
//! it can serve requests now: its store answers (migrations are run before the listener opens,
//! so a node that listens has a current schema). Neither needs a token or says anything about
//! the data.

use super::{ApiError, Shared};
use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};

/// `GET /healthz`: 200 while the process serves.
pub(super) async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// `GET /readyz`: 200 when the store answers a read, else 503 with code 131016.
pub(super) async fn readyz(State(s): State<Shared>) -> Result<Json<Value>, ApiError> {
    s.app
        .store()
        .log()
        .head()
        .await
        .map_err(crate::app::AppError::from)?;
    Ok(Json(json!({ "status": "ready" })))
}
