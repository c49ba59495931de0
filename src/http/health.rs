//! Liveness and readiness probes.

use axum::extract::State;
use axum::http::StatusCode;

use crate::app::AppState;

/// `GET /healthz`: the process answers.
pub async fn healthz() -> &'static str {
    "ok\n"
}

/// `GET /readyz`: the store answers and can still write new messages (the signing key was
/// loaded at start).
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, &'static str) {
    if state.auth.is_ready().await {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
    }
}
