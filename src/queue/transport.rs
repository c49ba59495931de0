//! The queue as transports see it: tasks still to deliver, deliveries and their external
//! messages, replies routed back to tasks (or kept as updates with no task), and a little
//! durable state. Transports call these instead of the store.

use crate::queue::Queue;
use crate::queue::error::QueueError;
use crate::queue::message::{MessageStatus, check_content};
use crate::store::{MessageRecord, UpdateRecord};

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

    /// Records a reply from a transport: on `task` (moving it to `status` when given), or, with
    /// no task, as an update of its own.
    pub async fn record_reply(
        &self,
        target: &str,
        task: Option<&MessageRecord>,
        content: &str,
        status: Option<MessageStatus>,
        source: &str,
    ) -> Result<UpdateRecord, QueueError> {
        check_content(content)?;
        match task {
            Some(task) => {
                let (_, update) = self
                    .transition(&task.id, status, content, source, None)
                    .await?;
                if let Some(status) = status {
                    tracing::info!(message_id = %task.id, status = %status, source, "status changed from a transport");
                }
                Ok(update)
            }
            None => {
                let update = self
                    .store()
                    .insert_unattached_update(target, content, source, self.now())
                    .await?;
                self.updates_recorded();
                Ok(update)
            }
        }
    }

    /// A transport's stored value, such as a poll offset.
    pub async fn transport_state(&self, key: &str) -> Result<Option<String>, QueueError> {
        Ok(self.store().transport_state(key).await?)
    }

    /// Stores a transport's value.
    pub async fn set_transport_state(&self, key: &str, value: &str) -> Result<(), QueueError> {
        Ok(self
            .store()
            .set_transport_state(key, value, self.now())
            .await?)
    }

    /// Records an incoming event id; false when it was handled before.
    pub async fn first_sighting(&self, target: &str, event_id: &str) -> Result<bool, QueueError> {
        Ok(self
            .store()
            .first_sighting(target, event_id, self.now())
            .await?)
    }

    /// Waits until a task may have been queued (or `timeout` passes), for delivery workers.
    pub async fn wait_for_work(&self, timeout: std::time::Duration) {
        let _ = tokio::time::timeout(timeout, self.work_queued()).await;
    }
}
