//! The queue as transports see it: tasks still to deliver, deliveries and their external
//! messages, replies routed back to tasks (or kept as updates with no task), and a little
//! durable state. Transports call these instead of the store. An incoming event is written
//! with a `Receipt`: marked handled, with its state, in the transaction that records what it
//! carried, so it is never marked handled without it.

use crate::queue::Queue;
use crate::queue::error::QueueError;
use crate::queue::message::{MessageStatus, check_content};
use crate::store::{Engine, MessageRecord, Receipt, Sighting, UpdateRecord};

impl Queue {
    /// The next task of `target` to deliver (urgent first, then oldest).
    pub async fn next_undelivered(
        &self,
        target: &str,
    ) -> Result<Option<MessageRecord>, QueueError> {
        Ok(self.store().next_undelivered_message(target).await?)
    }

    /// Records that a task was delivered as `external_refs` (all its parts).
    pub async fn mark_delivered(
        &self,
        message: &MessageRecord,
        external_refs: &[String],
    ) -> Result<(), QueueError> {
        self.store()
            .mark_delivered(&message.id, &message.target, external_refs, self.now())
            .await?;
        tracing::info!(message_id = %message.id, target = %message.target, parts = external_refs.len(), "message delivered");
        Ok(())
    }

    /// Marks a task failed because it cannot be delivered (`reason` says why).
    pub async fn fail_delivery(
        &self,
        message: &MessageRecord,
        reason: &str,
    ) -> Result<(), QueueError> {
        let content = format!("delivery failed: {reason}");
        self.transition(
            &message.id,
            Some(MessageStatus::Error),
            &content,
            "gateway",
            None,
        )
        .await?;
        tracing::error!(message_id = %message.id, target = %message.target, reason, "message cannot be delivered; marked as error");
        Ok(())
    }

    /// The task an external message belongs to.
    pub async fn find_by_ref(
        &self,
        target: &str,
        external_ref: &str,
    ) -> Result<Option<MessageRecord>, QueueError> {
        Ok(self
            .store()
            .find_message_by_ref(target, external_ref)
            .await?)
    }

    /// The open tasks of a target, oldest first.
    pub async fn open_tasks(&self, target: &str) -> Result<Vec<MessageRecord>, QueueError> {
        Ok(self.store().open_messages(Some(target)).await?)
    }

    /// Records a reply from a transport, and its event as handled, in one transaction: on
    /// `task` (moving it to `status` when given), or, with no task, as an update of its own.
    /// A refused status change writes nothing, the event included.
    pub async fn record_reply(
        &self,
        receipt: &Receipt,
        task: Option<&MessageRecord>,
        content: &str,
        status: Option<MessageStatus>,
        source: &str,
    ) -> Result<Sighting<UpdateRecord>, QueueError> {
        check_content(content)?;
        let store = self.store();
        match task {
            Some(task) => {
                let outcome = store
                    .record_event_update(receipt, &task.id, status, content, source, self.now())
                    .await?;
                let Sighting::First(outcome) = outcome else {
                    return Ok(Sighting::Repeat);
                };
                let (_, update) = self.settle(&task.id, status, outcome)?;
                if let Some(status) = status {
                    tracing::info!(message_id = %task.id, status = %status, source, "status changed from a transport");
                }
                Ok(Sighting::First(update))
            }
            None => {
                let sighting = store
                    .record_event_unattached(receipt, content, source, self.now())
                    .await?;
                self.updates_recorded();
                Ok(sighting)
            }
        }
    }

    /// A transport's stored value, such as a poll offset.
    pub async fn transport_state(&self, key: &str) -> Result<Option<String>, QueueError> {
        Ok(self.store().transport_state(key).await?)
    }

    /// The value every replica shares for `key` (such as a webhook secret): `proposed`, unless
    /// one was stored before.
    pub async fn shared_state(&self, key: &str, proposed: &str) -> Result<String, QueueError> {
        Ok(self
            .store()
            .shared_transport_state(key, proposed, self.now())
            .await?)
    }

    /// Takes (or renews) the lease `name` for `holder` for `length`: true while `holder` may do
    /// the job only one process may do at a time (such as polling a bot). Always true on
    /// SQLite, where this process is the only one serving.
    pub async fn take_lease(
        &self,
        name: &str,
        holder: &str,
        length: std::time::Duration,
    ) -> Result<bool, QueueError> {
        if self.store().engine() == Engine::Sqlite {
            return Ok(true);
        }
        let now = self.now();
        let until = now.saturating_add(i64::try_from(length.as_secs()).unwrap_or(i64::MAX));
        Ok(self.store().take_lease(name, holder, now, until).await?)
    }

    /// Gives up a lease at shutdown, so another replica takes the job at once.
    pub async fn release_lease(&self, name: &str, holder: &str) -> Result<(), QueueError> {
        if self.store().engine() == Engine::Sqlite {
            return Ok(());
        }
        Ok(self.store().release_lease(name, holder).await?)
    }

    /// Whether an incoming event was handled before.
    pub async fn event_seen(&self, receipt: &Receipt) -> Result<bool, QueueError> {
        Ok(self
            .store()
            .event_seen(&receipt.target, &receipt.event_id)
            .await?)
    }

    /// Records an incoming event that carried nothing to keep (ignored, answered, or handled
    /// before), with its state.
    pub async fn acknowledge(&self, receipt: &Receipt) -> Result<(), QueueError> {
        Ok(self.store().acknowledge_event(receipt, self.now()).await?)
    }

    /// A wake-up for delivery workers, armed at once: a task queued after this call ends the
    /// wait, even one queued before the worker starts waiting. Take it before looking for work
    /// (as `claim_next` does), or a task queued between the look and the wait sleeps until the
    /// next recheck.
    pub fn work_signal(&self) -> std::pin::Pin<Box<tokio::sync::futures::Notified<'_>>> {
        let mut signal = Box::pin(self.inner.work_queued.notified());
        signal.as_mut().enable();
        signal
    }
}
