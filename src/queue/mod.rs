//! The task domain: messages for agents, their statuses and updates, dedup, targets and read
//! cursors. Knows nothing of HTTP, MCP or Telegram; the MCP tools, the agent API and the
//! transports all call `Queue`.

pub mod agents;
pub mod error;
pub mod message;
mod transport;
pub mod view;

use std::collections::BTreeMap;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::clock::{SharedClock, UnixSeconds};
use crate::config::TargetConfig;
use crate::queue::error::QueueError;
use crate::queue::message::{MessageStatus, check_content, content_hash};
use crate::store::{
    AgentRecord, InsertOutcome, MessageRecord, NewMessage, StatusCounts, Store, TransitionOutcome,
    UpdateFilter, UpdateRecord,
};

/// Updates returned by one pull when no limit is given.
pub const DEFAULT_PULL_LIMIT: i64 = 50;
/// The most updates one pull returns.
pub const MAX_PULL_LIMIT: i64 = 200;

/// A request to queue a message.
#[derive(Debug, Clone)]
pub struct SendRequest {
    /// The text for the agent.
    pub content: String,
    /// The target; the default target when absent.
    pub target: Option<String>,
    /// Claimed before non-urgent messages.
    pub urgent: bool,
    /// The sending client's id.
    pub sender: String,
}

/// What sending did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sent {
    /// Queued as a new message.
    Queued {
        /// Its id.
        id: String,
        /// Its target.
        target: String,
    },
    /// An identical message for the same target is still open.
    Duplicate {
        /// The open message's id.
        id: String,
    },
}

/// Which updates a client wants.
#[derive(Debug, Clone, Default)]
pub struct PullQuery {
    /// A cursor (`next_cursor` of an earlier pull) or an RFC 3339 time; absent means "what
    /// this client has not pulled yet".
    pub since: Option<String>,
    /// Only updates about this message.
    pub message_id: Option<String>,
    /// Only updates from this target.
    pub target: Option<String>,
    /// At most this many (default 50, at most 200).
    pub limit: Option<i64>,
}

/// The answer to a pull.
#[derive(Debug, Clone)]
pub struct Pulled {
    /// Updates in sequence order.
    pub updates: Vec<UpdateRecord>,
    /// Pass this as `since` to continue after them.
    pub next_cursor: String,
}

/// Queue counts for `queue_status`.
#[derive(Debug, Clone)]
pub struct QueueSnapshot {
    /// Open-message counts per target (every configured target, zeros included).
    pub per_target: Vec<StatusCounts>,
    /// Updates recorded in all.
    pub total_updates: i64,
    /// The oldest message in progress, if any.
    pub current_task: Option<MessageRecord>,
}

/// A message with everything that happened to it.
#[derive(Debug, Clone)]
pub struct MessageDetail {
    /// The message.
    pub message: MessageRecord,
    /// Its updates, oldest first (status changes carry `status`).
    pub updates: Vec<UpdateRecord>,
}

/// The queue service: a cheap, cloneable handle.
#[derive(Clone)]
pub struct Queue {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    clock: SharedClock,
    targets: Vec<TargetConfig>,
    // Wakes agents long-polling for work when a message is queued.
    work_queued: Notify,
    // Wakes clients waiting in `pull_updates` when any update is recorded.
    update_recorded: Notify,
    shutdown: CancellationToken,
}

impl std::fmt::Debug for Queue {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Queue")
            .field("targets", &self.inner.targets.len())
            .finish_non_exhaustive()
    }
}

