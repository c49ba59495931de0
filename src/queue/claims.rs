//! The agents' side of the queue: claiming the next task (a long poll with the wake-up armed
//! before each look), reporting on a claimed task, and reading one.

use std::pin::pin;
use std::time::Duration;

use crate::queue::error::QueueError;
use crate::queue::message::{MessageStatus, check_content};
use crate::queue::{MessageDetail, Queue, UpdatePage};
use crate::store::{AgentRecord, MessageRecord, UpdateRecord};

impl Queue {
    /// Claims the oldest pending task of the agent's targets (urgent first), waiting up to
    /// `wait` for one to arrive.
    pub async fn claim_next(
        &self,
        agent: &AgentRecord,
        wait: Duration,
    ) -> Result<Option<MessageRecord>, QueueError> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            // Arm the wake-up before looking, so a message queued in between is not missed.
            let mut queued = pin!(self.inner.work_queued.notified());
            queued.as_mut().enable();
            if let Some(message) = self
                .inner
                .store
                .claim_next_message(&agent.targets, &agent.name, self.now())
                .await?
            {
                tracing::info!(message_id = %message.id, agent = %agent.name, "message claimed");
                self.updates_recorded();
                return Ok(Some(message));
            }
            tokio::select! {
                () = queued => {}
                () = tokio::time::sleep_until(deadline) => return Ok(None),
                () = self.inner.shutdown.cancelled() => return Ok(None),
            }
        }
    }

    /// Records an agent's report on a message, moving its status when `status` is given.
    pub async fn report(
        &self,
        agent: &AgentRecord,
        id: &str,
        content: &str,
        status: Option<MessageStatus>,
    ) -> Result<(MessageRecord, UpdateRecord), QueueError> {
        let message = self.find_message(id).await?;
        if !agent.targets.contains(&message.target) {
            return Err(QueueError::NotYourTarget(message.target));
        }
        check_content(content)?;
        // Whether another agent claimed it is checked inside the store's transaction.
        let result = self
            .transition(
                id,
                status,
                content,
                &format!("agent:{}", agent.name),
                Some(&agent.name),
            )
            .await?;
        if let Some(status) = status {
            tracing::info!(message_id = %id, agent = %agent.name, status = %status, "agent reported");
        }
        Ok(result)
    }

    /// Reads a message and a page of its updates for an agent that serves its target.
    pub async fn message_for_agent(
        &self,
        agent: &AgentRecord,
        id: &str,
        page: UpdatePage,
    ) -> Result<MessageDetail, QueueError> {
        let detail = self.message(id, page).await?;
        if !agent.targets.contains(&detail.message.target) {
            return Err(QueueError::NotYourTarget(detail.message.target));
        }
        Ok(detail)
    }
}
