//! Pending authorization requests, grants, authorization codes and refresh tokens: the rows
//! behind RFC 6749 §4.1 and §6. Every step that must not half-happen is one transaction.

use sqlx::Row;
use sqlx::sqlite::SqliteRow;

use crate::clock::UnixSeconds;
use crate::store::{Store, StoreError};

/// An `/authorize` request waiting for the owner's decision.
#[derive(Debug, Clone)]
pub struct AuthorizationRequestRecord {
    /// Opaque identifier carried by the login and consent forms.
    pub id: String,
    /// The requesting client.
    pub client_id: String,
    /// The redirect URI exactly as the client sent it (or the single registered one).
    pub redirect_uri: String,
    /// The client's `state`, echoed on the redirect.
    pub state: Option<String>,
    /// The PKCE S256 challenge.
    pub code_challenge: String,
    /// The scope that will be granted, space-separated.
    pub scope: String,
    /// The resource (`aud`) the tokens will be bound to.
    pub resource: String,
    /// SHA-256 of the login form's CSRF token.
    pub csrf_hash: String,
    /// When the request arrived.
    pub created_at: UnixSeconds,
    /// When it can no longer be approved.
    pub expires_at: UnixSeconds,
}

/// What a grant was made for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrantKind {
    /// The owner approved an OAuth client.
    OAuth,
    /// The operator issued a bearer-only token from the CLI.
    Bearer,
}

impl GrantKind {
    fn as_str(self) -> &'static str {
        match self {
            GrantKind::OAuth => "oauth",
            GrantKind::Bearer => "bearer",
        }
    }
}

/// A grant about to be stored.
#[derive(Debug, Clone)]
pub struct NewGrant {
    /// Grant identifier (carried in access tokens as `gid`).
    pub id: String,
    /// What the grant is for.
    pub kind: GrantKind,
    /// The OAuth client, for `GrantKind::OAuth`.
    pub client_id: Option<String>,
    /// The operator's name for a bearer token.
    pub name: Option<String>,
    /// The resource owner.
    pub subject: String,
    /// Granted scope, space-separated.
    pub scope: String,
    /// The audience of its tokens.
    pub resource: String,
    /// When it was made.
    pub created_at: UnixSeconds,
    /// When it ends by itself (bearer tokens).
    pub expires_at: Option<UnixSeconds>,
}

/// A stored grant.
#[derive(Debug, Clone)]
pub struct GrantRecord {
    /// Grant identifier.
    pub id: String,
    /// The OAuth client, if any.
    pub client_id: Option<String>,
    /// The resource owner.
    pub subject: String,
    /// Granted scope.
    pub scope: String,
    /// The audience of its tokens.
    pub resource: String,
    /// When it was revoked, if it was.
    pub revoked_at: Option<UnixSeconds>,
}

/// A bearer-only token's grant, for `tokens list`.
#[derive(Debug, Clone)]
pub struct BearerGrantRecord {
    /// Grant identifier.
    pub id: String,
    /// The operator's name for it.
    pub name: String,
    /// Granted scope.
    pub scope: String,
    /// When it was issued.
    pub created_at: UnixSeconds,
    /// When it expires.
    pub expires_at: Option<UnixSeconds>,
    /// When it was revoked, if it was.
    pub revoked_at: Option<UnixSeconds>,
}

/// A stored authorization code (only its hash).
#[derive(Debug, Clone)]
pub struct CodeRecord {
    /// SHA-256 of the code.
    pub hash: String,
    /// The grant the code redeems into.
    pub grant_id: String,
    /// The client it was issued to.
    pub client_id: String,
    /// The redirect URI it was issued for.
    pub redirect_uri: String,
    /// The PKCE S256 challenge.
    pub code_challenge: String,
    /// Expiry.
    pub expires_at: UnixSeconds,
    /// When it was redeemed, if it was.
    pub used_at: Option<UnixSeconds>,
}

/// A stored refresh token (only its hash).
#[derive(Debug, Clone)]
pub struct RefreshRecord {
    /// SHA-256 of the token.
    pub hash: String,
    /// The grant it belongs to.
    pub grant_id: String,
    /// Issue time.
    pub created_at: UnixSeconds,
    /// Expiry.
    pub expires_at: UnixSeconds,
    /// When it was exchanged for a successor.
    pub rotated_at: Option<UnixSeconds>,
    /// The end of the grace window in which it still answers with its successor pair.
    pub grace_until: Option<UnixSeconds>,
    /// The successor pair, sealed under a key only this token's holder can derive.
    pub grace_sealed: Option<Vec<u8>>,
}

