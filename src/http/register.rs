//! `POST /register`: RFC 7591 dynamic client registration, rate-limited per client IP.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::app::AppState;
use crate::config::Registration;
use crate::http::client_ip::ClientIp;
use crate::http::error::{OAuthErrorResponse, no_store, payload_too_large, too_many_requests};
use crate::http::has_media_type;
use crate::http::rate_limit::Limit;
use crate::oauth::client::RegistrationRequest;
use crate::oauth::error::{ErrorCode, OAuthError};

/// Largest registration body accepted; real ones are a few hundred bytes.
pub const MAX_REGISTRATION_BYTES: usize = 16 * 1024;

/// `POST /register`.
pub async fn register(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    if state.config.oauth.registration == Registration::Off {
        // Not advertised either; a client that tries anyway is told why, and what to use.
        let mut response = OAuthErrorResponse::from(OAuthError::rejected(
            ErrorCode::AccessDenied,
            "dynamic client registration is off on this server; identify the client with a Client ID Metadata Document",
        ))
        .into_response();
        *response.status_mut() = StatusCode::FORBIDDEN;
        return response;
    }
    if let Err(wait) = state.limits.check(Limit::Register, ip) {
        return too_many_requests(
            wait.as_secs(),
            "too many registrations from this address; retry later",
        );
    }
    let metadata_error = |description| {
        OAuthErrorResponse::from(OAuthError::rejected(
            ErrorCode::InvalidClientMetadata,
            description,
        ))
        .into_response()
    };
    let body = match body {
        Ok(body) => body,
        Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return payload_too_large(ErrorCode::InvalidClientMetadata);
        }
        Err(_) => return metadata_error("the request body could not be read"),
    };
    if !has_media_type(&headers, "application/json") {
        return metadata_error("the registration must be sent as application/json");
    }
    let request: RegistrationRequest = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(_) => {
            return metadata_error(
                "the registration is not a JSON object of RFC 7591 client metadata",
            );
        }
    };
    match state.auth.register_client(request).await {
        Ok(registered) => (StatusCode::CREATED, no_store(), Json(registered.body)).into_response(),
        Err(error) => OAuthErrorResponse::from(error).into_response(),
    }
}
