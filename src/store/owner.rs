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
            "INSERT INTO owner (id, password_hash, updated_at) VALUES (1, ?, ?)
             ON CONFLICT (id) DO UPDATE SET password_hash = excluded.password_hash, updated_at = excluded.updated_at",
        )
        .bind(hash)
        .bind(now)
        .execute(&mut *transaction)
        .await?;
        sqlx::query("DELETE FROM owner_sessions")
            .execute(&mut *transaction)
            .await?;
        transaction.commit().await?;
        Ok(())
    }

    /// Stores a new owner session (by the hash of its cookie value).
    pub async fn insert_owner_session(
        &self,
        hash: &str,
        now: UnixSeconds,
        expires_at: UnixSeconds,
    ) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO owner_sessions (hash, created_at, expires_at) VALUES (?, ?, ?)")
            .bind(hash)
            .bind(now)
            .bind(expires_at)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Whether an owner session is live.
    pub async fn owner_session_is_live(
        &self,
        hash: &str,
        now: UnixSeconds,
    ) -> Result<bool, StoreError> {
        let row = sqlx::query(
            "SELECT EXISTS (SELECT 1 FROM owner_sessions WHERE hash = ? AND expires_at > ?)",
        )
        .bind(hash)
        .bind(now)
        .fetch_one(&self.pool)
        .await?;
        Ok(row.try_get::<bool, _>(0)?)
    }
}
