//! The authorization endpoint's rules (RFC 6749 §4.1.1-§4.1.2, RFC 7636, RFC 8707, RFC 9207):
//! check the client and redirect URI first (errors shown, never redirected), then the rest
//! (errors redirected), park the request for the owner, and turn the owner's decision into a
//! redirect carrying `code`, `state` and `iss`.

use url::Url;

use crate::oauth::client::{redirect_host, redirect_uri_matches};
use crate::oauth::client_name::display_name;
use crate::oauth::error::{AuthorizeError, ErrorCode};
use crate::oauth::scope::ScopeSet;
use crate::oauth::{AuthServer, OWNER_SUBJECT, pkce};
use crate::secrets::{self, Secret};
use crate::store::{AuthorizationRequestRecord, CodeRecord, GrantKind, NewGrant};

/// Longest `state` accepted; clients use short opaque values.
const MAX_STATE_LEN: usize = 2048;

/// The query of an authorization request, each parameter at most once.
#[derive(Debug, Clone, Default)]
pub struct AuthorizationRequest {
    /// Must be `code`.
    pub response_type: Option<String>,
    /// The registered client.
    pub client_id: Option<String>,
    /// One of the client's registered redirect URIs.
    pub redirect_uri: Option<String>,
    /// Opaque client value, echoed back.
    pub state: Option<String>,
    /// PKCE S256 challenge.
    pub code_challenge: Option<String>,
    /// Must be `S256`.
    pub code_challenge_method: Option<String>,
    /// Requested scope.
    pub scope: Option<String>,
    /// RFC 8707 resource indicator.
    pub resource: Option<String>,
    /// Some parameter other than `client_id` and `redirect_uri` appeared twice.
    pub has_duplicate_parameter: bool,
}

/// A request parked until the owner decides.
#[derive(Debug, Clone)]
pub struct PendingAuthorization {
    /// The request id the forms carry.
    pub request_id: String,
    /// The login form's CSRF token (stored only hashed).
    pub login_csrf: Secret,
    /// What the login and consent pages show about it.
    pub view: ConsentView,
}

/// What the consent page shows about a parked request.
#[derive(Debug, Clone)]
pub struct ConsentView {
    /// The request id.
    pub request_id: String,
    /// The client's registered name, cleaned for display (`client_name::display_name`).
    pub client_name: String,
    /// The client identifier.
    pub client_id: String,
    /// Where the code will be sent.
    pub redirect_host: String,
    /// The full redirect URI.
    pub redirect_uri: String,
    /// What will be granted.
    pub scopes: ScopeSet,
}

/// The outcome of a successful owner login.
#[derive(Debug, Clone)]
pub struct OwnerSession {
    /// The session cookie value (stored only hashed).
    pub token: Secret,
    /// Seconds it stays valid.
    pub max_age: i64,
}

