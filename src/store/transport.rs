//! What transports persist: which messages still need delivering, the external messages a
//! delivery created (so replies can find their task), small state such as poll offsets, and
//! the ids of incoming events already handled.

use sqlx::Row;

use crate::clock::UnixSeconds;
use crate::store::queue::message_from_row;
use crate::store::updates::insert_update;
use crate::store::{MessageRecord, Store, StoreError, UpdateRecord};

impl Store {
    /// The next pending message of `target` no transport has delivered yet: urgent first,
    /// then oldest, so an outage delays tasks but keeps their order.
    pub async fn next_undelivered_message(
        &self,
        target: &str,
    ) -> Result<Option<MessageRecord>, StoreError> {
        let row = sqlx::query(
            "SELECT * FROM messages WHERE target = ? AND status = 'pending' AND delivered_at IS NULL
             ORDER BY urgent DESC, created_at, rowid LIMIT 1",
        )
        .bind(target)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| message_from_row(&row)).transpose()
    }

    /// Records a delivery: the time, and every external message it created.
    pub async fn mark_delivered(
        &self,
        message_id: &str,
        target: &str,
        external_refs: &[String],
        now: UnixSeconds,
    ) -> Result<(), StoreError> {
        let mut transaction = self.begin_write().await?;
        sqlx::query("UPDATE messages SET delivered_at = ?, transport_ref = ? WHERE id = ?")
            .bind(now)
            .bind(external_refs.first())
            .bind(message_id)
            .execute(&mut *transaction)
            .await?;
        for external_ref in external_refs {
            sqlx::query(
                "INSERT OR REPLACE INTO transport_refs (target, external_ref, message_id, created_at) VALUES (?, ?, ?, ?)",
            )
            .bind(target)
            .bind(external_ref)
            .bind(message_id)
            .bind(now)
            .execute(&mut *transaction)
            .await?;
        }
        transaction.commit().await?;
        Ok(())
    }

    /// The message an external message was posted for.
    pub async fn find_message_by_ref(
        &self,
        target: &str,
        external_ref: &str,
    ) -> Result<Option<MessageRecord>, StoreError> {
        let row = sqlx::query(
            "SELECT messages.* FROM transport_refs JOIN messages ON messages.id = transport_refs.message_id
             WHERE transport_refs.target = ? AND transport_refs.external_ref = ?",
        )
        .bind(target)
        .bind(external_ref)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| message_from_row(&row)).transpose()
    }

    /// Records an update with no task (a message the agent sent on its own).
    pub async fn insert_unattached_update(
        &self,
        target: &str,
        content: &str,
        source: &str,
        now: UnixSeconds,
    ) -> Result<UpdateRecord, StoreError> {
        let mut transaction = self.begin_write().await?;
        let update =
            insert_update(&mut transaction, None, target, content, None, source, now).await?;
        transaction.commit().await?;
        Ok(update)
    }

    /// A transport's stored value.
    pub async fn transport_state(&self, key: &str) -> Result<Option<String>, StoreError> {
        let row = sqlx::query("SELECT value FROM transport_state WHERE key = ?")
            .bind(key)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|row| row.try_get("value")).transpose()?)
    }

    /// Stores a transport's value.
    pub async fn set_transport_state(
        &self,
        key: &str,
        value: &str,
        now: UnixSeconds,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO transport_state (key, value, updated_at) VALUES (?, ?, ?)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
        )
        .bind(key)
        .bind(value)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Records an incoming event; false when it was seen before.
    pub async fn first_sighting(
        &self,
        target: &str,
        event_id: &str,
        now: UnixSeconds,
    ) -> Result<bool, StoreError> {
        let result = sqlx::query(
            "INSERT OR IGNORE INTO transport_seen (target, event_id, seen_at) VALUES (?, ?, ?)",
        )
        .bind(target)
        .bind(event_id)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(result.rows_affected() == 1)
    }
}
