//! Named leases: how one process among several replicas becomes the one that does a job only
//! one may do (polling a Telegram bot). A lease is held until it expires; its holder renews it
//! well before, and anyone may take it once it has lapsed.

use crate::clock::UnixSeconds;
use crate::store::{Store, StoreError};

impl Store {
    /// Takes the lease `name` for `holder` until `expires_at`, or renews it when `holder`
    /// already holds it. True when `holder` holds it now; false while another holder's lease
    /// runs. The row lock orders two replicas asking at once: one wins, the other sees it.
    pub async fn take_lease(
        &self,
        name: &str,
        holder: &str,
        now: UnixSeconds,
        expires_at: UnixSeconds,
    ) -> Result<bool, StoreError> {
        let taken = sqlx::query(
            "INSERT INTO leases (name, holder, expires_at) VALUES ($1, $2, $3)
             ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
             WHERE leases.holder = excluded.holder OR leases.expires_at <= $4
             RETURNING holder",
        )
        .bind(name)
        .bind(holder)
        .bind(expires_at)
        .bind(now)
        .fetch_optional(&self.writer)
        .await?;
        Ok(taken.is_some())
    }

    /// Gives the lease up (at shutdown), so another replica takes it without waiting for it
    /// to lapse. Does nothing when `holder` does not hold it.
    pub async fn release_lease(&self, name: &str, holder: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM leases WHERE name = $1 AND holder = $2")
            .bind(name)
            .bind(holder)
            .execute(&self.writer)
            .await?;
        Ok(())
    }
}
