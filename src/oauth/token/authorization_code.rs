//! The `authorization_code` grant (RFC 6749 §4.1.3): PKCE, single use (a reused code revokes
//! what it issued), bound to the client, redirect URI and resource.

use crate::oauth::error::{ErrorCode, OAuthError};
use crate::oauth::{AuthServer, pkce};
use crate::secrets;
use crate::store::{ClientRecord, RefreshRecord};

use super::{TokenResponse, new_refresh_token};

impl AuthServer {
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
            rotated_from_ip: None,
        };
        if !self.store().redeem_code(&code_hash, &refresh, now).await? {
            return Err(self
                .revoke_after_replay(&record.grant_id, "authorization code")
                .await);
        }
        tracing::info!(grant_id = %grant.id, "authorization code redeemed");
        Ok(TokenResponse::bearer(
            access_token,
            access_expires_at,
            now,
            refresh_token,
            grant.scope,
        ))
    }
}
