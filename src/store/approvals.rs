//! Remote approvals: an authorization request the owner answers in another channel. One ask
//! per request: a request asked once (and a decision made once) is never reset.

use sqlx::Row;

use crate::clock::UnixSeconds;
use crate::store::{Store, StoreError};

impl Store {
    /// Asks for a remote decision on `request_id`; false when it was asked already (whatever
    /// became of it), so a request is asked at most once and a decision is never reset.
    pub async fn insert_remote_approval(
        &self,
        request_id: &str,
        token_hash: &str,
        code_hash: &str,
        expires_at: UnixSeconds,
    ) -> Result<bool, StoreError> {
        let inserted = sqlx::query(
            "INSERT INTO remote_approvals (request_id, token_hash, code_hash, decision, expires_at)
             VALUES ($1, $2, $3, NULL, $4) ON CONFLICT (request_id) DO NOTHING",
        )
        .bind(request_id)
        .bind(token_hash)
        .bind(code_hash)
        .bind(expires_at)
        .execute(&self.writer)
        .await?
        .rows_affected();
        Ok(inserted == 1)
    }

    /// The live, undecided remote approvals: (request id, pairing-code hash).
    pub async fn undecided_remote_approvals(
        &self,
        now: UnixSeconds,
    ) -> Result<Vec<(String, String)>, StoreError> {
        let rows = sqlx::query(
            "SELECT request_id, code_hash FROM remote_approvals
             WHERE decision IS NULL AND expires_at > $1 AND code_hash IS NOT NULL",
        )
        .bind(now)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| Ok((row.try_get("request_id")?, row.try_get("code_hash")?)))
            .collect()
    }

    /// Approves the live, undecided remote approval of `request_id`; false when there is none.
    pub async fn approve_remote_request(
        &self,
        request_id: &str,
        now: UnixSeconds,
    ) -> Result<bool, StoreError> {
        let updated = sqlx::query(
            "UPDATE remote_approvals SET decision = 'approved'
             WHERE request_id = $1 AND decision IS NULL AND expires_at > $2",
        )
        .bind(request_id)
        .bind(now)
        .execute(&self.writer)
        .await?
        .rows_affected();
        Ok(updated == 1)
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
            "UPDATE remote_approvals SET decision = $1 WHERE token_hash = $2 AND decision IS NULL AND expires_at > $3
             RETURNING request_id",
        )
        .bind(if approved { "approved" } else { "denied" })
        .bind(token_hash)
        .bind(now)
        .fetch_optional(&self.writer)
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
            "SELECT decision FROM remote_approvals WHERE request_id = $1 AND expires_at > $2",
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
