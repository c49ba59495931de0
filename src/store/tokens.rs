//! Authorization codes and refresh tokens, stored only as hashes: redeeming a code and
//! rotating a refresh token are each one transaction, and losing the race counts as reuse.

use sqlx::Row;
use sqlx::any::AnyRow;

use crate::clock::UnixSeconds;
use crate::store::{Store, StoreError};

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
    /// The client address it was rotated from, if it was (and recorded: older rows have none).
    pub rotated_from_ip: Option<String>,
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
    /// The client address the rotation was asked from.
    pub from_ip: String,
    /// The client whose `last_used_at` the rotation moves (in the same transaction: one
    /// commit per refresh, not two).
    pub client_id: String,
}

impl Store {
    /// Finds an authorization code by its hash.
    pub async fn find_code(&self, hash: &str) -> Result<Option<CodeRecord>, StoreError> {
        let row = sqlx::query("SELECT * FROM authorization_codes WHERE hash = $1")
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
        // The client's row first: deleting a client locks it before cascading to its grants,
        // and taking the two in the same order keeps a redemption and a deletion from
        // deadlocking on PostgreSQL.
        sqlx::query("UPDATE clients SET last_used_at = $1 WHERE id = (SELECT client_id FROM authorization_codes WHERE hash = $2)")
            .bind(now)
            .bind(code_hash)
            .execute(&mut *transaction)
            .await?;
        let result = sqlx::query(
            "UPDATE authorization_codes SET used_at = $1 WHERE hash = $2 AND used_at IS NULL",
        )
        .bind(now)
        .bind(code_hash)
        .execute(&mut *transaction)
        .await?;
        if result.rows_affected() != 1 {
            return Ok(false);
        }
        insert_refresh(&mut transaction, refresh).await?;
        transaction.commit().await?;
        Ok(true)
    }

    /// Finds a refresh token by its hash.
    pub async fn find_refresh_token(
        &self,
        hash: &str,
    ) -> Result<Option<RefreshRecord>, StoreError> {
        let row = sqlx::query("SELECT * FROM refresh_tokens WHERE hash = $1")
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
        // The client's row first, as in `redeem_code` (the lock order of a client's deletion).
        // A rotation that does not happen rolls this back with it.
        sqlx::query("UPDATE clients SET last_used_at = $1 WHERE id = $2")
            .bind(now)
            .bind(&rotation.client_id)
            .execute(&mut *transaction)
            .await?;
        let result = sqlx::query(
            "UPDATE refresh_tokens SET rotated_at = $1, successor_hash = $2, grace_until = $3, grace_sealed = $4,
               rotated_from_ip = $5
             WHERE hash = $6 AND rotated_at IS NULL",
        )
        .bind(now)
        .bind(&rotation.successor.hash)
        .bind(rotation.grace_until)
        .bind(&rotation.grace_sealed)
        .bind(&rotation.from_ip)
        .bind(old_hash)
        .execute(&mut *transaction)
        .await?;
        if result.rows_affected() != 1 {
            return Ok(false);
        }
        // The holder has moved on to this token, so its predecessor's retry window ends.
        sqlx::query("UPDATE refresh_tokens SET grace_until = NULL, grace_sealed = NULL WHERE successor_hash = $1")
            .bind(old_hash)
            .execute(&mut *transaction)
            .await?;
        insert_refresh(&mut transaction, &rotation.successor).await?;
        transaction.commit().await?;
        Ok(true)
    }
}

async fn insert_refresh(
    transaction: &mut sqlx::AnyConnection,
    refresh: &RefreshRecord,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO refresh_tokens (hash, grant_id, created_at, expires_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(&refresh.hash)
    .bind(&refresh.grant_id)
    .bind(refresh.created_at)
    .bind(refresh.expires_at)
    .execute(transaction)
    .await?;
    Ok(())
}

fn refresh_from_row(row: &AnyRow) -> Result<RefreshRecord, StoreError> {
    Ok(RefreshRecord {
        hash: row.try_get("hash")?,
        grant_id: row.try_get("grant_id")?,
        created_at: row.try_get("created_at")?,
        expires_at: row.try_get("expires_at")?,
        rotated_at: row.try_get("rotated_at")?,
        grace_until: row.try_get("grace_until")?,
        grace_sealed: row.try_get("grace_sealed")?,
        rotated_from_ip: row.try_get("rotated_from_ip")?,
    })
}
