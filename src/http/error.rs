//! The only place that turns errors into HTTP responses: OAuth JSON errors (RFC 6749 §5.2,
//! RFC 7591 §3.2.2), bearer challenges (RFC 6750 §3, RFC 9728 §5.1) and HTML error pages.
//! Internal errors are logged here, once, and answered with a generic body.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::oauth::error::{ErrorCode, OAuthError};

/// An OAuth error as a JSON response.
#[derive(Debug)]
pub struct OAuthErrorResponse {
    error: OAuthError,
    /// Set when the client authenticated with HTTP Basic: a 401 must then challenge Basic.
    basic_auth_used: bool,
}

impl OAuthErrorResponse {
    /// Wraps an error; `basic_auth_used` shapes the `invalid_client` challenge.
    pub fn new(error: OAuthError, basic_auth_used: bool) -> Self {
        Self {
            error,
            basic_auth_used,
        }
    }
}

impl From<OAuthError> for OAuthErrorResponse {
    fn from(error: OAuthError) -> Self {
        Self::new(error, false)
    }
}

impl IntoResponse for OAuthErrorResponse {
    fn into_response(self) -> Response {
        let (code, description) = match &self.error {
            OAuthError::Rejected { code, description } => (*code, *description),
            OAuthError::Internal(source) => {
                tracing::error!(error = %source, source = ?source.source(), "internal error");
                (ErrorCode::ServerError, "an internal error occurred")
            }
        };
        let status = match code {
            ErrorCode::InvalidClient => StatusCode::UNAUTHORIZED,
            ErrorCode::ServerError => StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::TemporarilyUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::BAD_REQUEST,
        };
        let mut response = (
            status,
            no_store(),
            Json(json!({"error": code.as_str(), "error_description": description})),
        )
            .into_response();
        if code == ErrorCode::InvalidClient && self.basic_auth_used {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"nexus-gateway\""),
            );
        }
        response
    }
}

/// Answers with `response` after reading (and dropping) the request body. A response sent
/// before the body has arrived makes the server close the connection, and a client that reuses
/// its pooled connection at that moment loses its next request (every OAuth client's first
/// call to `/mcp` is such a 401). The body is already bounded by the body limit layer.
pub async fn after_reading_body(request: axum::extract::Request, response: Response) -> Response {
    let _ = axum::body::to_bytes(request.into_body(), usize::MAX).await;
    response
}

/// A 429 answer with `Retry-After`.
pub fn too_many_requests(retry_after_seconds: u64, description: &'static str) -> Response {
    let mut response = (
        StatusCode::TOO_MANY_REQUESTS,
        no_store(),
        Json(json!({"error": ErrorCode::TemporarilyUnavailable.as_str(), "error_description": description})),
    )
        .into_response();
    if let Ok(value) = HeaderValue::from_str(&retry_after_seconds.max(1).to_string()) {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}

/// A 413 answer for an oversized body, in the OAuth error shape.
pub fn payload_too_large(code: ErrorCode) -> Response {
    (
        StatusCode::PAYLOAD_TOO_LARGE,
        no_store(),
        Json(json!({"error": code.as_str(), "error_description": "the request body is too large"})),
    )
        .into_response()
}

/// `Cache-Control: no-store` and `Pragma: no-cache`, for every answer that carries or
/// concerns credentials (RFC 6749 §5.1).
pub fn no_store() -> [(header::HeaderName, HeaderValue); 2] {
    [
        (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        (header::PRAGMA, HeaderValue::from_static("no-cache")),
    ]
}
