//! The `refresh_token` grant (RFC 6749 §6) with rotation (OAuth 2.1 §4.3.1): the rotated token
//! answers with the same sealed pair during the grace window (each time logged, as possible
//! theft when it comes from another address than the rotation), and a replay after it revokes
//! the grant.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::clock::UnixSeconds;
use crate::oauth::error::{ErrorCode, OAuthError};
use crate::oauth::{AuthServer, sealed};
use crate::secrets;
use crate::store::{ClientRecord, GrantRecord, RefreshRecord, Rotation};

use super::{TokenResponse, new_refresh_token};

/// The pair sealed for a rotated refresh token's grace window.
#[derive(Serialize, Deserialize)]
struct SealedPair {
    access_token: String,
    access_expires_at: UnixSeconds,
    refresh_token: String,
    scope: String,
}

impl AuthServer {
    /// The `refresh_token` grant, with rotation. A rotated token keeps answering with the same
    /// new pair during the grace window (until its successor is used, 10 s at most by default),
    /// because claude.ai has been seen refreshing one grant twice at once; a replay after that
    /// revokes the whole grant (RFC 9700 §4.14.2). `client_ip` is the caller's address: the
    /// rotation records it, and a retry from elsewhere is logged as possible theft.
    #[tracing::instrument(skip_all, fields(client_id = %client.id, grant_type = "refresh_token"))]
    pub async fn refresh(
        &self,
        client: &ClientRecord,
        refresh_token: Option<&str>,
        resource: Option<&str>,
        client_ip: IpAddr,
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
                .rotate(&record, presented, &grant, &client.id, client_ip, now)
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
                log_grace_answer(&client.id, &grant.id, client_ip, current.rotated_from_ip);
                Ok(TokenResponse::bearer(
                    pair.access_token,
                    pair.access_expires_at,
                    now,
                    pair.refresh_token,
                    pair.scope,
                ))
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
        client_ip: IpAddr,
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
                rotated_from_ip: None,
            },
            grace_until: now + self.settings().refresh_grace,
            grace_sealed,
            from_ip: client_ip.to_string(),
            client_id: client_id.to_owned(),
        };
        if !self
            .store()
            .rotate_refresh_token(&record.hash, &rotation, now)
            .await?
        {
            return Ok(None);
        }
        tracing::info!(grant_id = %grant.id, "refresh token rotated");
        Ok(Some(TokenResponse::bearer(
            access_token,
            access_expires_at,
            now,
            refresh_token,
            grant.scope.clone(),
        )))
    }
}

/// Logs an answer from the grace window. A retry is normal for a client that refreshed twice
/// at once, but it is also what a thief holding the old token would do first, so the operator
/// sees every one; from another address than the rotation, it is more likely theft than a
/// retry (though a client that changed networks looks the same, so the answer still goes out).
fn log_grace_answer(
    client_id: &str,
    grant_id: &str,
    client_ip: IpAddr,
    rotated_from: Option<String>,
) {
    let client_ip = client_ip.to_string();
    match rotated_from {
        Some(rotated_from) if rotated_from != client_ip => tracing::error!(
            client_id,
            grant_id,
            client_ip,
            rotated_from,
            "possible refresh token theft: a rotated refresh token was presented within the grace window from another address than its rotation"
        ),
        _ => tracing::warn!(
            client_id,
            grant_id,
            client_ip,
            "a rotated refresh token was presented again within the grace window; answered with the same pair"
        ),
    }
}

#[derive(Debug, thiserror::Error)]
#[error("cannot seal the refresh grace pair")]
struct SealError;
