//! `POST /token` and `POST /revoke`: form parsing (each parameter at most once, RFC 6749
//! §3.2), client authentication by Basic, form body or client id alone (§2.3.1), and the
//! answers with `Cache-Control: no-store`.

use std::collections::HashMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::app::AppState;
use crate::http::client_ip::ClientIp;
use crate::http::error::{OAuthErrorResponse, no_store, payload_too_large, too_many_requests};
use crate::http::has_media_type;
use crate::http::rate_limit::Limit;
use crate::oauth::ClientCredentials;
use crate::oauth::error::{ErrorCode, OAuthError};
use crate::secrets::Secret;
use crate::store::ClientRecord;

/// Largest token or revocation form accepted; real ones are well under 4 KiB.
pub const MAX_FORM_BYTES: usize = 16 * 1024;

/// `POST /token`.
pub async fn token(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    if let Err(wait) = state.limits.check(Limit::Token, ip) {
        return too_many_requests(
            wait.as_secs(),
            "too many token requests from this address; retry later",
        );
    }
    let request = match TokenRequest::parse(&headers, body) {
        Ok(request) => request,
        Err(rejection) => return rejection.into_response(),
    };
    let client = match request.authenticate(&state).await {
        Ok(client) => client,
        Err(error) => {
            state.metrics.token_failure(error.code().as_str());
            return request.refuse(error);
        }
    };
    let form = &request.form;
    let grant_type = form.get("grant_type").cloned().unwrap_or_default();
    let outcome = match form.get("grant_type").map(String::as_str) {
        Some("authorization_code") => {
            state
                .auth
                .exchange_code(
                    &client,
                    form.get("code").map(String::as_str),
                    form.get("redirect_uri").map(String::as_str),
                    form.get("code_verifier").map(String::as_str),
                    form.get("resource").map(String::as_str),
                )
                .await
        }
        Some("refresh_token") => {
            state
                .auth
                .refresh(
                    &client,
                    form.get("refresh_token").map(String::as_str),
                    form.get("resource").map(String::as_str),
                    ip,
                )
                .await
        }
        Some(_) => Err(OAuthError::rejected(
            ErrorCode::UnsupportedGrantType,
            "grant_type must be authorization_code or refresh_token",
        )),
        None => Err(OAuthError::rejected(
            ErrorCode::InvalidRequest,
            "grant_type is required",
        )),
    };
    match outcome {
        Ok(tokens) => {
            state.metrics.token_issued(&grant_type);
            (StatusCode::OK, no_store(), Json(tokens)).into_response()
        }
        Err(error) => {
            state.metrics.token_failure(error.code().as_str());
            OAuthErrorResponse::new(error, request.basic_auth_used).into_response()
        }
    }
}

/// `POST /revoke`.
pub async fn revoke(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    if let Err(wait) = state.limits.check(Limit::Token, ip) {
        return too_many_requests(
            wait.as_secs(),
            "too many requests from this address; retry later",
        );
    }
    let request = match TokenRequest::parse(&headers, body) {
        Ok(request) => request,
        Err(rejection) => return rejection.into_response(),
    };
    let client = match request.authenticate(&state).await {
        Ok(client) => client,
        Err(error) => return request.refuse(error),
    };
    match state
        .auth
        .revoke(&client, request.form.get("token").map(String::as_str))
        .await
    {
        Ok(()) => (StatusCode::OK, no_store()).into_response(),
        Err(error) => OAuthErrorResponse::new(error, request.basic_auth_used).into_response(),
    }
}

/// A parsed token-endpoint request.
struct TokenRequest {
    form: HashMap<String, String>,
    credentials: Result<ClientCredentials, OAuthError>,
    basic_auth_used: bool,
}