impl Queue {
    /// A queue over `store` serving the configured targets (the first is the default).
    pub fn new(
        store: Store,
        clock: SharedClock,
        targets: Vec<TargetConfig>,
        shutdown: CancellationToken,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                store,
                clock,
                targets,
                work_queued: Notify::new(),
                update_recorded: Notify::new(),
                shutdown,
            }),
        }
    }

    /// The configured targets.
    pub fn targets(&self) -> &[TargetConfig] {
        &self.inner.targets
    }

    /// Queues a message, or names the identical open one (SHA-256 of the text, per target).
    #[tracing::instrument(skip_all, fields(sender = %request.sender))]
    pub async fn send(&self, request: SendRequest) -> Result<Sent, QueueError> {
        check_content(&request.content)?;
        let target = self.resolve_target(request.target.as_deref())?;
        let id = uuid::Uuid::new_v4().to_string();
        let message = NewMessage {
            id: id.clone(),
            target: target.clone(),
            content_hash: content_hash(&request.content),
            content: request.content,
            urgent: request.urgent,
            sender: request.sender,
            created_at: self.now(),
        };
        let queued_text = if message.urgent {
            "queued (urgent)"
        } else {
            "queued"
        };
        match self
            .inner
            .store
            .insert_message(&message, queued_text)
            .await?
        {
            InsertOutcome::Queued => {
                tracing::info!(message_id = %id, target = %target, urgent = message.urgent, "message queued");
                self.inner.work_queued.notify_waiters();
                self.inner.update_recorded.notify_waiters();
                Ok(Sent::Queued { id, target })
            }
            InsertOutcome::Duplicate(existing) => {
                tracing::info!(message_id = %existing, target = %target, "duplicate message refused");
                Ok(Sent::Duplicate { id: existing })
            }
        }
    }

    /// Reads updates after a cursor or time, or, with no `since`, what this client has not
    /// pulled yet. Unfiltered pulls move the client's stored cursor forward.
    pub async fn pull_updates(
        &self,
        client_id: &str,
        query: PullQuery,
    ) -> Result<Pulled, QueueError> {
        let limit = query
            .limit
            .unwrap_or(DEFAULT_PULL_LIMIT)
            .clamp(1, MAX_PULL_LIMIT);
        let mut filter = UpdateFilter {
            message_id: query.message_id.clone(),
            target: query.target.clone(),
            limit,
            ..Default::default()
        };
        match query
            .since
            .as_deref()
            .map(str::trim)
            .filter(|since| !since.is_empty())
        {
            Some(since) => match parse_since(since)? {
                Since::Cursor(seq) => filter.after_seq = Some(seq),
                Since::Time(time) => filter.after_time = Some(time),
            },
            None => {
                filter.after_seq = Some(
                    self.inner
                        .store
                        .client_cursor(client_id)
                        .await?
                        .unwrap_or(0),
                )
            }
        }
        let updates = self.inner.store.list_updates(&filter).await?;
        let next_seq = match updates.last() {
            Some(last) => last.seq,
            // Nothing new: continue from where this pull started (or the newest update when
            // the pull was by time), so the cursor never moves backwards.
            None => match filter.after_seq {
                Some(seq) => seq,
                None => self.inner.store.last_update_seq().await?,
            },
        };
        if query.message_id.is_none() && query.target.is_none() {
            self.inner
                .store
                .advance_client_cursor(client_id, next_seq)
                .await?;
        }
        Ok(Pulled {
            updates,
            next_cursor: next_seq.to_string(),
        })
    }

    /// Counts of open messages per target, the update total and the current task.
    pub async fn snapshot(&self, target: Option<&str>) -> Result<QueueSnapshot, QueueError> {
        let target = target
            .map(|name| self.resolve_target(Some(name)))
            .transpose()?;
        let counted: BTreeMap<String, StatusCounts> = self
            .inner
            .store
            .open_counts()
            .await?
            .into_iter()
            .map(|counts| (counts.target.clone(), counts))
            .collect();
        let per_target = self
            .inner
            .targets
            .iter()
            .filter(|configured| {
                target
                    .as_ref()
                    .is_none_or(|wanted| *wanted == configured.name)
            })
            .map(|configured| {
                counted
                    .get(&configured.name)
                    .cloned()
                    .unwrap_or_else(|| StatusCounts {
                        target: configured.name.clone(),
                        ..StatusCounts::default()
                    })
            })
            .collect();
        let current_task = self
            .inner
            .store
            .current_in_progress(target.as_deref())
            .await?;
        Ok(QueueSnapshot {
            per_target,
            total_updates: self.inner.store.count_updates().await?,
            current_task,
        })
    }

    /// A message and its updates.
    pub async fn message(&self, id: &str) -> Result<MessageDetail, QueueError> {
        let message = self.find_message(id).await?;
        let filter = UpdateFilter {
            message_id: Some(id.to_owned()),
            limit: i64::from(u16::MAX),
            ..Default::default()
        };
        let updates = self.inner.store.list_updates(&filter).await?;
        Ok(MessageDetail { message, updates })
    }

    /// Cancels a message that no agent has started on.
    pub async fn cancel(&self, id: &str, by: &str) -> Result<MessageRecord, QueueError> {
        let (message, _) = self
            .transition(
                id,
                Some(MessageStatus::Cancelled),
                &format!("cancelled by {by}"),
                "gateway",
                None,
            )
            .await?;
        tracing::info!(message_id = %id, "message cancelled");
        Ok(message)
    }

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
                self.inner.update_recorded.notify_waiters();
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
        if let Some(owner) = message.claimed_by.filter(|owner| *owner != agent.name) {
            return Err(QueueError::ClaimedByAnother(owner));
        }
        check_content(content)?;
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

    /// Reads a message for an agent that serves its target.
    pub async fn message_for_agent(
        &self,
        agent: &AgentRecord,
        id: &str,
    ) -> Result<MessageDetail, QueueError> {
        let detail = self.message(id).await?;
        if !agent.targets.contains(&detail.message.target) {
            return Err(QueueError::NotYourTarget(detail.message.target));
        }
        Ok(detail)
    }

    fn store(&self) -> &Store {
        &self.inner.store
    }

    /// Waits until an update may have been recorded, or `timeout` passes.
    pub async fn wait_for_update(&self, timeout: Duration) {
        let _ = tokio::time::timeout(timeout, self.inner.update_recorded.notified()).await;
    }

    fn updates_recorded(&self) {
        self.inner.update_recorded.notify_waiters();
    }

    async fn work_queued(&self) {
        self.inner.work_queued.notified().await;
    }

    async fn transition(
        &self,
        id: &str,
        status: Option<MessageStatus>,
        content: &str,
        source: &str,
        agent: Option<&str>,
    ) -> Result<(MessageRecord, UpdateRecord), QueueError> {
        match self
            .inner
            .store
            .record_update(id, status, content, source, agent, self.now())
            .await?
        {
            TransitionOutcome::Applied(applied) => {
                self.inner.update_recorded.notify_waiters();
                Ok(*applied)
            }
            TransitionOutcome::NotFound => Err(QueueError::NotFound(id.to_owned())),
            TransitionOutcome::Refused(from) => Err(QueueError::InvalidTransition {
                id: id.to_owned(),
                from,
                reason: status.map_or("the message is already finished", |next| from.why_not(next)),
            }),
        }
    }

    async fn find_message(&self, id: &str) -> Result<MessageRecord, QueueError> {
        self.inner
            .store
            .find_message(id)
            .await?
            .ok_or_else(|| QueueError::NotFound(id.to_owned()))
    }

    fn resolve_target(&self, name: Option<&str>) -> Result<String, QueueError> {
        let targets = &self.inner.targets;
        match name.map(str::trim).filter(|name| !name.is_empty()) {
            None => targets
                .first()
                .map(|target| target.name.clone())
                .ok_or_else(|| QueueError::UnknownTarget {
                    name: String::new(),
                    known: Vec::new(),
                }),
            Some(name) if targets.iter().any(|target| target.name == name) => Ok(name.to_owned()),
            Some(name) => Err(QueueError::UnknownTarget {
                name: name.to_owned(),
                known: targets.iter().map(|target| target.name.clone()).collect(),
            }),
        }
    }

    fn now(&self) -> UnixSeconds {
        self.inner.clock.now()
    }
}