impl AuthServer {
    /// Validates an authorization request and parks it for the owner's decision.
    #[tracing::instrument(skip_all, fields(client_id))]
    pub async fn begin_authorization(
        &self,
        request: AuthorizationRequest,
    ) -> Result<PendingAuthorization, AuthorizeError> {
        // Phase 1: who is asking and where the answer goes. Nothing may redirect before both
        // are verified, or /authorize becomes an open redirector.
        let client_id = request
            .client_id
            .as_deref()
            .ok_or(AuthorizeError::Page("the request has no client_id"))?;
        tracing::Span::current().record("client_id", client_id);
        let client = self.client_for_authorization(client_id).await?;
        let redirect_uri = match request.redirect_uri.as_deref() {
            Some(requested) => {
                if !client
                    .redirect_uris
                    .iter()
                    .any(|registered| redirect_uri_matches(registered, requested))
                {
                    return Err(AuthorizeError::Page(
                        "the redirect_uri is not one this application registered",
                    ));
                }
                requested.to_owned()
            }
            None => match client.redirect_uris.as_slice() {
                [only] => only.clone(),
                _ => {
                    return Err(AuthorizeError::Page(
                        "the request has no redirect_uri and the application registered several",
                    ));
                }
            },
        };

        // Phase 2: everything else is reported to the client on its redirect URI, once the
        // owner has approved that client at least once. Registration is open, so a client
        // nobody approved could otherwise use our errors to redirect anywhere it registered
        // (RFC 9700 §4.11.2): its errors are a page.
        let state = request.state.clone();
        let approved_before = client.authorized_at.is_some();
        let fail = |code: ErrorCode, description: &'static str| {
            if approved_before {
                AuthorizeError::Redirect {
                    redirect_uri: redirect_uri.clone(),
                    state: state.clone(),
                    code,
                    description,
                }
            } else {
                AuthorizeError::Page(description)
            }
        };
        if request.has_duplicate_parameter {
            return Err(fail(
                ErrorCode::InvalidRequest,
                "a parameter appears more than once",
            ));
        }
        if state
            .as_ref()
            .is_some_and(|state| state.len() > MAX_STATE_LEN)
        {
            return Err(fail(ErrorCode::InvalidRequest, "state is too long"));
        }
        // RFC 6749 allows only visible ASCII and spaces; a control character (NUL above all,
        // which PostgreSQL cannot store) has no business in it.
        if state
            .as_ref()
            .is_some_and(|state| state.chars().any(char::is_control))
        {
            return Err(fail(
                ErrorCode::InvalidRequest,
                "state must not contain control characters",
            ));
        }
        match request.response_type.as_deref() {
            Some("code") => {}
            None => return Err(fail(ErrorCode::InvalidRequest, "response_type is required")),
            Some(_) => {
                return Err(fail(
                    ErrorCode::UnsupportedResponseType,
                    "only response_type=code is supported",
                ));
            }
        }
        let challenge = request.code_challenge.as_deref().ok_or_else(|| {
            fail(
                ErrorCode::InvalidRequest,
                "PKCE is required: send code_challenge with code_challenge_method=S256",
            )
        })?;
        if request.code_challenge_method.as_deref() != Some("S256") {
            return Err(fail(
                ErrorCode::InvalidRequest,
                "code_challenge_method must be S256",
            ));
        }
        if !pkce::is_valid_s256_challenge(challenge) {
            return Err(fail(
                ErrorCode::InvalidRequest,
                "code_challenge is not a base64url SHA-256 value",
            ));
        }
        let settings = self.settings();
        if let Some(resource) = request.resource.as_deref()
            && !settings.accepts_resource(resource)
        {
            return Err(fail(
                ErrorCode::InvalidTarget,
                "resource is not served by this authorization server",
            ));
        }
        let scope = ScopeSet::grant_for_request(request.scope.as_deref(), &self.settings().scopes);

