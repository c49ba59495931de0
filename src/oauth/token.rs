//! The token endpoint's grants (RFC 6749 §4.1.3 and §6, OAuth 2.1 §4.3.1 rotation), client
//! authentication (§2.3.1), revocation (RFC 7009) and the operator's bearer-only tokens.

use serde::{Deserialize, Serialize};

use crate::clock::UnixSeconds;
use crate::oauth::error::{ErrorCode, OAuthError};
use crate::oauth::jwt::AccessClaims;
use crate::oauth::scope::ScopeSet;
use crate::oauth::{AuthServer, OWNER_SUBJECT, pkce, sealed};
use crate::secrets;
use crate::store::{ClientRecord, GrantKind, GrantRecord, NewGrant, RefreshRecord, Rotation};

/// Credentials a client presented at the token or revocation endpoint.
#[derive(Debug, Clone)]
pub struct ClientCredentials {
    /// The client identifier.
    pub client_id: String,
    /// The client secret, when one was sent (Basic or form body).
    pub client_secret: Option<String>,
}

/// A successful token response (RFC 6749 §5.1). Every member is always present: strict
/// clients reject `null`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenResponse {
    /// The JWT access token.
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Seconds until the access token expires.
    pub expires_in: i64,
    /// The refresh token.
    pub refresh_token: String,
    /// Granted scope.
    pub scope: String,
}

/// A bearer-only token printed by the CLI.
#[derive(Debug, Clone)]
pub struct IssuedBearerToken {
    /// The access token.
    pub token: String,
    /// Its grant, for `tokens revoke`.
    pub grant_id: String,
    /// Its expiry.
    pub expires_at: UnixSeconds,
}

