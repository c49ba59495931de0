//! What transports persist: which messages still need delivering, the external messages a
//! delivery created (so replies can find their task), small state such as poll offsets, and
//! the ids of incoming events already handled. An incoming event is marked handled in the
//! same transaction as what it carried and the state that moves past it (a `Receipt`), so a
//! failure keeps none of them and the event is handled when it comes again.

use sqlx::Row;

use crate::clock::UnixSeconds;
use crate::queue::message::MessageStatus;
use crate::store::queue::{apply_update, message_from_row};
use crate::store::updates::insert_update;
use crate::store::{MessageRecord, Store, StoreError, TransitionOutcome, UpdateRecord};

/// An incoming event being handled (a Telegram update): written with whatever it carried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    /// The target it came for.
    pub target: String,
    /// Its id, unique per target.
    pub event_id: String,
    /// A transport state (key, value) to store with it, such as the poll offset past it.
    pub state_after: Option<(String, String)>,
}

/// What recording an incoming event did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sighting<T> {
    /// The first time: written, with this result.
    First(T),
    /// Handled before: only the receipt's state was written.
    Repeat,
}

impl Store {
    /// The next pending message of `target` no transport has delivered yet: urgent first,
    /// then oldest, so an outage delays tasks but keeps their order.
    pub async fn next_undelivered_message(
        &self,
        target: &str,
    ) -> Result<Option<MessageRecord>, StoreError> {
        let row = sqlx::query(
            "SELECT * FROM messages WHERE target = $1 AND status = 'pending' AND delivered_at IS NULL
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
        sqlx::query("UPDATE messages SET delivered_at = $1, transport_ref = $2 WHERE id = $3")
            .bind(now)
            .bind(external_refs.first())
            .bind(message_id)
            .execute(&mut *transaction)
            .await?;
        for external_ref in external_refs {
            sqlx::query(
                "INSERT INTO transport_refs (target, external_ref, message_id, created_at) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (target, external_ref) DO UPDATE SET message_id = excluded.message_id,
                   created_at = excluded.created_at",
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
             WHERE transport_refs.target = $1 AND transport_refs.external_ref = $2",
        )
        .bind(target)
        .bind(external_ref)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| message_from_row(&row)).transpose()
    }

    /// A transport's stored value.
    pub async fn transport_state(&self, key: &str) -> Result<Option<String>, StoreError> {
        let row = sqlx::query("SELECT value FROM transport_state WHERE key = $1")
            .bind(key)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|row| row.try_get("value")).transpose()?)
    }

    /// The stored value of `key`, storing `proposed` first when there is none: every process
    /// sharing the store ends up with the same value, whoever asked first.
    pub async fn shared_transport_state(
        &self,
        key: &str,
        proposed: &str,
        now: UnixSeconds,
    ) -> Result<String, StoreError> {
        sqlx::query(
            "INSERT INTO transport_state (key, value, updated_at) VALUES ($1, $2, $3)
             ON CONFLICT (key) DO NOTHING",
        )
        .bind(key)
        .bind(proposed)
        .bind(now)
        .execute(&self.writer)
        .await?;
        let row = sqlx::query("SELECT value FROM transport_state WHERE key = $1")
            .bind(key)
            .fetch_one(&self.writer)
            .await?;
        Ok(row.try_get("value")?)
    }

    /// Whether an incoming event was handled before.
    pub async fn event_seen(&self, target: &str, event_id: &str) -> Result<bool, StoreError> {
        let row = sqlx::query("SELECT 1 FROM transport_seen WHERE target = $1 AND event_id = $2")
            .bind(target)
            .bind(event_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.is_some())
    }

    /// Records an event that carried nothing to keep (or was handled before), with its state.
    pub async fn acknowledge_event(
        &self,
        receipt: &Receipt,
        now: UnixSeconds,
    ) -> Result<(), StoreError> {
        let mut transaction = self.begin_write().await?;
        mark_seen(&mut transaction, receipt, now).await?;
        transaction.commit().await?;
        Ok(())
    }

    /// Records an event that moves a message (see `record_update`), in one transaction with
    /// the update and its status change. A refusal writes nothing, the event included.
    #[allow(clippy::too_many_arguments)]
    pub async fn record_event_update(
        &self,
        receipt: &Receipt,
        message_id: &str,
        next: Option<MessageStatus>,
        content: &str,
        source: &str,
        now: UnixSeconds,
    ) -> Result<Sighting<TransitionOutcome>, StoreError> {
        let mut transaction = self.begin_write().await?;
        if !mark_seen(&mut transaction, receipt, now).await? {
            // Handled before: only the state moves on.
            transaction.commit().await?;
            return Ok(Sighting::Repeat);
        }
        let outcome = apply_update(
            &mut transaction,
            message_id,
            next,
            content,
            source,
            None,
            now,
        )
        .await?;
        if matches!(outcome, TransitionOutcome::Applied(_)) {
            transaction.commit().await?;
        }
        Ok(Sighting::First(outcome))
    }

    /// Records an event that says something about no message, in one transaction with the
    /// update it becomes.
    pub async fn record_event_unattached(
        &self,
        receipt: &Receipt,
        content: &str,
        source: &str,
        now: UnixSeconds,
    ) -> Result<Sighting<UpdateRecord>, StoreError> {
        let mut transaction = self.begin_write().await?;
        if !mark_seen(&mut transaction, receipt, now).await? {
            // Handled before: only the state moves on.
            transaction.commit().await?;
            return Ok(Sighting::Repeat);
        }
        let update = insert_update(
            &mut transaction,
            None,
            &receipt.target,
            content,
            None,
            source,
            now,
        )
        .await?;
        transaction.commit().await?;
        Ok(Sighting::First(update))
    }
}

/// Marks the receipt's event handled and stores its state; false (with the state stored all
/// the same) when the event was handled before.
async fn mark_seen(
    connection: &mut sqlx::AnyConnection,
    receipt: &Receipt,
    now: UnixSeconds,
) -> Result<bool, StoreError> {
    let inserted = sqlx::query(
        "INSERT INTO transport_seen (target, event_id, seen_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
    )
    .bind(&receipt.target)
    .bind(&receipt.event_id)
    .bind(now)
    .execute(&mut *connection)
    .await?;
    if let Some((key, value)) = &receipt.state_after {
        sqlx::query(
            "INSERT INTO transport_state (key, value, updated_at) VALUES ($1, $2, $3)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
        )
        .bind(key)
        .bind(value)
        .bind(now)
        .execute(&mut *connection)
        .await?;
    }
    Ok(inserted.rows_affected() == 1)
}
