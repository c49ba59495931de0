//! The task domain: messages for agents, their statuses and updates, dedup, targets and read
//! cursors. Knows nothing of HTTP, MCP or Telegram; the MCP tools, the agent API and the
//! transports all call `Queue`.

pub mod agents;
mod claims;
pub mod error;
pub mod message;
mod pull;
mod snapshot;
mod transport;
pub mod view;

pub use snapshot::QueueSnapshot;

pub use pull::{PullQuery, Pulled, rfc3339};

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::clock::{SharedClock, UnixSeconds};
use crate::config::TargetConfig;
use crate::queue::error::QueueError;
use crate::queue::message::{MessageStatus, check_content, content_hash};
use crate::store::{
    Change, InsertOutcome, MessageRecord, NewMessage, Store, TransitionOutcome, UpdateFilter,
    UpdateRecord,
};

/// Updates returned by one pull when no limit is given.
pub const DEFAULT_PULL_LIMIT: i64 = 50;
/// The most updates one pull returns.
pub const MAX_PULL_LIMIT: i64 = 200;
/// Updates in one answer about a message when no limit is given.
pub const DEFAULT_MESSAGE_UPDATES: i64 = 100;
/// The most updates one answer about a message holds. A long task can gather thousands of
/// updates, and the answer is a tool result a model reads or a response an agent buffers: it
/// is paged instead of growing without bound.
pub const MAX_MESSAGE_UPDATES: i64 = 500;

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

/// Which of a message's updates to read.
#[derive(Debug, Clone, Default)]
pub struct UpdatePage {
    /// Only after this cursor (the `next_cursor` of an earlier answer).
    pub after: Option<String>,
    /// At most this many (default 100, at most 500).
    pub limit: Option<i64>,
}