enum Since {
    Cursor(i64),
    Time(UnixSeconds),
}

fn parse_since(since: &str) -> Result<Since, QueueError> {
    if since.bytes().all(|byte| byte.is_ascii_digit()) {
        return since
            .parse()
            .map(Since::Cursor)
            .map_err(|_| QueueError::BadCursor);
    }
    OffsetDateTime::parse(since, &Rfc3339)
        .map(|time| Since::Time(time.unix_timestamp()))
        .map_err(|_| QueueError::BadCursor)
}

/// Formats a stored time as RFC 3339 (UTC).
pub fn rfc3339(at: UnixSeconds) -> String {
    OffsetDateTime::from_unix_timestamp(at)
        .ok()
        .and_then(|time| time.format(&Rfc3339).ok())
        .unwrap_or_else(|| at.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_is_a_cursor_or_a_time() {
        assert!(matches!(parse_since("42"), Ok(Since::Cursor(42))));
        assert!(matches!(
            parse_since("2026-11-21T10:00:00Z"),
            Ok(Since::Time(1_795_255_200))
        ));
        assert!(matches!(
            parse_since("2026-11-21T11:00:00+01:00"),
            Ok(Since::Time(1_795_255_200))
        ));
        assert!(parse_since("yesterday").is_err());
        assert!(parse_since("99999999999999999999999").is_err());
        assert_eq!(rfc3339(1_795_255_200), "2026-11-21T10:00:00Z");
    }
}
