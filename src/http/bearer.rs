//! The bearer guard for protected routes (RFC 6750 §2.1 and §3, RFC 9728 §5.1): the token is
//! read from `Authorization: Bearer` only (never the query string or body), verified, and its
//! claims put into the request extensions. Failures get a challenge that tells the client
//! where to find our metadata, which is how claude.ai discovers the authorization server.

use axum::Json;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::http::error::after_reading_body;
use crate::http::paths;
use crate::oauth::jwt::AccessClaims;
use crate::oauth::scope::{Scope, ScopeSet};
use crate::oauth::{AccessTokenError, AuthServer};

/// What the guard needs: the verifier, the metadata URL for challenges, and the scopes a
/// route requires (all of them).
#[derive(Clone, Debug)]
pub struct BearerGuard {
    auth: AuthServer,
    resource_metadata_url: String,
    required: Vec<Scope>,
}

impl BearerGuard {
    /// A guard requiring `required` scopes on top of a valid token.
    pub fn new(auth: AuthServer, required: &[Scope]) -> Self {
        let resource_metadata_url = format!(
            "{}{}",
            auth.settings().issuer,
            paths::PROTECTED_RESOURCE_METADATA_MCP
        );
        Self {
            auth,
            resource_metadata_url,
            required: required.to_vec(),
        }
    }

    /// The 401 challenge; `error` is set only when a token was presented (RFC 6750 §3.1).
    pub fn unauthorized(&self, error: Option<&'static str>) -> Response {
        let all_scopes = ScopeSet::all().to_string();
        let challenge = match error {
            Some(description) => format!(
                "Bearer error=\"invalid_token\", error_description=\"{description}\", resource_metadata=\"{}\", scope=\"{all_scopes}\"",
                self.resource_metadata_url
            ),
            None => format!(
                "Bearer resource_metadata=\"{}\", scope=\"{all_scopes}\"",
                self.resource_metadata_url
            ),
        };
        let body = match error {
            Some(description) => {
                json!({"error": "invalid_token", "error_description": description})
            }
            None => {
                json!({"error": "invalid_request", "error_description": "this endpoint requires a bearer access token"})
            }
        };
        challenge_response(StatusCode::UNAUTHORIZED, &challenge, body)
    }

    /// The 403 challenge naming the scopes needed (RFC 6750 §3.1, MCP scope step-up).
    pub fn insufficient_scope(&self, needed: &[Scope]) -> Response {
        let needed: Vec<&str> = needed.iter().map(|scope| scope.as_str()).collect();
        let needed = needed.join(" ");
        let challenge = format!(
            "Bearer error=\"insufficient_scope\", scope=\"{needed}\", resource_metadata=\"{}\"",
            self.resource_metadata_url
        );
        let body = json!({"error": "insufficient_scope", "error_description": format!("this request needs the scope: {needed}")});
        challenge_response(StatusCode::FORBIDDEN, &challenge, body)
    }
}

/// Middleware: lets the request through only with a valid token holding the required scopes.
pub async fn require_bearer(
    State(guard): State<BearerGuard>,
    mut request: Request,
    next: Next,
) -> Response {
    let token = match bearer_token(request.headers()) {
        TokenPresence::Missing => {
            return after_reading_body(request, guard.unauthorized(None)).await;
        }
        TokenPresence::Malformed => {
            let challenge =
                guard.unauthorized(Some("the Authorization header is not a bearer token"));
            return after_reading_body(request, challenge).await;
        }
        TokenPresence::Present(token) => token,
    };
    let claims = match guard.auth.verify_access_token(&token).await {
        Ok(claims) => claims,
        Err(AccessTokenError::Rejected(reason)) => {
            tracing::debug!(reason = %reason, "bearer token rejected");
            let challenge =
                guard.unauthorized(Some("the access token is invalid, expired or revoked"));
            return after_reading_body(request, challenge).await;
        }
        Err(AccessTokenError::Internal(error)) => {
            tracing::error!(error = %error, "cannot verify a bearer token");
            let unavailable = (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({"error": "temporarily_unavailable"})),
            )
                .into_response();
            return after_reading_body(request, unavailable).await;
        }
    };
    let granted = ScopeSet::from_token_claim(&claims.scope);
    let missing: Vec<Scope> = guard
        .required
        .iter()
        .copied()
        .filter(|scope| !granted.contains(*scope))
        .collect();
    if !missing.is_empty() {
        return after_reading_body(request, guard.insufficient_scope(&guard.required)).await;
    }
    tracing::debug!(client_id = %claims.client_id, jti = %claims.jti, "bearer token accepted");
    request.extensions_mut().insert::<AccessClaims>(claims);
    next.run(request).await
}

/// What the `Authorization` header holds; shared with the agent API's guard.
pub(crate) enum TokenPresence {
    Missing,
    Malformed,
    Present(String),
}

/// Reads a single `Authorization: Bearer <token68>` header.
pub(crate) fn bearer_token(headers: &HeaderMap) -> TokenPresence {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return TokenPresence::Missing;
    };
    if values.next().is_some() {
        return TokenPresence::Malformed;
    }
    let Some((scheme, token)) = value.to_str().ok().and_then(|value| value.split_once(' ')) else {
        return TokenPresence::Malformed;
    };
    let token = token.trim();
    let is_token68 = !token.is_empty()
        && token.bytes().all(|byte| {
            byte.is_ascii_alphanumeric()
                || matches!(byte, b'-' | b'.' | b'_' | b'~' | b'+' | b'/' | b'=')
        });
    if scheme.eq_ignore_ascii_case("bearer") && is_token68 {
        TokenPresence::Present(token.to_owned())
    } else {
        TokenPresence::Malformed
    }
}

fn challenge_response(status: StatusCode, challenge: &str, body: serde_json::Value) -> Response {
    let mut response = (status, Json(body)).into_response();
    if let Ok(value) = HeaderValue::from_str(challenge) {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, value);
    }
    response
}
