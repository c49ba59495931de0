//! Pending authorization requests and grants: the rows behind RFC 6749 §4.1 consent. Approving
//! (grant + code + the client's first approval) is one transaction. Codes and refresh tokens
//! are `tokens.rs`.

use sqlx::Row;
use sqlx::any::AnyRow;

use crate::clock::UnixSeconds;
use crate::store::{CodeRecord, Store, StoreError, names_nothing};

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

impl Store {
    /// Stores a request waiting for the owner, and notes that its client started one.
    pub async fn insert_authorization_request(
        &self,
        request: &AuthorizationRequestRecord,
    ) -> Result<(), StoreError> {
        let mut transaction = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO authorization_requests
               (id, client_id, redirect_uri, state, code_challenge, scope, resource, csrf_hash, created_at, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
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
        .execute(&mut *transaction)
        .await?;
        // A client that never starts an authorization is swept within minutes.
        sqlx::query(
            "UPDATE clients SET first_authorize_at = $1 WHERE id = $2 AND first_authorize_at IS NULL",
        )
        .bind(request.created_at)
        .bind(&request.client_id)
        .execute(&mut *transaction)
        .await?;
        transaction.commit().await?;
        Ok(())
    }

    /// Finds a pending authorization request that has not expired.
    pub async fn find_authorization_request(
        &self,
        id: &str,
        now: UnixSeconds,
    ) -> Result<Option<AuthorizationRequestRecord>, StoreError> {
        if names_nothing(id) {
            return Ok(None);
        }
        let row =
            sqlx::query("SELECT * FROM authorization_requests WHERE id = $1 AND expires_at > $2")
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
        let result = sqlx::query("DELETE FROM authorization_requests WHERE id = $1")
            .bind(id)
            .execute(&self.writer)
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
        // The client's row first, as a deletion of the client takes it (see `redeem_code`).
        sqlx::query("UPDATE clients SET authorized_at = COALESCE(authorized_at, $1) WHERE id = $2")
            .bind(grant.created_at)
            .bind(&code.client_id)
            .execute(&mut *transaction)
            .await?;
        let taken = sqlx::query("DELETE FROM authorization_requests WHERE id = $1")
            .bind(request_id)
            .execute(&mut *transaction)
            .await?;
        if taken.rows_affected() != 1 {
            return Ok(false);
        }
        insert_grant(&mut transaction, grant).await?;
        sqlx::query(
            "INSERT INTO authorization_codes (hash, grant_id, client_id, redirect_uri, code_challenge, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&code.hash)
        .bind(&code.grant_id)
        .bind(&code.client_id)
        .bind(&code.redirect_uri)
        .bind(&code.code_challenge)
        .bind(code.expires_at)
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
        let row = sqlx::query("SELECT * FROM grants WHERE id = $1")
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
        if names_nothing(name_or_id) {
            return Ok(None);
        }
        let row = sqlx::query(
            "SELECT * FROM grants WHERE kind = 'bearer' AND revoked_at IS NULL AND (name = $1 OR id = $2)",
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
            sqlx::query("UPDATE grants SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
                .bind(now)
                .bind(id)
                .execute(&mut *transaction)
                .await?;
        sqlx::query("DELETE FROM refresh_tokens WHERE grant_id = $1")
            .bind(id)
            .execute(&mut *transaction)
            .await?;
        transaction.commit().await?;
        let revoked = result.rows_affected() == 1;
        if revoked {
            self.note_revocation();
        }
        Ok(revoked)
    }
}

async fn insert_grant(
    transaction: &mut sqlx::AnyConnection,
    grant: &NewGrant,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO grants (id, kind, client_id, name, subject, scope, resource, created_at, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
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

fn grant_from_row(row: &AnyRow) -> Result<GrantRecord, StoreError> {
    Ok(GrantRecord {
        id: row.try_get("id")?,
        client_id: row.try_get("client_id")?,
        subject: row.try_get("subject")?,
        scope: row.try_get("scope")?,
        resource: row.try_get("resource")?,
        revoked_at: row.try_get("revoked_at")?,
    })
}
