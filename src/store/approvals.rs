//! Remote approvals: an authorization request the owner answers in another channel.

use sqlx::Row;

use crate::clock::UnixSeconds;
use crate::store::{Store, StoreError};

impl Store {
    /// Asks (again) for a remote decision on `request_id`, replacing an earlier token.
    pub async fn insert_remote_approval(
        &self,
        request_id: &str,
        token_hash: &str,
        expires_at: UnixSeconds,
    ) -> Result<(), StoreError> {
        sqlx::query("INSERT OR REPLACE INTO remote_approvals (request_id, token_hash, decision, expires_at) VALUES (?, ?, NULL, ?)")
            .bind(request_id)
            .bind(token_hash)
            .bind(expires_at)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Records the decision for the live, undecided approval with this token; returns its
    /// request id, or `None` when the token is unknown, expired or already used.
    pub async fn record_remote_decision(
        &self,
        token_hash: &str,
        approved: bool,
        now: UnixSeconds,
    ) -> Result<Option<String>, StoreError> {
        let row = sqlx::query(
            "UPDATE remote_approvals SET decision = ? WHERE token_hash = ? AND decision IS NULL AND expires_at > ?
             RETURNING request_id",
        )
        .bind(if approved { "approved" } else { "denied" })
        .bind(token_hash)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|row| row.try_get("request_id")).transpose()?)
    }

    /// The state of a remote approval: `None` when there is none (or it expired), else the
    /// decision so far (`None` while waiting).
    pub async fn remote_decision(
        &self,
        request_id: &str,
        now: UnixSeconds,
    ) -> Result<Option<Option<bool>>, StoreError> {
        let row = sqlx::query(
            "SELECT decision FROM remote_approvals WHERE request_id = ? AND expires_at > ?",
        )
        .bind(request_id)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| {
            Ok(row
                .try_get::<Option<String>, _>("decision")?
                .map(|decision| decision == "approved"))
        })
        .transpose()
    }
}
