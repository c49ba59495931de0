//! Revocation (RFC 7009): a refresh token takes its grant with it, an access token its `jti`.

use crate::oauth::AuthServer;
use crate::oauth::error::{ErrorCode, OAuthError};
use crate::secrets;
use crate::store::ClientRecord;

impl AuthServer {
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
}