        let now = self.now();
        let request_id = secrets::random_id("ar_");
        let login_csrf = secrets::random_token();
        let view = ConsentView {
            request_id: request_id.clone(),
            client_name: display_name(&client.name),
            client_id: client.id.clone(),
            redirect_host: redirect_host(&redirect_uri),
            redirect_uri: redirect_uri.clone(),
            scopes: scope.clone(),
        };
        self.store()
            .insert_authorization_request(&AuthorizationRequestRecord {
                id: request_id.clone(),
                client_id: client.id,
                redirect_uri,
                state,
                code_challenge: challenge.to_owned(),
                scope: scope.to_string(),
                resource: settings.resource.clone(),
                csrf_hash: secrets::hash_secret(&login_csrf),
                created_at: now,
                expires_at: now + settings.authorization_request_ttl,
            })
            .await?;
        Ok(PendingAuthorization {
            request_id,
            login_csrf: Secret::new(login_csrf),
            view,
        })
    }

    /// What the consent page shows for a parked request; `None` when it is unknown or expired.
    pub async fn consent_view(
        &self,
        request_id: &str,
    ) -> Result<Option<ConsentView>, AuthorizeError> {
        let Some(request) = self
            .store()
            .find_authorization_request(request_id, self.now())
            .await?
        else {
            return Ok(None);
        };
        let Some(client) = self.store().find_client(&request.client_id).await? else {
            return Ok(None);
        };
        Ok(Some(ConsentView {
            request_id: request.id,
            client_name: display_name(&client.name),
            client_id: client.id,
            redirect_host: redirect_host(&request.redirect_uri),
            redirect_uri: request.redirect_uri,
            scopes: ScopeSet::from_token_claim(&request.scope),
        }))
    }

    /// Whether `csrf` is the login form token of a live parked request.
    pub async fn check_login_csrf(
        &self,
        request_id: &str,
        csrf: &str,
    ) -> Result<bool, AuthorizeError> {
        let request = self
            .store()
            .find_authorization_request(request_id, self.now())
            .await?;
        Ok(request.is_some_and(|request| {
            secrets::constant_time_eq(&request.csrf_hash, &secrets::hash_secret(csrf))
        }))
    }

    /// Carries out the owner's decision, returning the redirect to send the browser to.
    /// The request is consumed, so a form cannot be submitted twice.
    #[tracing::instrument(skip_all, fields(approved))]
    pub async fn decide(&self, request_id: &str, approved: bool) -> Result<String, AuthorizeError> {
        let now = self.now();
        let request = self
            .store()
            .find_authorization_request(request_id, now)
            .await?
            .ok_or(AuthorizeError::Page("this authorization request has expired or was already answered; start again from the application"))?;
        let already_answered =
            AuthorizeError::Page("this authorization request was already answered");
        let issuer = self.settings().issuer.clone();
        if !approved {
            if !self.store().take_authorization_request(request_id).await? {
                return Err(already_answered);
            }
            tracing::info!(client_id = %request.client_id, "owner denied an authorization request");
            return Ok(redirect_with(
                &request.redirect_uri,
                &[
                    ("error", Some(ErrorCode::AccessDenied.as_str())),
                    ("error_description", Some("the owner denied the request")),
                    ("state", request.state.as_deref()),
                    ("iss", Some(&issuer)),
                ],
            ));
        }

        let grant_id = secrets::random_id("g_");
        let code = secrets::random_token();
        let recorded = self
            .store()
            .insert_approved_grant(
                request_id,
                &NewGrant {
                    id: grant_id.clone(),
                    kind: GrantKind::OAuth,
                    client_id: Some(request.client_id.clone()),
                    name: None,
                    subject: OWNER_SUBJECT.into(),
                    scope: request.scope.clone(),
                    resource: request.resource.clone(),
                    created_at: now,
                    expires_at: None,
                },
                &CodeRecord {
                    hash: secrets::hash_secret(&code),
                    grant_id: grant_id.clone(),
                    client_id: request.client_id.clone(),
                    redirect_uri: request.redirect_uri.clone(),
                    code_challenge: request.code_challenge.clone(),
                    expires_at: now + self.settings().code_ttl,
                    used_at: None,
                },
            )
            .await?;
        if !recorded {
            return Err(already_answered);
        }
        tracing::info!(client_id = %request.client_id, grant_id = %grant_id, scope = %request.scope, "owner approved an authorization request");
        Ok(redirect_with(
            &request.redirect_uri,
            &[
                ("code", Some(&code)),
                ("state", request.state.as_deref()),
                ("iss", Some(&issuer)),
            ],
        ))
    }
}

/// Appends parameters to a redirect URI's query, keeping any query it already has.
pub fn redirect_with(redirect_uri: &str, parameters: &[(&str, Option<&str>)]) -> String {
    match Url::parse(redirect_uri) {
        Ok(mut url) => {
            {
                let mut query = url.query_pairs_mut();
                for (name, value) in parameters {
                    if let Some(value) = value {
                        query.append_pair(name, value);
                    }
                }
            }
            url.to_string()
        }
        // Registered URIs were parsed at registration; this cannot happen with stored data.
        Err(_) => redirect_uri.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_parameters_are_appended_and_encoded() {
        assert_eq!(
            redirect_with(
                "https://a.example/cb?x=1",
                &[
                    ("code", Some("c d")),
                    ("state", Some("s&t=1")),
                    ("skip", None)
                ]
            ),
            "https://a.example/cb?x=1&code=c+d&state=s%26t%3D1"
        );
        assert_eq!(
            redirect_with(
                "cursor://anysphere.cursor-mcp/oauth/callback",
                &[("code", Some("c"))]
            ),
            "cursor://anysphere.cursor-mcp/oauth/callback?code=c"
        );
    }
}
