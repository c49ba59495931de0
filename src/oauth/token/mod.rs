//! The token endpoint's grants (RFC 6749 §4.1.3 and §6, OAuth 2.1 §4.3.1 rotation), client
//! authentication (§2.3.1), revocation (RFC 7009) and the operator's bearer-only tokens: one
//! file per grant, and here what they share (client authentication, the token response,
//! minting access tokens, replay handling).

mod authorization_code;
mod bearer;
mod refresh_token;
mod revoke;

use serde::{Deserialize, Serialize};

pub use bearer::IssuedBearerToken;

use crate::clock::UnixSeconds;
use crate::oauth::AuthServer;
use crate::oauth::error::{ErrorCode, OAuthError};
use crate::oauth::jwt::AccessClaims;
use crate::secrets::{self, Secret};
use crate::store::{ClientRecord, GrantRecord};

/// Credentials a client presented at the token or revocation endpoint.
#[derive(Debug, Clone)]
pub struct ClientCredentials {
    /// The client identifier.
    pub client_id: String,
    /// The client secret, when one was sent (Basic or form body).
    pub client_secret: Option<Secret>,
}

/// A successful token response (RFC 6749 §5.1). Every member is always present: strict
/// clients reject `null`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenResponse {
    /// The JWT access token.
    pub access_token: Secret,
    /// Always `Bearer`.
    pub token_type: String,
    /// Seconds until the access token expires.
    pub expires_in: i64,
    /// The refresh token.
    pub refresh_token: Secret,
    /// Granted scope.
    pub scope: String,
}

impl TokenResponse {
    /// A `Bearer` answer; `expires_in` is counted from `now` and never negative.
    fn bearer(
        access_token: String,
        access_expires_at: UnixSeconds,
        now: UnixSeconds,
        refresh_token: String,
        scope: String,
    ) -> Self {
        Self {
            access_token: access_token.into(),
            token_type: "Bearer".into(),
            expires_in: (access_expires_at - now).max(0),
            refresh_token: refresh_token.into(),
            scope,
        }
    }
}

const REFRESH_TOKEN_PREFIX: &str = "rt_";

impl AuthServer {
    /// Authenticates a client at the token or revocation endpoint. Public clients present
    /// only their id; confidential ones their secret, compared by hash in constant time.
    pub async fn authenticate_client(
        &self,
        credentials: &ClientCredentials,
    ) -> Result<ClientRecord, OAuthError> {
        let failed =
            || OAuthError::rejected(ErrorCode::InvalidClient, "client authentication failed");
        let client = self
            .store()
            .find_client(&credentials.client_id)
            .await?
            .ok_or_else(failed)?;
        match (&client.secret_hash, &credentials.client_secret) {
            (Some(stored), Some(presented))
                if secrets::constant_time_eq(stored, &secrets::hash_secret(presented.expose())) =>
            {
                Ok(client)
            }
            (None, None) => Ok(client),
            _ => Err(failed()),
        }
    }

    fn check_resource(&self, resource: Option<&str>) -> Result<(), OAuthError> {
        match resource {
            Some(resource) if !self.settings().accepts_resource(resource) => {
                Err(OAuthError::rejected(
                    ErrorCode::InvalidTarget,
                    "resource is not served by this authorization server",
                ))
            }
            _ => Ok(()),
        }
    }

    async fn live_grant(&self, grant_id: &str) -> Result<GrantRecord, OAuthError> {
        match self.store().find_grant(grant_id).await? {
            Some(grant) if grant.revoked_at.is_none() => Ok(grant),
            _ => Err(OAuthError::rejected(
                ErrorCode::InvalidGrant,
                "the grant was revoked",
            )),
        }
    }

    /// A replayed code or refresh token: someone else may hold it, so the whole grant dies.
    async fn revoke_after_replay(&self, grant_id: &str, what: &'static str) -> OAuthError {
        match self.store().revoke_grant(grant_id, self.now()).await {
            Ok(_) => {
                tracing::warn!(grant_id = %grant_id, what, "replayed credential: grant revoked");
                OAuthError::rejected(
                    ErrorCode::InvalidGrant,
                    "credential was already used; the grant is revoked",
                )
            }
            Err(error) => OAuthError::from(error),
        }
    }

    async fn mint_access_token(
        &self,
        grant: &GrantRecord,
        client_id: &str,
        now: UnixSeconds,
    ) -> Result<(String, UnixSeconds), OAuthError> {
        self.mint_token_with_ttl(grant, client_id, now, self.settings().access_token_ttl)
            .await
    }

    async fn mint_token_with_ttl(
        &self,
        grant: &GrantRecord,
        client_id: &str,
        now: UnixSeconds,
        ttl_seconds: i64,
    ) -> Result<(String, UnixSeconds), OAuthError> {
        let expires_at = now + ttl_seconds;
        let claims = AccessClaims {
            iss: self.settings().issuer.clone(),
            sub: grant.subject.clone(),
            aud: grant.resource.clone(),
            client_id: client_id.to_owned(),
            scope: grant.scope.clone(),
            iat: now,
            exp: expires_at,
            jti: uuid::Uuid::new_v4().to_string(),
            gid: grant.id.clone(),
        };
        let keys = self.key_ring();
        let token = keys.sign(&claims).map_err(OAuthError::internal)?;
        // The key must stay published until this token has expired, even after a rotation.
        self.store()
            .extend_key_validity(keys.signing_kid(), expires_at)
            .await?;
        Ok((token, expires_at))
    }
}

fn new_refresh_token() -> String {
    format!("{REFRESH_TOKEN_PREFIX}{}", secrets::random_token())
}