impl TokenRequest {
    fn parse(
        headers: &HeaderMap,
        body: Result<Bytes, BytesRejection>,
    ) -> Result<Self, MalformedRequest> {
        let invalid = MalformedRequest::Invalid;
        let body = match body {
            Ok(body) => body,
            Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                return Err(MalformedRequest::TooLarge);
            }
            Err(_) => return Err(invalid("the request body could not be read")),
        };
        if !has_media_type(headers, "application/x-www-form-urlencoded") {
            return Err(invalid(
                "the request must be sent as application/x-www-form-urlencoded",
            ));
        }
        let mut form = HashMap::new();
        let mut seen = std::collections::HashSet::new();
        for (name, value) in url::form_urlencoded::parse(&body) {
            // RFC 6749 §3.2: parameters must not be repeated, even with an empty value.
            // Empty values then count as absent.
            if !seen.insert(name.clone()) {
                return Err(invalid("a parameter appears more than once"));
            }
            if !value.is_empty() {
                form.insert(name.into_owned(), value.into_owned());
            }
        }
        let basic = basic_credentials(headers);
        let basic_auth_used = basic.is_some();
        let credentials = match basic {
            Some(Ok(credentials)) => {
                if form.contains_key("client_secret") {
                    Err(OAuthError::rejected(
                        ErrorCode::InvalidRequest,
                        "use one client authentication method, not two",
                    ))
                } else if form
                    .get("client_id")
                    .is_some_and(|id| *id != credentials.client_id)
                {
                    Err(OAuthError::rejected(
                        ErrorCode::InvalidClient,
                        "client authentication failed",
                    ))
                } else {
                    Ok(credentials)
                }
            }
            Some(Err(error)) => Err(error),
            None => match form.get("client_id") {
                Some(client_id) => Ok(ClientCredentials {
                    client_id: client_id.clone(),
                    client_secret: form.get("client_secret").cloned().map(Secret::new),
                }),
                None => Err(OAuthError::rejected(
                    ErrorCode::InvalidClient,
                    "client authentication is required",
                )),
            },
        };
        Ok(Self {
            form,
            credentials,
            basic_auth_used,
        })
    }

    async fn authenticate(&self, state: &AppState) -> Result<ClientRecord, OAuthError> {
        match &self.credentials {
            Ok(credentials) => state.auth.authenticate_client(credentials).await,
            Err(OAuthError::Rejected { code, description }) => {
                Err(OAuthError::rejected(*code, description))
            }
            Err(OAuthError::Internal(_)) => Err(OAuthError::rejected(
                ErrorCode::ServerError,
                "an internal error occurred",
            )),
        }
    }

    fn refuse(&self, error: OAuthError) -> Response {
        OAuthErrorResponse::new(error, self.basic_auth_used).into_response()
    }
}

/// A request refused before any client was identified.
enum MalformedRequest {
    TooLarge,
    Invalid(&'static str),
}

impl IntoResponse for MalformedRequest {
    fn into_response(self) -> Response {
        match self {
            MalformedRequest::TooLarge => payload_too_large(ErrorCode::InvalidRequest),
            MalformedRequest::Invalid(description) => OAuthErrorResponse::from(
                OAuthError::rejected(ErrorCode::InvalidRequest, description),
            )
            .into_response(),
        }
    }
}

/// Reads `Authorization: Basic` credentials: base64 of `id:secret`, each form-urlencoded
/// (RFC 6749 §2.3.1). `None` when the header is absent or not Basic.
fn basic_credentials(headers: &HeaderMap) -> Option<Result<ClientCredentials, OAuthError>> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let malformed =
        || OAuthError::rejected(ErrorCode::InvalidClient, "client authentication failed");
    let decoded = STANDARD
        .decode(encoded.trim())
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok());
    let Some((id, secret)) = decoded.as_deref().and_then(|text| text.split_once(':')) else {
        return Some(Err(malformed()));
    };
    let unescape = |text: &str| {
        url::form_urlencoded::parse(format!("x={text}").as_bytes())
            .next()
            .map(|(_, value)| value.into_owned())
    };
    match (unescape(id), unescape(secret)) {
        (Some(client_id), Some(client_secret)) if !client_id.is_empty() => {
            Some(Ok(ClientCredentials {
                client_id,
                client_secret: (!client_secret.is_empty()).then(|| Secret::new(client_secret)),
            }))
        }
        _ => Some(Err(malformed())),
    }
}
