//! The bearer guard for protected routes (RFC 6750 §2.1 and §3, RFC 9728 §5.1): the token is
//! read from `Authorization: Bearer` only (never the query string or body), verified, and the
//! `VerifiedToken` put into the request extensions. Failures get a challenge that tells the
//! client where to find our metadata, which is how claude.ai discovers the authorization server.

use std::sync::Arc;

use axum::extract::Request;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};

use crate::http::error::{BearerChallenge, after_reading_body};
use crate::http::paths;
use crate::oauth::VerifiedToken;
use crate::oauth::scope::Scope;
use crate::oauth::{AccessTokenError, AuthServer};

/// What the guard needs: the verifier, the metadata URL for challenges, and the scopes a
/// route requires (all of them).
#[derive(Clone, Debug)]
pub struct BearerGuard {
    auth: AuthServer,
    // Shared, not owned: a guard is cloned wherever a route holds one.
    resource_metadata_url: Arc<str>,
    required: Arc<[Scope]>,
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
            resource_metadata_url: resource_metadata_url.into(),
            required: required.into(),
        }
    }

    /// The 401 challenge; `error` is set only when a token was presented (RFC 6750 §3.1).
    pub fn unauthorized(&self, error: Option<&'static str>) -> BearerChallenge {
        let resource_metadata_url = self.resource_metadata_url.to_string();
        let all_scopes = self.auth.settings().scopes.all().to_string();
        match error {
            Some(description) => BearerChallenge::InvalidToken {
                resource_metadata_url,
                all_scopes,
                description,
            },
            None => BearerChallenge::Missing {
                resource_metadata_url,
                all_scopes,
            },
        }
    }

    /// The 403 challenge naming the scopes needed (RFC 6750 §3.1, MCP scope step-up).
    pub fn insufficient_scope(&self, needed: &[Scope]) -> BearerChallenge {
        let needed: Vec<&str> = needed.iter().map(|scope| scope.as_str()).collect();
        BearerChallenge::InsufficientScope {
            resource_metadata_url: self.resource_metadata_url.to_string(),
            needed: needed.join(" "),
        }
    }
}

/// Lets `request` through, with its `VerifiedToken` in the extensions, only with a valid token
/// holding the required scopes; otherwise the answer (a challenge), once the body is read.
/// A call, not a route layer: see `http::mcp::routes`.
pub async fn authenticate(guard: &BearerGuard, mut request: Request) -> Result<Request, Response> {
    let token = match bearer_token(request.headers()) {
        TokenPresence::Missing => {
            return Err(
                after_reading_body(request, guard.unauthorized(None).into_response()).await,
            );
        }
        TokenPresence::Malformed => {
            let challenge = guard
                .unauthorized(Some("the Authorization header is not a bearer token"))
                .into_response();
            return Err(after_reading_body(request, challenge).await);
        }
        TokenPresence::Present(token) => token,
    };
    let verified = match guard.auth.verify_access_token(&token).await {
        Ok(verified) => verified,
        Err(AccessTokenError::Rejected(reason)) => {
            tracing::debug!(reason = %reason, "bearer token rejected");
            let challenge = guard
                .unauthorized(Some("the access token is invalid, expired or revoked"))
                .into_response();
            return Err(after_reading_body(request, challenge).await);
        }
        Err(AccessTokenError::Internal(error)) => {
            let unavailable = BearerChallenge::unavailable(&error).into_response();
            return Err(after_reading_body(request, unavailable).await);
        }
    };
    if guard
        .required
        .iter()
        .any(|scope| !verified.scopes().contains(scope))
    {
        let challenge = guard.insufficient_scope(&guard.required).into_response();
        return Err(after_reading_body(request, challenge).await);
    }
    let claims = verified.claims();
    tracing::debug!(client_id = %claims.client_id, jti = %claims.jti, "bearer token accepted");
    request
        .extensions_mut()
        .insert::<Arc<VerifiedToken>>(verified);
    Ok(request)
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
