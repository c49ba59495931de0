//! OAuth error codes and the domain error of the authorization server (RFC 6749 §4.1.2.1,
//! §5.2; RFC 7591 §3.2.2; RFC 7009 §2.2.1; RFC 8707 §2). Descriptions are fixed strings: no
//! request input is ever echoed back.

use std::fmt;

use crate::store::StoreError;

/// An error code defined by an OAuth RFC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// RFC 6749 §5.2: malformed or missing parameter.
    InvalidRequest,
    /// RFC 6749 §5.2: client authentication failed (401).
    InvalidClient,
    /// RFC 6749 §5.2: bad, expired, reused or revoked code or refresh token.
    InvalidGrant,
    /// RFC 6749 §5.2: the client may not use this grant or token.
    UnauthorizedClient,
    /// RFC 6749 §5.2: grant type not supported.
    UnsupportedGrantType,
    /// RFC 6749 §4.1.2.1: response type not supported.
    UnsupportedResponseType,
    /// RFC 6749 §4.1.2.1: the owner denied the request.
    AccessDenied,
    /// RFC 6749 §4.1.2.1: an unexpected condition.
    ServerError,
    /// RFC 6749 §4.1.2.1: overloaded or rate-limited.
    TemporarilyUnavailable,
    /// RFC 8707 §2: the resource is not ours.
    InvalidTarget,
    /// RFC 7591 §3.2.2: a redirect URI is not acceptable.
    InvalidRedirectUri,
    /// RFC 7591 §3.2.2: some other metadata is not acceptable.
    InvalidClientMetadata,
    /// RFC 7009 §2.2.1: the token type cannot be revoked.
    UnsupportedTokenType,
}

impl ErrorCode {
    /// The code as the RFC spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::InvalidClient => "invalid_client",
            ErrorCode::InvalidGrant => "invalid_grant",
            ErrorCode::UnauthorizedClient => "unauthorized_client",
            ErrorCode::UnsupportedGrantType => "unsupported_grant_type",
            ErrorCode::UnsupportedResponseType => "unsupported_response_type",
            ErrorCode::AccessDenied => "access_denied",
            ErrorCode::ServerError => "server_error",
            ErrorCode::TemporarilyUnavailable => "temporarily_unavailable",
            ErrorCode::InvalidTarget => "invalid_target",
            ErrorCode::InvalidRedirectUri => "invalid_redirect_uri",
            ErrorCode::InvalidClientMetadata => "invalid_client_metadata",
            ErrorCode::UnsupportedTokenType => "unsupported_token_type",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

/// A failure of an authorization-server operation.
#[derive(Debug, thiserror::Error)]
pub enum OAuthError {
    /// The request was refused for a reason the client is told.
    #[error("{code}: {description}")]
    Rejected {
        /// The RFC error code.
        code: ErrorCode,
        /// A fixed, human-readable reason.
        description: &'static str,
    },
    /// Something broke on our side; the client sees only `server_error`.
    #[error("internal error")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl OAuthError {
    /// A refusal with `code` and a fixed description.
    pub fn rejected(code: ErrorCode, description: &'static str) -> Self {
        OAuthError::Rejected { code, description }
    }

    /// Wraps an internal failure.
    pub fn internal(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        OAuthError::Internal(Box::new(error))
    }

    /// The RFC code this error is reported as.
    pub fn code(&self) -> ErrorCode {
        match self {
            OAuthError::Rejected { code, .. } => *code,
            OAuthError::Internal(_) => ErrorCode::ServerError,
        }
    }
}

impl From<StoreError> for OAuthError {
    fn from(error: StoreError) -> Self {
        OAuthError::internal(error)
    }
}

/// A failure at `/authorize`, which RFC 6749 §4.1.2.1 splits in two: errors about the client
/// or its redirect URI are shown to the user (redirecting would be an open redirect); every
/// other error goes back to the client.
#[derive(Debug, thiserror::Error)]
pub enum AuthorizeError {
    /// Shown as a page; never redirected.
    #[error("authorization request refused: {0}")]
    Page(&'static str),
    /// Sent to the client's verified redirect URI.
    #[error("authorization request refused: {code}: {description}")]
    Redirect {
        /// Where to send the error.
        redirect_uri: String,
        /// The client's `state`, echoed.
        state: Option<String>,
        /// The RFC error code.
        code: ErrorCode,
        /// A fixed reason.
        description: &'static str,
    },
    /// Something broke on our side.
    #[error("internal error")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl From<StoreError> for AuthorizeError {
    fn from(error: StoreError) -> Self {
        AuthorizeError::Internal(Box::new(error))
    }
}

impl From<OAuthError> for AuthorizeError {
    fn from(error: OAuthError) -> Self {
        match error {
            OAuthError::Internal(source) => AuthorizeError::Internal(source),
            OAuthError::Rejected { description, .. } => AuthorizeError::Page(description),
        }
    }
}
