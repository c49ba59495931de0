//! The only place that turns errors into HTTP responses, one type per protocol:
//! `OAuthErrorResponse` (RFC 6749 §5.2, RFC 7591 §3.2.2), `PageError` (the owner's HTML pages),
//! `ApiError` (the agent API's JSON) and `BearerChallenge` (the bearer guard's 401, 403 and 503).
//! Internal errors are logged here, once, by `telemetry::log_internal`, and answered with a generic body.

use std::error::Error;
use std::time::Duration;

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::config::PublicUrl;
use crate::http::pages::{ErrorPage, render};
use crate::oauth::error::{ErrorCode, OAuthError};
use crate::queue::error::QueueError;
use crate::telemetry::log_internal;

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
                log_internal("oauth", source.as_ref());
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

/// An error on one of the owner's HTML pages (`/authorize` and its forms): a page naming what
/// went wrong, never a redirect, with the same framing and caching rules as every page.
#[derive(Debug)]
pub struct PageError {
    issuer: String,
    status: StatusCode,
    heading: &'static str,
    message: &'static str,
    retry_after: Option<Duration>,
}

impl PageError {
    /// A page with `heading` and `message`, under the footer of the gateway at `issuer`.
    pub fn new(
        issuer: &PublicUrl,
        status: StatusCode,
        heading: &'static str,
        message: &'static str,
    ) -> Self {
        Self {
            issuer: issuer.as_str().to_owned(),
            status,
            heading,
            message,
            retry_after: None,
        }
    }

    /// 429 with `Retry-After`.
    pub fn too_many_requests(issuer: &PublicUrl, wait: Duration) -> Self {
        Self {
            retry_after: Some(wait),
            ..Self::new(
                issuer,
                StatusCode::TOO_MANY_REQUESTS,
                "Too many requests",
                "Wait a moment and try again.",
            )
        }
    }

    /// 500 with a generic page; `source` is logged, never shown.
    pub fn internal(issuer: &PublicUrl, source: &(dyn Error + 'static)) -> Self {
        log_internal("owner pages", source);
        Self::new(
            issuer,
            StatusCode::INTERNAL_SERVER_ERROR,
            "Something went wrong",
            "The gateway could not process this request. Try again in a moment.",
        )
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let page = ErrorPage {
            issuer: &self.issuer,
            heading: self.heading,
            message: self.message,
        };
        let response = render(self.status, &page, None);
        match self.retry_after {
            Some(wait) => with_retry_after(response, wait),
            None => response,
        }
    }
}

/// Sets `Retry-After` (whole seconds, at least one).
pub fn with_retry_after(mut response: Response, wait: Duration) -> Response {
    if let Ok(value) = HeaderValue::from_str(&wait.as_secs().max(1).to_string()) {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}

/// An agent API error: `{"error": code, "message": ...}` with its status.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    /// An error with a fixed `code` and a message for the agent's operator.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    /// 400 `bad_request`.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    /// 401 `unauthorized`, with a bearer challenge for the agents' realm.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }
}

impl From<QueueError> for ApiError {
    fn from(queue_error: QueueError) -> Self {
        let (status, code) = match &queue_error {
            QueueError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            QueueError::InvalidTransition { .. } | QueueError::ClaimedByAnother(_) => {
                (StatusCode::CONFLICT, "conflict")
            }
            QueueError::NotYourTarget(_) => (StatusCode::FORBIDDEN, "forbidden"),
            QueueError::Internal(source) => {
                log_internal("agent API", source);
                return Self::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "internal error",
                );
            }
            _ => (StatusCode::BAD_REQUEST, "bad_request"),
        };
        Self::new(status, code, queue_error.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (
            self.status,
            Json(json!({"error": self.code, "message": self.message})),
        )
            .into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"nexus-gateway agents\""),
            );
        }
        response
    }
}

/// The bearer guard's refusals (RFC 6750 §3, RFC 9728 §5.1): each names where the client finds
/// our protected-resource metadata, which is how claude.ai discovers the authorization server.
#[derive(Debug)]
pub enum BearerChallenge {
    /// 401 with no `error`: no token was presented (RFC 6750 §3.1).
    Missing {
        resource_metadata_url: String,
        all_scopes: String,
    },
    /// 401 `invalid_token`: a token was presented and is not good.
    InvalidToken {
        resource_metadata_url: String,
        all_scopes: String,
        description: &'static str,
    },
    /// 403 `insufficient_scope`, naming the scopes needed (MCP scope step-up).
    InsufficientScope {
        resource_metadata_url: String,
        needed: String,
    },
    /// 503 `temporarily_unavailable`: the token cannot be checked (the store is unreachable),
    /// so a client retries instead of discarding a good token.
    Unavailable,
}

impl BearerChallenge {
    /// The 503 answer; logs why the token could not be checked.
    pub fn unavailable(source: &(dyn Error + 'static)) -> Self {
        log_internal("bearer token check", source);
        Self::Unavailable
    }
}

impl IntoResponse for BearerChallenge {
    fn into_response(self) -> Response {
        let (status, challenge, body) = match self {
            Self::Missing {
                resource_metadata_url,
                all_scopes,
            } => (
                StatusCode::UNAUTHORIZED,
                format!(
                    "Bearer resource_metadata=\"{resource_metadata_url}\", scope=\"{all_scopes}\""
                ),
                json!({"error": "invalid_request", "error_description": "this endpoint requires a bearer access token"}),
            ),
            Self::InvalidToken {
                resource_metadata_url,
                all_scopes,
                description,
            } => (
                StatusCode::UNAUTHORIZED,
                format!(
                    "Bearer error=\"invalid_token\", error_description=\"{description}\", resource_metadata=\"{resource_metadata_url}\", scope=\"{all_scopes}\""
                ),
                json!({"error": "invalid_token", "error_description": description}),
            ),
            Self::InsufficientScope {
                resource_metadata_url,
                needed,
            } => (
                StatusCode::FORBIDDEN,
                format!(
                    "Bearer error=\"insufficient_scope\", scope=\"{needed}\", resource_metadata=\"{resource_metadata_url}\""
                ),
                json!({"error": "insufficient_scope", "error_description": format!("this request needs the scope: {needed}")}),
            ),
            Self::Unavailable => {
                return (
                    StatusCode::SERVICE_UNAVAILABLE,
                    Json(json!({"error": "temporarily_unavailable"})),
                )
                    .into_response();
            }
        };
        let mut response = (status, Json(body)).into_response();
        if let Ok(value) = HeaderValue::from_str(&challenge) {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, value);
        }
        response
    }
}