/// A message with a page of what happened to it.
#[derive(Debug, Clone)]
pub struct MessageDetail {
    /// The message.
    pub message: MessageRecord,
    /// A page of its updates, oldest first (status changes carry `status`).
    pub updates: Vec<UpdateRecord>,
    /// Whether more updates follow this page.
    pub has_more: bool,
    /// When more follow: pass it as `after` to read the next page.
    pub next_cursor: Option<String>,
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
    // Moves after every committed change of a message or an update (see `updates_recorded`).
    changes: AtomicU64,
    // `queue_status` answers, valid while `changes` has not moved.
    snapshots: snapshot::SnapshotCache,
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
                changes: AtomicU64::new(0),
                snapshots: snapshot::SnapshotCache::default(),
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
        self.insert(target, request).await
    }

    /// Queues a message for one of the gateway's own workers (a queued upstream call), on a
    /// target that is not configured and that no agent can claim. Dedup as for `send`.
    pub async fn send_internal(
        &self,
        target: &str,
        content: String,
        sender: String,
    ) -> Result<Sent, QueueError> {
        check_content(&content)?;
        let request = SendRequest {
            content,
            target: None,
            urgent: false,
            sender,
        };
        self.insert(target.to_owned(), request).await
    }

    async fn insert(&self, target: String, request: SendRequest) -> Result<Sent, QueueError> {
        // Time-ordered (v7): new ids land at the right edge of the id index and of the updates'
        // message index, so a batch of sends dirties a few pages instead of one per message
        // per index. Ids are names, not secrets: every check is on the caller's token.
        let id = uuid::Uuid::now_v7().to_string();
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
                self.updates_recorded();
                Ok(Sent::Queued { id, target })
            }
            InsertOutcome::Duplicate(existing) => {
                tracing::info!(message_id = %existing, target = %target, "duplicate message refused");
                Ok(Sent::Duplicate { id: existing })
            }
        }
    }

    /// A message and a page of its updates.
    pub async fn message(&self, id: &str, page: UpdatePage) -> Result<MessageDetail, QueueError> {
        let message = self.find_message(id).await?;
        let after_seq = match page.after.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(cursor) => Some(cursor.parse::<i64>().map_err(|_| QueueError::BadAfter)?),
        };
        let limit = page
            .limit
            .unwrap_or(DEFAULT_MESSAGE_UPDATES)
            .clamp(1, MAX_MESSAGE_UPDATES);
        // One more than the page, to know whether another page follows.
        let filter = UpdateFilter {
            message_id: Some(id.to_owned()),
            after_seq,
            limit: limit + 1,
            ..Default::default()
        };
        let mut updates = self.inner.store.list_updates(&filter).await?;
        let page_len = usize::try_from(limit).unwrap_or(usize::MAX);
        let has_more = updates.len() > page_len;
        updates.truncate(page_len);
        let next_cursor = updates
            .last()
            .filter(|_| has_more)
            .map(|last| last.seq.to_string());
        Ok(MessageDetail {
            message,
            updates,
            has_more,
            next_cursor,
        })
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

    fn store(&self) -> &Store {
        &self.inner.store
    }

    /// Wakes this process's waiters for what other replicas commit, as `changes` announces
    /// it (PostgreSQL only; on SQLite this process makes every change itself), until the feed
    /// closes: agents long-polling for work, pulls waiting for updates, and the cached
    /// `queue_status` answers all see another replica's send as they see their own.
    pub async fn follow(&self, mut changes: tokio::sync::broadcast::Receiver<Change>) {
        use tokio::sync::broadcast::error::RecvError;
        loop {
            match changes.recv().await {
                // An update wakes agents too: a claim skips a task another replica holds
                // locked while it records an update, and that commit changes no message.
                Ok(Change::Messages | Change::Updates | Change::Anything)
                | Err(RecvError::Lagged(_)) => {
                    self.inner.work_queued.notify_waiters();
                    self.updates_recorded();
                }
                Ok(Change::Revocations | Change::Keys) => {}
                Err(RecvError::Closed) => return,
            }
        }
    }

    /// Waits until an update may have been recorded, or `timeout` passes.
    pub async fn wait_for_update(&self, timeout: Duration) {
        let _ = tokio::time::timeout(timeout, self.inner.update_recorded.notified()).await;
    }

    /// Called after every committed change of a message or an update (never before the
    /// commit: a snapshot read in between would be cached as current): moves the change
    /// counter that `queue_status`'s cache checks, and wakes waiting pulls.
    fn updates_recorded(&self) {
        self.inner.changes.fetch_add(1, Ordering::AcqRel);
        self.inner.update_recorded.notify_waiters();
    }

    async fn transition(
        &self,
        id: &str,
        status: Option<MessageStatus>,
        content: &str,
        source: &str,
        agent: Option<&str>,
    ) -> Result<(MessageRecord, UpdateRecord), QueueError> {
        let outcome = self
            .inner
            .store
            .record_update(id, status, content, source, agent, self.now())
            .await?;
        self.settle(id, status, outcome)
    }

    /// What a requested status change of message `id` to `status` came to, for the caller.
    fn settle(
        &self,
        id: &str,
        status: Option<MessageStatus>,
        outcome: TransitionOutcome,
    ) -> Result<(MessageRecord, UpdateRecord), QueueError> {
        match outcome {
            TransitionOutcome::Applied(applied) => {
                self.updates_recorded();
                Ok(*applied)
            }
            TransitionOutcome::NotFound => Err(QueueError::NotFound(id.to_owned())),
            TransitionOutcome::ClaimedByAnother(owner) => Err(QueueError::ClaimedByAnother(owner)),
            TransitionOutcome::Refused(from) => Err(QueueError::InvalidTransition {
                id: id.to_owned(),
                from,
                reason: status.map_or("the message is already finished", |next| from.why_not(next)),
            }),
        }
    }

    /// A message, without its updates.
    pub async fn find_message(&self, id: &str) -> Result<MessageRecord, QueueError> {
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