/// The pair sealed for a rotated refresh token's grace window.
#[derive(Serialize, Deserialize)]
struct SealedPair {
    access_token: String,
    access_expires_at: UnixSeconds,
    refresh_token: String,
    scope: String,
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
                if secrets::constant_time_eq(stored, &secrets::hash_secret(presented)) =>
            {
                Ok(client)
            }
            (None, None) => Ok(client),
            _ => Err(failed()),
        }
    }

    /// The `authorization_code` grant.
    #[tracing::instrument(skip_all, fields(client_id = %client.id, grant_type = "authorization_code"))]
    pub async fn exchange_code(
        &self,
        client: &ClientRecord,
        code: Option<&str>,
        redirect_uri: Option<&str>,
        code_verifier: Option<&str>,
        resource: Option<&str>,
    ) -> Result<TokenResponse, OAuthError> {
        let code = code.ok_or(OAuthError::rejected(
            ErrorCode::InvalidRequest,
            "code is required",
        ))?;
        // Every code we issue has a challenge, so a missing verifier is a PKCE downgrade.
        let verifier = code_verifier.ok_or(OAuthError::rejected(
            ErrorCode::InvalidRequest,
            "code_verifier is required",
        ))?;
        self.check_resource(resource)?;
        let now = self.now();
        let code_hash = secrets::hash_secret(code);
        let invalid = |description| OAuthError::rejected(ErrorCode::InvalidGrant, description);
        let record = self
            .store()
            .find_code(&code_hash)
            .await?
            .ok_or_else(|| invalid("authorization code is invalid"))?;
        if record.client_id != client.id {
            return Err(invalid("authorization code was issued to another client"));
        }
        // PKCE first: someone holding a leaked code without its verifier learns nothing and
        // cannot get the owner's grant revoked by replaying it.
        if !pkce::verify_s256(verifier, &record.code_challenge) {
            return Err(invalid("code_verifier does not match the code_challenge"));
        }
        if record.used_at.is_some() {
            return Err(self
                .revoke_after_replay(&record.grant_id, "authorization code")
                .await);
        }
        if record.expires_at <= now {
            return Err(invalid("authorization code has expired"));
        }
        if redirect_uri.is_some_and(|uri| uri != record.redirect_uri) {
            return Err(invalid(
                "redirect_uri does not match the authorization request",
            ));
        }
        let grant = self.live_grant(&record.grant_id).await?;

        let (access_token, access_expires_at) =
            self.mint_access_token(&grant, &client.id, now).await?;
        let refresh_token = new_refresh_token();
        let refresh = RefreshRecord {
            hash: secrets::hash_secret(&refresh_token),
            grant_id: grant.id.clone(),
            created_at: now,
            expires_at: now + self.settings().refresh_token_ttl,
            rotated_at: None,
            grace_until: None,
            grace_sealed: None,
        };
        if !self.store().redeem_code(&code_hash, &refresh, now).await? {
            return Err(self
                .revoke_after_replay(&record.grant_id, "authorization code")
                .await);
        }
        tracing::info!(grant_id = %grant.id, "authorization code redeemed");
        Ok(TokenResponse {
            access_token,
            token_type: "Bearer".into(),
            expires_in: access_expires_at - now,
            refresh_token,
            scope: grant.scope,
        })
    }

    /// The `refresh_token` grant, with rotation. A rotated token keeps answering with the same
    /// new pair during the grace window (until its successor is used, one minute at most by
    /// default), because claude.ai has been seen refreshing one grant twice at once; a replay
    /// after that revokes the whole grant (RFC 9700 §4.14.2).
    #[tracing::instrument(skip_all, fields(client_id = %client.id, grant_type = "refresh_token"))]
    pub async fn refresh(
        &self,
        client: &ClientRecord,
        refresh_token: Option<&str>,
        resource: Option<&str>,
    ) -> Result<TokenResponse, OAuthError> {
        let presented = refresh_token.ok_or(OAuthError::rejected(
            ErrorCode::InvalidRequest,
            "refresh_token is required",
        ))?;
        self.check_resource(resource)?;
        let invalid = |description| OAuthError::rejected(ErrorCode::InvalidGrant, description);
        let hash = secrets::hash_secret(presented);
        let now = self.now();
        let record = self
            .store()
            .find_refresh_token(&hash)
            .await?
            .ok_or_else(|| invalid("refresh token is invalid"))?;
        let grant = self.live_grant(&record.grant_id).await?;
        if grant.client_id.as_deref() != Some(client.id.as_str()) {
            return Err(invalid("refresh token was issued to another client"));
        }
        if record.expires_at <= now {
            return Err(invalid("refresh token has expired"));
        }
        if record.rotated_at.is_none()
            && let Some(response) = self
                .rotate(&record, presented, &grant, &client.id, now)
                .await?
        {
            return Ok(response);
        }
        // Already rotated (or a concurrent refresh just rotated it): answer from the grace
        // window, or treat it as a stolen token.
        let current = self
            .store()
            .find_refresh_token(&hash)
            .await?
            .ok_or_else(|| invalid("refresh token is invalid"))?;
        let in_grace = current.grace_until.is_some_and(|until| until > now);
        let pair = current
            .grace_sealed
            .filter(|_| in_grace)
            .and_then(|sealed_pair| sealed::open(presented, &sealed_pair))
            .and_then(|plain| serde_json::from_slice::<SealedPair>(&plain).ok());
        match pair {
            Some(pair) => {
                tracing::info!(grant_id = %grant.id, "refresh retried within the grace window");
                Ok(TokenResponse {
                    access_token: pair.access_token,
                    token_type: "Bearer".into(),
                    expires_in: (pair.access_expires_at - now).max(0),
                    refresh_token: pair.refresh_token,
                    scope: pair.scope,
                })
            }
            None => Err(self.revoke_after_replay(&grant.id, "refresh token").await),
        }
    }

    async fn rotate(
        &self,
        record: &RefreshRecord,
        presented: &str,
        grant: &GrantRecord,
        client_id: &str,
        now: UnixSeconds,
    ) -> Result<Option<TokenResponse>, OAuthError> {
        let (access_token, access_expires_at) =
            self.mint_access_token(grant, client_id, now).await?;
        let refresh_token = new_refresh_token();
        let pair = SealedPair {
            access_token: access_token.clone(),
            access_expires_at,
            refresh_token: refresh_token.clone(),
            scope: grant.scope.clone(),
        };
        let plain = serde_json::to_vec(&pair).map_err(OAuthError::internal)?;
        let grace_sealed =
            sealed::seal(presented, &plain).ok_or_else(|| OAuthError::internal(SealError))?;
        let rotation = Rotation {
            successor: RefreshRecord {
                hash: secrets::hash_secret(&refresh_token),
                grant_id: grant.id.clone(),
                created_at: now,
                expires_at: now + self.settings().refresh_token_ttl,
                rotated_at: None,
                grace_until: None,
                grace_sealed: None,
            },
            grace_until: now + self.settings().refresh_grace,
            grace_sealed,
        };
        if !self
            .store()
            .rotate_refresh_token(&record.hash, &rotation, now)
            .await?
        {
            return Ok(None);
        }
        self.store().touch_client(client_id, now).await?;
        tracing::info!(grant_id = %grant.id, "refresh token rotated");
        Ok(Some(TokenResponse {
            access_token,
            token_type: "Bearer".into(),
            expires_in: access_expires_at - now,
            refresh_token,
            scope: grant.scope.clone(),
        }))
    }

    /// Revokes a refresh token (and its grant) or an access token (RFC 7009 §2.1). Unknown
    /// and expired tokens succeed silently, as §2.2 requires.
    #[tracing::instrument(skip_all, fields(client_id = %client.id))]
    pub async fn revoke(
        &self,
        client: &ClientRecord,
        token: Option<&str>,
    ) -> Result<(), OAuthError> {
        let token = token.ok_or(OAuthError::rejected(
            ErrorCode::InvalidRequest,
            "token is required",
        ))?;
        let foreign = || {
            OAuthError::rejected(
                ErrorCode::UnauthorizedClient,
                "the token was issued to another client",
            )
        };
        let now = self.now();
        if let Some(record) = self
            .store()
            .find_refresh_token(&secrets::hash_secret(token))
            .await?
        {
            let Some(grant) = self.store().find_grant(&record.grant_id).await? else {
                return Ok(());
            };
            if grant.client_id.as_deref() != Some(client.id.as_str()) {
                return Err(foreign());
            }
            self.store().revoke_grant(&grant.id, now).await?;
            tracing::info!(grant_id = %grant.id, "grant revoked by its client");
            return Ok(());
        }
        let settings = self.settings();
        if let Ok(claims) = self
            .key_ring()
            .verify(token, &settings.issuer, &settings.resource, now)
        {
            if claims.client_id != client.id {
                return Err(foreign());
            }
            self.store()
                .revoke_access_token(&claims.jti, claims.exp)
                .await?;
            tracing::info!(jti = %claims.jti, "access token revoked by its client");
        }
        Ok(())
    }

    /// Issues a bearer-only access token for an MCP client that cannot do OAuth.
    pub async fn issue_bearer_token(
        &self,
        name: &str,
        scope: &ScopeSet,
        ttl_seconds: i64,
    ) -> Result<IssuedBearerToken, OAuthError> {
        let now = self.now();
        if self.store().find_bearer_grant(name).await?.is_some() {
            return Err(OAuthError::rejected(
                ErrorCode::InvalidRequest,
                "a live token with this name exists; revoke it first",
            ));
        }
        let grant = NewGrant {
            id: secrets::random_id("g_"),
            kind: GrantKind::Bearer,
            client_id: None,
            name: Some(name.to_owned()),
            subject: OWNER_SUBJECT.into(),
            scope: scope.to_string(),
            resource: self.settings().resource.clone(),
            created_at: now,
            expires_at: Some(now + ttl_seconds),
        };
        self.store().insert_bearer_grant(&grant).await?;
        let record = GrantRecord {
            id: grant.id.clone(),
            client_id: None,
            subject: grant.subject,
            scope: grant.scope,
            resource: grant.resource,
            revoked_at: None,
        };
        let (token, expires_at) = self
            .mint_token_with_ttl(&record, &format!("token:{name}"), now, ttl_seconds)
            .await?;
        Ok(IssuedBearerToken {
            token,
            grant_id: record.id,
            expires_at,
        })
    }

    /// Lists bearer-only tokens.
    pub async fn list_bearer_tokens(
        &self,
    ) -> Result<Vec<crate::store::BearerGrantRecord>, OAuthError> {
        Ok(self.store().list_bearer_grants().await?)
    }

    /// Revokes a bearer-only token by name or grant id; false when there is none.
    pub async fn revoke_bearer_token(&self, name_or_id: &str) -> Result<bool, OAuthError> {
        match self.store().find_bearer_grant(name_or_id).await? {
            Some(grant) => Ok(self.store().revoke_grant(&grant.id, self.now()).await?),
            None => Ok(false),
        }
    }

    /// Lists registered clients.
    pub async fn list_clients(&self) -> Result<Vec<ClientRecord>, OAuthError> {
        Ok(self.store().list_clients().await?)
    }

    /// Removes a client with all its grants and tokens; false when there is none.
    pub async fn revoke_client(&self, client_id: &str) -> Result<bool, OAuthError> {
        let removed = self.store().delete_client(client_id).await?;
        if removed {
            tracing::info!(client_id = %client_id, "client removed by the operator");
        }
        Ok(removed)
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

#[derive(Debug, thiserror::Error)]
#[error("cannot seal the refresh grace pair")]
struct SealError;
