//! The owner's credential (an argon2id PHC string) and login sessions (hashed tokens).

use sqlx::Row;

use crate::clock::UnixSeconds;
use crate::store::{Store, StoreError};

impl Store {
    /// The owner's passphrase hash, if one was set.
    pub async fn owner_password_hash(&self) -> Result<Option<String>, StoreError> {
        let row = sqlx::query("SELECT password_hash FROM owner WHERE id = 1")
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|row| row.try_get("password_hash")).transpose()?)
    }

    /// Sets the owner's passphrase hash and ends every owner session.
    pub async fn set_owner_password_hash(
        &self,
        hash: &str,
        now: UnixSeconds,
    ) -> Result<(), StoreError> {
        let mut transaction = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO owner (id, password_hash, updated_at) VALUES (1, $1, $2)
             ON CONFLICT (id) DO UPDATE SET password_hash = excluded.password_hash, updated_at = excluded.updated_at",
        )
        .bind(hash)
        .bind(now)
        .execute(&mut *transaction)
        .await?;
        sqlx::query("DELETE FROM owner_sessions")
            .execute(&mut *transaction)
            .await?;
        // A new passphrase is often a response to a compromise: forget the remembered browsers.
        sqlx::query("DELETE FROM owner_devices")
            .execute(&mut *transaction)
            .await?;
        transaction.commit().await?;
        Ok(())
    }

    /// Sets the owner's first passphrase hash; false (writing nothing) when one is set already,
    /// as another replica starting at the same moment may have done.
    pub async fn insert_first_owner_password_hash(
        &self,
        hash: &str,
        now: UnixSeconds,
    ) -> Result<bool, StoreError> {
        let inserted = sqlx::query(
            "INSERT INTO owner (id, password_hash, updated_at) VALUES (1, $1, $2)
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(hash)
        .bind(now)
        .execute(&self.writer)
        .await?
        .rows_affected();
        Ok(inserted == 1)
    }

    /// Stores a new owner session (by the hash of its cookie value).
    pub async fn insert_owner_session(
        &self,
        hash: &str,
        now: UnixSeconds,
        expires_at: UnixSeconds,
    ) -> Result<(), StoreError> {
        self.insert_owner_token(OwnerToken::Session, hash, now, expires_at)
            .await
    }

    /// Whether an owner session is live.
    pub async fn owner_session_is_live(
        &self,
        hash: &str,
        now: UnixSeconds,
    ) -> Result<bool, StoreError> {
        self.owner_token_is_live(OwnerToken::Session, hash, now)
            .await
    }

    /// Ends an owner session (after the decision it was opened for).
    pub async fn delete_owner_session(&self, hash: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM owner_sessions WHERE hash = $1")
            .bind(hash)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    /// Remembers a browser the owner logged in from (by the hash of its device cookie).
    pub async fn insert_owner_device(
        &self,
        hash: &str,
        now: UnixSeconds,
        expires_at: UnixSeconds,
    ) -> Result<(), StoreError> {
        self.insert_owner_token(OwnerToken::Device, hash, now, expires_at)
            .await
    }

    /// Whether a device cookie belongs to a browser the owner logged in from.
    pub async fn owner_device_is_known(
        &self,
        hash: &str,
        now: UnixSeconds,
    ) -> Result<bool, StoreError> {
        self.owner_token_is_live(OwnerToken::Device, hash, now)
            .await
    }

    async fn insert_owner_token(
        &self,
        kind: OwnerToken,
        hash: &str,
        now: UnixSeconds,
        expires_at: UnixSeconds,
    ) -> Result<(), StoreError> {
        sqlx::query(kind.insert_sql())
            .bind(hash)
            .bind(now)
            .bind(expires_at)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    async fn owner_token_is_live(
        &self,
        kind: OwnerToken,
        hash: &str,
        now: UnixSeconds,
    ) -> Result<bool, StoreError> {
        let row = sqlx::query(kind.is_live_sql())
            .bind(hash)
            .bind(now)
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get::<i64, _>(0)? != 0)
    }
}

/// The owner's credentials that are a hash with an expiry: login sessions and remembered
/// browsers, in tables of the same shape.
#[derive(Debug, Clone, Copy)]
enum OwnerToken {
    Session,
    Device,
}

impl OwnerToken {
    fn insert_sql(self) -> &'static str {
        match self {
            OwnerToken::Session => {
                "INSERT INTO owner_sessions (hash, created_at, expires_at) VALUES ($1, $2, $3)"
            }
            OwnerToken::Device => {
                "INSERT INTO owner_devices (hash, created_at, expires_at) VALUES ($1, $2, $3)"
            }
        }
    }

    fn is_live_sql(self) -> &'static str {
        match self {
            OwnerToken::Session => {
                "SELECT CASE WHEN EXISTS (SELECT 1 FROM owner_sessions WHERE hash = $1 AND expires_at > $2) THEN 1 ELSE 0 END"
            }
            OwnerToken::Device => {
                "SELECT CASE WHEN EXISTS (SELECT 1 FROM owner_devices WHERE hash = $1 AND expires_at > $2) THEN 1 ELSE 0 END"
            }
        }
    }
}
