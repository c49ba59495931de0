//! Token signing keys (private PKCS#8, never served) and the list of revoked access tokens.

use sqlx::{AnyConnection, Row};

use crate::clock::UnixSeconds;
use crate::store::{Engine, Store, StoreError};

/// A stored signing key.
#[derive(Debug, Clone)]
pub struct SigningKeyRecord {
    /// The key id (`kid`), an RFC 7638 thumbprint.
    pub kid: String,
    /// The JWS algorithm, such as `ES256`.
    pub alg: String,
    /// The private key, PKCS#8 DER.
    pub private_pkcs8: Vec<u8>,
    /// When it was created.
    pub created_at: UnixSeconds,
    /// When a newer key replaced it for signing.
    pub retired_at: Option<UnixSeconds>,
    /// The latest expiry of any token it signed.
    pub tokens_valid_until: UnixSeconds,
}

impl Store {
    /// Keys still needed: the signing key and retired keys whose tokens have not all expired.
    /// Newest first, so the first unretired one signs.
    pub async fn live_signing_keys(
        &self,
        now: UnixSeconds,
    ) -> Result<Vec<SigningKeyRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT * FROM signing_keys WHERE retired_at IS NULL OR tokens_valid_until > $1
             ORDER BY created_at DESC, rowid DESC",
        )
        .bind(now)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(SigningKeyRecord {
                    kid: row.try_get("kid")?,
                    alg: row.try_get("alg")?,
                    private_pkcs8: row.try_get("private_pkcs8")?,
                    created_at: row.try_get("created_at")?,
                    retired_at: row.try_get("retired_at")?,
                    tokens_valid_until: row.try_get("tokens_valid_until")?,
                })
            })
            .collect()
    }

    /// Makes `key` the signing key and retires every other one, at once.
    pub async fn insert_signing_key(&self, key: &SigningKeyRecord) -> Result<(), StoreError> {
        let mut transaction = self.begin_write().await?;
        self.lock_signing_keys(&mut transaction).await?;
        sqlx::query("UPDATE signing_keys SET retired_at = $1 WHERE retired_at IS NULL")
            .bind(key.created_at)
            .execute(&mut *transaction)
            .await?;
        insert_key(&mut transaction, key).await?;
        transaction.commit().await?;
        Ok(())
    }

    /// Stores `key` as the first signing key, unless one exists already (another replica
    /// starting at the same moment made it): false then, and nothing is written.
    pub async fn insert_first_signing_key(
        &self,
        key: &SigningKeyRecord,
    ) -> Result<bool, StoreError> {
        let mut transaction = self.begin_write().await?;
        self.lock_signing_keys(&mut transaction).await?;
        let live: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM signing_keys WHERE retired_at IS NULL")
                .fetch_one(&mut *transaction)
                .await?;
        if live > 0 {
            return Ok(false);
        }
        insert_key(&mut transaction, key).await?;
        transaction.commit().await?;
        Ok(true)
    }

    /// On PostgreSQL, makes writers of signing keys take turns (two replicas creating the
    /// first key at once, or the CLI rotating while a replica starts), so exactly one key is
    /// left unretired. SQLite's write transaction already does.
    async fn lock_signing_keys(&self, transaction: &mut AnyConnection) -> Result<(), StoreError> {
        if self.engine == Engine::Postgres {
            sqlx::query("LOCK TABLE signing_keys IN SHARE ROW EXCLUSIVE MODE")
                .execute(&mut *transaction)
                .await?;
        }
        Ok(())
    }

    /// Extends how long `kid` must stay published, after it signed a token expiring then.
    pub async fn extend_key_validity(
        &self,
        kid: &str,
        expires_at: UnixSeconds,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE signing_keys SET tokens_valid_until = $1 WHERE kid = $2 AND tokens_valid_until < $1",
        )
        .bind(expires_at)
        .bind(kid)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    /// Remembers a revoked access token until it would have expired anyway.
    pub async fn revoke_access_token(
        &self,
        jti: &str,
        expires_at: UnixSeconds,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO revoked_tokens (jti, expires_at) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        )
        .bind(jti)
        .bind(expires_at)
        .execute(&self.writer)
        .await?;
        self.note_revocation();
        Ok(())
    }

    /// Whether an access token is dead: revoked itself, or its grant revoked or gone.
    pub async fn is_access_token_revoked(
        &self,
        jti: &str,
        grant_id: &str,
    ) -> Result<bool, StoreError> {
        let row = sqlx::query(
            "SELECT CASE WHEN EXISTS (SELECT 1 FROM revoked_tokens WHERE jti = $1)
                 OR NOT EXISTS (SELECT 1 FROM grants WHERE id = $2 AND revoked_at IS NULL)
                 THEN 1 ELSE 0 END",
        )
        .bind(jti)
        .bind(grant_id)
        .fetch_one(&self.pool)
        .await?;
        Ok(row.try_get::<i64, _>(0)? != 0)
    }
}

async fn insert_key(
    transaction: &mut AnyConnection,
    key: &SigningKeyRecord,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO signing_keys (kid, alg, private_pkcs8, created_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(&key.kid)
    .bind(&key.alg)
    .bind(&key.private_pkcs8)
    .bind(key.created_at)
    .execute(transaction)
    .await?;
    Ok(())
}
