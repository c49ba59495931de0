//! `POST /telegram/webhook/{target}`: Telegram's calls in webhook mode. The secret header is
//! compared in constant time (the endpoint is public). The update is handled before the
//! answer: a 200 tells Telegram it is recorded, and a failure answers 500 so that Telegram
//! sends it again instead of losing it.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::app::AppState;
use crate::secrets::constant_time_eq;
use crate::telemetry::log_internal;
use crate::transport::telegram::objects::Update;
use crate::transport::telegram::receive::handle_update;

/// The header Telegram sends the webhook secret in.
const SECRET_HEADER: &str = "x-telegram-bot-api-secret-token";

/// `POST /telegram/webhook/{target}`.
pub async fn webhook(
    State(state): State<AppState>,
    Path(target_name): Path<String>,
    headers: HeaderMap,
    update: Result<Json<Update>, JsonRejection>,
) -> Response {
    let Some(target) = state
        .telegram
        .iter()
        .find(|target| target.name == target_name)
    else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let Some(expected) = &target.webhook_secret else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let presented = headers
        .get(SECRET_HEADER)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default();
    if !constant_time_eq(presented, expected.expose()) {
        tracing::warn!(target = %target.name, "telegram webhook call with a wrong secret");
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let Ok(Json(update)) = update else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    match handle_update(target, update).await {
        Ok(_) => StatusCode::OK.into_response(),
        Err(error) => {
            log_internal("telegram webhook update", &error);
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}
