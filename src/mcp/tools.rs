//! The tools' arguments and results: what a model sends and gets back. Field docs become the
//! JSON Schema descriptions a model reads, so they are written for it.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::queue::message::MessageStatus;
use crate::queue::view::{MessageView, UpdateView};

/// `send_message` arguments.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct SendMessageArgs {
    /// The task or message for the agent, in plain text (at most 16 KiB).
    pub message: String,
    /// Which agent to send it to. Leave out for the default target.
    #[serde(default)]
    pub target: Option<String>,
    /// Set to true to put it ahead of tasks that are not urgent.
    #[serde(default)]
    pub urgent: Option<bool>,
}

/// `send_message` result.
#[derive(Debug, Serialize, JsonSchema)]
pub struct SendMessageResult {
    /// True when a new task was queued; false when an identical one is still open.
    pub queued: bool,
    /// The task's id (the open duplicate's id when `queued` is false).
    pub id: String,
    /// The target it was queued for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// `pending` for a new task.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<MessageStatus>,
    /// Why nothing was queued: `duplicate`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// `pull_updates` arguments.
#[derive(Debug, Default, Deserialize, JsonSchema)]
pub struct PullUpdatesArgs {
    /// Where to continue: the `next_cursor` of an earlier call, or an RFC 3339 time. Leave out
    /// to get everything you have not pulled yet.
    #[serde(default)]
    pub since: Option<String>,
    /// Only updates about this task.
    #[serde(default)]
    pub message_id: Option<String>,
    /// Only updates from this target.
    #[serde(default)]
    pub target: Option<String>,
    /// At most this many updates (default 50, at most 200).
    #[serde(default)]
    pub limit: Option<u32>,
    /// When nothing new is there yet, wait up to this many seconds (at most 50) for the agent
    /// instead of returning an empty list. Progress notifications are sent while waiting. At
    /// most 4 of your calls wait at once; another answers at once, with `wait_declined`.
    #[serde(default)]
    pub wait: Option<u32>,
}

/// `pull_updates` result.
#[derive(Debug, Serialize, JsonSchema)]
pub struct PullUpdatesResult {
    /// Updates in order: agent replies and status changes.
    pub updates: Vec<UpdateView>,
    /// Pass this as `since` to continue after these updates.
    pub next_cursor: String,
    /// Present when you asked to wait but the answer came at once: you (or the gateway as a
    /// whole) already had the most calls waiting. Says which; pull again later.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wait_declined: Option<String>,
}

/// `queue_status` arguments.
#[derive(Debug, Default, Deserialize, JsonSchema)]
pub struct QueueStatusArgs {
    /// Only this target. Leave out for all of them.
    #[serde(default)]
    pub target: Option<String>,
}

/// Open-task counts for one target.
#[derive(Debug, Serialize, JsonSchema)]
pub struct TargetCounts {
    /// Target name.
    pub target: String,
    /// Tasks waiting for the agent.
    pub pending: i64,
    /// Tasks the agent has seen.
    pub acknowledged: i64,
    /// Tasks being worked on.
    pub in_progress: i64,
}

/// `queue_status` result.
#[derive(Debug, Serialize, JsonSchema)]
pub struct QueueStatusResult {
    /// Tasks waiting for the agent, over the targets shown.
    pub pending: i64,
    /// Tasks the agent has seen.
    pub acknowledged: i64,
    /// Tasks being worked on.
    pub in_progress: i64,
    /// Updates recorded so far, in all.
    pub total_updates: i64,
    /// The task being worked on, or null when none is (always present: the seed's contract
    /// lists it, and clients written against it read the key).
    pub current_task: Option<MessageView>,
    /// The same counts per target.
    pub targets: Vec<TargetCounts>,
}

/// Arguments naming one task.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct MessageIdArgs {
    /// The task's id, as returned by send_message.
    pub id: String,
}

/// `get_message` arguments.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct GetMessageArgs {
    /// The task's id, as returned by send_message.
    pub id: String,
    /// Continue after this point: the `next_cursor` of an earlier get_message answer for the
    /// same task. Leave out to start from the task's first update.
    #[serde(default)]
    pub after: Option<String>,
    /// At most this many updates (default 100, at most 500).
    #[serde(default)]
    pub limit: Option<u32>,
}

/// `get_message` result.
#[derive(Debug, Serialize, JsonSchema)]
pub struct GetMessageResult {
    /// The task.
    pub message: MessageView,
    /// What happened to it, oldest first: status changes and agent replies (one page).
    pub updates: Vec<UpdateView>,
    /// True when more updates follow these.
    pub has_more: bool,
    /// Present when has_more is true: pass it as `after` to read the next page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// `cancel_message` result.
#[derive(Debug, Serialize, JsonSchema)]
pub struct CancelMessageResult {
    /// Always true: failures come back as a tool error.
    pub cancelled: bool,
    /// The task's id.
    pub id: String,
    /// `cancelled`.
    pub status: MessageStatus,
}
