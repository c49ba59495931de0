//! Bearer-only tokens: access tokens the operator issues from the CLI for MCP clients that
//! cannot do OAuth. Each is a grant of its own, so it revokes like any other.

use crate::clock::UnixSeconds;
use crate::oauth::error::{ErrorCode, OAuthError};
use crate::oauth::scope::ScopeSet;
use crate::oauth::{AuthServer, OWNER_SUBJECT};
use crate::secrets::{self, Secret};
use crate::store::{GrantKind, GrantRecord, NewGrant};

/// A bearer-only token printed by the CLI.
#[derive(Debug, Clone)]
pub struct IssuedBearerToken {
    /// The access token.
    pub token: Secret,
    /// Its grant, for `tokens revoke`.
    pub grant_id: String,
    /// Its expiry.
    pub expires_at: UnixSeconds,
}

impl AuthServer {
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
            token: Secret::new(token),
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
}
