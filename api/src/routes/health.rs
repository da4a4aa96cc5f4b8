//! Liveness and readiness probes.

use crate::AppState;
use axum::{extract::State, http::StatusCode};

/// Liveness: the process serves HTTP.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "meta",
    responses((status = 200, description = "`ok`", body = String, content_type = "text/plain"))
)]
pub async fn healthz() -> &'static str {
    "ok"
}

/// Readiness: the database and the Kubernetes API both answer.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "meta",
    responses(
        (status = 200, description = "`ok`", body = String, content_type = "text/plain"),
        (status = 503, description = "The database or the Kubernetes API does not answer (which, and why)", body = String, content_type = "text/plain"),
    )
)]
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, String) {
    if let Err(e) = state.db.ping().await {
        return (StatusCode::SERVICE_UNAVAILABLE, format!("database: {e}"));
    }
    if let Err(e) = state.cluster.service().apiserver_version().await {
        return (StatusCode::SERVICE_UNAVAILABLE, format!("kubernetes: {e}"));
    }
    (StatusCode::OK, "ok".into())
}