/// The successor written when a refresh token rotates.
#[derive(Debug, Clone)]
pub struct Rotation {
    /// The new token row.
    pub successor: RefreshRecord,
    /// The end of the old token's grace window.
    pub grace_until: UnixSeconds,
    /// The new pair, sealed for the old token's holder.
    pub grace_sealed: Vec<u8>,
}

impl Store {
    /// Stores a request waiting for the owner.
    pub async fn insert_authorization_request(
        &self,
        request: &AuthorizationRequestRecord,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO authorization_requests
               (id, client_id, redirect_uri, state, code_challenge, scope, resource, csrf_hash, created_at, expires_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&request.id)
        .bind(&request.client_id)
        .bind(&request.redirect_uri)
        .bind(&request.state)
        .bind(&request.code_challenge)
        .bind(&request.scope)
        .bind(&request.resource)
        .bind(&request.csrf_hash)
        .bind(request.created_at)
        .bind(request.expires_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Finds a pending authorization request that has not expired.
    pub async fn find_authorization_request(
        &self,
        id: &str,
        now: UnixSeconds,
    ) -> Result<Option<AuthorizationRequestRecord>, StoreError> {
        let row =
            sqlx::query("SELECT * FROM authorization_requests WHERE id = ? AND expires_at > ?")
                .bind(id)
                .bind(now)
                .fetch_optional(&self.pool)
                .await?;
        row.map(|row| {
            Ok(AuthorizationRequestRecord {
                id: row.try_get("id")?,
                client_id: row.try_get("client_id")?,
                redirect_uri: row.try_get("redirect_uri")?,
                state: row.try_get("state")?,
                code_challenge: row.try_get("code_challenge")?,
                scope: row.try_get("scope")?,
                resource: row.try_get("resource")?,
                csrf_hash: row.try_get("csrf_hash")?,
                created_at: row.try_get("created_at")?,
                expires_at: row.try_get("expires_at")?,
            })
        })
        .transpose()
    }

    /// Removes a request once it has been decided, so its forms cannot be replayed.
    /// Returns false when another decision already took it.
    pub async fn take_authorization_request(&self, id: &str) -> Result<bool, StoreError> {
        let result = sqlx::query("DELETE FROM authorization_requests WHERE id = ?")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(result.rows_affected() == 1)
    }

    /// Records the owner's approval of `request_id`: consumes the request and writes the grant,
    /// its code, and the client's first approval, all at once. Returns false (writing nothing)
    /// when the request was already answered.
    pub async fn insert_approved_grant(
        &self,
        request_id: &str,
        grant: &NewGrant,
        code: &CodeRecord,
    ) -> Result<bool, StoreError> {
        let mut transaction = self.begin_write().await?;
        let taken = sqlx::query("DELETE FROM authorization_requests WHERE id = ?")
            .bind(request_id)
            .execute(&mut *transaction)
            .await?;
        if taken.rows_affected() != 1 {
            return Ok(false);
        }
        insert_grant(&mut transaction, grant).await?;
        sqlx::query(
            "INSERT INTO authorization_codes (hash, grant_id, client_id, redirect_uri, code_challenge, expires_at)
             VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(&code.hash)
        .bind(&code.grant_id)
        .bind(&code.client_id)
        .bind(&code.redirect_uri)
        .bind(&code.code_challenge)
        .bind(code.expires_at)
        .execute(&mut *transaction)
        .await?;
        sqlx::query("UPDATE clients SET authorized_at = COALESCE(authorized_at, ?) WHERE id = ?")
            .bind(grant.created_at)
            .bind(&code.client_id)
            .execute(&mut *transaction)
            .await?;
        transaction.commit().await?;
        Ok(true)
    }

    /// Stores a bearer-only grant.
    pub async fn insert_bearer_grant(&self, grant: &NewGrant) -> Result<(), StoreError> {
        let mut transaction = self.begin_write().await?;
        insert_grant(&mut transaction, grant).await?;
        transaction.commit().await?;
        Ok(())
    }

    /// Finds a grant.
    pub async fn find_grant(&self, id: &str) -> Result<Option<GrantRecord>, StoreError> {
        let row = sqlx::query("SELECT * FROM grants WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|row| grant_from_row(&row)).transpose()
    }

    /// Bearer-only grants, newest first.
    pub async fn list_bearer_grants(&self) -> Result<Vec<BearerGrantRecord>, StoreError> {
        let rows =
            sqlx::query("SELECT * FROM grants WHERE kind = 'bearer' ORDER BY created_at DESC")
                .fetch_all(&self.pool)
                .await?;
        rows.iter()
            .map(|row| {
                Ok(BearerGrantRecord {
                    id: row.try_get("id")?,
                    name: row
                        .try_get::<Option<String>, _>("name")?
                        .unwrap_or_default(),
                    scope: row.try_get("scope")?,
                    created_at: row.try_get("created_at")?,
                    expires_at: row.try_get("expires_at")?,
                    revoked_at: row.try_get("revoked_at")?,
                })
            })
            .collect()
    }

    /// Finds the live bearer grant with this name or id.
    pub async fn find_bearer_grant(
        &self,
        name_or_id: &str,
    ) -> Result<Option<GrantRecord>, StoreError> {
        let row = sqlx::query(
            "SELECT * FROM grants WHERE kind = 'bearer' AND revoked_at IS NULL AND (name = ? OR id = ?)",
        )
        .bind(name_or_id)
        .bind(name_or_id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| grant_from_row(&row)).transpose()
    }

    /// Revokes a grant and drops its refresh tokens; its access tokens fail the bearer
    /// guard's grant check from now on.
    pub async fn revoke_grant(&self, id: &str, now: UnixSeconds) -> Result<bool, StoreError> {
        let mut transaction = self.begin_write().await?;
        let result =
            sqlx::query("UPDATE grants SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL")
                .bind(now)
                .bind(id)
                .execute(&mut *transaction)
                .await?;
        sqlx::query("DELETE FROM refresh_tokens WHERE grant_id = ?")
            .bind(id)
            .execute(&mut *transaction)
            .await?;
        transaction.commit().await?;
        Ok(result.rows_affected() == 1)
    }

    /// Finds an authorization code by its hash.
    pub async fn find_code(&self, hash: &str) -> Result<Option<CodeRecord>, StoreError> {
        let row = sqlx::query("SELECT * FROM authorization_codes WHERE hash = ?")
            .bind(hash)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|row| {
            Ok(CodeRecord {
                hash: row.try_get("hash")?,
                grant_id: row.try_get("grant_id")?,
                client_id: row.try_get("client_id")?,
                redirect_uri: row.try_get("redirect_uri")?,
                code_challenge: row.try_get("code_challenge")?,
                expires_at: row.try_get("expires_at")?,
                used_at: row.try_get("used_at")?,
            })
        })
        .transpose()
    }

    /// Marks a code used and stores the first refresh token of its grant, atomically.
    /// Returns false when the code had already been used (a concurrent redemption won).
    pub async fn redeem_code(
        &self,
        code_hash: &str,
        refresh: &RefreshRecord,
        now: UnixSeconds,
    ) -> Result<bool, StoreError> {
        let mut transaction = self.begin_write().await?;
        let result = sqlx::query(
            "UPDATE authorization_codes SET used_at = ? WHERE hash = ? AND used_at IS NULL",
        )
        .bind(now)
        .bind(code_hash)
        .execute(&mut *transaction)
        .await?;
        if result.rows_affected() != 1 {
            return Ok(false);
        }
        insert_refresh(&mut transaction, refresh).await?;
        sqlx::query("UPDATE clients SET last_used_at = ? WHERE id = (SELECT client_id FROM authorization_codes WHERE hash = ?)")
            .bind(now)
            .bind(code_hash)
            .execute(&mut *transaction)
            .await?;
        transaction.commit().await?;
        Ok(true)
    }

    /// Finds a refresh token by its hash.
    pub async fn find_refresh_token(
        &self,
        hash: &str,
    ) -> Result<Option<RefreshRecord>, StoreError> {
        let row = sqlx::query("SELECT * FROM refresh_tokens WHERE hash = ?")
            .bind(hash)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|row| refresh_from_row(&row)).transpose()
    }

    /// Rotates `old_hash` into `rotation.successor`. The first use of the successor also
    /// closes the grace window of the token before it. Returns false when `old_hash` had
    /// already rotated (a concurrent refresh won), in which case nothing is written.
    pub async fn rotate_refresh_token(
        &self,
        old_hash: &str,
        rotation: &Rotation,
        now: UnixSeconds,
    ) -> Result<bool, StoreError> {
        let mut transaction = self.begin_write().await?;
        let result = sqlx::query(
            "UPDATE refresh_tokens SET rotated_at = ?, successor_hash = ?, grace_until = ?, grace_sealed = ?
             WHERE hash = ? AND rotated_at IS NULL",
        )
        .bind(now)
        .bind(&rotation.successor.hash)
        .bind(rotation.grace_until)
        .bind(&rotation.grace_sealed)
        .bind(old_hash)
        .execute(&mut *transaction)
        .await?;
        if result.rows_affected() != 1 {
            return Ok(false);
        }
        // The holder has moved on to this token, so its predecessor's retry window ends.
        sqlx::query("UPDATE refresh_tokens SET grace_until = NULL, grace_sealed = NULL WHERE successor_hash = ?")
            .bind(old_hash)
            .execute(&mut *transaction)
            .await?;
        insert_refresh(&mut transaction, &rotation.successor).await?;
        transaction.commit().await?;
        Ok(true)
    }

    /// Deletes what has expired: pending requests, codes, refresh tokens, revocation
    /// entries and owner sessions, and clients never approved since `client_cutoff`.
    pub async fn sweep_expired(
        &self,
        now: UnixSeconds,
        client_cutoff: UnixSeconds,
    ) -> Result<u64, StoreError> {
        let mut removed = 0;
        for statement in [
            "DELETE FROM authorization_requests WHERE expires_at <= ?",
            "DELETE FROM authorization_codes WHERE expires_at <= ? - 86400",
            "DELETE FROM refresh_tokens WHERE expires_at <= ?",
            "DELETE FROM revoked_tokens WHERE expires_at <= ?",
            "DELETE FROM owner_sessions WHERE expires_at <= ?",
            // Telegram keeps updates for 24 hours; two days of memory covers any redelivery.
            "DELETE FROM transport_seen WHERE seen_at <= ? - 172800",
        ] {
            removed += sqlx::query(statement)
                .bind(now)
                .execute(&self.pool)
                .await?
                .rows_affected();
        }
        removed += self.delete_unapproved_clients(client_cutoff).await?;
        Ok(removed)
    }
}

async fn insert_grant(
    transaction: &mut sqlx::SqliteConnection,
    grant: &NewGrant,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO grants (id, kind, client_id, name, subject, scope, resource, created_at, expires_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(&grant.id)
    .bind(grant.kind.as_str())
    .bind(&grant.client_id)
    .bind(&grant.name)
    .bind(&grant.subject)
    .bind(&grant.scope)
    .bind(&grant.resource)
    .bind(grant.created_at)
    .bind(grant.expires_at)
    .execute(transaction)
    .await?;
    Ok(())
}

async fn insert_refresh(
    transaction: &mut sqlx::SqliteConnection,
    refresh: &RefreshRecord,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO refresh_tokens (hash, grant_id, created_at, expires_at) VALUES (?, ?, ?, ?)",
    )
    .bind(&refresh.hash)
    .bind(&refresh.grant_id)
    .bind(refresh.created_at)
    .bind(refresh.expires_at)
    .execute(transaction)
    .await?;
    Ok(())
}

fn grant_from_row(row: &SqliteRow) -> Result<GrantRecord, StoreError> {
    Ok(GrantRecord {
        id: row.try_get("id")?,
        client_id: row.try_get("client_id")?,
        subject: row.try_get("subject")?,
        scope: row.try_get("scope")?,
        resource: row.try_get("resource")?,
        revoked_at: row.try_get("revoked_at")?,
    })
}

fn refresh_from_row(row: &SqliteRow) -> Result<RefreshRecord, StoreError> {
    Ok(RefreshRecord {
        hash: row.try_get("hash")?,
        grant_id: row.try_get("grant_id")?,
        created_at: row.try_get("created_at")?,
        expires_at: row.try_get("expires_at")?,
        rotated_at: row.try_get("rotated_at")?,
        grace_until: row.try_get("grace_until")?,
        grace_sealed: row.try_get("grace_sealed")?,
    })
}
